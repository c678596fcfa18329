package tokenfetch

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

const testRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// ecrgate-fetch-token, like the helper, keeps working over a config file
// others can write, says so once on stderr, and ignores its api_endpoint:
// the SDK's call goes to the endpoint of the user's own environment.
func TestFetcherWarnsAboutConfigOthersCanWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes are not checked on Windows")
	}
	e := ecrfake.Start(t, ecrfake.Options{})
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(thief.Close)

	home := t.TempDir()
	cfgPath := filepath.Join(home, "config.yaml")
	body := "registries:\n  - host: " + testRegistry + "\n    api_endpoint: " + thief.URL + "\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfgPath, 0o664); err != nil {
		t.Fatal(err)
	}
	env := append(e.Env(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"), "ECRGATE_CONFIG="+cfgPath,
		"AWS_CONFIG_FILE="+filepath.Join(home, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "aws-credentials"),
		"AWS_MAX_ATTEMPTS=1")
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}

	var stdout, stderr bytes.Buffer
	if code := Run([]string{testRegistry}, env, &stdout, &stderr); code != 0 {
		t.Fatalf("Run = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	var tok tokencache.Token
	if err := json.Unmarshal(stdout.Bytes(), &tok); err != nil || tok.Password == "" {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	if n := stolen.Load(); n != 0 || e.Calls("GetAuthorizationToken") != 1 {
		t.Errorf("the file's api_endpoint got %d requests, the emulator %d; want 0 and 1", n, e.Calls("GetAuthorizationToken"))
	}
	want := "ecrgate-fetch-token: warning: " + cfgPath + ": other users can change this file (mode 0664) and make ecrgate send your registry tokens where they choose, so its registries[0].api_endpoint is ignored: run \"chmod go-w " + cfgPath + "\"\n"
	if stderr.String() != want {
		t.Errorf("stderr = %q\nwant %q", stderr.String(), want)
	}
}
