//go:build e2e

package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// Distinctive secrets that must never appear in an output of the binaries.
const (
	secCanarySecretKey    = "SECRETKEY-e2e-ecrgate-leak-canary-0b7c5d3a19"
	secCanarySessionToken = "SESSIONTOKEN-e2e-ecrgate-leak-canary-6e2f8a4c70"
	secCanaryClientToken  = "CLIENTTOKEN-e2e-ecrgate-leak-canary-3d9b1f5e82"
	secRegistry           = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	secPrincipal          = "arn:aws:iam::123456789012:user/ecrfake"
)

// secTokens records every authorizationToken the emulator's
// GetAuthorizationToken hands out, through a reverse proxy in front of its
// API.
type secTokens struct {
	mu     sync.Mutex
	tokens []string
}

func secTokenRecorder(t *testing.T, e *ecrfake.Emulator) (*secTokens, string) {
	t.Helper()
	rec := &secTokens{}
	target, _ := url.Parse(e.URL())
	srv := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // SigV4 signs Host
		},
		ModifyResponse: func(resp *http.Response) error {
			if !strings.HasSuffix(resp.Request.Header.Get("X-Amz-Target"), ".GetAuthorizationToken") {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
			var out struct {
				AuthorizationData []struct{ AuthorizationToken string } `json:"authorizationData"`
			}
			if json.Unmarshal(b, &out) == nil {
				rec.mu.Lock()
				for _, d := range out.AuthorizationData {
					rec.tokens = append(rec.tokens, d.AuthorizationToken)
				}
				rec.mu.Unlock()
			}
			return nil
		},
	})
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// forms returns every form of every secret to look for: the tokens as ECR
// gives them, their passwords (whole, start, end, escaped, re-encoded), and
// the AWS and client secrets raw and base64-encoded.
func (r *secTokens) forms(t *testing.T, extra ...string) (map[string]string, []string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	var passwords []string
	for _, tok := range r.tokens {
		raw, err := base64.StdEncoding.DecodeString(tok)
		if err != nil {
			t.Fatalf("recorded token is not base64: %v", err)
		}
		pw := strings.TrimPrefix(string(raw), "AWS:")
		passwords = append(passwords, pw)
		out[tok] = "an ECR authorizationToken"
		out[pw] = "an ECR token password"
		out[pw[:24]] = "the start of an ECR token password"
		out[pw[len(pw)-24:]] = "the end of an ECR token password"
		out[url.QueryEscape(pw)[:32]] = "an URL-escaped ECR token password"
		out[base64.StdEncoding.EncodeToString([]byte(pw))[:64]] = "a base64-encoded ECR token password"
		out[base64.URLEncoding.EncodeToString(raw)[:64]] = "an URL-safe base64 ECR token"
	}
	for _, s := range extra {
		out[s] = "secret " + s[:14]
		out[base64.StdEncoding.EncodeToString([]byte(s))] = "base64 of secret " + s[:14]
		out[base64.StdEncoding.EncodeToString([]byte("AWS:"+s))] = "Basic value of secret " + s[:14]
	}
	return out, passwords
}

// secWalk returns the paths under dir and the contents of its files, the
// token cache entries (*.json) apart.
func secWalk(dir string) (paths, contents string, entries []string) {
	var p, c strings.Builder
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		p.WriteString(path + "\n")
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			if strings.HasSuffix(path, ".json") && strings.Contains(path, string(filepath.Separator)+"tokens"+string(filepath.Separator)) {
				entries = append(entries, string(b))
			} else {
				c.Write(b)
			}
		}
		return nil
	})
	return p.String(), c.String(), entries
}

