//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// lifecycleCLIPolicy keeps the newest dev-* image, the newest untagged one,
// and the newest three overall of what those two rules did not select.
const lifecycleCLIPolicy = `{"rules":[` +
	`{"rulePriority":1,"description":"newest dev build","selection":{"tagStatus":"tagged","tagPatternList":["dev-*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},` +
	`{"rulePriority":2,"description":"newest untagged","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},` +
	`{"rulePriority":3,"description":"three images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}]}`

// TestAWSCLILifecycle: the AWS CLI v2 previews a lifecycle policy on pushed
// images, the emulator applies it, and describe-images shows the result.
func TestAWSCLILifecycle(t *testing.T) {
	requireTools(t, awsCLI)
	e := ecrfake.Start(t, ecrfake.Options{})
	const repo = "e2e/lifecycle"
	if out, err := awsCLIRun(t, e, "ecr", "create-repository", "--repository-name", repo); err != nil {
		t.Fatalf("create-repository: %v\n%s", err, out)
	}
	password, err := awsCLIRun(t, e, "ecr", "get-login-password")
	if err != nil {
		t.Fatalf("get-login-password: %v", err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: strings.TrimSpace(password)})
	// By push time: feat, u1, u2 (untagged once "latest" moved on), dev1,
	// dev2, dev3, rel1, u3 (latest).
	digests := map[string]string{} // digest -> name
	for _, p := range []struct{ name, tag string }{
		{"feat", "feature-x"}, {"u1", "latest"}, {"u2", "latest"}, {"dev1", "dev-1"}, {"dev2", "dev-2"},
		{"dev3", "dev-3"}, {"rel1", "release-1"}, {"u3", "latest"},
	} {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(e.Host()+"/"+repo+":"+p.tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, auth); err != nil {
			t.Fatalf("push %s: %v", p.tag, err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[d.String()] = p.name
		time.Sleep(5 * time.Millisecond) // distinct push times
	}
	want := map[string]int{"dev1": 1, "dev2": 1, "u1": 2, "feat": 3}

	if out, err := awsCLIRun(t, e, "ecr", "put-lifecycle-policy", "--repository-name", repo, "--lifecycle-policy-text", lifecycleCLIPolicy); err != nil {
		t.Fatalf("put-lifecycle-policy: %v\n%s", err, out)
	}
	out, err := awsCLIRun(t, e, "ecr", "start-lifecycle-policy-preview", "--repository-name", repo)
	if err != nil {
		t.Fatalf("start-lifecycle-policy-preview: %v\n%s", err, out)
	}
	var started struct {
		Status, LifecyclePolicyText string
	}
	if err := json.Unmarshal([]byte(out), &started); err != nil || started.Status != "IN_PROGRESS" || started.LifecyclePolicyText != lifecycleCLIPolicy {
		t.Fatalf("start-lifecycle-policy-preview answered %s (%v)", out, err)
	}
	if out, err := awsCLIRun(t, e, "ecr", "wait", "lifecycle-policy-preview-complete", "--repository-name", repo); err != nil {
		t.Fatalf("wait lifecycle-policy-preview-complete: %v\n%s", err, out)
	}
	out, err = awsCLIRun(t, e, "ecr", "get-lifecycle-policy-preview", "--repository-name", repo)
	if err != nil {
		t.Fatalf("get-lifecycle-policy-preview: %v\n%s", err, out)
	}
	t.Logf("get-lifecycle-policy-preview:\n%s", out)
	var preview struct {
		Status         string
		PreviewResults []struct {
			ImageDigest         string
			ImageTags           []string
			ImagePushedAt       string
			AppliedRulePriority int
			Action              struct{ Type string }
		}
		Summary struct{ ExpiringImageTotalCount int }
	}
	if err := json.Unmarshal([]byte(out), &preview); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range preview.PreviewResults {
		if _, perr := time.Parse(time.RFC3339Nano, r.ImagePushedAt); r.Action.Type != "EXPIRE" || perr != nil {
			t.Errorf("preview result %+v: want action EXPIRE and a push time", r)
		}
		got[digests[r.ImageDigest]] = r.AppliedRulePriority
	}
	if preview.Status != "COMPLETE" || preview.Summary.ExpiringImageTotalCount != len(want) || !maps.Equal(got, want) {
		t.Fatalf("preview: status %s, %d expiring, %v; want COMPLETE, %d, %v", preview.Status, preview.Summary.ExpiringImageTotalCount, got, len(want), want)
	}
	out, err = awsCLIRun(t, e, "ecr", "get-lifecycle-policy-preview", "--repository-name", repo, "--filter", "tagStatus=UNTAGGED")
	if err != nil || !strings.Contains(out, `"appliedRulePriority": 2`) || strings.Contains(out, `"appliedRulePriority": 1`) {
		t.Fatalf("preview filtered to untagged images: %v\n%s", err, out)
	}
	if out, err := awsCLIRun(t, e, "ecr", "get-lifecycle-policy-preview", "--repository-name", "e2e/none"); err == nil ||
		!strings.Contains(err.Error()+out, "RepositoryNotFoundException") {
		t.Fatalf("preview of a missing repository: %v\n%s", err, out)
	}

	resp, err := http.Post(e.URL()+"/_ecrfake/lifecycle?repository="+repo, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var applied struct{ Expired []ecrfake.ExpiredImage }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &applied) != nil {
		t.Fatalf("POST /_ecrfake/lifecycle: %d %s", resp.StatusCode, body)
	}
	gone := map[string]int{}
	for _, x := range applied.Expired {
		gone[digests[x.Digest]] = x.RulePriority
	}
	if !maps.Equal(gone, want) {
		t.Fatalf("applying expired %v, the preview showed %v", gone, want)
	}

	out, err = awsCLIRun(t, e, "ecr", "describe-images", "--repository-name", repo)
	if err != nil {
		t.Fatalf("describe-images: %v\n%s", err, out)
	}
	var described struct {
		ImageDetails []struct{ ImageDigest string }
	}
	if err := json.Unmarshal([]byte(out), &described); err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, d := range described.ImageDetails {
		left[digests[d.ImageDigest]] = true
	}
	if wantLeft := map[string]bool{"u2": true, "dev3": true, "rel1": true, "u3": true}; !maps.Equal(left, wantLeft) {
		t.Fatalf("describe-images after applying: %v, want %v", left, wantLeft)
	}
}
