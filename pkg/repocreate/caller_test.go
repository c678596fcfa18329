package repocreate_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// The audit line and the log line of a creation name the client and the
// fingerprint of its token (issue #15), never the token.
func TestAuditNamesTheCaller(t *testing.T) {
	f := setup(t, fullYAML, ecrfake.Options{}, nil)
	const auth = "Basic QVdTOnNlY3JldC10b2tlbi12YWx1ZQ=="
	fp := repocreate.TokenFingerprint(auth)
	if len(fp) != 12 || strings.Trim(fp, "0123456789abcdef") != "" || fp == repocreate.TokenFingerprint(auth+"x") {
		t.Fatalf("TokenFingerprint = %q", fp)
	}
	if repocreate.TokenFingerprint("") != "" {
		t.Error("no Authorization has a fingerprint")
	}
	ctx := repocreate.WithCaller(context.Background(), repocreate.Caller{Addr: "192.0.2.7:40000", Token: fp})
	if err := f.ens.Ensure(ctx, reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	if err := f.ens.Ensure(context.Background(), reg, "tools/x"); err != nil {
		t.Fatal(err)
	}
	lines := f.audit(t)
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2", len(lines))
	}
	data, err := os.ReadFile(f.cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	first, second, _ := strings.Cut(string(data), "\n")
	if !strings.Contains(first, `"client":"192.0.2.7:40000"`) || !strings.Contains(first, `"token":"`+fp+`"`) {
		t.Errorf("audit line %s lacks the caller", first)
	}
	if strings.Contains(second, `"client"`) || strings.Contains(second, `"token"`) {
		t.Errorf("audit line without a caller: %s", second)
	}
	created := f.logs.lines(t, "created repository")
	if len(created) != 2 || created[0]["client"] != "192.0.2.7:40000" || created[0]["token"] != fp {
		t.Errorf("creation log lines %v", created)
	}
	for _, s := range []string{string(data), f.logs.String()} {
		if strings.Contains(s, "QVdTOnNlY3JldC10b2tlbi12YWx1ZQ") || strings.Contains(s, "secret-token-value") {
			t.Errorf("the token leaked: %s", s)
		}
	}
}
