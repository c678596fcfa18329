package doctor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/doctor"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/server"
)

const (
	reg     = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	userARN = "arn:aws:iam::123456789012:user/ecrfake"
)

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// The ECR operations that change anything: the doctor must never call them.
var writeOps = []string{"CreateRepository", "PutLifecyclePolicy", "SetRepositoryPolicy", "TagResource",
	"DeleteRepository", "CreateRepositoryCreationTemplate", "DeleteRepositoryCreationTemplate"}

type fixture struct {
	e    *ecrfake.Emulator
	dir  string
	env  []string
	o    doctor.Options
	yaml string
}

// setup starts the emulator, points the process environment (which the AWS
// SDK reads) at it, and writes a config naming reg; everything else the
// doctor looks at lives in a temporary directory: no docker config, no CA,
// a free port for the proxy, dockerd's proxy unknown.
func setup(t *testing.T, extraYAML string) *fixture {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"123456789012", "222222222222"}})
	dir := t.TempDir()
	env := append(e.Env(), "HOME="+dir,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"),
		"AWS_MAX_ATTEMPTS=1")
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE", "DOCKER_CONFIG", "DOCKER_HOST", "ECRGATE_CONFIG"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	f := &fixture{e: e, dir: dir, env: env}
	f.yaml = fmt.Sprintf("default_registry: %s\nlisten: %s\nadmin_listen: %s\nintercept:\n  listen: %s\n%s",
		reg, freeAddr(t), freeAddr(t), freeAddr(t), extraYAML)
	f.writeConfig(t, f.yaml)
	f.o = doctor.Options{
		ConfigPath:   filepath.Join(dir, "config.yaml"),
		Env:          env,
		CADir:        filepath.Join(dir, "ca"),
		CertsDirs:    []string{filepath.Join(dir, "certs.d")},
		DockerConfig: filepath.Join(dir, "docker", "config.json"),
		LookPath:     func(string) (string, error) { return "/usr/local/bin/docker-credential-ecrgate", nil },
		DockerdProxy: func(context.Context) (doctor.DockerdProxy, error) {
			return doctor.DockerdProxy{}, errors.New("no docker here")
		},
		Timeout: time.Minute,
	}
	t.Cleanup(func() {
		for _, op := range writeOps {
			if n := e.Calls(op); n != 0 {
				t.Errorf("the doctor called %s %d times; it must change nothing", op, n)
			}
		}
	})
	return f
}

