package ecrfake_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// mountFixture has an image pushed to "base/img" in the default registry
// and returns a layer digest of it.
func mountFixture(t *testing.T) (*ecrfake.Emulator, *regClient, string) {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{})
	for _, in := range []*ecr.CreateRepositoryInput{
		{RepositoryName: aws.String("base/img")},
		{RepositoryName: aws.String("team/app")},
		{RepositoryName: aws.String("team/kms"), EncryptionConfiguration: &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKms}},
	} {
		createRepo(t, e, in)
	}
	rc := newRegClient(t, e)
	img := randomImage(t)
	if err := rc.push(t, "base/img:1", img); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	dg, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return e, rc, dg.String()
}

func setBlobMounting(t *testing.T, e *ecrfake.Emulator, value string) {
	t.Helper()
	if _, err := ecrClient(e).PutAccountSetting(context.Background(), &ecr.PutAccountSettingInput{
		Name: aws.String("BLOB_MOUNTING"), Value: aws.String(value)}); err != nil {
		t.Fatal(err)
	}
}

// mount POSTs a cross-repository mount and returns status and headers.
func mount(t *testing.T, e *ecrfake.Emulator, rc *regClient, repo, dg, from string) (int, http.Header) {
	t.Helper()
	code, h, _ := rc.do(t, e, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+url.QueryEscape(dg)+"&from="+url.QueryEscape(from), "", nil)
	return code, h
}

func blobStatus(t *testing.T, e *ecrfake.Emulator, rc *regClient, repo, dg string) int {
	t.Helper()
	code, _, _ := rc.do(t, e, http.MethodHead, "/v2/"+repo+"/blobs/"+dg, "", nil)
	return code
}

func TestBlobMount(t *testing.T) {
	e, rc, layer := mountFixture(t)
	other := "sha256:" + strings.Repeat("ab", 32)

	// Disabled (ECR's default): an upload session, though distribution
	// could mount the layer.
	code, h := mount(t, e, rc, "team/app", layer, "base/img")
	if code != http.StatusAccepted || !strings.Contains(h.Get("Location"), "/v2/team/app/blobs/uploads/") {
		t.Fatalf("mount with BLOB_MOUNTING disabled: %d Location %q, want 202 and an upload session", code, h.Get("Location"))
	}
	if got := blobStatus(t, e, rc, "team/app", layer); got != http.StatusNotFound {
		t.Fatalf("blob HEAD after a refused mount: %d, want 404", got)
	}

	setBlobMounting(t, e, "ENABLED")
	for _, tc := range []struct {
		name, repo, dg, from string
	}{
		{"different encryption", "team/kms", layer, "base/img"},
		{"missing source repository", "team/app", layer, "base/none"},
		{"blob not in source", "team/app", other, "base/img"},
	} {
		code, h := mount(t, e, rc, tc.repo, tc.dg, tc.from)
		if code != http.StatusAccepted || !strings.Contains(h.Get("Location"), "/v2/"+tc.repo+"/blobs/uploads/") {
			t.Errorf("%s: %d Location %q, want 202 and an upload session", tc.name, code, h.Get("Location"))
		}
		if got := blobStatus(t, e, rc, tc.repo, tc.dg); got != http.StatusNotFound {
			t.Errorf("%s: blob HEAD after a refused mount: %d, want 404", tc.name, got)
		}
	}

	// Enabled, same registry, identical encryption: mounted.
	code, h = mount(t, e, rc, "team/app", layer, "base/img")
	if code != http.StatusCreated {
		t.Fatalf("mount: %d, want 201", code)
	}
	if got := h.Get("Docker-Content-Digest"); got != layer {
		t.Errorf("Docker-Content-Digest = %q, want %s", got, layer)
	}
	if loc := h.Get("Location"); !strings.HasSuffix(loc, "/v2/team/app/blobs/"+layer) {
		t.Errorf("Location = %q, want the blob in team/app", loc)
	}
	if got := blobStatus(t, e, rc, "team/app", layer); got != http.StatusOK {
		t.Errorf("blob HEAD after the mount: %d, want 200", got)
	}

	// A caller who may not read layers from the source gets no mount.
	deny := `{"Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:user/ecrfake"},"Action":"ecr:GetDownloadUrlForLayer"}]}`
	if _, err := ecrClient(e).SetRepositoryPolicy(context.Background(), &ecr.SetRepositoryPolicyInput{
		RepositoryName: aws.String("base/img"), PolicyText: aws.String(deny)}); err != nil {
		t.Fatal(err)
	}
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/other")})
	if code, _ := mount(t, e, rc, "team/other", layer, "base/img"); code != http.StatusAccepted {
		t.Errorf("mount from a source the caller may not read: %d, want 202", code)
	}

	// Disabled again: no more mounts (the mounted layer stays).
	setBlobMounting(t, e, "DISABLED")
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/late")})
	if code, _ := mount(t, e, rc, "team/late", layer, "team/app"); code != http.StatusAccepted {
		t.Errorf("mount after disabling: %d, want 202", code)
	}
	if got := blobStatus(t, e, rc, "team/app", layer); got != http.StatusOK {
		t.Errorf("mounted blob after disabling: %d, want 200", got)
	}
}

// TestSetAccountSetting: the in-process shortcut stores what
// PutAccountSetting stores, and refuses what it refuses.
func TestSetAccountSetting(t *testing.T) {
	e, rc, layer := mountFixture(t)
	if err := e.SetAccountSetting("", "BLOB_MOUNTING", "ENABLED"); err != nil {
		t.Fatal(err)
	}
	out, err := ecrClient(e).GetAccountSetting(context.Background(), &ecr.GetAccountSettingInput{Name: aws.String("BLOB_MOUNTING")})
	if err != nil || aws.ToString(out.Value) != "ENABLED" {
		t.Fatalf("GetAccountSetting after SetAccountSetting: %v %v", aws.ToString(out.Value), err)
	}
	if code, _ := mount(t, e, rc, "team/app", layer, "base/img"); code != http.StatusCreated {
		t.Errorf("mount after SetAccountSetting: %d, want 201", code)
	}
	for _, bad := range [][3]string{{"", "BLOB_MOUNTING", "on"}, {"", "NOPE", "ENABLED"}, {"999999999999", "BLOB_MOUNTING", "ENABLED"}} {
		if err := e.SetAccountSetting(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("SetAccountSetting%q accepted", bad)
		}
	}
}
