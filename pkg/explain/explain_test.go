package explain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/explain"
)

const (
	reg     = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	other   = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
	userARN = "arn:aws:iam::123456789012:user/ecrfake"

	lifecycleJSON = `{"rules":[{"rulePriority":1,"description":"expire untagged images after 14 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}`
	policyJSON    = `{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["ecr:BatchGetImage"]}]}`
)

// configYAML: line numbers matter (the rule and template lines are asserted).
const configYAML = `default_registry: ` + reg + `
routes:
  - prefix: prod/
    registry: ` + other + `
allow:
  - "team/**"
  - "tools/*"
  - "auto/**"
deny:
  - "*/tmp*"
templates:
  - prefix: ROOT
    image_tag_mutability: MUTABLE
  - prefix: team
    image_tag_mutability: IMMUTABLE
    image_tag_mutability_exclusion_filters: [{filter: "latest"}]
    scan_on_push: true
    encryption: {type: KMS, kms_key: alias/ecr}
    lifecycle_policy: '` + lifecycleJSON + `'
    repository_policy: '` + policyJSON + `'
    tags: {team: platform, cost-center: "42"}
`

// The ECR operations that change anything: Explain must never call them.
var writeOps = []string{"CreateRepository", "PutLifecyclePolicy", "SetRepositoryPolicy", "TagResource",
	"DeleteRepository", "CreateRepositoryCreationTemplate", "DeleteRepositoryCreationTemplate", "UntagResource"}

type fixture struct {
	e   *ecrfake.Emulator
	cfg *config.Config
	env []string
}

// setup starts the emulator with team/existing and a CREATE_ON_PUSH
// template "auto", points the process environment (which the AWS SDK reads)
// at it, and parses configYAML plus extra.
func setup(t *testing.T, extra string) *fixture {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{})
	dir := t.TempDir()
	env := append(e.Env(), "HOME="+dir,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE", "AWS_MAX_ATTEMPTS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(configYAML+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	c := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	ctx := context.Background()
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/existing")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{
		Prefix: aws.String("auto"), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush},
		ImageTagMutability: types.ImageTagMutabilityImmutable,
		ResourceTags:       []types.Tag{{Key: aws.String("by"), Value: aws.String("ecr")}},
	}); err != nil {
		t.Fatal(err)
	}
	e.ResetCalls()
	t.Cleanup(func() {
		for _, op := range writeOps {
			if n := e.Calls(op); n != 0 {
				t.Errorf("explain called %s %d times; it must change nothing", op, n)
			}
		}
	})
	return &fixture{e: e, cfg: cfg, env: env}
}

func (f *fixture) explain(t *testing.T, name string, mod func(*explain.Options)) *explain.Result {
	t.Helper()
	o := explain.Options{Config: f.cfg, Env: f.env}
	if mod != nil {
		mod(&o)
	}
	r, err := explain.Explain(context.Background(), name, o)
	if err != nil {
		t.Fatalf("Explain(%q): %v", name, err)
	}
	// Both renderings work for every result; JSON round-trips.
	var text, js bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back explain.Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Verdict != r.Verdict {
		t.Fatalf("JSON does not round-trip (%v):\n%s", err, js.String())
	}
	t.Logf("%s:\n%s", name, text.String())
	return r
}

func TestExplainCreateFromLocalTemplate(t *testing.T) {
	f := setup(t, "")
	for _, name := range []string{
		"localhost:5000/team/new-app:1.0",
		reg + "/team/new-app@sha256:0123456789012345678901234567890123456789012345678901234567890123",
		"team/new-app",
	} {
		r := f.explain(t, name, nil)
		if r.Verdict != explain.VerdictCreate || r.Registry != reg || r.Repository != "team/new-app" {
			t.Fatalf("%s: verdict %q registry %q repository %q, want create in %s of team/new-app", name, r.Verdict, r.Registry, r.Repository, reg)
		}
		if r.Exists == nil || *r.Exists || r.Identity != userARN {
			t.Fatalf("%s: exists %v identity %q", name, r.Exists, r.Identity)
		}
		if r.Rule == nil || !r.Rule.Allowed || r.Rule.Key != "allow[0]" || r.Rule.Line != 6 {
			t.Fatalf("%s: rule %+v, want allow[0] at line 6", name, r.Rule)
		}
		tm := r.Template
		want := explain.Template{Source: "local", Prefix: "team", File: f.cfg.Path, Line: 14,
			ImageTagMutability: "IMMUTABLE_WITH_EXCLUSION", EncryptionType: "KMS", KMSKey: "alias/ecr",
			LifecyclePolicy: lifecycleJSON, RepositoryPolicy: policyJSON}
		if tm == nil || tm.Source != want.Source || tm.Prefix != want.Prefix || tm.File != want.File || tm.Line != want.Line ||
			tm.ImageTagMutability != want.ImageTagMutability || tm.EncryptionType != want.EncryptionType || tm.KMSKey != want.KMSKey ||
			tm.LifecyclePolicy != want.LifecyclePolicy || tm.RepositoryPolicy != want.RepositoryPolicy ||
			tm.ScanOnPush == nil || !*tm.ScanOnPush || strings.Join(tm.ExclusionFilters, ",") != "latest" ||
			tm.Tags["team"] != "platform" || tm.Tags["cost-center"] != "42" {
			t.Fatalf("%s: template %+v", name, tm)
		}
	}
	modes := map[string]string{
		"localhost:5000/team/a": explain.ModeRegistry,
		reg + "/team/a:1":       explain.ModeIntercept,
		"team/a":                explain.ModeBare,
	}
	for name, mode := range modes {
		if r := f.explain(t, name, nil); r.Mode != mode {
			t.Errorf("%s: mode %q, want %q", name, r.Mode, mode)
		}
	}
	if n := f.e.Calls("DescribeRepositories"); n < 3 {
		t.Fatalf("DescribeRepositories called %d times: existence was not asked", n)
	}
}