func (f *fixture) writeConfig(t *testing.T, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "config.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address nothing listens on (just closed).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func (f *fixture) api() *ecr.Client {
	return ecr.NewFromConfig(aws.Config{Region: f.e.Region(), BaseEndpoint: aws.String(f.e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(f.e.AccessKey(), f.e.SecretKey(), "")})
}

// run runs the doctor and returns the results by name; it also checks the
// renderings.
func (f *fixture) run(t *testing.T) map[string]doctor.Result {
	t.Helper()
	results := doctor.Run(context.Background(), f.o)
	var text, js bytes.Buffer
	if err := doctor.WriteText(&text, results); err != nil {
		t.Fatal(err)
	}
	if err := doctor.WriteJSON(&js, results); err != nil {
		t.Fatal(err)
	}
	var rep doctor.Report
	if err := json.Unmarshal(js.Bytes(), &rep); err != nil || len(rep.Results) != len(results) || rep.OK == doctor.Failed(results) {
		t.Fatalf("JSON report (%v):\n%s", err, js.String())
	}
	t.Logf("\n%s", text.String())
	m := map[string]doctor.Result{}
	for _, r := range results {
		if _, dup := m[r.Name]; dup {
			t.Fatalf("two checks named %q", r.Name)
		}
		m[r.Name] = r
	}
	return m
}

func want(t *testing.T, m map[string]doctor.Result, name string, status doctor.Status, contains ...string) doctor.Result {
	t.Helper()
	r, ok := m[name]
	if !ok {
		t.Fatalf("no check %q", name)
	}
	if r.Status != status {
		t.Fatalf("%s: status %s, want %s (%s; fix: %s)", name, r.Status, status, r.Detail, r.Fix)
	}
	for _, s := range contains {
		if !strings.Contains(r.Detail+" | "+r.Fix, s) {
			t.Fatalf("%s: %q (fix %q) does not mention %q", name, r.Detail, r.Fix, s)
		}
	}
	if r.Status != doctor.OK && r.Status != doctor.Skip && r.Fix == "" {
		t.Fatalf("%s: %s without a fix", name, r.Status)
	}
	return r
}

func TestAWSChecksOK(t *testing.T) {
	f := setup(t, "templates:\n  - prefix: team\n    tags: {team: x}\n")
	m := f.run(t)
	want(t, m, "config", doctor.OK, "1 registry", "1 template")
	want(t, m, "aws identity "+reg, doctor.OK, userARN)
	want(t, m, "ecr token "+reg, doctor.OK, "GetAuthorizationToken works")
	want(t, m, "create permission "+reg, doctor.Warn, "could not verify ecr:CreateRepository", "ecr:TagResource",
		"AccessDenied", userARN, "arn:aws:ecr:us-east-1:123456789012:repository/*")
	want(t, m, "native templates "+reg, doctor.OK, "no CREATE_ON_PUSH")
	if f.e.Calls(ecrfake.OpGetCallerID) != 1 || f.e.Calls("GetAuthorizationToken") != 1 || f.e.Calls("DescribeRepositories") != 1 {
		t.Fatalf("calls %v", f.e.CallCounts())
	}
}

func TestConfigProblems(t *testing.T) {
	f := setup(t, "")
	f.writeConfig(t, "default_registry: "+reg+"\ntempaltes: []\nlisten: nowhere\n")
	m := f.run(t)
	r := want(t, m, "config", doctor.Fail, `config.yaml:2: unknown key "tempaltes"`, "config.yaml:3: listen", "ecrgate config check")
	if strings.Count(r.Detail, "config.yaml:") != 2 {
		t.Fatalf("want both problems: %q", r.Detail)
	}
	if doctor.Failed([]doctor.Result{r}) != true {
		t.Fatal("Failed does not see the failure")
	}

	// A named file that is missing fails; an absent default file warns.
	f.o.ConfigPath = filepath.Join(f.dir, "nope.yaml")
	want(t, f.run(t), "config", doctor.Fail, "does not exist", "--config")
	f.o.ConfigPath = ""
	m = f.run(t)
	want(t, m, "config", doctor.Warn, "no configuration file", "default_registry:")
	if _, ok := m["aws identity "+reg]; ok {
		t.Fatal("registry checks ran without a registry")
	}
}

func TestNoCredentials(t *testing.T) {
	f := setup(t, "")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	m := f.run(t)
	want(t, m, "aws identity "+reg, doctor.Fail, "no AWS credentials found", "aws configure")
	want(t, m, "ecr token "+reg, doctor.Skip, "did not pass")
	want(t, m, "create permission "+reg, doctor.Skip)
	want(t, m, "native templates "+reg, doctor.Skip)
}

func TestWrongSecret(t *testing.T) {
	f := setup(t, "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	want(t, f.run(t), "aws identity "+reg, doctor.Fail, "secret access key", "aws configure")
}

func TestTokenDenied(t *testing.T) {
	f := setup(t, "")
	f.e.DenyAction(userARN, "ecr:GetAuthorizationToken")
	m := f.run(t)
	want(t, m, "aws identity "+reg, doctor.OK)
	want(t, m, "ecr token "+reg, doctor.Fail, userARN, "ecr:GetAuthorizationToken", "attach a policy")
}

func TestDescribeDenied(t *testing.T) {
	f := setup(t, "")
	f.e.DenyAction(userARN, "ecr:DescribeRepositories")
	want(t, f.run(t), "create permission "+reg, doctor.Fail, "ecr:DescribeRepositories is denied")
}

func TestECRUnreachable(t *testing.T) {
	f := setup(t, "")
	f.e.FailNext("GetAuthorizationToken", 5, ecrfake.FaultServerError) // more than the doctor's attempts
	want(t, f.run(t), "ecr token "+reg, doctor.Fail, "ecr:GetAuthorizationToken failed", "reaches AWS")
}

func TestNativeTemplates(t *testing.T) {
	f := setup(t, "templates:\n  - prefix: team/app\n  - prefix: tools\n")
	ctx := context.Background()
	for _, p := range []string{"team", "other"} {
		if _, err := f.api().CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{
			Prefix: aws.String(p), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}}); err != nil {
			t.Fatal(err)
		}
	}
	f.e.ResetCalls()
	r := want(t, f.run(t), "native templates "+reg, doctor.Warn, `native "team" overlaps local "team/app"`, "ecrgate defers")
	if strings.Contains(r.Detail, `"tools"`) || strings.Contains(r.Detail, `"other"`) {
		t.Fatalf("names templates that do not overlap: %q", r.Detail)
	}

	f.e.DenyAction(userARN, "ecr:DescribeRepositoryCreationTemplates")
	want(t, f.run(t), "native templates "+reg, doctor.Warn, "ecr:DescribeRepositoryCreationTemplates is denied", "assumes")
}

