package repocreate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

const userARN = "arn:aws:iam::123456789012:user/ecrfake"

func TestMain(m *testing.M) {
	// No test may reach the instance-metadata address.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// sdkClient is an ECR client for the emulator that never looks at the
// environment or shared config, retrying without noticeable backoff.
func sdkClient(e *ecrfake.Emulator) *ecr.Client {
	return ecr.NewFromConfig(aws.Config{
		Region:       e.Region(),
		BaseEndpoint: aws.String(e.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 5 * time.Millisecond })
		},
	})
}

// clientsFor is an Options.Clients that uses the emulator as the default user.
func clientsFor(e *ecrfake.Emulator) func(context.Context, string) (repocreate.ECR, string, error) {
	c := sdkClient(e)
	return func(context.Context, string) (repocreate.ECR, string, error) { return c, userARN, nil }
}

// logBuffer collects JSON log lines from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log records whose msg contains msg.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if strings.Contains(fmt.Sprint(m["msg"]), msg) {
			out = append(out, m)
		}
	}
	return out
}

type fixture struct {
	e    *ecrfake.Emulator
	ens  *repocreate.Ensurer
	logs *logBuffer
	cfg  *config.Config
}

// setup starts an emulator and an Ensurer for the configuration yaml (an
// audit_log key is added pointing into a temporary directory).
func setup(t *testing.T, yaml string, opts ecrfake.Options, mod func(*repocreate.Options)) *fixture {
	t.Helper()
	e := ecrfake.Start(t, opts)
	cfg := parseConfig(t, yaml)
	if cfg.AuditLog == "" {
		cfg.AuditLog = filepath.Join(t.TempDir(), "state", "ecrgate", "audit.jsonl")
	}
	logs := &logBuffer{}
	o := repocreate.Options{
		Config:  cfg,
		Clients: clientsFor(e),
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&o)
	}
	ens, err := repocreate.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	return &fixture{e: e, ens: ens, logs: logs, cfg: cfg}
}

type auditLine struct {
	Time       time.Time `json:"time"`
	Registry   string    `json:"registry"`
	Repository string    `json:"repository"`
	Template   string    `json:"template"`
	Identity   string    `json:"identity"`
	DryRun     *bool     `json:"dry_run"`
	Warnings   []string  `json:"warnings"`
}

// audit reads the audit file, checking that every line is a JSON object with
// every required field.
func (f *fixture) audit(t *testing.T) []auditLine {
	t.Helper()
	data, err := os.ReadFile(f.cfg.AuditLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []auditLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
		}
		for _, k := range []string{"time", "registry", "repository", "template", "identity", "dry_run"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("audit line %q lacks %q", sc.Text(), k)
			}
		}
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func (f *fixture) calls(ops ...string) map[string]int {
	m := map[string]int{}
	for _, op := range ops {
		m[op] = f.e.Calls(op)
	}
	return m
}

