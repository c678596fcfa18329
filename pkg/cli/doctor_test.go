package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/doctor"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/explain"
)

const testRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// useEmulator points the process environment, which the commands and the
// AWS SDK read, at a new emulator and a temporary HOME.
func useEmulator(t *testing.T) *ecrfake.Emulator {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{})
	home := t.TempDir()
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE", "DOCKER_CONFIG", "DOCKER_HOST", "ECRGATE_CONFIG",
		"XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	env := append(e.Env(), "HOME="+home, "AWS_MAX_ATTEMPTS=1",
		"AWS_CONFIG_FILE="+filepath.Join(home, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "aws-credentials"))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return e
}

func TestDoctorExitStatusAndJSON(t *testing.T) {
	e := useEmulator(t)
	doctorOptions = func(o *doctor.Options) {
		o.LookPath = func(string) (string, error) { return "/bin/docker-credential-ecrgate", nil }
		o.DockerdProxy = func(context.Context) (doctor.DockerdProxy, error) {
			return doctor.DockerdProxy{}, errors.New("no dockerd")
		}
	}
	t.Cleanup(func() { doctorOptions = nil })
	dir := t.TempDir()
	good := writeConfig(t, "default_registry: "+testRegistry+"\nlisten: 127.0.0.1:1\nadmin_listen: 127.0.0.1:2\n")
	bad := writeConfig(t, "default_registry: "+testRegistry+"\ntempaltes: []\n")
	args := func(cfg string, extra ...string) []string {
		return append([]string{"doctor", "--config", cfg, "--ca-dir", filepath.Join(dir, "ca"),
			"--certs-dir", filepath.Join(dir, "certs.d"), "--docker-config", filepath.Join(dir, "config.json")}, extra...)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		fail   bool
		checks map[string]doctor.Status
	}{
		{"warnings only", args(good, "--json"), false, map[string]doctor.Status{
			"config": doctor.OK, "aws identity " + testRegistry: doctor.OK, "ecr token " + testRegistry: doctor.OK,
			"create permission " + testRegistry: doctor.Warn, "docker credHelpers": doctor.Warn, "proxy": doctor.Warn,
			"intercept ca": doctor.Skip}},
		{"config broken", args(bad, "--json"), true, map[string]doctor.Status{"config": doctor.Fail}},
	} {
		var out, errb bytes.Buffer
		err := Execute(context.Background(), tc.args, &out, &errb)
		if (err != nil) != tc.fail {
			t.Fatalf("%s: error %v, want failure %v\n%s", tc.name, err, tc.fail, out.String())
		}
		if tc.fail && !strings.Contains(errb.String(), "1 check failed") {
			t.Fatalf("%s: stderr %q", tc.name, errb.String())
		}
		var rep struct {
			OK     bool `json:"ok"`
			Checks []struct {
				Name, Status, Detail, Fix string
			} `json:"checks"`
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%s: stdout is not JSON (%v):\n%s", tc.name, err, out.String())
		}
		if rep.OK == tc.fail {
			t.Fatalf("%s: ok = %v", tc.name, rep.OK)
		}
		got := map[string]string{}
		for _, c := range rep.Checks {
			got[c.Name] = c.Status
		}
		for name, st := range tc.checks {
			if got[name] != string(st) {
				t.Errorf("%s: check %q is %q, want %q (all: %v)", tc.name, name, got[name], st, got)
			}
		}
	}

	// The text form: status word first, fixes indented.
	var out bytes.Buffer
	if err := Execute(context.Background(), args(good), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "ok    config") || !strings.Contains(out.String(), "fix: ecrgate setup docker") {
		t.Fatalf("text:\n%s", out.String())
	}
	if n := e.Calls("CreateRepository"); n != 0 {
		t.Fatalf("doctor created %d repositories", n)
	}
}

func TestExplainCommand(t *testing.T) {
	e := useEmulator(t)
	explainOptions = nil
	cfg := writeConfig(t, "default_registry: "+testRegistry+"\ndeny: [\"*/tmp*\"]\n")
	var out bytes.Buffer
	if err := Execute(context.Background(), []string{"explain", "--json", "--config", cfg, "localhost:5000/team/app:1"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var r explain.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if r.Verdict != explain.VerdictCreate || r.Registry != testRegistry || r.Repository != "team/app" || r.Exists == nil || *r.Exists {
		t.Fatalf("%+v", r)
	}

	out.Reset()
	if err := Execute(context.Background(), []string{"explain", "--config", cfg, testRegistry + "/team/tmp-x"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `verdict      denied:`) || !strings.Contains(out.String(), `"*/tmp*"`) {
		t.Fatalf("text:\n%s", out.String())
	}

	var errb bytes.Buffer
	if err := Execute(context.Background(), []string{"explain", "--config", cfg, "ghcr.io/a/b"}, &out, &errb); err == nil || !strings.Contains(errb.String(), "neither an ECR registry") {
		t.Fatalf("unmappable name: %v %q", err, errb.String())
	}
	if err := Execute(context.Background(), []string{"explain", "--config", cfg}, &out, &errb); err == nil {
		t.Fatal("explain without a name succeeded")
	}
	for _, op := range []string{"CreateRepository", "PutLifecyclePolicy", "SetRepositoryPolicy", "TagResource"} {
		if n := e.Calls(op); n != 0 {
			t.Fatalf("explain called %s %d times", op, n)
		}
	}
}
