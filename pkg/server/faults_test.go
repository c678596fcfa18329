package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// Client options of the fault tests: one upload at a time (so "the first
// PATCH" and "between two layers" mean one thing), and retries quick.
var (
	oneAtATime = remote.WithJobs(1)
	quickRetry = remote.WithRetryBackoff(remote.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Steps: 4})
	noRetry    = []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1}), remote.WithRetryPredicate(func(error) bool { return false })}
)

// clientHook is the push client's transport with a hook that sees every
// request before it goes (and may replace it) and every response.
type clientHook struct {
	before func(*http.Request) *http.Request
	after  func(*http.Request, *http.Response)
}

func (h *clientHook) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.before != nil {
		req = h.before(req)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && h.after != nil {
		h.after(req, resp)
	}
	return resp, err
}

func blobDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return append(out, cfg)
}

// headBlob asks the registry, through the proxy, whether repo has blob d.
func (f *fixture) headBlob(t *testing.T, repo string, d v1.Hash) (int, string) {
	t.Helper()
	resp, err := http.Head("http://" + f.proxy + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Docker-Content-Digest")
}

func pullBack(t *testing.T, f *fixture, ref string, want v1.Image) {
	t.Helper()
	got, err := remote.Image(f.ref(t, ref))
	if err != nil {
		t.Fatalf("pull %s back: %v", ref, err)
	}
	if digestOf(t, got) != digestOf(t, want) {
		t.Fatalf("pulled %s, pushed %s", digestOf(t, got), digestOf(t, want))
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest as it reads
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer of %s: %v", ref, err)
		}
		rc.Close()
	}
}

// TestPushSurvivesControlPlaneFaults: 500s and throttling on
// DescribeRepositories and CreateRepository that clear within the retry
// bound cost a few retries, not the push.
func TestPushSurvivesControlPlaneFaults(t *testing.T) {
	f := start(t, "")
	n := repocreate.APIMaxAttempts - 1
	f.e.FailNext("DescribeRepositories", n, ecrfake.FaultServerError)
	f.e.FailNext("CreateRepository", n, ecrfake.FaultThrottle)
	img := randomImage(t, 64<<10, 2)
	start := time.Now()
	if err := remote.Write(f.ref(t, "faults/survive:1"), img, oneAtATime); err != nil {
		t.Fatalf("push with %d faults on each call: %v", n, err)
	}
	t.Logf("push survived %d× 500 on DescribeRepositories and %d× ThrottlingException on CreateRepository in %v",
		n, n, time.Since(start).Round(time.Millisecond))
	if d, c := f.e.Calls("DescribeRepositories"), f.e.Calls("CreateRepository"); d != n+1 || c != n+1 {
		t.Errorf("DescribeRepositories calls = %d, CreateRepository calls = %d, want %d each", d, c, n+1)
	}
	pullBack(t, f, "faults/survive:1", img)
}

// TestControlPlaneFaultsReachTheClient: faults that outlast the retries
// end the push's first write with 503 UNAVAILABLE saying what failed and
// what to do, after exactly APIMaxAttempts calls; nothing is cached, so the
// next push goes ahead once ECR is back.
func TestControlPlaneFaultsReachTheClient(t *testing.T) {
	max := repocreate.APIMaxAttempts
	tests := []struct {
		op    string
		fault ecrfake.Fault
		want  []string
	}{
		{"CreateRepository", ecrfake.FaultThrottle, []string{`CreateRepository of "faults/app"`, "ThrottlingException", "retry the push"}},
		{"CreateRepository", ecrfake.FaultServerError, []string{`CreateRepository of "faults/app"`, "ServerException", "retry the push"}},
		{"DescribeRepositories", ecrfake.FaultThrottle, []string{`DescribeRepositories of "faults/app"`, "ThrottlingException", "retry the push"}},
		{"DescribeRepositories", ecrfake.FaultServerError, []string{`DescribeRepositories of "faults/app"`, "ServerException", "retry the push"}},
	}
	for _, tt := range tests {
		t.Run(tt.op+" "+string(tt.fault), func(t *testing.T) {
			f := start(t, "")
			f.e.FailNext(tt.op, max, tt.fault)
			start := time.Now()
			resp, err := http.Post("http://"+f.proxy+"/v2/faults/app/blobs/uploads/", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Errors []struct{ Code, Message string }
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			took := time.Since(start)
			if err != nil || len(body.Errors) != 1 {
				t.Fatalf("upload start: %d, body not one registry error: %v", resp.StatusCode, err)
			}
			code, msg := body.Errors[0].Code, body.Errors[0].Message
			t.Logf("%d× %s on %s: %d %s after %v: %s", max, tt.fault, tt.op, resp.StatusCode, code, took.Round(time.Millisecond), msg)
			if resp.StatusCode != http.StatusServiceUnavailable || code != "UNAVAILABLE" {
				t.Fatalf("upload start: %d %s, want 503 UNAVAILABLE", resp.StatusCode, code)
			}
			for _, s := range append(tt.want, fmt.Sprintf("on all %d attempts", max)) {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q", s)
				}
			}
			if limit := 2*repocreate.APIMaxRetryWait + 30*time.Second; took > limit {
				t.Errorf("the client waited %v, more than %v", took, limit)
			}
			if got := f.e.Calls(tt.op); got != max {
				t.Errorf("%s calls = %d, want %d", tt.op, got, max)
			}
			img := randomImage(t, 1024, 1)
			if err := remote.Write(f.ref(t, "faults/app:1"), img); err != nil {
				t.Fatalf("push once ECR is back: %v", err)
			}
			pullBack(t, f, "faults/app:1", img)
		})
	}
}