func wantCalls(t *testing.T, f *fixture, want map[string]int) {
	t.Helper()
	ops := make([]string, 0, len(want))
	for op := range want {
		ops = append(ops, op)
	}
	if got := f.calls(ops...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

const fullYAML = `
templates:
  - prefix: ROOT
    image_tag_mutability: MUTABLE
  - prefix: team
    image_tag_mutability: IMMUTABLE
    image_tag_mutability_exclusion_filters: [{filter_type: WILDCARD, filter: "latest"}, {filter: "dev-*"}]
    scan_on_push: true
    encryption: {type: KMS, kms_key: alias/ecr}
    lifecycle_policy: "@lifecycle.json"
    repository_policy: "@policy.json"
    tags: {team: platform, cost-center: "42"}
  - prefix: data
    image_tag_mutability: MUTABLE_WITH_EXCLUSION
    image_tag_mutability_exclusion_filters: [{filter: "release-*"}]
    encryption: {type: KMS_DSSE}
`

func TestEnsureCreatesWithTemplate(t *testing.T) {
	f := setup(t, fullYAML, ecrfake.Options{}, nil)
	ctx := context.Background()
	tests := []struct {
		repo     string
		template string
		want     ecrfake.RepositoryInfo
	}{
		{"team/web", "team", ecrfake.RepositoryInfo{
			TagMutability: "IMMUTABLE_WITH_EXCLUSION", ExclusionFilters: []string{"latest", "dev-*"}, ScanOnPush: true,
			EncryptionType: "KMS", KMSKey: "alias/ecr", Tags: map[string]string{"team": "platform", "cost-center": "42"},
			LifecyclePolicy: lifecycleJSON, RepositoryPolicy: policyJSON, CreatedBy: "api"}},
		{"data/etl", "data", ecrfake.RepositoryInfo{
			TagMutability: "MUTABLE_WITH_EXCLUSION", ExclusionFilters: []string{"release-*"},
			EncryptionType: "KMS_DSSE", KMSKey: "arn:aws:kms:us-east-1:123456789012:alias/aws/ecr", CreatedBy: "api"}},
		{"misc/tool", "ROOT", ecrfake.RepositoryInfo{TagMutability: "MUTABLE", EncryptionType: "AES256", CreatedBy: "api"}},
	}
	for _, tt := range tests {
		if err := f.ens.Ensure(ctx, reg, tt.repo); err != nil {
			t.Fatalf("Ensure %s: %v", tt.repo, err)
		}
		got, ok := f.e.Repository(account, tt.repo)
		if !ok {
			t.Fatalf("%s was not created", tt.repo)
		}
		if got.TagMutability != tt.want.TagMutability || !slices.Equal(got.ExclusionFilters, tt.want.ExclusionFilters) ||
			got.ScanOnPush != tt.want.ScanOnPush || got.EncryptionType != tt.want.EncryptionType || got.KMSKey != tt.want.KMSKey ||
			fmt.Sprint(got.Tags) != fmt.Sprint(tt.want.Tags) ||
			got.LifecyclePolicy != tt.want.LifecyclePolicy || got.RepositoryPolicy != tt.want.RepositoryPolicy || got.CreatedBy != tt.want.CreatedBy {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.repo, got, tt.want)
		}
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 3, "PutLifecyclePolicy": 1, "SetRepositoryPolicy": 1})

	// One info line per creation, naming repository, registry, template, identity.
	created := f.logs.lines(t, "created repository")
	if len(created) != len(tests) {
		t.Fatalf("%d creation log lines, want %d:\n%s", len(created), len(tests), f.logs)
	}
	for i, l := range created {
		if l["level"] != "INFO" || l["repository"] != tests[i].repo || l["registry"] != reg || l["template"] != tests[i].template || l["identity"] != userARN {
			t.Errorf("log line %v", l)
		}
	}
	if s := f.logs.String(); strings.Contains(s, f.e.SecretKey()) || strings.Contains(strings.ToLower(s), "authorization") {
		t.Errorf("logs carry a secret: %s", s)
	}

	// One audit line per creation; the file is private.
	lines := f.audit(t)
	if len(lines) != len(tests) {
		t.Fatalf("%d audit lines, want %d", len(lines), len(tests))
	}
	for i, l := range lines {
		if l.Registry != reg || l.Repository != tests[i].repo || l.Template != tests[i].template || l.Identity != userARN ||
			*l.DryRun || l.Time.IsZero() || len(l.Warnings) > 0 {
			t.Errorf("audit line %+v", l)
		}
	}
	fi, err := os.Stat(f.cfg.AuditLog)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file mode %v, %v; want 0600", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(f.cfg.AuditLog))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("audit dir mode %v, %v; want 0700", di.Mode(), err)
	}
}

