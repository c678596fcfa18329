package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/explain"
)

// `ecrgate templates export`: the diff, --apply, and a second --apply that
// finds nothing to do; ECR is reached through registries[].api_endpoint.
func TestTemplatesExport(t *testing.T) {
	e := useEmulator(t)
	os.Unsetenv("AWS_ENDPOINT_URL_ECR") // api_endpoint must get there
	path := writeConfig(t, fmt.Sprintf(`default_registry: %s
registries:
  - host: %s
    api_endpoint: %s
templates:
  - prefix: ROOT
  - prefix: team
    image_tag_mutability: IMMUTABLE
    scan_on_push: true
    tags: {team: platform}
    pull_accounts: ["222222222222"]
`, testRegistry, testRegistry, e.URL()))
	run := func(args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		err := Execute(context.Background(), append([]string{"templates", "export", "--config", path}, args...), &out, &errb)
		if err != nil {
			return out.String() + errb.String(), err
		}
		return out.String(), nil
	}
	pull := `{"Statement":[{"Action":["ecr:BatchCheckLayerAvailability","ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:root"]},"Sid":"ecrgate-pull-accounts"}],"Version":"2012-10-17"}`

	out, err := run()
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	for _, want := range []string{
		"registry " + testRegistry + " as arn:aws:iam::123456789012:user/ecrfake\n",
		"\ncreate ROOT (templates[0], " + path + ":6)\n  + applied_for                            CREATE_ON_PUSH\n  + image_tag_mutability                   MUTABLE\n  + encryption                             AES256\n\n",
		"\ncreate team (templates[1], " + path + ":7)\n",
		"  + resource_tags                          team=platform\n",
		"  + repository_policy                      " + pull + "\n",
		"  warning: scan_on_push: ECR's creation templates cannot set it",
		"  warning: custom_role_arn: ECR needs a role to create repositories with tags from a template",
		"\n2 to create, 0 to update, 0 unchanged: run with --apply to write them\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("export output lacks %q:\n%s", want, out)
		}
	}
	if n := e.Calls("CreateRepositoryCreationTemplate"); n != 0 {
		t.Fatalf("export without --apply created %d templates", n)
	}

	if out, err := run("--apply"); err == nil || !strings.Contains(out, `custom role to create repositories with KMS encryption or tags from template "team"`) {
		t.Fatalf("--apply without a role: %v\n%s", err, out)
	}
	if n := e.Calls("CreateRepositoryCreationTemplate"); n != 0 {
		t.Fatalf("--apply without a role created %d templates", n)
	}
	out, err = run("--apply", "--role-arn", "arn:aws:iam::123456789012:role/ecr-templates")
	if err != nil || !strings.HasSuffix(out, "\napplied: 2 created, 0 updated, 0 unchanged\n") {
		t.Fatalf("--apply: %v\n%s", err, out)
	}

	out, err = run("--apply", "--role-arn", "arn:aws:iam::123456789012:role/ecr-templates")
	if err != nil || !strings.Contains(out, "\nunchanged team (templates[1], "+path+":7)\n    applied_for                            CREATE_ON_PUSH\n") ||
		!strings.HasSuffix(out, "\napplied: 0 created, 0 updated, 2 unchanged\n") {
		t.Fatalf("second --apply: %v\n%s", err, out)
	}
	if n := e.Calls("CreateRepositoryCreationTemplate") + e.Calls("UpdateRepositoryCreationTemplate"); n != 2 {
		t.Errorf("template writes = %d, want the 2 creations", n)
	}

	// A changed setting is an update, shown as - and +.
	cfg, _ := os.ReadFile(path)
	if err := os.WriteFile(path, bytes.Replace(cfg, []byte("IMMUTABLE"), []byte("MUTABLE"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run("--role-arn", "arn:aws:iam::123456789012:role/ecr-templates")
	if err != nil || !strings.Contains(out, "\nupdate team (templates[1], "+path+":7)\n") ||
		!strings.Contains(out, "  - image_tag_mutability                   IMMUTABLE\n  + image_tag_mutability                   MUTABLE\n") ||
		!strings.HasSuffix(out, "\n0 to create, 1 to update, 1 unchanged: run with --apply to write them\n") {
		t.Fatalf("export of a changed template: %v\n%s", err, out)
	}

	// explain now says ECR creates team/* itself.
	r, err := explain.Explain(context.Background(), testRegistry+"/team/new-app", explain.Options{Config: mustLoad(t, path), Env: os.Environ()})
	if err != nil || r.Verdict != explain.VerdictNative || r.NativeTemplate != "team" {
		t.Errorf("explain after export: %+v (%v)", r, err)
	}
}

func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
