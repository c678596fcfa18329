package repocreate_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

const exportRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

const exportYAML = `default_registry: ` + exportRegistry + `
templates:
  - prefix: ROOT
  - prefix: team
    image_tag_mutability: IMMUTABLE
    image_tag_mutability_exclusion_filters: [{filter: latest}]
    scan_on_push: true
    encryption: {type: KMS, kms_key: alias/ecr}
    lifecycle_policy: '{"rules":[{"rulePriority":1,"description":"keep 10","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}'
    repository_policy: '{"Version":"2012-10-17","Statement":[{"Sid":"ci","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::555555555555:role/ci"},"Action":"ecr:*"}]}'
    pull_accounts: ["222222222222"]
    tags: {team: platform, cost-center: "42"}
    custom_role_arn: arn:aws:iam::123456789012:role/ecr-templates
`

// exportEnv is the environment of a process whose AWS is the emulator, and
// nothing else: no shared config or credentials files of the machine.
func exportEnv(t *testing.T, e *ecrfake.Emulator) []string {
	dir := t.TempDir()
	env := append(e.Env(), "HOME="+dir, "AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_PROFILE=", "AWS_SESSION_TOKEN=", "AWS_ENDPOINT_URL=", "AWS_ROLE_ARN=", "AWS_WEB_IDENTITY_TOKEN_FILE=")
	for _, kv := range env { // the SDK reads credentials from the process's environment
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return env
}

func parseExportConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), filepath.Join(t.TempDir(), "ecrgate.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Issue 16, item 2: the exported templates make ECR create, on a push that
// does not go through ecrgate, the repository ecrgate would have created;
// a second apply changes nothing.
func TestExportedTemplatesCreateWhatEcrgateWould(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := exportEnv(t, e)
	cfg := parseExportConfig(t, exportYAML)
	ctx := context.Background()
	api := sdkClient(e)
	if _, err := api.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{
		Prefix: aws.String("legacy"), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForReplication}}); err != nil {
		t.Fatal(err)
	}
	opts := repocreate.ExportOptions{Config: cfg, Registry: exportRegistry, Env: env}

	x, err := repocreate.ExportTemplates(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if x.Identity != userARN || len(x.Templates) != 2 || x.Templates[0].Change != repocreate.ChangeCreate || x.Templates[1].Change != repocreate.ChangeCreate ||
		!slices.Equal(x.OnlyInECR, []string{"legacy"}) {
		t.Fatalf("first export: %+v", x)
	}
	team := x.Templates[1]
	if !slices.ContainsFunc(team.Warnings, func(w string) bool {
		return strings.HasPrefix(w, "scan_on_push:") && strings.Contains(w, `"filter":"team/*"`)
	}) {
		t.Errorf("no scan_on_push warning for team: %q", team.Warnings)
	}
	if team.RoleMissing {
		t.Error("team has custom_role_arn, yet RoleMissing")
	}
	if e.Calls("CreateRepositoryCreationTemplate") != 1 { // the legacy one above
		t.Fatal("ExportTemplates wrote to ECR")
	}
	applied, err := x.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []repocreate.Applied{{Prefix: "ROOT", Change: repocreate.ChangeCreate}, {Prefix: "team", Change: repocreate.ChangeCreate}}; !reflect.DeepEqual(applied, want) {
		t.Errorf("applied %+v, want %+v", applied, want)
	}

	// Again: every template unchanged, nothing sent.
	calls := e.CallCounts()
	x, err = repocreate.ExportTemplates(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range x.Templates {
		if et.Change != repocreate.ChangeUnchanged {
			t.Errorf("second export: %s is %s (%q): %+v", et.Prefix, et.Change, et.Changed, et.Fields)
		}
	}
	if _, err := x.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	after := e.CallCounts()
	for _, op := range []string{"CreateRepositoryCreationTemplate", "UpdateRepositoryCreationTemplate"} {
		if after[op] != calls[op] {
			t.Errorf("second apply called %s", op)
		}
	}
	if tpl, err := api.DescribeRepositoryCreationTemplates(ctx, &ecr.DescribeRepositoryCreationTemplatesInput{Prefixes: []string{"legacy"}}); err != nil ||
		len(tpl.RepositoryCreationTemplates) != 1 || !slices.Equal(tpl.RepositoryCreationTemplates[0].AppliedFor, []types.RCTAppliedFor{types.RCTAppliedForReplication}) {
		t.Errorf("legacy template changed: %+v (%v)", tpl, err)
	}

	// ecrgate now leaves team/* to ECR, as explain says.
	p, err := repocreate.NewPlanner(repocreate.PlannerOptions{Config: cfg, Env: env}).Plan(ctx, exportRegistry, "team/by-ecr")
	if err != nil || p.Action != repocreate.ActionNative || p.NativePrefix() != "team" {
		t.Errorf("plan after export: %s %q (%v)", p.Action, p.NativePrefix(), err)
	}

	// A push straight to the registry, no ecrgate: ECR creates team/by-ecr.
	pushDirect(t, e, api, "team/by-ecr:v1")
	byECR, ok := e.Repository("", "team/by-ecr")
	if !ok || byECR.CreatedBy != "create-on-push:team" {
		t.Fatalf("team/by-ecr = %+v (%v); want it created by ECR's template", byECR, ok)
	}
	// ecrgate's own creation of a sibling, from the same local template.
	ens, err := repocreate.New(repocreate.Options{Config: &config.Config{Templates: cfg.Templates}, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer ens.Close()
	for _, prefix := range []string{"team", "ROOT"} { // else ecrgate defers to them
		if _, err := api.DeleteRepositoryCreationTemplate(ctx, &ecr.DeleteRepositoryCreationTemplateInput{Prefix: aws.String(prefix)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ens.Ensure(ctx, exportRegistry, "team/by-ecrgate"); err != nil {
		t.Fatal(err)
	}
	byEcrgate, ok := e.Repository("", "team/by-ecrgate")
	if !ok || byEcrgate.CreatedBy != "api" {
		t.Fatalf("team/by-ecrgate = %+v (%v)", byEcrgate, ok)
	}
	if !byEcrgate.ScanOnPush || byECR.ScanOnPush {
		t.Errorf("scan on push: ecrgate's %v, ECR's %v; want true and false (the warning's difference)", byEcrgate.ScanOnPush, byECR.ScanOnPush)
	}
	same := func(r ecrfake.RepositoryInfo) ecrfake.RepositoryInfo {
		r.Name, r.CreatedBy, r.ScanOnPush = "", "", false
		r.LifecyclePolicy, r.RepositoryPolicy = canonical(t, r.LifecyclePolicy), canonical(t, r.RepositoryPolicy)
		return r
	}
	if a, b := same(byECR), same(byEcrgate); !reflect.DeepEqual(a, b) {
		t.Errorf("created by ECR's template:\n%+v\nby ecrgate:\n%+v", a, b)
	}
	if !strings.Contains(byECR.RepositoryPolicy, `"arn:aws:iam::222222222222:root"`) || byECR.TagMutability != "IMMUTABLE_WITH_EXCLUSION" ||
		byECR.KMSKey != "alias/ecr" || byECR.Tags["cost-center"] != "42" || byECR.LifecyclePolicy == "" {
		t.Errorf("ECR's creation lacks a setting: %+v", byECR)
	}
}

// A changed local template is an update of the fields that differ; a
// template that needs a custom role and has none is refused before
// anything is written.
func TestExportUpdatesAndRefusesWithoutRole(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := exportEnv(t, e)
	ctx := context.Background()
	x, err := repocreate.ExportTemplates(ctx, repocreate.ExportOptions{Config: parseExportConfig(t, exportYAML), Registry: exportRegistry, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Apply(ctx); err != nil {
		t.Fatal(err)
	}

	changed := strings.Replace(exportYAML, "    image_tag_mutability: IMMUTABLE\n    image_tag_mutability_exclusion_filters: [{filter: latest}]\n", "", 1)
	changed = strings.Replace(changed, `    tags: {team: platform, cost-center: "42"}`, `    tags: {team: platform}`, 1)
	x, err = repocreate.ExportTemplates(ctx, repocreate.ExportOptions{Config: parseExportConfig(t, changed), Registry: exportRegistry, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	team := x.Templates[1]
	if team.Change != repocreate.ChangeUpdate || !slices.Equal(team.Changed, []string{"image_tag_mutability", "image_tag_mutability_exclusion_filters", "resource_tags"}) {
		t.Fatalf("team: %s %q", team.Change, team.Changed)
	}
	if _, err := x.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	x, err = repocreate.ExportTemplates(ctx, repocreate.ExportOptions{Config: parseExportConfig(t, changed), Registry: exportRegistry, Env: env})
	if err != nil || x.Templates[1].Change != repocreate.ChangeUnchanged {
		t.Fatalf("after the update: %+v (%v)", x.Templates[1], err)
	}

	// Tags and no role: refused, nothing written; --role-arn fills it in.
	noRole := parseExportConfig(t, "templates:\n  - prefix: tools\n    tags: {team: tools}\n")
	calls := e.CallCounts()
	x, err = repocreate.ExportTemplates(ctx, repocreate.ExportOptions{Config: noRole, Registry: exportRegistry, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if !x.Templates[0].RoleMissing || !strings.Contains(strings.Join(x.Warnings, "\n"), "no ROOT template") {
		t.Errorf("tools: RoleMissing %v, warnings %q", x.Templates[0].RoleMissing, x.Warnings)
	}
	if _, err := x.Apply(ctx); !errors.Is(err, repocreate.ErrRoleMissing) || !strings.Contains(err.Error(), `template "tools"`) {
		t.Errorf("Apply without a role: %v", err)
	}
	if e.CallCounts()["CreateRepositoryCreationTemplate"] != calls["CreateRepositoryCreationTemplate"] {
		t.Error("Apply without a role wrote a template")
	}
	x, err = repocreate.ExportTemplates(ctx, repocreate.ExportOptions{Config: noRole, Registry: exportRegistry, Env: env, RoleARN: "arn:aws:iam::123456789012:role/r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Apply(ctx); err != nil {
		t.Errorf("Apply with --role-arn: %v", err)
	}
}

// Templates belong to an account: an identity of another account cannot
// export them to this registry.
func TestExportRefusesAnotherAccount(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"123456789012", "222222222222"}})
	_, err := repocreate.ExportTemplates(context.Background(), repocreate.ExportOptions{Config: parseExportConfig(t, exportYAML),
		Registry: "222222222222.dkr.ecr.us-east-1.amazonaws.com", Env: exportEnv(t, e)})
	if err == nil || !strings.Contains(err.Error(), "belong to account 222222222222") {
		t.Errorf("err = %v", err)
	}
}

func canonical(t *testing.T, s string) string {
	t.Helper()
	if s == "" {
		return ""
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// pushDirect pushes a random image to the emulator's default registry as
// its default user, not through ecrgate.
func pushDirect(t *testing.T, e *ecrfake.Emulator, api *ecr.Client, repoTag string) {
	t.Helper()
	out, err := api.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	ref, err := name.ParseReference(e.Host()+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	auth := &authn.Basic{Username: "AWS", Password: strings.TrimPrefix(string(raw), "AWS:")}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push %s straight to the emulator: %v", repoTag, err)
	}
}

// What ECR's templates cannot do as ecrgate does is said, per template and
// for the configuration.
func TestExportWarnings(t *testing.T) {
	cfg := parseExportConfig(t, `allow: ["team/**"]
deny: ["*/tmp*"]
dry_run: true
templates:
  - prefix: team
    mount_from: [team/base]
    custom_role_arn: arn:aws:iam::999999999999:role/elsewhere
  - prefix: ROOT
    scan_on_push: true
`)
	have := []types.RepositoryCreationTemplate{{Prefix: aws.String("team"),
		AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForReplication}}}
	x, err := repocreate.CompareTemplates(cfg, exportRegistry, have)
	if err != nil {
		t.Fatal(err)
	}
	joined := func(ws []string) string { return strings.Join(ws, "\n") }
	team, root := joined(x.Templates[0].Warnings), joined(x.Templates[1].Warnings)
	for _, c := range []struct{ in, want string }{
		{team, "mount_from: ecrgate's own"},
		{team, "arn:aws:iam::999999999999:role/elsewhere is not a role of account 123456789012"},
		{team, `ECR's template "team" is also applied for REPLICATION`},
		{root, `"filter":"*"`},
		{joined(x.Warnings), "allow: and deny: have no counterpart"},
		{joined(x.Warnings), "dry_run: true has no counterpart"},
	} {
		if !strings.Contains(c.in, c.want) {
			t.Errorf("warnings lack %q:\n%s", c.want, c.in)
		}
	}
	if strings.Contains(joined(x.Warnings), "no ROOT template") {
		t.Error("warns of a missing ROOT template that exists")
	}
	if got := x.Templates[0].Input.AppliedFor; !slices.Equal(got, []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush, types.RCTAppliedForReplication}) {
		t.Errorf("team applied for %v; want CREATE_ON_PUSH added to REPLICATION", got)
	}
	if x.Templates[0].Change != repocreate.ChangeUpdate || x.Templates[1].Change != repocreate.ChangeCreate {
		t.Errorf("changes %s, %s", x.Templates[0].Change, x.Templates[1].Change)
	}
	if _, err := repocreate.CompareTemplates(cfg, "public.ecr.aws", nil); err == nil {
		t.Error("ECR Public has no creation templates, yet no error")
	}
}
