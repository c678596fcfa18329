package repocreate_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// What the proxy asks before mounting: the switch and mount_from from the
// configuration, BLOB_MOUNTING and encryption from ECR; and the audit
// record of a mount.
func TestMountFacts(t *testing.T) {
	f := setup(t, "templates:\n  - prefix: team\n    mount_from: [base/img]\n    encryption: {type: KMS}\n", ecrfake.Options{}, nil)
	ctx := context.Background()
	reg := f.e.Account() + ".dkr.ecr." + f.e.Region() + ".amazonaws.com"

	if on, from := f.ens.MountFrom("team/app"); !on || len(from) != 1 || from[0] != "base/img" {
		t.Errorf("MountFrom(team/app) = %v, %q", on, from)
	}
	if on, from := f.ens.MountFrom("other"); !on || len(from) != 0 {
		t.Errorf("MountFrom(other) = %v, %q", on, from)
	}
	if on, err := f.ens.BlobMounting(ctx, reg); on || err != nil {
		t.Errorf("BlobMounting with the setting at its default = %v, %v; want false", on, err)
	}
	if err := f.e.SetAccountSetting("", "BLOB_MOUNTING", "ENABLED"); err != nil {
		t.Fatal(err)
	}
	if on, _ := f.ens.BlobMounting(ctx, reg); on {
		t.Error("BlobMounting not remembered: asked ECR again at once")
	}

	enc, err := f.ens.Encryption(ctx, reg, "team/new")
	if err != nil || enc.Exists || enc.Type != string(types.EncryptionTypeKms) {
		t.Errorf("Encryption(missing team/new) = %+v, %v; want the template's KMS, Exists false", enc, err)
	}
	if err := f.ens.Ensure(ctx, reg, "base/img"); err != nil {
		t.Fatal(err)
	}
	enc, err = f.ens.Encryption(ctx, reg, "base/img")
	if err != nil || !enc.Exists || enc.Type != "AES256" {
		t.Errorf("Encryption(base/img) = %+v, %v; want existing AES256", enc, err)
	}

	f.ens.AuditMount(repocreate.WithCaller(ctx, repocreate.Caller{Addr: "127.0.0.1:1"}), repocreate.MountRecord{Registry: reg, Repository: "team/app",
		Digest: "sha256:" + strings.Repeat("a", 64), From: "base/img", Size: 42, How: "mount"})
	b, err := os.ReadFile(f.cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var rec struct {
		Repository string
		Client     string
		Mount      struct {
			Digest, From, How string
			Size              int64
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Repository != "team/app" || rec.Client != "127.0.0.1:1" || rec.Mount.From != "base/img" || rec.Mount.Size != 42 || rec.Mount.How != "mount" {
		t.Errorf("audit line %s", lines[len(lines)-1])
	}
}