func TestEnsureConcurrentOneCall(t *testing.T) {
	var mu sync.Mutex
	counts := map[string]int{}
	f := setup(t, fullYAML, ecrfake.Options{Latency: 20 * time.Millisecond}, func(o *repocreate.Options) {
		o.OnCreate = func(registry, how string) {
			mu.Lock()
			defer mu.Unlock()
			counts[registry+" "+how]++
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() { errs <- f.ens.Ensure(context.Background(), reg, "team/new-app") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantCalls(t, f, map[string]int{"DescribeRepositories": 1, "CreateRepository": 1,
		"DescribeRepositoryCreationTemplates": 1, "PutLifecyclePolicy": 1, "SetRepositoryPolicy": 1})
	if n := len(f.audit(t)); n != 1 {
		t.Fatalf("%d audit lines, want 1", n)
	}
	if want := map[string]int{reg + " " + repocreate.HowCreated: 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("OnCreate %v, want %v", counts, want)
	}

	// 20 pushes to 20 new repositories at once: one create each, and one
	// template lookup for the registry.
	f.e.ResetCalls()
	for i := range 20 {
		for range 3 {
			wg.Go(func() {
				if err := f.ens.Ensure(context.Background(), reg, fmt.Sprintf("svc/app-%d", i)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	wantCalls(t, f, map[string]int{"DescribeRepositories": 20, "CreateRepository": 20, "DescribeRepositoryCreationTemplates": 0})
}

func TestEnsureExistingAndCache(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := setup(t, fullYAML, ecrfake.Options{}, func(o *repocreate.Options) {
		o.Now = clock.Now
		o.CacheTTL = time.Minute
	})
	ctx := context.Background()
	c := sdkClient(f.e)
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/old")}); err != nil {
		t.Fatal(err)
	}
	f.e.ResetCalls()

	steps := []struct {
		name    string
		advance time.Duration
		want    map[string]int // cumulative
	}{
		{"existing: described, not created", 0, map[string]int{"DescribeRepositories": 1, "CreateRepository": 0}},
		{"cached: no call", 30 * time.Second, map[string]int{"DescribeRepositories": 1, "CreateRepository": 0}},
		{"expired: described again", 31 * time.Second, map[string]int{"DescribeRepositories": 2, "CreateRepository": 0}},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		if err := f.ens.Ensure(ctx, reg, "team/old"); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		wantCalls(t, f, s.want)
	}
	if info, _ := f.e.Repository(account, "team/old"); info.TagMutability != "MUTABLE" || info.LifecyclePolicy != "" {
		t.Fatalf("existing repository was changed: %+v", info)
	}
	if n := len(f.audit(t)); n != 0 {
		t.Fatalf("%d audit lines for an existing repository", n)
	}
}

func TestInvalidate(t *testing.T) {
	f := setup(t, fullYAML, ecrfake.Options{}, nil)
	ctx := context.Background()
	if err := f.ens.Ensure(ctx, reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	// Someone deletes it; the cache still says it exists.
	if _, err := sdkClient(f.e).DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("team/app"), Force: true}); err != nil {
		t.Fatal(err)
	}
	f.e.ResetCalls()
	if err := f.ens.Ensure(ctx, reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, map[string]int{"DescribeRepositories": 0, "CreateRepository": 0})

	// The proxy saw NAME_UNKNOWN upstream.
	f.ens.Invalidate(reg, "team/app")
	if err := f.ens.Ensure(ctx, reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, map[string]int{"DescribeRepositories": 1, "CreateRepository": 1})
	if info, ok := f.e.Repository(account, "team/app"); !ok || info.RepositoryPolicy != policyJSON {
		t.Fatalf("not recreated with its template: %+v %v", info, ok)
	}
	// Invalidating a name that is not cached, or twice, is harmless.
	f.ens.Invalidate(reg, "nothing/here")
	f.ens.Invalidate("not a host", "x")
}

func TestDryRun(t *testing.T) {
	f := setup(t, "dry_run: true\n"+fullYAML, ecrfake.Options{}, nil)
	ctx := context.Background()
	if _, err := sdkClient(f.e).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/exists")}); err != nil {
		t.Fatal(err)
	}
	f.e.ResetCalls()

	err := f.ens.Ensure(ctx, reg, "team/new")
	code, msg := errCode(t, err)
	if code != errcode.ErrorCodeDenied || !strings.Contains(msg, `dry_run is on: ecrgate would create team/new in `+reg+` from template "team"`) {
		t.Fatalf("%v: %s", code, msg)
	}
	if _, ok := f.e.Repository(account, "team/new"); ok {
		t.Fatal("dry run created the repository")
	}
	// An existing repository is not affected by dry_run.
	if err := f.ens.Ensure(ctx, reg, "team/exists"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 0, "DescribeRepositories": 2})

	lines := f.audit(t)
	if len(lines) != 1 || !*lines[0].DryRun || lines[0].Repository != "team/new" || lines[0].Template != "team" || lines[0].Identity != userARN {
		t.Fatalf("audit %+v", lines)
	}
	if l := f.logs.lines(t, "would create"); len(l) != 1 || l[0]["repository"] != "team/new" {
		t.Fatalf("dry-run log lines %v", l)
	}
}

func TestNativeCreateOnPush(t *testing.T) {
	var hows []string
	f := setup(t, fullYAML, ecrfake.Options{}, func(o *repocreate.Options) {
		o.OnCreate = func(_, how string) { hows = append(hows, how) } // Ensure is called sequentially here
	})
	ctx := context.Background()
	c := sdkClient(f.e)
	for _, tmpl := range []struct {
		prefix  string
		applied []types.RCTAppliedFor
	}{
		{"auto", []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}},
		{"auto/special", []types.RCTAppliedFor{types.RCTAppliedForReplication, types.RCTAppliedForCreateOnPush}},
		{"team/replicated", []types.RCTAppliedFor{types.RCTAppliedForReplication}},
	} {
		if _, err := c.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{
			Prefix: aws.String(tmpl.prefix), AppliedFor: tmpl.applied}); err != nil {
			t.Fatal(err)
		}
	}
	f.e.ResetCalls()

	tests := []struct {
		repo   string
		native string // "" : ecrgate creates it
	}{
		{"auto/app", "auto"},
		{"auto/special/x", "auto/special"},
		{"autox/app", ""},         // implied trailing '/'
		{"team/replicated/a", ""}, // not CREATE_ON_PUSH
	}
	for _, tt := range tests {
		if err := f.ens.Ensure(ctx, reg, tt.repo); err != nil {
			t.Fatalf("%s: %v", tt.repo, err)
		}
		_, created := f.e.Repository(account, tt.repo)
		if created != (tt.native == "") {
			t.Errorf("%s: created by ecrgate %v, want %v", tt.repo, created, tt.native == "")
		}
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 2, "DescribeRepositories": 4, "DescribeRepositoryCreationTemplates": 1})

	// Cached like an existing repository.
	if err := f.ens.Ensure(ctx, reg, "auto/app"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 2, "DescribeRepositories": 4, "DescribeRepositoryCreationTemplates": 1})

	var natives []string
	for _, l := range f.audit(t) {
		if strings.HasPrefix(l.Template, "native:") {
			natives = append(natives, l.Repository+"="+l.Template)
		}
	}
	if want := []string{"auto/app=native:auto", "auto/special/x=native:auto/special"}; !slices.Equal(natives, want) {
		t.Fatalf("native audit lines %v, want %v", natives, want)
	}
	if want := []string{repocreate.HowNative, repocreate.HowNative, repocreate.HowCreated, repocreate.HowCreated}; !slices.Equal(hows, want) {
		t.Fatalf("OnCreate hows %v, want %v", hows, want)
	}

	// A ROOT CREATE_ON_PUSH template covers everything.
	if _, err := c.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{
		Prefix: aws.String("ROOT"), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}}); err != nil {
		t.Fatal(err)
	}
	// The template list is cached for CacheTTL; Invalidate of a native
	// repository drops it.
	f.ens.Invalidate(reg, "auto/app")
	if err := f.ens.Ensure(ctx, reg, "misc/app"); err != nil {
		t.Fatal(err)
	}
	if _, created := f.e.Repository(account, "misc/app"); created {
		t.Fatal("ROOT CREATE_ON_PUSH template: ecrgate created the repository")
	}
}