func TestCrossAccount(t *testing.T) {
	const reg2 = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
	f := setup(t, "registries:\n  - host: "+reg2+"\n")
	m := f.run(t)
	want(t, m, "aws identity "+reg2, doctor.Warn, "belongs to account 222222222222")
	want(t, m, "native templates "+reg2, doctor.Skip, "cannot be read")
}

func TestDockerConfig(t *testing.T) {
	f := setup(t, "")
	m := f.run(t)
	want(t, m, "docker credHelpers", doctor.Warn, "does not exist", reg, "ecrgate setup docker")
	if d := m["docker credHelpers"].Detail; strings.Contains(d, "localhost") || strings.Contains(d, "127.0.0.1") {
		t.Errorf("doctor asks for a credHelpers entry for a local proxy host: %s", d)
	}

	write := func(s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(f.o.DockerConfig), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.o.DockerConfig, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"credHelpers": {"` + reg + `": "ecr-login"}}`)
	want(t, f.run(t), "docker credHelpers", doctor.Warn, "uses docker-credential-ecr-login", "will not ask docker-credential-ecrgate")

	helpers := map[string]string{}
	for _, h := range []string{reg, "127.0.0.1:" + portOf(t, f.yaml), "localhost:" + portOf(t, f.yaml)} {
		helpers[h] = "ecrgate"
	}
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{}, "credHelpers": helpers})
	write(string(b))
	// B1 of issue 11: entries an earlier ecrgate wrote for local proxy hosts.
	want(t, f.run(t), "docker credHelpers", doctor.Warn, "local proxy hosts", "127.0.0.1:"+portOf(t, f.yaml), "ecrgate setup docker")
	b, _ = json.Marshal(map[string]any{"auths": map[string]any{}, "credHelpers": map[string]string{reg: "ecrgate"}})
	write(string(b))
	want(t, f.run(t), "docker credHelpers", doctor.OK, reg)

	write(`{"credHelpers": `)
	want(t, f.run(t), "docker credHelpers", doctor.Fail, "line")

	f.o.LookPath = func(string) (string, error) { return "", errors.New("not found") }
	want(t, f.run(t), "credential helper", doctor.Warn, "not on PATH", "make install")
}

func mustLine(t *testing.T, yaml, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(yaml, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	t.Fatalf("no %q line", prefix)
	return ""
}

func portOf(t *testing.T, yaml string) string {
	_, port, err := net.SplitHostPort(mustLine(t, yaml, "listen: "))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestProxyNotEcrgate(t *testing.T) {
	f := setup(t, "")
	m := f.run(t)
	want(t, m, "proxy", doctor.Warn, "nothing listens", "ecrgate serve")

	// Something else on the port.
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	f.writeConfig(t, strings.Replace(f.yaml, "listen: "+mustLine(t, f.yaml, "listen: "), "listen: "+other.Listener.Addr().String(), 1))
	want(t, f.run(t), "proxy", doctor.Fail, "status 404", "something else")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{}) // the hanging check answers only after RunChecks gave up
	defer close(release)
	results := doctor.RunChecks(context.Background(), []doctor.Check{
		{Name: "hangs", Run: func(ctx context.Context) doctor.Result {
			<-ctx.Done()
			<-release
			return doctor.Result{Status: doctor.OK}
		}},
		{Name: "quick", Run: func(context.Context) doctor.Result { return doctor.Result{Status: doctor.Warn, Detail: "w", Fix: "f"} }},
	}, 50*time.Millisecond)
	if results[0].Name != "hangs" || results[0].Status != doctor.Fail || !strings.Contains(results[0].Detail, "50ms") {
		t.Fatalf("%+v", results[0])
	}
	if results[1].Name != "quick" || results[1].Status != doctor.Warn {
		t.Fatalf("%+v", results[1])
	}
	var b bytes.Buffer
	_ = doctor.WriteText(&b, results)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// fail line, its fix, warn line, its fix, summary.
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "fail  hangs") || !strings.HasPrefix(lines[2], "warn  quick  w") ||
		strings.TrimSpace(lines[3]) != "fix: f" || lines[4] != "0 ok, 1 warning, 1 failure, 0 skipped" {
		t.Fatalf("text:\n%s", b.String())
	}
}

// TestInterceptSetUp runs the real `ecrgate serve` with a local CA against
// the emulator: every check passes but the unverifiable create permission.
func TestInterceptSetUp(t *testing.T) {
	f := setup(t, "")
	ca, err := localca.Init(f.o.CADir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	lns := map[string]net.Listener{}
	for _, name := range []string{"registry", "admin", "intercept"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[name] = ln
	}
	f.writeConfig(t, fmt.Sprintf("default_registry: %s\nlisten: %s\nadmin_listen: %s\nintercept:\n  listen: %s\n",
		reg, lns["registry"].Addr(), lns["admin"].Addr(), lns["intercept"].Addr()))
	cfg, err := config.Load(f.o.ConfigPath, f.env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Env: f.env, Listeners: lns, CADir: f.o.CADir, ShutdownTimeout: 30 * time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	f.o.DockerdProxy = func(context.Context) (doctor.DockerdProxy, error) {
		return doctor.DockerdProxy{HTTPSProxy: "http://" + cfg.Intercept.Listen, NoProxy: "localhost,127.0.0.0/8", Source: "test"}, nil
	}

	// Not installed yet: dockerd goes through ecrgate, so that is a failure.
	m := f.run(t)
	want(t, m, "proxy", doctor.OK, "ecrgate answers")
	want(t, m, "intercept ca", doctor.OK, ca.Fingerprint())
	want(t, m, "dockerd proxy", doctor.OK, "HTTPS_PROXY=http://"+cfg.Intercept.Listen)
	want(t, m, "intercept listener", doctor.OK, "decrypts "+reg)
	want(t, m, "ca installed "+reg, doctor.Fail, "x509", "ecrgate ca install")

	if _, err := ca.Install(f.o.CertsDirs[0], []string{reg}); err != nil {
		t.Fatal(err)
	}
	m = f.run(t)
	want(t, m, "ca installed "+reg, doctor.OK, filepath.Join(f.o.CertsDirs[0], reg, "ca.crt"))
	for name, r := range m {
		if r.Status == doctor.Fail {
			t.Errorf("%s failed: %s", name, r.Detail)
		}
	}

	// Another certificate where the CA belongs.
	other := filepath.Join(f.dir, "ca2")
	ca2, err := localca.Init(other, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.o.CertsDirs[0], reg, "ca.crt"), ca2.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, f.run(t), "ca installed "+reg, doctor.Fail, "another certificate")

	// The running ecrgate uses another CA than the one doctor is told about.
	f.o.CADir = other
	want(t, f.run(t), "intercept listener", doctor.Fail, "TLS", "another CA")

	// dockerd bypasses ecrgate for the registry.
	f.o.CADir = filepath.Join(f.dir, "ca")
	f.o.DockerdProxy = func(context.Context) (doctor.DockerdProxy, error) {
		return doctor.DockerdProxy{HTTPSProxy: cfg.Intercept.Listen, NoProxy: ".amazonaws.com", Source: "test"}, nil
	}
	want(t, f.run(t), "dockerd proxy", doctor.Warn, "bypasses", reg)
}

func TestDockerdProxyStates(t *testing.T) {
	f := setup(t, "")
	// No CA: intercept mode is off, dockerd's proxy does not matter.
	want(t, f.run(t), "dockerd proxy", doctor.Skip, "intercept mode is off")
	want(t, f.run(t), "intercept listener", doctor.Skip)

	if _, err := localca.Init(f.o.CADir, time.Now()); err != nil {
		t.Fatal(err)
	}
	m := f.run(t)
	want(t, m, "dockerd proxy", doctor.Warn, "could not determine", "docker info")
	want(t, m, "ca installed "+reg, doctor.Warn, "no ca.crt") // dockerd not known to use ecrgate
	want(t, m, "intercept listener", doctor.Warn, "nothing listens")

	f.o.DockerdProxy = func(context.Context) (doctor.DockerdProxy, error) {
		return doctor.DockerdProxy{Source: "test"}, nil
	}
	want(t, f.run(t), "dockerd proxy", doctor.Warn, "no HTTPS_PROXY", "ecrgate-proxy.conf")
	f.o.DockerdProxy = func(context.Context) (doctor.DockerdProxy, error) {
		return doctor.DockerdProxy{HTTPSProxy: "http://proxy.corp:3128", Source: "test"}, nil
	}
	want(t, f.run(t), "dockerd proxy", doctor.Warn, "proxy.corp:3128", "not ecrgate's intercept listener")
}

// TestDockerdProxySources reads dockerd's proxy from a fake docker API on a
// unix socket, then from a systemd drop-in.
func TestDockerdProxySources(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("no unix sockets: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/info" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"ID":"x","HttpProxy":"","HttpsProxy":"http://127.0.0.1:5001","NoProxy":"localhost"}`))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	dropIns := filepath.Join(dir, "docker.service.d")
	if err := os.MkdirAll(dropIns, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "[Service]\nEnvironment=\"HTTPS_PROXY=http://127.0.0.1:5009\" \"NO_PROXY=localhost,::1\"\n"
	if err := os.WriteFile(filepath.Join(dropIns, "ecrgate-proxy.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := doctor.DockerdProxyFrom([]string{"DOCKER_HOST=unix://" + sock}, []string{dropIns})(ctx)
	if err != nil || p.HTTPSProxy != "http://127.0.0.1:5001" || p.NoProxy != "localhost" || p.FromDropIn {
		t.Fatalf("from the API: %+v %v", p, err)
	}
	p, err = doctor.DockerdProxyFrom([]string{"DOCKER_HOST=unix://" + filepath.Join(dir, "gone.sock")}, []string{dropIns})(ctx)
	if err != nil || p.HTTPSProxy != "http://127.0.0.1:5009" || p.NoProxy != "localhost,::1" || !p.FromDropIn || !strings.HasSuffix(p.Source, "ecrgate-proxy.conf") {
		t.Fatalf("from the drop-in: %+v %v", p, err)
	}
	_, err = doctor.DockerdProxyFrom([]string{"DOCKER_HOST=unix://" + filepath.Join(dir, "gone.sock")}, []string{filepath.Join(dir, "none")})(ctx)
	if err == nil || !strings.Contains(err.Error(), "gone.sock") || !strings.Contains(err.Error(), "no HTTPS_PROXY") {
		t.Fatalf("neither: %v", err)
	}
	// The drop-in we ship points at the default intercept listener.
	shipped, err := os.ReadFile("../../systemd/docker.service.d/ecrgate-proxy.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropIns, "ecrgate-proxy.conf"), shipped, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = doctor.DockerdProxyFrom([]string{"DOCKER_HOST=tcp://example:2375"}, []string{dropIns})(ctx)
	if err != nil || p.HTTPSProxy != "http://"+config.DefaultInterceptListen {
		t.Fatalf("shipped drop-in: %+v %v", p, err)
	}
}
