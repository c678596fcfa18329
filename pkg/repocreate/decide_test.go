package repocreate_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

const (
	reg     = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	account = "123456789012"

	lifecycleJSON = `{"rules":[{"rulePriority":1,"description":"expire untagged images after 14 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}`
	policyJSON    = `{"Version":"2012-10-17","Statement":[{"Sid":"pull-from-prod","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`
)

// parseConfig parses a configuration file written to a temporary directory
// together with lifecycle.json and policy.json, so @file references work.
func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"lifecycle.json": lifecycleJSON, "policy.json": policyJSON} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "config.yaml")
	cfg, err := config.Parse([]byte(yaml), path, []string{"HOME=" + dir})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// errCode returns the registry error code and message of err.
func errCode(t *testing.T, err error) (errcode.ErrorCode, string) {
	t.Helper()
	var ec errcode.Error
	if !errors.As(err, &ec) {
		t.Fatalf("error %v (%T) is not an errcode.Error", err, err)
	}
	return ec.Code, ec.Message
}

const decideYAML = `
allow: ["team/**", "tools/*", "auto/**"]
deny: ["*/tmp*"]
templates:
  - prefix: ROOT
    image_tag_mutability: IMMUTABLE
  - prefix: team
    image_tag_mutability: IMMUTABLE
    image_tag_mutability_exclusion_filters: [{filter_type: WILDCARD, filter: "latest"}, {filter: "dev-*"}]
    scan_on_push: true
    encryption: {type: KMS, kms_key: alias/ecr}
    lifecycle_policy: "@lifecycle.json"
    repository_policy: "@policy.json"
    tags: {team: platform, cost-center: "42"}
  - prefix: team/app/
    encryption: {type: KMS_DSSE}
`

func TestDecideNames(t *testing.T) {
	cfg := parseConfig(t, decideYAML)
	tests := []struct {
		name     string
		registry string
		repo     string
		code     errcode.ErrorCode // 0: no error
		contains []string
	}{
		{name: "valid", registry: reg, repo: "team/app"},
		{name: "registry with scheme and upper case", registry: "HTTPS://123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM", repo: "team/app"},
		{name: "upper case", registry: reg, repo: "Team/App", code: errcode.ErrorCodeNameInvalid, contains: []string{`"Team/App"`, "lower"}},
		{name: "too short", registry: reg, repo: "a", code: errcode.ErrorCodeNameInvalid, contains: []string{`"a"`, "2"}},
		{name: "empty component", registry: reg, repo: "team//app", code: errcode.ErrorCodeNameInvalid, contains: []string{`"team//app"`}},
		{name: "trailing slash", registry: reg, repo: "team/app/", code: errcode.ErrorCodeNameInvalid},
		{name: "too long", registry: reg, repo: "team/" + strings.Repeat("a", 260), code: errcode.ErrorCodeNameInvalid, contains: []string{"256"}},
		{name: "not ECR", registry: "ghcr.io", repo: "team/app", code: errcode.ErrorCodeUnknown, contains: []string{"ghcr.io", cfg.Path}},
		{name: "ECR Public", registry: "public.ecr.aws", repo: "team/app", code: errcode.ErrorCodeUnsupported, contains: []string{"ECR Public"}},
		{name: "denied by rule", registry: reg, repo: "team/tmp1", code: errcode.ErrorCodeDenied,
			contains: []string{`repository "team/tmp1" is denied by rule "*/tmp*" in ` + cfg.Path}},
		{name: "not in allow list", registry: reg, repo: "other/app", code: errcode.ErrorCodeDenied,
			contains: []string{`"other/app"`, "team/**, tools/*, auto/**", cfg.Path, "allow:"}},
		{name: "allow glob is per component", registry: reg, repo: "tools/a/b", code: errcode.ErrorCodeDenied},
		{name: "allowed deeper", registry: reg, repo: "team/a/b/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := repocreate.Decide(cfg, tt.registry, tt.repo)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if p.Registry != reg || p.Repository != tt.repo || aws.ToString(p.Input.RegistryId) != account {
					t.Fatalf("plan names %q %q %q", p.Registry, p.Repository, aws.ToString(p.Input.RegistryId))
				}
				return
			}
			code, msg := errCode(t, err)
			if code != tt.code {
				t.Fatalf("code %v, want %v (%s)", code, tt.code, msg)
			}
			for _, s := range tt.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not contain %q", msg, s)
				}
			}
			if tt.code == errcode.ErrorCodeDenied && p.Input == nil {
				t.Errorf("a denied plan should still say what would be created")
			}
		})
	}
}

func TestDecideTemplateSelection(t *testing.T) {
	withRoot := parseConfig(t, decideYAML)
	noRoot := parseConfig(t, "templates:\n  - prefix: team\n    scan_on_push: true\n")
	tests := []struct {
		cfg    *config.Config
		repo   string
		prefix string
		name   string
	}{
		{withRoot, "team/app", "team", "team"},
		{withRoot, "team/app/api", "team/app", "team/app"}, // longest prefix wins
		{withRoot, "team/app-2", "team", "team"},           // implied trailing '/'
		{withRoot, "team/a/b", "team", "team"},
		{withRoot, "teamx/app", "ROOT", "ROOT"},
		{withRoot, "team", "ROOT", "ROOT"}, // "team" is not under "team/"
		{noRoot, "team/app", "team", "team"},
		{noRoot, "other/app", "", "builtin"},
		{nil, "x/y", "", "builtin"},
	}
	for _, tt := range tests {
		p, err := repocreate.Decide(tt.cfg, reg, tt.repo)
		if err != nil {
			var ec errcode.Error
			if !errors.As(err, &ec) || ec.Code != errcode.ErrorCodeDenied {
				t.Fatalf("%s: %v", tt.repo, err)
			}
		}
		if p.Template.Prefix != tt.prefix || p.TemplateName() != tt.name {
			t.Errorf("%s: template %q (%s), want %q (%s)", tt.repo, p.Template.Prefix, p.TemplateName(), tt.prefix, tt.name)
		}
	}
}