func TestExplainRouteAndBuiltin(t *testing.T) {
	f := setup(t, "")
	r := f.explain(t, "localhost:5000/prod/svc:2", func(o *explain.Options) { o.Offline = true })
	if r.Registry != other || r.Repository != "svc" || r.Route != "prod/" || r.Verdict != explain.VerdictUnknown {
		t.Fatalf("route: %+v", r)
	}
	// "svc" matches no allow rule.
	if r.Rule.Allowed || r.Rule.Rule != "not in allow list" || !strings.Contains(r.Summary, "DENIED") {
		t.Fatalf("rule %+v, summary %q", r.Rule, r.Summary)
	}
	if f.e.Calls("DescribeRepositories") != 0 {
		t.Fatal("offline explain called AWS")
	}

	// No ROOT template: the built-in default.
	cfg, err := config.Parse([]byte("default_registry: "+reg+"\n"), "", f.env)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	r = f.explain(t, "x/y", nil)
	if r.Verdict != explain.VerdictCreate || r.Template.Source != "builtin" || r.Template.ImageTagMutability != "MUTABLE" || r.Template.EncryptionType != "AES256" {
		t.Fatalf("builtin: %+v %+v", r, r.Template)
	}
}

func TestExplainDeny(t *testing.T) {
	f := setup(t, "")
	r := f.explain(t, "localhost:5000/team/tmp1", nil)
	if r.Verdict != explain.VerdictDenied || r.Rule.Allowed || r.Rule.Key != "deny[0]" || r.Rule.Line != 10 {
		t.Fatalf("verdict %q rule %+v, want denied by deny[0] at line 10", r.Verdict, r.Rule)
	}
	if !strings.Contains(r.Summary, `"*/tmp*"`) || !strings.Contains(r.Summary, f.cfg.Path) {
		t.Fatalf("summary does not name the rule and file: %q", r.Summary)
	}
	var text bytes.Buffer
	_ = r.WriteText(&text)
	if !strings.Contains(text.String(), "deny: */tmp* (deny[0], "+f.cfg.Path+":10)") {
		t.Fatalf("text does not locate the rule:\n%s", text.String())
	}
}

func TestExplainExisting(t *testing.T) {
	f := setup(t, "")
	// Denied by allow/deny, but it exists: the push goes ahead.
	f.cfg.Deny = []string{"team/existing"}
	r := f.explain(t, reg+"/team/existing:latest", nil)
	if r.Verdict != explain.VerdictExists || r.Exists == nil || !*r.Exists || r.Rule.Allowed {
		t.Fatalf("verdict %q exists %v rule %+v", r.Verdict, r.Exists, r.Rule)
	}
	if f.e.Calls("DescribeRepositoryCreationTemplates") != 0 {
		t.Fatal("templates were read for an existing repository")
	}
}

func TestExplainNativeTemplate(t *testing.T) {
	f := setup(t, "")
	r := f.explain(t, "auto/app", nil)
	if r.Verdict != explain.VerdictNative || r.NativeTemplate != "auto" {
		t.Fatalf("verdict %q native %q", r.Verdict, r.NativeTemplate)
	}
	if r.Native == nil || r.Native.Source != "native" || r.Native.ImageTagMutability != "IMMUTABLE" || r.Native.Tags["by"] != "ecr" || r.Native.ScanOnPush != nil {
		t.Fatalf("native settings %+v", r.Native)
	}
	if !strings.Contains(r.Summary, "defers") {
		t.Fatalf("summary %q", r.Summary)
	}
	if _, ok := f.e.Repository("", "auto/app"); ok {
		t.Fatal("the repository was created")
	}
}