// TestSecretsNeverLeakFromBinaries runs bin/ecrgate serve at debug level and
// bin/docker-credential-ecrgate (with bin/ecrgate-fetch-token) with
// ECRGATE_LOG at debug, through a push, a failing push, a refreshed token
// and refused identities, and greps every output: the serve log
// (stdout+stderr), /metrics, every answer the client got, the audit file,
// the helper's stderr, its ECRGATE_LOG file and its list/erase output, and
// the token caches' file names and lock files. The token may appear only in
// the token cache file (and on the helper's get stdout, the Docker protocol
// channel, which is not an output anyone logs).
func TestSecretsNeverLeakFromBinaries(t *testing.T) {
	bin := binDir(t)
	e := ecrfake.Start(t, ecrfake.Options{AccessKey: "AKIAECRGATEE2ELEAK01", SecretKey: secCanarySecretKey})
	rec, api := secTokenRecorder(t, e)
	work := t.TempDir()
	audit := filepath.Join(work, "audit.jsonl")
	aws := []string{
		"AWS_ACCESS_KEY_ID=" + e.AccessKey(), "AWS_SECRET_ACCESS_KEY=" + secCanarySecretKey, "AWS_SESSION_TOKEN=" + secCanarySessionToken,
		"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_ECR=" + api, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(work, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(work, "aws-credentials"),
	}

	// ecrgate serve.
	listen, admin := freePort(t), freePort(t)
	cfgPath := filepath.Join(work, "ecrgate.yaml")
	cfg := fmt.Sprintf("listen: %s\nadmin_listen: %s\nlog_level: debug\naudit_log: %s\ndefault_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n"+
		"templates:\n  - prefix: leak\n    image_tag_mutability: IMMUTABLE\n",
		listen, admin, audit, secRegistry, secRegistry, e.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	serveHome := filepath.Join(work, "serve-home")
	serveLog := filepath.Join(work, "serve.log")
	logf, err := os.Create(serveLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	serve := exec.Command(filepath.Join(bin, "ecrgate"), "serve", "--config", cfgPath)
	serve.Env = append(append(baseEnv(t), aws...), "HOME="+serveHome, "XDG_CACHE_HOME="+filepath.Join(serveHome, "cache"))
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = serve.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- serve.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ecrgate serve exited with %v", err)
			}
		case <-time.After(60 * time.Second):
			_ = serve.Process.Kill()
			t.Errorf("ecrgate serve did not stop within 60s of SIGTERM")
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(serveLog)
			t.Fatalf("ecrgate serve did not become healthy:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var answers bytes.Buffer
	var answersMu sync.Mutex
	client := secRecordingTransport{out: &answers, mu: &answersMu}
	push := func(ref string) error {
		r, err := name.ParseReference(listen+"/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(r, img, remote.WithTransport(client))
	}
	get := func(path, auth string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := (&http.Client{Transport: client}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := push("leak/app:1"); err != nil {
		b, _ := os.ReadFile(serveLog)
		t.Fatalf("push through ecrgate serve: %v\n%s", err, b)
	}
	if err := push("leak/app:1"); err == nil {
		t.Error("overwriting an immutable tag succeeded")
	}
	e.ExpireTokens()
	if err := push("leak/app:2"); err != nil {
		t.Errorf("push after the token expired: %v", err)
	}
	get("/v2/leak/app/manifests/1", "Basic "+base64.StdEncoding.EncodeToString([]byte("AWS:"+secCanaryClientToken)))

	// docker-credential-ecrgate, cold and warm, list, erase.
	helperCache := filepath.Join(work, "helper-cache")
	helperLog := filepath.Join(work, "helper.log")
	helperCfg := filepath.Join(work, "helper.yaml")
	if err := os.WriteFile(helperCfg, []byte("local_hosts:\n  \"localhost:5000\": "+secRegistry+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	helperEnv := append(append([]string{}, aws...), "XDG_CACHE_HOME="+helperCache, "ECRGATE_LOG="+helperLog, "ECRGATE_LOG_LEVEL=debug",
		"ECRGATE_CONFIG="+helperCfg, "ECRGATE_FETCHER="+filepath.Join(bin, "ecrgate-fetch-token"))
	var helperStderr, helperStdout strings.Builder
	helper := func(action, stdin string, wantOK bool) string {
		cmd := exec.Command(filepath.Join(bin, "docker-credential-ecrgate"), action)
		cmd.Env = append(baseEnv(t), helperEnv...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		helperStderr.WriteString(stderr.String())
		if (err == nil) != wantOK {
			t.Errorf("docker-credential-ecrgate %s: %v\nstdout: %s\nstderr: %s", action, err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	for _, host := range []string{secRegistry, secRegistry} {
		out := helper("get", host, true)
		if !strings.Contains(out, `"Secret"`) {
			t.Errorf("get %s printed no credentials: %s", host, out)
		}
	}
	// A local proxy host gets none (registry mode needs none).
	if out := helper("get", "localhost:5000", false); strings.TrimSpace(out) != "credentials not found in native keychain" {
		t.Errorf("get localhost:5000 = %q; want credentials not found", out)
	}
	helperStdout.WriteString(helper("list", "", true))
	helperStdout.WriteString(helper("erase", secRegistry, true))
	_, _, helperEntries := secWalk(helperCache)
	if len(helperEntries) != 0 {
		t.Errorf("erase left %d cache entries", len(helperEntries))
	}
	// A token cache that others may read is refused with the fix, not used
	// and not repaired; the helper does not fall back to an uncached fetch.
	helper("get", secRegistry, true) // a token in the cache again
	_, _, helperEntries = secWalk(helperCache)
	tokensDir := filepath.Join(helperCache, "ecrgate", "tokens")
	if err := os.Chmod(tokensDir, 0o755); err != nil {
		t.Fatal(err)
	}
	calls := e.Calls("GetAuthorizationToken")
	out := helper("get", secRegistry, false)
	if !strings.Contains(out, `chmod 700 `+tokensDir) || strings.Contains(out, `"Secret"`) {
		t.Errorf("get with a 0755 token cache printed %q; want the refusal with chmod 700", out)
	}
	helperStdout.WriteString(out)
	if st, err := os.Stat(tokensDir); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the helper changed the cache directory's mode: %v", st.Mode().Perm())
	}
	if n := e.Calls("GetAuthorizationToken"); n != calls {
		t.Errorf("the helper fetched %d tokens despite refusing the cache", n-calls)
	}
	if err := os.Chmod(tokensDir, 0o700); err != nil {
		t.Fatal(err)
	}

	// Refused identities: no token, no repository.
	e.DenyAction(secPrincipal, "ecr:GetAuthorizationToken")
	e.ExpireTokens()
	helperStdout.WriteString(helper("erase", secRegistry, true))
	helperStdout.WriteString(helper("get", secRegistry, false))
	if err := push("leak/app:3"); err == nil {
		t.Error("push without a token succeeded")
	}
	e.DenyAction(secPrincipal, "ecr:CreateRepository")
	if err := push("leak/denied:1"); err == nil {
		t.Error("push to a repository that may not be created succeeded")
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop()

	serveOut, _ := os.ReadFile(serveLog)
	auditText, _ := os.ReadFile(audit)
	helperLogText, _ := os.ReadFile(helperLog)
	servePaths, serveFiles, serveEntries := secWalk(filepath.Join(serveHome, "cache"))
	helperPaths, helperFiles, _ := secWalk(helperCache)
	if !strings.Contains(string(auditText), "leak/app") {
		t.Errorf("the audit file records no creation: %q", auditText)
	}
	for what, text := range map[string]string{"the serve log": string(serveOut), "the helper's log": string(helperLogText)} {
		if !strings.Contains(text, "level=DEBUG") {
			t.Errorf("%s has no debug lines: the scenario did not run at debug level", what)
		}
	}

	forms, passwords := rec.forms(t, secCanarySecretKey, secCanarySessionToken, secCanaryClientToken)
	answersMu.Lock()
	answerText := answers.String()
	answersMu.Unlock()
	outputs := map[string]string{
		"ecrgate serve's stdout/stderr":                       string(serveOut),
		"/metrics":                                            string(metrics),
		"the answers the client got":                          answerText,
		"the audit file":                                      string(auditText),
		"docker-credential-ecrgate's stderr":                  helperStderr.String(),
		"docker-credential-ecrgate's list/erase/error output": helperStdout.String(),
		"ECRGATE_LOG":                                         string(helperLogText),
		"the token caches' file names":                        servePaths + helperPaths,
		"the token caches' other files":                       serveFiles + helperFiles,
	}
	for where, text := range outputs {
		for s, what := range forms {
			if strings.Contains(text, s) {
				t.Errorf("%s appears in %s", what, where)
			}
		}
	}
	// Positive control: the tokens the test watches are the ones ecrgate
	// held, found where they belong.
	found := 0
	for _, entry := range append(serveEntries, helperEntries...) {
		for _, pw := range passwords {
			if strings.Contains(entry, pw) {
				found++
			}
		}
	}
	if len(passwords) == 0 || found == 0 {
		t.Errorf("%d tokens recorded, %d found in the token caches: the test watches the wrong tokens", len(passwords), found)
	}
	if t.Failed() {
		t.Logf("serve log:\n%s\nhelper log:\n%s", serveOut, helperLogText)
	}
}

// secRecordingTransport records the status, headers and body of every
// answer.
type secRecordingTransport struct {
	out *bytes.Buffer
	mu  *sync.Mutex
}

func (s secRecordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	s.mu.Lock()
	fmt.Fprintf(s.out, "%s %s -> %s\n", req.Method, req.URL, resp.Status)
	_ = resp.Header.Write(s.out)
	s.out.Write(b)
	s.out.WriteString("\n")
	s.mu.Unlock()
	return resp, nil
}