// TestNativeLookupDenied: without ecr:DescribeRepositoryCreationTemplates the
// ensurer assumes there is no native template, creates, and says so once.
func TestNativeLookupDenied(t *testing.T) {
	f := setup(t, fullYAML, ecrfake.Options{}, func(o *repocreate.Options) { o.CacheTTL = time.Nanosecond })
	f.e.DenyAction(userARN, "ecr:DescribeRepositoryCreationTemplates")
	for _, repo := range []string{"team/a", "team/b", "team/c"} {
		if err := f.ens.Ensure(context.Background(), reg, repo); err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 3, "DescribeRepositoryCreationTemplates": 3})
	if l := f.logs.lines(t, "repository creation templates"); len(l) != 1 || l[0]["level"] != "WARN" {
		t.Fatalf("want one warning, got %v", l)
	}
}

// TestDenyOnlyForCreation: allow/deny say what ecrgate may create; pushes to
// existing repositories are never refused by them.
func TestDenyOnlyForCreation(t *testing.T) {
	f := setup(t, "allow: [\"team/**\"]\ndeny: [\"*/tmp*\"]\n", ecrfake.Options{}, nil)
	ctx := context.Background()
	if _, err := sdkClient(f.e).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/tmp-old")}); err != nil {
		t.Fatal(err)
	}
	f.e.ResetCalls()
	tests := []struct {
		repo     string
		code     errcode.ErrorCode
		contains string
	}{
		{"team/tmp-old", 0, ""},
		{"team/tmp1", errcode.ErrorCodeDenied, `repository "team/tmp1" is denied by rule "*/tmp*" in ` + f.cfg.Path},
		{"other/app", errcode.ErrorCodeDenied, "allow: [team/**]"},
		{"team/app", 0, ""},
	}
	for _, tt := range tests {
		err := f.ens.Ensure(ctx, reg, tt.repo)
		if tt.code == 0 {
			if err != nil {
				t.Fatalf("%s: %v", tt.repo, err)
			}
			continue
		}
		code, msg := errCode(t, err)
		if code != tt.code || !strings.Contains(msg, tt.contains) {
			t.Errorf("%s: %v %q, want %v containing %q", tt.repo, code, msg, tt.code, tt.contains)
		}
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 1, "DescribeRepositories": 4})
}