func TestExplainNativeUnreadable(t *testing.T) {
	f := setup(t, "")
	f.e.DenyAction(userARN, "ecr:DescribeRepositoryCreationTemplates")
	r := f.explain(t, "auto/app", nil)
	// As the ensurer does: carry on as if there were none.
	if r.Verdict != explain.VerdictCreate || !strings.Contains(r.NativeNote, "assumes none") {
		t.Fatalf("verdict %q note %q", r.Verdict, r.NativeNote)
	}
}

func TestExplainDescribeDenied(t *testing.T) {
	f := setup(t, "")
	f.e.DenyAction(userARN, "ecr:DescribeRepositories")
	r := f.explain(t, "team/x", nil)
	if r.Verdict != explain.VerdictUnknown || r.Exists != nil || !strings.Contains(r.ExistsError, "ecr:DescribeRepositories") {
		t.Fatalf("verdict %q exists %v error %q", r.Verdict, r.Exists, r.ExistsError)
	}
}

func TestExplainInvalidName(t *testing.T) {
	f := setup(t, "")
	for _, name := range []string{"localhost:5000/Team/App:1", reg + "/team//x"} {
		r := f.explain(t, name, nil)
		if r.Valid || r.Verdict != explain.VerdictInvalid || r.InvalidReason == "" || !strings.Contains(r.Summary, "NAME_INVALID") {
			t.Fatalf("%s: %+v", name, r)
		}
	}
	if n := len(f.e.CallCounts()); n != 0 {
		t.Fatalf("an invalid name cost AWS calls: %v", f.e.CallCounts())
	}
}

func TestExplainNotIntercepted(t *testing.T) {
	f := setup(t, "")
	r := f.explain(t, "999999999999.dkr.ecr.us-east-1.amazonaws.com/team/x", func(o *explain.Options) { o.Offline = true })
	if r.Mode != explain.ModeDirect || len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "not decrypt") {
		t.Fatalf("%+v", r)
	}
}

func TestExplainUnmappable(t *testing.T) {
	f := setup(t, "")
	for name, want := range map[string]string{
		"ghcr.io/team/app": "neither an ECR registry",
		"localhost:5000/":  "names no repository",
	} {
		_, err := explain.Explain(context.Background(), name, explain.Options{Config: f.cfg, Offline: true})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	// A bare name with no default registry and several registries says
	// which flag picks one; --registry then does.
	cfg, err := config.Parse([]byte("registries:\n  - host: "+reg+"\n  - host: "+other+"\n"), "", f.env)
	if err != nil {
		t.Fatal(err)
	}
	_, err = explain.Explain(context.Background(), "team/app", explain.Options{Config: cfg, Offline: true})
	if err == nil || !strings.Contains(err.Error(), "--registry") {
		t.Fatalf("got %v, want a hint at --registry", err)
	}
	r, err := explain.Explain(context.Background(), "team/app", explain.Options{Config: cfg, Offline: true, Registry: other})
	if err != nil || r.Registry != other {
		t.Fatalf("--registry: %v %+v", err, r)
	}
	// With one registry only, that one.
	cfg, _ = config.Parse([]byte("registries:\n  - host: "+other+"\n"), "", f.env)
	r, err = explain.Explain(context.Background(), "team/app", explain.Options{Config: cfg, Offline: true})
	if err != nil || r.Registry != other || len(r.Notes) == 0 {
		t.Fatalf("only registry: %v %+v", err, r)
	}
}

func TestExplainDryRun(t *testing.T) {
	f := setup(t, "dry_run: true\n")
	r := f.explain(t, "team/new", nil)
	if r.Verdict != explain.VerdictDryRun || !r.DryRun {
		t.Fatalf("%+v", r)
	}
}

// explain says whether a push of the name gets shared layers mounted, and
// from where the template says to look.
func TestExplainMounts(t *testing.T) {
	f := setup(t, "")
	for _, tt := range []struct {
		yaml     string
		on       bool
		from     string
		wantText string
	}{
		{"templates:\n  - prefix: team\n    mount_from: [team/base, tools/runtime]\n", true, "team/base,tools/runtime", "mount_from: team/base, tools/runtime"},
		{"", true, "", "mounts       on (mount_shared_layers)"},
		{"mount_shared_layers: false\ntemplates:\n  - prefix: team\n    mount_from: [team/base]\n", false, "", "mounts       off (mount_shared_layers: false)"},
	} {
		cfg, err := config.Parse([]byte("default_registry: "+reg+"\n"+tt.yaml), "", f.env)
		if err != nil {
			t.Fatal(err)
		}
		f.cfg = cfg
		r := f.explain(t, "team/app", func(o *explain.Options) { o.Offline = true })
		if r.Mounts == nil || r.Mounts.Enabled != tt.on || strings.Join(r.Mounts.From, ",") != tt.from {
			t.Errorf("%q: Mounts = %+v, want enabled %v from %q", tt.yaml, r.Mounts, tt.on, tt.from)
		}
		var b strings.Builder
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tt.wantText) {
			t.Errorf("%q: text lacks %q:\n%s", tt.yaml, tt.wantText, b.String())
		}
	}
}
