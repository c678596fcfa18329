//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// binDir is where `make build` puts our binaries (make e2e builds first).
func binDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"ecrgate", "docker-credential-ecrgate", "ecrgate-fetch-token"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s not built (run make build or make e2e): %v", b, err)
		}
	}
	return dir
}

// TestDockerSendsNoTokenToALocalPort replays B1 of issue 11 with the real
// docker CLI and dockerd: a config.json that an earlier `ecrgate setup
// docker` wrote (credHelpers for the registry-mode host), ecrgate serve
// stopped, and another local user listening on that port with a 401 Basic
// challenge. docker push and pull must fail without that listener ever
// receiving a credential; and `ecrgate setup docker` then removes the
// entry. (The helper's token reaching dockerd for a real ECR host is
// TestInterceptModeDockerPush.)
func TestDockerSendsNoTokenToALocalPort(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin)
	bin := binDir(t)
	e := ecrfake.Start(t, ecrfake.Options{})
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

	var mu sync.Mutex
	var auths []string
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		w.Header().Set("WWW-Authenticate", `Basic realm="http://`+r.Host+`/"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
	}))
	t.Cleanup(hostile.Close)
	host := strings.TrimPrefix(hostile.URL, "http://") // 127.0.0.1:<port>

	work := t.TempDir()
	cfgFile := filepath.Join(work, "ecrgate.yaml")
	if err := os.WriteFile(cfgFile, []byte("default_registry: "+registry+"\nlisten: "+host+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDockerd(t)
	// What an earlier ecrgate setup docker wrote.
	old, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{host: "ecrgate", registry: "ecrgate"}})
	if err := os.WriteFile(filepath.Join(d.ConfigDir, "config.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(d.Env(), e.Env()...)
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "ECRGATE_CONFIG="+cfgFile,
		"XDG_CACHE_HOME="+filepath.Join(work, "cache"))

	ref := host + "/team/app:1"
	importImage(t, d, ref)
	out, err := runCmd(t, env, dockerCLI, "push", ref)
	if err == nil {
		t.Fatalf("push to the hostile listener succeeded:\n%s", out)
	}
	t.Logf("docker push %s (hostile listener):\n%s", ref, out)
	if out, err := runCmd(t, env, dockerCLI, "pull", host+"/team/app:0"); err == nil {
		t.Fatalf("pull from the hostile listener succeeded:\n%s", out)
	}
	mu.Lock()
	seen := append([]string(nil), auths...)
	mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("dockerd never reached the hostile listener: the test proves nothing")
	}
	for _, a := range seen {
		if a != "" {
			t.Errorf("the listener on the registry-mode port received credentials (%d requests)", len(seen))
			break
		}
	}
	if n := e.Calls("GetAuthorizationToken"); n != 0 {
		t.Errorf("GetAuthorizationToken calls = %d; the helper fetched a token for a local host", n)
	}

	out = mustRun(t, env, filepath.Join(bin, "ecrgate"), "setup", "docker")
	t.Logf("ecrgate setup docker:\n%s", out)
	b, err := os.ReadFile(filepath.Join(d.ConfigDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dc struct{ CredHelpers map[string]string }
	if err := json.Unmarshal(b, &dc); err != nil || dc.CredHelpers[registry] != "ecrgate" || dc.CredHelpers[host] != "" {
		t.Fatalf("config.json after setup docker = %s (%v); want %s kept and %s removed", b, err, registry, host)
	}
}