func TestNameInvalidNoCall(t *testing.T) {
	f := setup(t, "", ecrfake.Options{}, nil)
	for _, repo := range []string{"Team/App", "a", "x//y", "-x/y"} {
		code, msg := errCode(t, f.ens.Ensure(context.Background(), reg, repo))
		if code != errcode.ErrorCodeNameInvalid || !strings.Contains(msg, fmt.Sprintf("%q", repo)) {
			t.Errorf("%s: %v %s", repo, code, msg)
		}
	}
	for op, n := range f.e.CallCounts() {
		if n != 0 {
			t.Errorf("%s called %d times", op, n)
		}
	}
}

func TestAWSErrors(t *testing.T) {
	long := strings.Repeat("k", 2100)
	tests := []struct {
		name      string
		yaml      string
		cfg       func(*config.Config) // changes a parsed config the way only code can
		opts      ecrfake.Options
		prep      func(t *testing.T, e *ecrfake.Emulator)
		repo      string
		code      errcode.ErrorCode
		contains  []string
		wantCalls map[string]int
	}{
		{
			name: "CreateRepository denied", repo: "team/app",
			prep: func(t *testing.T, e *ecrfake.Emulator) { e.DenyAction(userARN, "ecr:CreateRepository") },
			code: errcode.ErrorCodeDenied,
			contains: []string{userARN + " may not create repositories (ecr:CreateRepository) in " + reg,
				"arn:aws:ecr:us-east-1:123456789012:repository/team/app", "create the repository yourself"},
			wantCalls: map[string]int{"CreateRepository": 1},
		},
		{
			name: "DescribeRepositories denied", repo: "team/app",
			prep:      func(t *testing.T, e *ecrfake.Emulator) { e.DenyAction(userARN, "ecr:DescribeRepositories") },
			code:      errcode.ErrorCodeDenied,
			contains:  []string{userARN + " may not look up repositories (ecr:DescribeRepositories) in " + reg},
			wantCalls: map[string]int{"DescribeRepositories": 1, "CreateRepository": 0},
		},
		{
			name: "throttled after retries", repo: "team/app",
			prep:      func(t *testing.T, e *ecrfake.Emulator) { e.FailNext("CreateRepository", 3, ecrfake.FaultThrottle) },
			code:      errcode.ErrorCodeUnavailable,
			contains:  []string{"ECR is throttling or unavailable", "ThrottlingException", "retry the push"},
			wantCalls: map[string]int{"CreateRepository": 3},
		},
		{
			name: "server errors after retries", repo: "team/app",
			prep: func(t *testing.T, e *ecrfake.Emulator) {
				e.FailNext("DescribeRepositories", 3, ecrfake.FaultServerError)
			},
			code:      errcode.ErrorCodeUnavailable,
			contains:  []string{"DescribeRepositories", "retry the push"},
			wantCalls: map[string]int{"DescribeRepositories": 3, "CreateRepository": 0},
		},
		{
			name: "dropped connections", repo: "team/app",
			prep:      func(t *testing.T, e *ecrfake.Emulator) { e.FailNext("DescribeRepositories", 3, ecrfake.FaultDrop) },
			code:      errcode.ErrorCodeUnavailable,
			contains:  []string{"retry the push"},
			wantCalls: map[string]int{"CreateRepository": 0},
		},
		{
			name: "one throttle is retried by the SDK", repo: "team/app",
			prep:      func(t *testing.T, e *ecrfake.Emulator) { e.FailNext("CreateRepository", 1, ecrfake.FaultThrottle) },
			wantCalls: map[string]int{"CreateRepository": 2},
		},
		{
			name: "repository quota", repo: "team/app", opts: ecrfake.Options{MaxRepositories: 1},
			prep: func(t *testing.T, e *ecrfake.Emulator) {
				if _, err := sdkClient(e).CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("first/one")}); err != nil {
					t.Fatal(err)
				}
				e.ResetCalls()
			},
			code:     errcode.ErrorCodeTooManyRequests,
			contains: []string{"service quota", "Service Quotas", "team/app"},
			// The SDK retries LimitExceededException as throttling.
			wantCalls: map[string]int{"CreateRepository": 3},
		},
		{
			name: "reserved tag key", repo: "team/app",
			cfg:      func(c *config.Config) { c.Templates[0].Tags = map[string]string{"aws:owner": "x"} },
			code:     errcode.ErrorCodeDenied,
			contains: []string{`template "team"`, "aws:", "tags:", "config.yaml"},
		},
		{
			name: "too many tags", repo: "team/app",
			cfg: func(c *config.Config) {
				c.Templates[0].Tags = map[string]string{}
				for i := range 51 {
					c.Templates[0].Tags[fmt.Sprintf("k%d", i)] = "v"
				}
			},
			code:     errcode.ErrorCodeDenied,
			contains: []string{`template "team"`, "50"},
		},
		{
			name: "invalid template setting", repo: "team/app",
			cfg:      func(c *config.Config) { c.Templates[0].Encryption = config.Encryption{Type: "KMS", KMSKey: long} },
			code:     errcode.ErrorCodeDenied,
			contains: []string{`ECR rejected the settings of template "team" for "team/app"`, "kmsKey", "config.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := tt.yaml
			if yaml == "" {
				yaml = "templates:\n  - prefix: team\n    scan_on_push: true\n"
			}
			f := setup(t, yaml, tt.opts, nil)
			if tt.cfg != nil {
				tt.cfg(f.cfg)
			}
			if tt.prep != nil {
				tt.prep(t, f.e)
			}
			err := f.ens.Ensure(context.Background(), reg, tt.repo)
			if tt.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				code, msg := errCode(t, err)
				t.Logf("%s: %s", code, msg)
				if code != tt.code {
					t.Fatalf("code %v, want %v: %s", code, tt.code, msg)
				}
				for _, s := range tt.contains {
					if !strings.Contains(msg, s) {
						t.Errorf("message %q lacks %q", msg, s)
					}
				}
				if _, ok := f.e.Repository(account, tt.repo); ok {
					t.Errorf("repository exists after %v", code)
				}
				if n := len(f.audit(t)); n != 0 {
					t.Errorf("%d audit lines after a failure", n)
				}
			}
			if tt.wantCalls != nil {
				wantCalls(t, f, tt.wantCalls)
			}
		})
	}
}

