package repocreate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// recorder puts the emulator behind a handler that keeps the body of every
// ECR API call, by operation: what the ensurer really sent.
type recorder struct {
	url    string
	mu     sync.Mutex
	bodies map[string][][]byte
}

func record(t *testing.T, e *ecrfake.Emulator) *recorder {
	t.Helper()
	r := &recorder{bodies: map[string][][]byte{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if op, ok := strings.CutPrefix(req.Header.Get("X-Amz-Target"), "AmazonEC2ContainerRegistry_V20150921."); ok {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			r.mu.Lock()
			r.bodies[op] = append(r.bodies[op], body)
			r.mu.Unlock()
		}
		e.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *recorder) calls(op string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies[op])
}

func (r *recorder) ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for op := range r.bodies {
		out = append(out, op)
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = map[string][][]byte{}
}

// client is an ECR client whose calls go through the recorder.
func (r *recorder) client(e *ecrfake.Emulator) *ecr.Client {
	return ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(r.url),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
}

// createInput decodes a recorded CreateRepository body, refusing any field
// the plan's input does not have a place for.
func createInput(t *testing.T, body []byte) *ecr.CreateRepositoryInput {
	t.Helper()
	var in struct {
		RegistryID                         *string `json:"registryId"`
		RepositoryName                     *string `json:"repositoryName"`
		ImageTagMutability                 string  `json:"imageTagMutability"`
		ImageTagMutabilityExclusionFilters []struct {
			FilterType string  `json:"filterType"`
			Filter     *string `json:"filter"`
		} `json:"imageTagMutabilityExclusionFilters"`
		ImageScanningConfiguration *struct {
			ScanOnPush bool `json:"scanOnPush"`
		} `json:"imageScanningConfiguration"`
		EncryptionConfiguration *struct {
			EncryptionType string  `json:"encryptionType"`
			KmsKey         *string `json:"kmsKey"`
		} `json:"encryptionConfiguration"`
		Tags []struct {
			Key   *string `json:"Key"`
			Value *string `json:"Value"`
		} `json:"tags"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("CreateRepository body %s: %v", body, err)
	}
	out := &ecr.CreateRepositoryInput{RegistryId: in.RegistryID, RepositoryName: in.RepositoryName,
		ImageTagMutability: types.ImageTagMutability(in.ImageTagMutability)}
	for _, f := range in.ImageTagMutabilityExclusionFilters {
		out.ImageTagMutabilityExclusionFilters = append(out.ImageTagMutabilityExclusionFilters,
			types.ImageTagMutabilityExclusionFilter{FilterType: types.ImageTagMutabilityExclusionFilterType(f.FilterType), Filter: f.Filter})
	}
	if s := in.ImageScanningConfiguration; s != nil {
		out.ImageScanningConfiguration = &types.ImageScanningConfiguration{ScanOnPush: s.ScanOnPush}
	}
	if c := in.EncryptionConfiguration; c != nil {
		out.EncryptionConfiguration = &types.EncryptionConfiguration{EncryptionType: types.EncryptionType(c.EncryptionType), KmsKey: c.KmsKey}
	}
	for _, tag := range in.Tags {
		out.Tags = append(out.Tags, types.Tag{Key: tag.Key, Value: tag.Value})
	}
	return out
}

// field returns a string field of a recorded JSON body.
func field(t *testing.T, body []byte, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	s, _ := m[name].(string)
	return s
}

// planFixture is an emulator with team/old, team/tmp-old and a
// CREATE_ON_PUSH template "auto", behind a recorder, and an ensurer for
// denyYAML plus fullYAML, dry_run off and on.
type planFixture struct {
	e        *ecrfake.Emulator
	rec      *recorder
	cfg      *config.Config
	ens, dry *repocreate.Ensurer
}

const denyYAML = "deny: [\"*/tmp*\"]\n"

func setupPlan(t *testing.T) *planFixture {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{})
	f := &planFixture{e: e, rec: record(t, e), cfg: parseConfig(t, denyYAML+fullYAML)}
	ctx := context.Background()
	c := sdkClient(e)
	for _, name := range []string{"team/old", "team/tmp-old"} {
		if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{
		Prefix: aws.String("auto"), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush},
		ImageTagMutability: types.ImageTagMutabilityImmutable}); err != nil {
		t.Fatal(err)
	}
	rc := f.rec.client(e)
	clients := func(context.Context, string) (repocreate.ECR, string, error) { return rc, userARN, nil }
	newEnsurer := func(cfg *config.Config) *repocreate.Ensurer {
		ens, err := repocreate.New(repocreate.Options{Config: cfg, Clients: clients, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ens.Close() })
		return ens
	}
	f.ens = newEnsurer(f.cfg)
	f.dry = newEnsurer(parseConfig(t, "dry_run: true\n"+denyYAML+fullYAML))
	e.ResetCalls()
	return f
}

// TestPlanAgreesWithEnsure: for every kind of name, Ensure returns what Plan
// said it would, and creates exactly the input Plan showed — as the
// emulator received it — or nothing.
func TestPlanAgreesWithEnsure(t *testing.T) {
	f := setupPlan(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		repo   string
		dry    bool
		prep   func()
		action repocreate.Action
		code   errcode.ErrorCode // 0: the push goes ahead
	}{
		{name: "local template, every setting", repo: "team/web", action: repocreate.ActionCreate},
		{name: "ROOT template", repo: "misc/tool", action: repocreate.ActionCreate},
		{name: "another local template", repo: "data/etl", action: repocreate.ActionCreate},
		{name: "existing", repo: "team/old", action: repocreate.ActionExists},
		{name: "denied but existing", repo: "team/tmp-old", action: repocreate.ActionExists},
		{name: "denied", repo: "team/tmp1", action: repocreate.ActionDenied, code: errcode.ErrorCodeDenied},
		{name: "invalid", repo: "Team/App", action: repocreate.ActionInvalid, code: errcode.ErrorCodeNameInvalid},
		{name: "native template", repo: "auto/app", action: repocreate.ActionNative},
		{name: "denied, native template", repo: "auto/tmp2", action: repocreate.ActionNative},
		{name: "dry run", repo: "team/dry", dry: true, action: repocreate.ActionDryRun, code: errcode.ErrorCodeDenied},
		{name: "lookup refused by IAM", repo: "team/x", action: repocreate.ActionUnknown, code: errcode.ErrorCodeDenied,
			prep: func() { f.e.DenyAction(userARN, "ecr:DescribeRepositories") }},
	}
	// A plan names ECR's template, with the settings ECR has for it.
	p, err := f.ens.Plan(ctx, reg, "auto/next")
	if err != nil || p.NativePrefix() != "auto" || p.Native == nil || p.Native.ImageTagMutability != types.ImageTagMutabilityImmutable {
		t.Fatalf("native plan %+v: %v", p.Native, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prep != nil {
				tt.prep()
			}
			ens := f.ens
			if tt.dry {
				ens = f.dry
			}
			p, planErr := ens.Plan(ctx, reg, tt.repo)
			if p.Action != tt.action {
				t.Fatalf("Plan action %q, want %q (%v)", p.Action, tt.action, planErr)
			}
			if tt.action == repocreate.ActionCreate && (p.Input == nil || aws.ToString(p.Input.RepositoryName) != tt.repo) {
				t.Fatalf("Plan input %+v", p.Input)
			}
			f.rec.reset()
			_, existed := f.e.Repository(account, tt.repo)

			err := ens.Ensure(ctx, reg, tt.repo)
			if (planErr == nil) != (err == nil) {
				t.Fatalf("Plan said %v, Ensure returned %v", planErr, err)
			}
			if err != nil {
				pc, pm := errCode(t, planErr)
				ec, em := errCode(t, err)
				if pc != ec || pm != em || ec != tt.code {
					t.Fatalf("Plan said %v %q, Ensure returned %v %q; want %v", pc, pm, ec, em, tt.code)
				}
			} else if tt.code != 0 {
				t.Fatalf("Ensure succeeded, want %v", tt.code)
			}

			creates := f.rec.calls("CreateRepository")
			lifecycle, policy := f.rec.calls("PutLifecyclePolicy"), f.rec.calls("SetRepositoryPolicy")
			_, exists := f.e.Repository(account, tt.repo)
			if p.Action != repocreate.ActionCreate {
				if len(creates)+len(lifecycle)+len(policy) != 0 || exists != existed {
					t.Fatalf("%s: Ensure made %d creates, %d lifecycle and %d repository policies; exists %v (before %v)",
						p.Action, len(creates), len(lifecycle), len(policy), exists, existed)
				}
				return
			}
			if len(creates) != 1 || !exists {
				t.Fatalf("%d CreateRepository calls, exists %v; want one", len(creates), exists)
			}
			if got := createInput(t, creates[0]); !reflect.DeepEqual(got, p.Input) {
				t.Errorf("CreateRepository sent\n %s\nPlan said\n %s", dump(got), dump(p.Input))
			}
			for _, pol := range []struct {
				calls       [][]byte
				field, want string
			}{{lifecycle, "lifecyclePolicyText", p.LifecyclePolicy}, {policy, "policyText", p.RepositoryPolicy}} {
				switch {
				case pol.want == "" && len(pol.calls) != 0:
					t.Errorf("%s sent without a plan for it", pol.field)
				case pol.want != "" && (len(pol.calls) != 1 || field(t, pol.calls[0], pol.field) != pol.want):
					t.Errorf("%s: %d calls, want one with %q", pol.field, len(pol.calls), pol.want)
				}
			}
		})
	}
}

// readOps are the only calls a plan may make.
var readOps = map[string]bool{"DescribeRepositories": true, "DescribeRepositoryCreationTemplates": true, ecrfake.OpGetCallerID: true}

// TestPlanMakesNoWriteCall plans every kind of name — through an ensurer,
// through a Planner on the default clients, and with ECR refusing — and
// finds nothing but read calls at the emulator, and nothing created.
func TestPlanMakesNoWriteCall(t *testing.T) {
	f := setupPlan(t)
	planner := repocreate.NewPlanner(repocreate.PlannerOptions{Config: f.cfg, Env: useEmulator(t, f.e)})
	before := f.e.Repositories(account)
	f.rec.reset()
	f.e.ResetCalls()
	names := []string{"team/web", "misc/tool", "team/old", "team/tmp1", "Team/App", "auto/app", "team/dry"}
	ctx := context.Background()
	plan := func() {
		for _, name := range names {
			for _, pl := range []interface {
				Plan(context.Context, string, string) (repocreate.Plan, error)
			}{f.ens, f.dry, planner} {
				p, err := pl.Plan(ctx, reg, name)
				var ec errcode.Error
				if err != nil && !errors.As(err, &ec) {
					t.Fatalf("Plan(%s) error %v (%T) is not an errcode.Error", name, err, err)
				}
				if p.Action == repocreate.ActionCreate && p.Input == nil {
					t.Fatalf("Plan(%s) would create without an input", name)
				}
			}
		}
	}
	plan()
	f.e.DenyAction(userARN, "ecr:DescribeRepositoryCreationTemplates")
	plan()
	f.e.DenyAction(userARN, "ecr:DescribeRepositories")
	plan()

	for op, n := range f.e.CallCounts() {
		if !readOps[op] && n > 0 {
			t.Errorf("planning called %s %d times", op, n)
		}
	}
	for _, op := range f.rec.ops() {
		if !readOps[op] {
			t.Errorf("planning sent %s", op)
		}
	}
	if f.e.Calls("DescribeRepositories") == 0 || f.e.Calls("DescribeRepositoryCreationTemplates") == 0 {
		t.Fatalf("the plans asked nothing: %v", f.e.CallCounts())
	}
	if after := f.e.Repositories(account); !slices.Equal(before, after) {
		t.Fatalf("repositories %v became %v", before, after)
	}
}

// TestPlanOffline: an offline planner stops at the decision, with the rule
// and template located in the configuration file, and asks AWS nothing.
func TestPlanOffline(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	cfg := parseConfig(t, denyYAML+fullYAML)
	if err := os.WriteFile(cfg.Path, []byte(denyYAML+fullYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	pl := repocreate.NewPlanner(repocreate.PlannerOptions{Config: cfg, Offline: true,
		Clients: func(context.Context, string) (repocreate.ReadECR, string, error) { return sdkClient(e), userARN, nil }})
	p, err := pl.Plan(context.Background(), reg, "team/tmp1")
	if err != nil || p.Action != repocreate.ActionUnknown || p.IfMissing() != repocreate.ActionDenied {
		t.Fatalf("action %q if missing %q: %v", p.Action, p.IfMissing(), err)
	}
	if p.Rule.Allowed || p.Rule.Key != "deny[0]" || p.Rule.Line != 1 || !strings.Contains(p.Rule.Message, `"*/tmp*"`) {
		t.Fatalf("rule %+v", p.Rule)
	}
	if p.Template.Prefix != "team" || p.TemplateKey != "templates[1]" || p.TemplateLine != 6 || p.ConfigFile != cfg.Path {
		t.Fatalf("template %q at %s, line %d of %s", p.Template.Prefix, p.TemplateKey, p.TemplateLine, p.ConfigFile)
	}
	if n := len(e.CallCounts()); n != 0 {
		t.Fatalf("offline plan called AWS: %v", e.CallCounts())
	}
}
