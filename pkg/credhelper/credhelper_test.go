package credhelper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/credhelper"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

const reg = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

func setEnv(t *testing.T, env []string) {
	t.Helper()
	dir := t.TempDir()
	env = append(env, "AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

func newHelper(t *testing.T, e *ecrfake.Emulator) (*credhelper.Helper, *bytes.Buffer) {
	setEnv(t, e.Env())
	var stderr bytes.Buffer
	dir := filepath.Join(t.TempDir(), "tokens") // t.TempDir is 0755; the cache refuses that
	src := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: e.Env()})
	// As in the binary: the cache first, the SDK-backed source on a miss.
	tokens := &credhelper.CachedTokens{Cache: tokencache.Cache{Dir: dir}, Env: e.Env(),
		Fetch: func(ctx context.Context, reg string) (tokencache.Token, error) { return src.Token(ctx, reg) }}
	return &credhelper.Helper{
		Tokens:     tokens,
		LocalHosts: map[string]string{"localhost:5000": reg, "127.0.0.1:5000": reg},
		Log:        slog.New(slog.DiscardHandler),
		Stderr:     &stderr,
	}, &stderr
}

func run(h *credhelper.Helper, action, in string) (int, string) {
	var out bytes.Buffer
	code := credhelper.Run(h, []string{action}, strings.NewReader(in), &out)
	return code, out.String()
}

func TestGet(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	h, _ := newHelper(t, e)
	for _, server := range []string{reg, "https://" + reg, "https://" + reg + "/v2/", strings.ToUpper(reg)} {
		code, out := run(h, "get", server+"\n")
		if code != 0 {
			t.Fatalf("get %s: exit %d: %s", server, code, out)
		}
		var c struct{ ServerURL, Username, Secret string }
		if err := json.Unmarshal([]byte(out), &c); err != nil || c.ServerURL != server || c.Username != "AWS" || len(c.Secret) < 100 {
			t.Fatalf("get %s printed %q (%v)", server, out, err)
		}
	}
	if n := e.Calls("GetAuthorizationToken"); n != 1 {
		t.Errorf("GetAuthorizationToken calls = %d for four gets of one registry", n)
	}
}

func TestGetForeignHostFallsBack(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	h, stderr := newHelper(t, e)
	for _, server := range []string{"ghcr.io", "https://index.docker.io/v1/", "localhost:5999"} {
		code, out := run(h, "get", server)
		if code != 1 || strings.TrimSpace(out) != "credentials not found in native keychain" {
			t.Errorf("get %s: exit %d, %q", server, code, out)
		}
	}
	if stderr.Len() != 0 || e.Calls("GetAuthorizationToken") != 0 {
		t.Errorf("fallback was noisy (%q) or called AWS (%d)", stderr.String(), e.Calls("GetAuthorizationToken"))
	}
}

func TestGetErrorsAreOneActionableLine(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Users: []ecrfake.User{{Name: "ci", AccessKey: "AKIACI00000000000000", SecretKey: "ci"}}})
	e.DenyAction("arn:aws:iam::123456789012:user/ci", "ecr:GetAuthorizationToken")
	h, stderr := newHelper(t, e)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIACI00000000000000")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ci")
	code, out := run(h, "get", reg)
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "arn:aws:iam::123456789012:user/ci may not call ecr:GetAuthorizationToken") {
		t.Errorf("access denied: exit %d, stdout %q", code, out)
	}
	if !strings.Contains(stderr.String(), "may not call ecr:GetAuthorizationToken") {
		t.Errorf("stderr = %q", stderr.String())
	}
	code, out = run(h, "get", "123456789012.dkr.ecr.us-eas-1.amazonaws.com")
	if code != 1 || !strings.Contains(out, "did you mean us-east-1?") {
		t.Errorf("region typo: exit %d, %q", code, out)
	}
}

func TestStoreEraseList(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	h, _ := newHelper(t, e)
	if code, out := run(h, "store", `{"ServerURL":"`+reg+`","Username":"AWS","Secret":"typed-by-user"}`); code != 0 {
		t.Fatalf("store (docker login): exit %d %q", code, out)
	}
	if code, out := run(h, "store", `{"ServerURL":"ghcr.io","Username":"me","Secret":"x"}`); code != 1 || !strings.Contains(out, "only serves Amazon ECR") {
		t.Errorf("store of a foreign host: exit %d %q", code, out)
	}
	if code, out := run(h, "list", ""); code != 0 || strings.TrimSpace(out) != "{}" {
		t.Errorf("list before any get: %d %q", code, out)
	}
	run(h, "get", reg)
	code, out := run(h, "list", "")
	var m map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m[reg] != "AWS" || len(m) != 1 {
		t.Errorf("list after get: %d %q", code, out)
	}
	if code, out := run(h, "erase", reg); code != 0 {
		t.Fatalf("erase (docker logout): %d %q", code, out)
	}
	if _, out := run(h, "list", ""); strings.TrimSpace(out) != "{}" {
		t.Errorf("list after erase: %q", out)
	}
	if code, _ := run(h, "erase", "ghcr.io"); code != 0 {
		t.Errorf("erase of a foreign host failed")
	}
	if code, out := run(h, "version", ""); code != 0 || out == "" {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _ := run(h, "frobnicate", ""); code != 1 {
		t.Errorf("unknown action succeeded")
	}
}

func TestExecFetcher(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := script("ok", `echo '{"registry":"'"$1"'","username":"AWS","password":"pw","expiresAt":"2099-01-01T00:00:00Z"}'`)
	tok, err := credhelper.ExecFetcher(ok, nil)(context.Background(), reg)
	if err != nil || tok.Password != "pw" || tok.Registry != reg {
		t.Fatalf("fetcher output: %+v %v", tok, err)
	}
	fail := script("fail", `echo "AWS profile \"x\" is not in ~/.aws/config: create it"; exit 1`)
	if _, err := credhelper.ExecFetcher(fail, nil)(context.Background(), reg); err == nil || err.Error() != `AWS profile "x" is not in ~/.aws/config: create it` {
		t.Errorf("fetcher failure: %v", err)
	}
	junk := script("junk", `echo not json`)
	if _, err := credhelper.ExecFetcher(junk, nil)(context.Background(), reg); err == nil || !strings.Contains(err.Error(), "printed no token") {
		t.Errorf("junk output: %v", err)
	}
	if _, err := credhelper.FetcherPath([]string{"PATH=" + t.TempDir()}); err == nil || !strings.Contains(err.Error(), "make install") {
		t.Errorf("missing fetcher: %v", err)
	}
	if p, _ := credhelper.FetcherPath([]string{"ECRGATE_FETCHER=" + ok}); p != ok {
		t.Errorf("ECRGATE_FETCHER ignored: %s", p)
	}
}