// TestErrorNotCached: a failure is not remembered; the next push tries again.
func TestErrorNotCached(t *testing.T) {
	f := setup(t, "", ecrfake.Options{}, nil)
	f.e.FailNext("CreateRepository", 3, ecrfake.FaultThrottle)
	if code, _ := errCode(t, f.ens.Ensure(context.Background(), reg, "team/app")); code != errcode.ErrorCodeUnavailable {
		t.Fatalf("code %v", code)
	}
	if err := f.ens.Ensure(context.Background(), reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.e.Repository(account, "team/app"); !ok {
		t.Fatal("not created on the retry")
	}
}

// TestPolicyFailureStillSucceeds: the repository exists once CreateRepository
// succeeded, so a policy that cannot be applied is a warning (log and audit),
// not a failed push.
func TestPolicyFailureStillSucceeds(t *testing.T) {
	f := setup(t, fullYAML, ecrfake.Options{}, nil)
	f.e.DenyAction(userARN, "ecr:SetRepositoryPolicy")
	if err := f.ens.Ensure(context.Background(), reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	info, ok := f.e.Repository(account, "team/app")
	if !ok || info.LifecyclePolicy != lifecycleJSON || info.RepositoryPolicy != "" {
		t.Fatalf("repository %+v %v", info, ok)
	}
	warn := f.logs.lines(t, "without its repository policy")
	if len(warn) != 1 || warn[0]["level"] != "WARN" || !strings.Contains(fmt.Sprint(warn[0]["error"]), "ecr:SetRepositoryPolicy") {
		t.Fatalf("warning lines %v", warn)
	}
	lines := f.audit(t)
	if len(lines) != 1 || len(lines[0].Warnings) != 1 || !strings.HasPrefix(lines[0].Warnings[0], "repository_policy: ") {
		t.Fatalf("audit %+v", lines)
	}
	// Cached: the next push does not try again.
	f.e.ResetCalls()
	if err := f.ens.Ensure(context.Background(), reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, f, map[string]int{"DescribeRepositories": 0, "SetRepositoryPolicy": 0})
}

// TestAlreadyExistsIsSuccess: CreateRepository losing a race to someone else
// (here: a repository created between describe and create) is success, and
// the other creator's settings are left alone.
func TestAlreadyExistsIsSuccess(t *testing.T) {
	f := setup(t, fullYAML, ecrfake.Options{}, func(o *repocreate.Options) {
		inner := o.Clients
		o.Clients = func(ctx context.Context, registry string) (repocreate.ECR, string, error) {
			c, id, err := inner(ctx, registry)
			return racer{ECR: c, other: c}, id, err
		}
	})
	if err := f.ens.Ensure(context.Background(), reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	info, ok := f.e.Repository(account, "team/app")
	if !ok || info.TagMutability != "MUTABLE" || info.LifecyclePolicy != "" {
		t.Fatalf("repository %+v %v", info, ok)
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 2, "PutLifecyclePolicy": 0})
	if n := len(f.audit(t)); n != 0 {
		t.Fatalf("%d audit lines for a repository ecrgate did not create", n)
	}
}

// racer creates the repository with default settings just before the
// ensurer's CreateRepository reaches ECR, as another client would.
type racer struct {
	repocreate.ECR
	other repocreate.ECR
}

func (r racer) CreateRepository(ctx context.Context, in *ecr.CreateRepositoryInput, optFns ...func(*ecr.Options)) (*ecr.CreateRepositoryOutput, error) {
	if _, err := r.other.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: in.RepositoryName}); err != nil {
		return nil, err
	}
	return r.ECR.CreateRepository(ctx, in, optFns...)
}