// TestDroppedUploadRetried: the connection to the registry is lost in the
// middle of a blob upload. Without retries the push fails and leaves no
// blob and no manifest behind; with the client's own retry, the push
// completes through the proxy and every blob has the right digest.
func TestDroppedUploadRetried(t *testing.T) {
	f := start(t, "")
	img := randomImage(t, 256<<10, 3)
	blobs := blobDigests(t, img)

	f.e.FailNext(ecrfake.OpUploadChunk, 1, ecrfake.FaultCut(100<<10))
	err := remote.Write(f.ref(t, "faults/cut:1"), img, append(noRetry, oneAtATime)...)
	if err == nil {
		t.Fatal("push without retries survived a connection cut mid-upload: the fault did not happen")
	}
	t.Logf("push without retries, cut after 100 KiB of the first upload: %v", err)
	if !strings.Contains(err.Error(), "UNAVAILABLE") || !strings.Contains(err.Error(), "closed the connection before answering") {
		t.Errorf("the client's error does not say that the upstream dropped the connection: %v", err)
	}
	for _, d := range blobs {
		if code, _ := f.headBlob(t, "faults/cut", d); code != http.StatusNotFound {
			t.Fatalf("blob %s after the cut: HEAD %d, want 404 (a partial upload must not be visible)", d, code)
		}
	}
	if _, err := remote.Head(f.ref(t, "faults/cut:1")); err == nil {
		t.Fatal("the manifest exists after the failed push")
	}

	f.e.FailNext(ecrfake.OpUploadChunk, 1, ecrfake.FaultCut(100<<10))
	before := f.e.Calls(ecrfake.OpUploadChunk)
	if err := remote.Write(f.ref(t, "faults/cut:1"), img, oneAtATime, quickRetry); err != nil {
		t.Fatalf("push whose upload was cut, with the client's retry: %v", err)
	}
	chunks := f.e.Calls(ecrfake.OpUploadChunk) - before
	t.Logf("push with retries: %d PATCHes for %d blobs (one cut, retried)", chunks, len(blobs))
	if chunks != len(blobs)+1 {
		t.Errorf("%d PATCHes for %d blobs, want %d (each once, the cut one twice)", chunks, len(blobs), len(blobs)+1)
	}
	for _, d := range blobs {
		if code, got := f.headBlob(t, "faults/cut", d); code != http.StatusOK || got != d.String() {
			t.Fatalf("blob %s after the retried push: HEAD %d, digest %q", d, code, got)
		}
	}
	pullBack(t, f, "faults/cut:1", img)
}

