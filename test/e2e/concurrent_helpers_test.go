//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// helperAccounts are the emulator's registries for the concurrent-helper
// test; the first is the emulator's default account.
var helperAccounts = []string{"123456789012", "111111111111", "222222222222", "333333333333"}

// helperResult is one docker-credential-ecrgate get.
type helperResult struct {
	host   string
	err    error
	stdout []byte
	stderr []byte
}

// TestConcurrentHelpers starts 100 `docker-credential-ecrgate get`
// processes at once on an empty token cache, the emulator answering every
// AWS call 50 ms late so that they really overlap: for one registry, and
// for four registries with 25 processes each. Every process must exit 0
// with the same credentials for its registry (credentials the emulator's
// registry accepts), the emulator must have seen at most one
// GetAuthorizationToken per registry, and the cache must hold one valid
// token per registry afterwards.
func TestConcurrentHelpers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		registries int
	}{
		{"one registry", 1},
		{"four registries", 4},
	} {
		t.Run(tc.name, func(t *testing.T) { runConcurrentHelpers(t, tc.registries, 100/tc.registries) })
	}
}

func runConcurrentHelpers(t *testing.T, registries, perRegistry int) {
	bin := binDir(t)
	e := ecrfake.Start(t, ecrfake.Options{Accounts: helperAccounts})
	e.SetLatency(50 * time.Millisecond)
	var hosts []string
	for _, a := range helperAccounts[:registries] {
		hosts = append(hosts, a+".dkr.ecr."+e.Region()+".amazonaws.com")
	}

	dir := t.TempDir()
	cacheHome := filepath.Join(dir, "cache")
	logPath := filepath.Join(dir, "helpers.log") // shared by every helper and fetcher, never a token
	env := append(baseEnv(t), e.Env()...)
	env = append(env, "HOME="+dir, "XDG_CACHE_HOME="+cacheHome,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"),
		"ECRGATE_LOG="+logPath, "ECRGATE_LOG_LEVEL=debug")

	// Start every process at the same moment.
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	gate := make(chan struct{})
	results := make([]helperResult, registries*perRegistry)
	var ready, done sync.WaitGroup
	for i := range results {
		host := hosts[i%registries]
		ready.Add(1)
		done.Go(func() {
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "docker-credential-ecrgate"), "get")
			cmd.Env = env
			cmd.Stdin = bytes.NewBufferString(host + "\n")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.WaitDelay = 5 * time.Second
			ready.Done()
			<-gate
			err := cmd.Run()
			results[i] = helperResult{host: host, err: err, stdout: stdout.Bytes(), stderr: stderr.Bytes()}
		})
	}
	ready.Wait()
	began := time.Now()
	close(gate)
	done.Wait()
	wall := time.Since(began)
	calls := e.Calls("GetAuthorizationToken")
	logs, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("read the helpers' log: %v", err)
	}
	fetched := bytes.Count(logs, []byte(`msg="token fetched"`))
	afterLock := bytes.Count(logs, []byte(`msg="token from file cache after lock"`))
	hits := bytes.Count(logs, []byte(`msg="token from file cache"`))
	t.Logf("concurrent helpers: %d processes (%d registries × %d) on an empty cache, emulator latency 50ms: wall %s, GetAuthorizationToken calls %d; %d fetched, %d found the token after waiting for the lock, %d found it in the cache at once",
		len(results), registries, perRegistry, wall.Round(time.Millisecond), calls, fetched, afterLock, hits)
	// The point is processes that miss the empty cache at the same time:
	// either each fetched or it waited for another's fetch.
	if fetched+afterLock < 2 {
		t.Errorf("only %d helper missed the empty cache: the processes did not overlap, so this run proved nothing\n%s", fetched+afterLock, tail(logs, 4<<10))
	}

	// Every process succeeded with its registry's one token.
	secrets := map[string]string{}          // host -> a secret handed out
	distinct := map[string]map[string]int{} // host -> secret -> helpers
	failed := 0
	for i, r := range results {
		var creds struct{ ServerURL, Username, Secret string }
		err := r.err
		if err == nil {
			if jerr := json.Unmarshal(r.stdout, &creds); jerr != nil {
				err = fmt.Errorf("stdout is not the credentials JSON: %w", jerr)
			} else if creds.Username != "AWS" || creds.Secret == "" || creds.ServerURL != r.host {
				err = fmt.Errorf("credentials for %q with user %q and a secret of %d bytes", creds.ServerURL, creds.Username, len(creds.Secret))
			}
		}
		if err != nil {
			if failed++; failed <= 5 {
				out := r.stdout // the failure's one sentence; on exit 0 it may hold a secret
				if r.err == nil {
					out = []byte("(withheld: exit 0)")
				}
				t.Errorf("helper %d (%s): %v\nstdout: %s\nstderr: %s", i, r.host, err, out, r.stderr)
			}
			continue
		}
		if distinct[r.host] == nil {
			distinct[r.host] = map[string]int{}
		}
		distinct[r.host][creds.Secret]++
		secrets[r.host] = creds.Secret
	}
	if failed > 0 {
		t.Fatalf("%d of %d helpers failed", failed, len(results))
	}
	for _, host := range hosts {
		if n := len(distinct[host]); n != 1 {
			t.Errorf("the %d helpers for %s handed out %d different tokens, want one", perRegistry, host, n)
		}
	}
	// Each registry's token took at least one call of its own, so at most
	// one call per registry in all means exactly one for each.
	if calls > registries {
		t.Errorf("GetAuthorizationToken calls = %d for %d registries, want at most one per registry", calls, registries)
	}

	// The cache holds one valid token per registry, the one handed out, and
	// the emulator's registry accepts it.
	cache := tokencache.Cache{Dir: tokencache.DefaultDir(env)}
	log := slog.New(slog.DiscardHandler)
	files, _ := filepath.Glob(filepath.Join(cache.Dir, "*.json"))
	if len(files) != registries {
		t.Errorf("token cache files = %d (%v), want %d", len(files), files, registries)
	}
	if all := cache.All(log); len(all) != registries {
		t.Errorf("token cache entries that parse = %d, want %d", len(all), registries)
	}
	if st, err := os.Stat(cache.Dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("token cache directory: %v %v, want mode 0700", st, err)
	}
	for _, host := range hosts {
		tok, ok := cache.Read(tokencache.Key(host, tokencache.Identity{}, env), log)
		switch {
		case !ok:
			t.Errorf("no cached token for %s", host)
			continue
		case tok.Registry != host || tok.Username != "AWS":
			t.Errorf("cached token for %s is %v", host, tok)
		case !tok.Usable(time.Now(), tokencache.DefaultMargin):
			t.Errorf("cached token for %s expires at %s: not usable", host, tok.ExpiresAt)
		case len(distinct[host]) == 1 && tok.Password != secrets[host]:
			t.Errorf("cached token for %s is not the one the helpers handed out", host)
		}
		if code := registryPing(t, e, host, secrets[host]); code != http.StatusOK {
			t.Errorf("the emulator answered GET /v2/ for %s with the helpers' token: %d, want 200", host, code)
		}
	}
	if code := registryPing(t, e, hosts[0], "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("the emulator answered GET /v2/ with a bad token: %d, want 401 (the token check above proves nothing)", code)
	}
}

// registryPing sends GET /v2/ for host (the emulator tells registries apart
// by Host) with the password and returns the status code.
func registryPing(t *testing.T, e *ecrfake.Emulator, host, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.URL()+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.SetBasicAuth("AWS", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v2/ on the emulator: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