func TestDecideInput(t *testing.T) {
	cfg := parseConfig(t, decideYAML)
	dry := parseConfig(t, "dry_run: true\n")
	tests := []struct {
		name      string
		cfg       *config.Config
		repo      string
		want      *ecr.CreateRepositoryInput
		lifecycle string
		policy    string
		dryRun    bool
	}{
		{
			name: "every setting", cfg: cfg, repo: "team/web",
			want: &ecr.CreateRepositoryInput{
				RepositoryName:     aws.String("team/web"),
				RegistryId:         aws.String(account),
				ImageTagMutability: types.ImageTagMutabilityImmutableWithExclusion,
				ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{
					{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String("latest")},
					{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String("dev-*")},
				},
				ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: true},
				EncryptionConfiguration:    &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKms, KmsKey: aws.String("alias/ecr")},
				Tags: []types.Tag{ // sorted by key
					{Key: aws.String("cost-center"), Value: aws.String("42")},
					{Key: aws.String("team"), Value: aws.String("platform")},
				},
			},
			lifecycle: lifecycleJSON, policy: policyJSON,
		},
		{
			name: "KMS_DSSE with the AWS managed key", cfg: cfg, repo: "team/app/api",
			want: &ecr.CreateRepositoryInput{
				RepositoryName:             aws.String("team/app/api"),
				RegistryId:                 aws.String(account),
				ImageTagMutability:         types.ImageTagMutabilityMutable,
				ImageScanningConfiguration: &types.ImageScanningConfiguration{},
				EncryptionConfiguration:    &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKmsDsse},
			},
		},
		{
			name: "ROOT", cfg: cfg, repo: "tools/lint",
			want: &ecr.CreateRepositoryInput{
				RepositoryName:             aws.String("tools/lint"),
				RegistryId:                 aws.String(account),
				ImageTagMutability:         types.ImageTagMutabilityImmutable,
				ImageScanningConfiguration: &types.ImageScanningConfiguration{},
				EncryptionConfiguration:    &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeAes256},
			},
		},
		{
			name: "built-in default, dry run", cfg: dry, repo: "any/thing", dryRun: true,
			want: &ecr.CreateRepositoryInput{
				RepositoryName:             aws.String("any/thing"),
				RegistryId:                 aws.String(account),
				ImageTagMutability:         types.ImageTagMutabilityMutable,
				ImageScanningConfiguration: &types.ImageScanningConfiguration{},
				EncryptionConfiguration:    &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeAes256},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := repocreate.Decide(tt.cfg, reg, tt.repo)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Input, tt.want) {
				t.Errorf("input\n got %s\nwant %s", dump(p.Input), dump(tt.want))
			}
			if p.LifecyclePolicy != tt.lifecycle || p.RepositoryPolicy != tt.policy || p.DryRun != tt.dryRun {
				t.Errorf("lifecycle %q policy %q dry run %v", p.LifecyclePolicy, p.RepositoryPolicy, p.DryRun)
			}
		})
	}
}

// TestDecideConvenienceMutability: a Config built in code with IMMUTABLE and
// filters gets the *_WITH_EXCLUSION setting ECR requires, as the file does.
func TestDecideConvenienceMutability(t *testing.T) {
	cfg := &config.Config{Templates: []config.Template{{
		Prefix: "ROOT", ImageTagMutability: config.Mutable,
		ImageTagMutabilityExclusionFilters: []config.ExclusionFilter{{Filter: "latest"}},
	}}}
	p, err := repocreate.Decide(cfg, reg, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if p.Input.ImageTagMutability != types.ImageTagMutabilityMutableWithExclusion ||
		p.Input.ImageTagMutabilityExclusionFilters[0].FilterType != types.ImageTagMutabilityExclusionFilterTypeWildcard {
		t.Fatalf("got %s", dump(p.Input))
	}
}

func dump(in *ecr.CreateRepositoryInput) string {
	if in == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString(aws.ToString(in.RegistryId) + "/" + aws.ToString(in.RepositoryName) + " " + string(in.ImageTagMutability))
	for _, f := range in.ImageTagMutabilityExclusionFilters {
		b.WriteString(" filter=" + string(f.FilterType) + ":" + aws.ToString(f.Filter))
	}
	if in.ImageScanningConfiguration != nil {
		if in.ImageScanningConfiguration.ScanOnPush {
			b.WriteString(" scan")
		}
	} else {
		b.WriteString(" noscanconfig")
	}
	if in.EncryptionConfiguration != nil {
		b.WriteString(" enc=" + string(in.EncryptionConfiguration.EncryptionType) + ":" + aws.ToString(in.EncryptionConfiguration.KmsKey))
	}
	for _, tg := range in.Tags {
		b.WriteString(" tag=" + aws.ToString(tg.Key) + ":" + aws.ToString(tg.Value))
	}
	return b.String()
}