// TestTokenExpiresBetweenLayers: the registry token the proxy holds expires
// after the first blob of a push is stored; the proxy gets a new one and the
// push completes.
func TestTokenExpiresBetweenLayers(t *testing.T) {
	f := start(t, "")
	img := randomImage(t, 64<<10, 3)
	var expired atomic.Int32
	hook := &clientHook{after: func(req *http.Request, resp *http.Response) {
		// The PUT that completes the first upload: expire every token now.
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") &&
			resp.StatusCode == http.StatusCreated && expired.Add(1) == 1 {
			f.e.ExpireTokens()
		}
	}}
	if err := remote.Write(f.ref(t, "faults/expiry:1"), img, oneAtATime, remote.WithTransport(hook),
		remote.WithRetryPredicate(func(error) bool { return false })); err != nil {
		t.Fatalf("push across a token expiry: %v", err)
	}
	if expired.Load() < 2 {
		t.Fatalf("%d blob uploads completed; the token must expire between two of them", expired.Load())
	}
	if n := f.e.Calls("GetAuthorizationToken"); n != 2 {
		t.Errorf("GetAuthorizationToken calls = %d, want 2 (the first token, then one refresh)", n)
	}
	t.Logf("token expired after blob 1 of %d; GetAuthorizationToken calls: %d", expired.Load(), f.e.Calls("GetAuthorizationToken"))
	pullBack(t, f, "faults/expiry:1", img)
}

// killableListener keeps the connections it accepted, so the test can cut
// them all at once as a killed process would.
type killableListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *killableListener) kill() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// TestProxyRestartMidPush: `ecrgate serve` dies (every connection cut at
// once) in the middle of a layer upload and is started again on the same
// port; the push, retried, completes and pulls back with the same digest.
func TestProxyRestartMidPush(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	dir := t.TempDir()
	env := append(e.Env(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("default_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n", registry, registry, e.URL())),
		filepath.Join(dir, "ecrgate.yaml"), env)
	if err != nil {
		t.Fatal(err)
	}
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := first.Addr().String()
	serve := func(ln net.Listener) (stop func()) {
		admin, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- server.Run(ctx, server.Options{Config: cfg, Env: env, Logger: slog.New(slog.DiscardHandler),
				ShutdownTimeout: 10 * time.Second, Listeners: map[string]net.Listener{"registry": ln, "admin": admin}})
		}()
		return func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
				t.Logf("server.Run: %v", err)
			}
		}
	}
	kl := &killableListener{Listener: first}
	stop := serve(kl)

	img := randomImage(t, 512<<10, 3)
	var killed atomic.Bool
	hook := &clientHook{before: func(req *http.Request) *http.Request {
		if req.Method != http.MethodPatch || killed.Load() {
			return req
		}
		// Kill the proxy once 128 KiB of this layer went through it.
		req = req.Clone(req.Context())
		req.Body = &killAfter{r: req.Body, left: 128 << 10, kill: func() {
			if killed.CompareAndSwap(false, true) {
				kl.kill()
			}
		}}
		return req
	}}
	f := &fixture{e: e, proxy: addr}
	err = remote.Write(f.ref(t, "faults/restart:1"), img,
		append(noRetry, oneAtATime, remote.WithTransport(hook))...)
	if !killed.Load() {
		t.Fatalf("the proxy was not killed during the push (push: %v)", err)
	}
	if err == nil {
		t.Fatal("the push went through a killed proxy")
	}
	t.Logf("push while the proxy was killed mid-upload: %v", err)
	killedAt := time.Now()
	stop()
	t.Logf("the killed server.Run returned after %v", time.Since(killedAt))

	// Started again on the same address.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	stop = serve(ln)
	defer stop()
	restarted := time.Now()
	if err := remote.Write(f.ref(t, "faults/restart:1"), img, quickRetry); err != nil {
		t.Fatalf("push retried after the restart: %v", err)
	}
	t.Logf("push after the restart took %v", time.Since(restarted))
	pullBack(t, f, "faults/restart:1", img)
	if n := e.Calls("CreateRepository"); n != 1 {
		t.Errorf("CreateRepository calls = %d, want 1", n)
	}
}

// killAfter reads left bytes, then calls kill and goes on reading (the
// writes that follow meet the cut connection).
type killAfter struct {
	r    io.ReadCloser
	left int
	kill func()
}

func (k *killAfter) Read(p []byte) (int, error) {
	if k.left <= 0 {
		k.kill()
	} else if len(p) > k.left {
		p = p[:k.left]
	}
	n, err := k.r.Read(p)
	k.left -= n
	return n, err
}

func (k *killAfter) Close() error { return k.r.Close() }
