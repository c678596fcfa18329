//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// ecrModelCLIEnv returns the environment that lets awsCLI call the ECR
// operations newer than it: none when it knows them, else AWS_DATA_PATH
// pointing at a copy of its own ECR model with the operations of
// testdata/ecr-model-additions.json added. That file holds, from botocore
// 1.43.11's ECR model, the 17 operations Debian's AWS CLI v2.9 lacks
// (creation templates, account settings, update- and
// validate-pull-through-cache-rule, …) and the shapes they need.
func ecrModelCLIEnv(t *testing.T) []string {
	t.Helper()
	if _, err := runCmdStdout(t, nil, awsCLI, "ecr", "update-repository-creation-template", "--generate-cli-skeleton"); err == nil {
		return nil
	}
	// A packaged CLI is a Python script: its interpreter finds its model.
	script, err := os.ReadFile(awsCLI)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(script), "\n")
	python := strings.TrimSpace(strings.TrimPrefix(first, "#!"))
	if !strings.HasPrefix(first, "#!") || strings.Contains(python, " ") {
		t.Fatalf("%s lacks newer ECR operations and is not a Python script whose model can be extended; set E2E_AWS_CLI to a newer AWS CLI", awsCLI)
	}
	dir, err := runCmdStdout(t, nil, python, "-c", "import awscli.botocore, os; print(os.path.dirname(awscli.botocore.__file__))")
	if err != nil {
		t.Fatalf("locate the AWS CLI's botocore: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(dir), "data", "ecr", "2015-09-21", "service-2.json"))
	if err != nil {
		t.Fatalf("read the AWS CLI's ECR model: %v", err)
	}
	additions, err := os.ReadFile(filepath.Join("testdata", "ecr-model-additions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var model map[string]json.RawMessage
	var add map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &model); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(additions, &add); err != nil {
		t.Fatal(err)
	}
	for section, items := range add { // "operations", "shapes"
		var have map[string]json.RawMessage
		if err := json.Unmarshal(model[section], &have); err != nil {
			t.Fatalf("the AWS CLI's ECR model, %s: %v", section, err)
		}
		for k, v := range items {
			if _, ok := have[k]; !ok { // the CLI's own definitions stand
				have[k] = v
			}
		}
		merged, err := json.Marshal(have)
		if err != nil {
			t.Fatal(err)
		}
		model[section] = merged
	}
	out, err := json.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	ecrDir := filepath.Join(data, "ecr", "2015-09-21")
	if err := os.MkdirAll(ecrDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ecrDir, "service-2.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"AWS_DATA_PATH=" + data}
}

// TestAWSCLIAccount: the AWS CLI sets and reads account settings and the
// registry policy; then the Flyte guides' cross-account pull: account A
// pushes and lets account B pull through a repository policy; skopeo with
// B's token pulls, with C's is denied, and B cannot push.
func TestAWSCLIAccount(t *testing.T) {
	requireTools(t, awsCLI, skopeoBin)
	const (
		acctA, acctB, acctC = "111111111111", "222222222222", "333333333333"
		keyB, secretB       = "AKIAE2EBBBBBBBBBBBBB", "e2e-b-secret"
		keyC, secretC       = "AKIAE2ECCCCCCCCCCCCC", "e2e-c-secret"
	)
	// A is the first account, so the emulator's own host name is A's registry.
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{acctA, acctB, acctC}, Users: []ecrfake.User{
		{Name: "b", Account: acctB, AccessKey: keyB, SecretKey: secretB},
		{Name: "c", Account: acctC, AccessKey: keyC, SecretKey: secretC},
	}})
	extra := ecrModelCLIEnv(t)
	aws := func(env []string, args ...string) (string, error) {
		t.Helper()
		return runCmdStdout(t, append(append(awsEnv(e), extra...), env...), awsCLI,
			append([]string{"--endpoint-url", e.URL(), "--output", "json"}, args...)...)
	}
	awsOK := func(args ...string) map[string]string {
		t.Helper()
		out, err := aws(nil, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("aws %s: decode %q: %v", strings.Join(args, " "), out, err)
		}
		return m
	}
	awsFails := func(code string, args ...string) {
		t.Helper()
		out, err := aws(nil, args...)
		if err == nil || !strings.Contains(err.Error(), "("+code+")") {
			t.Errorf("aws %s: err=%v out=%s, want %s", strings.Join(args, " "), err, out, code)
		}
	}

	t.Run("account settings", func(t *testing.T) {
		if got := awsOK("ecr", "get-account-setting", "--name", "BLOB_MOUNTING"); got["name"] != "BLOB_MOUNTING" || got["value"] != "DISABLED" {
			t.Errorf("default BLOB_MOUNTING: %v", got)
		}
		if got := awsOK("ecr", "put-account-setting", "--name", "BLOB_MOUNTING", "--value", "ENABLED"); got["name"] != "BLOB_MOUNTING" || got["value"] != "ENABLED" {
			t.Errorf("put-account-setting answered %v", got)
		}
		if got := awsOK("ecr", "get-account-setting", "--name", "BLOB_MOUNTING"); got["value"] != "ENABLED" {
			t.Errorf("BLOB_MOUNTING after put: %v", got)
		}
		if got := awsOK("ecr", "get-account-setting", "--name", "REGISTRY_POLICY_SCOPE"); got["value"] != "V2" {
			t.Errorf("default REGISTRY_POLICY_SCOPE: %v", got)
		}
		awsFails("InvalidParameterException", "ecr", "put-account-setting", "--name", "BLOB_MOUNTING", "--value", "ON")
		awsFails("InvalidParameterException", "ecr", "get-account-setting", "--name", "NO_SUCH_SETTING")
	})

	t.Run("registry policy", func(t *testing.T) {
		const policy = `{"Version":"2012-10-17","Statement":[{"Sid":"ReplicationAccess","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["ecr:CreateRepository","ecr:ReplicateImage"],"Resource":"arn:aws:ecr:us-east-1:111111111111:repository/*"}]}`
		awsFails("RegistryPolicyNotFoundException", "ecr", "get-registry-policy")
		awsFails("RegistryPolicyNotFoundException", "ecr", "delete-registry-policy")
		awsFails("InvalidParameterException", "ecr", "put-registry-policy", "--policy-text", `{"Statement":"nope"}`)
		if got := awsOK("ecr", "put-registry-policy", "--policy-text", policy); got["registryId"] != acctA || got["policyText"] != policy {
			t.Errorf("put-registry-policy answered %v", got)
		}
		if got := awsOK("ecr", "get-registry-policy"); got["registryId"] != acctA || got["policyText"] != policy {
			t.Errorf("get-registry-policy answered %v", got)
		}
		if got := awsOK("ecr", "delete-registry-policy"); got["policyText"] != policy {
			t.Errorf("delete-registry-policy answered %v", got)
		}
		awsFails("RegistryPolicyNotFoundException", "ecr", "get-registry-policy")
	})

	t.Run("cross-account pull", func(t *testing.T) {
		const repo = "flyte/app"
		if out, err := aws(nil, "ecr", "create-repository", "--repository-name", repo); err != nil {
			t.Fatalf("create-repository: %v\n%s", err, out)
		}
		password := func(key, secret string) string {
			t.Helper()
			var env []string
			if key != "" {
				env = []string{"AWS_ACCESS_KEY_ID=" + key, "AWS_SECRET_ACCESS_KEY=" + secret}
			}
			out, err := aws(env, "ecr", "get-login-password")
			if err != nil {
				t.Fatalf("get-login-password: %v", err)
			}
			return strings.TrimSpace(out)
		}
		passA, passB, passC := password("", ""), password(keyB, secretB), password(keyC, secretC)

		img, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(e.Host()+"/"+repo+":v1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: passA})); err != nil {
			t.Fatalf("A pushes to its registry: %v", err)
		}
		want, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		src := "docker://" + e.Host() + "/" + repo + ":v1"

		// Before A's policy, B's token opens nothing in A's registry.
		if _, out, err := skopeoCopy(t, src, "dir:"+t.TempDir(), skopeoOpts{SrcCreds: "AWS:" + passB}); err == nil ||
			!strings.Contains(err.Error()+out, "is not authorized to perform: ecr:BatchGetImage") {
			t.Fatalf("B pulls without a policy: err=%v\n%s", err, out)
		}

		pullPolicy := `{"Version":"2012-10-17","Statement":[{"Sid":"AllowCrossAccountPull","Effect":"Allow",` +
			`"Principal":{"AWS":"arn:aws:iam::` + acctB + `:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`
		if out, err := aws(nil, "ecr", "set-repository-policy", "--repository-name", repo, "--policy-text", pullPolicy); err != nil {
			t.Fatalf("set-repository-policy: %v\n%s", err, out)
		}

		layout := t.TempDir()
		got := mustSkopeoCopy(t, src, "dir:"+layout, skopeoOpts{SrcCreds: "AWS:" + passB})
		if got != want.String() {
			t.Errorf("B pulled %s, A pushed %s", got, want)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			dg, _ := l.Digest()
			if _, err := os.Stat(filepath.Join(layout, dg.Hex)); err != nil {
				t.Errorf("B's copy lacks layer %s: %v", dg, err)
			}
		}

		_, out, err := skopeoCopy(t, src, "dir:"+t.TempDir(), skopeoOpts{SrcCreds: "AWS:" + passC})
		if err == nil || !strings.Contains(err.Error()+out, "User: arn:aws:iam::"+acctC+":user/c is not authorized to perform: ecr:BatchGetImage") {
			t.Errorf("C pulls: err=%v\n%s", err, out)
		}

		_, out, err = skopeoCopy(t, "dir:"+layout, "docker://"+e.Host()+"/"+repo+":from-b", skopeoOpts{DestCreds: "AWS:" + passB})
		// skopeo's first request is a blob HEAD, whose 403 has no body to quote.
		if msg := fmt.Sprint(err) + out; err == nil || !(strings.Contains(msg, "403 (Forbidden)") ||
			strings.Contains(msg, "User: arn:aws:iam::"+acctB+":user/b is not authorized to perform: ecr:")) {
			t.Errorf("B pushes to A: err=%v\n%s", err, out)
		}
		if tags := awsOK("ecr", "list-images", "--repository-name", repo, "--query", "{n: to_string(length(imageIds))}"); tags["n"] != "1" {
			t.Errorf("A's repository has %s images after B's refused push, want 1", tags["n"])
		}
	})
}