// TestCallerGivesUp: a caller whose context ends gets UNAVAILABLE at once;
// the creation others may wait for goes on.
func TestCallerGivesUp(t *testing.T) {
	f := setup(t, fullYAML, ecrfake.Options{Latency: 300 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	code, msg := errCode(t, f.ens.Ensure(ctx, reg, "team/app"))
	if code != errcode.ErrorCodeUnavailable || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("%v after %v: %s", code, time.Since(start), msg)
	}
	// A second caller joins the flight still running and gets its result.
	if err := f.ens.Ensure(context.Background(), reg, "team/app"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.e.Repository(account, "team/app"); !ok {
		t.Fatal("creation was abandoned")
	}
	wantCalls(t, f, map[string]int{"CreateRepository": 1, "DescribeRepositories": 1})
}

// TestDefaultClients uses the Clients built from the configuration and the
// environment with awsconf, and STS for the identity.
func TestDefaultClients(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := useEmulator(t, e)
	cfg := parseConfig(t, fullYAML)
	cfg.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	ens, err := repocreate.New(repocreate.Options{Config: cfg, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	defer ens.Close()
	for _, repo := range []string{"team/a", "team/b"} {
		if err := ens.Ensure(context.Background(), reg, repo); err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
		if info, ok := e.Repository(account, repo); !ok || info.RepositoryPolicy != policyJSON {
			t.Fatalf("%s: %+v %v", repo, info, ok)
		}
	}
	if n := e.Calls(ecrfake.OpGetCallerID); n != 1 {
		t.Fatalf("GetCallerIdentity called %d times, want 1 (cached per registry)", n)
	}
	f := &fixture{e: e, cfg: cfg}
	for _, l := range f.audit(t) {
		if l.Identity != userARN {
			t.Fatalf("identity %q, want %q", l.Identity, userARN)
		}
	}

	// With STS failing the identity is "unknown" and creation goes on.
	e2 := ecrfake.Start(t, ecrfake.Options{})
	env2 := useEmulator(t, e2)
	t.Setenv("AWS_MAX_ATTEMPTS", "1") // no retries with backoff for STS
	e2.FailNext(ecrfake.OpGetCallerID, 1, ecrfake.FaultServerError)
	cfg2 := parseConfig(t, "")
	cfg2.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	ens2, err := repocreate.New(repocreate.Options{Config: cfg2, Env: env2})
	if err != nil {
		t.Fatal(err)
	}
	defer ens2.Close()
	if err := ens2.Ensure(context.Background(), reg, "x/y"); err != nil {
		t.Fatal(err)
	}
	f2 := &fixture{e: e2, cfg: cfg2}
	if l := f2.audit(t); len(l) != 1 || l[0].Identity != "unknown" {
		t.Fatalf("audit %+v", l)
	}
}

// useEmulator points the process environment (which the AWS SDK reads) at e
// and at empty AWS config files, and returns that environment.
func useEmulator(t *testing.T, e *ecrfake.Emulator) []string {
	t.Helper()
	dir := t.TempDir()
	env := append(e.Env(),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return env
}

func TestAuditLogOpen(t *testing.T) {
	dir := t.TempDir()
	// Appends to an existing file, keeping its lines.
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(path, []byte(`{"old":true}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := setup(t, "audit_log: "+path+"\n", ecrfake.Options{}, nil)
	if err := f.ens.Ensure(context.Background(), reg, "a/b"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != 2 || lines[0] != `{"old":true}` {
		t.Fatalf("audit file %q", data)
	}
	// A directory where the file should be is an error from New.
	if _, err := repocreate.New(repocreate.Options{Config: &config.Config{AuditLog: dir}}); err == nil {
		t.Fatal("New accepted a directory as audit log")
	}
	// No audit_log: no file, no error.
	ens, err := repocreate.New(repocreate.Options{Config: &config.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ens.Close(); err != nil {
		t.Fatal(err)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
