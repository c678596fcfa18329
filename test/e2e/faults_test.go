//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// serveProc is one bin/ecrgate serve process with a config file of its own;
// start it again (same config, same ports, same caches) after a kill.
type serveProc struct {
	t       *testing.T
	cfgPath string
	env     []string
	admin   string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
	runs int
}

func newServeProc(t *testing.T, e *ecrfake.Emulator, endpoint string) (*serveProc, string) {
	t.Helper()
	binDir(t) // fails early when the binaries are not built
	dir := t.TempDir()
	listen, admin := freePort(t), freePort(t)
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	cfg := fmt.Sprintf("listen: %s\nadmin_listen: %s\nlog_level: debug\ndefault_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		listen, admin, registry, registry, endpoint)
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(t), e.Env()...)
	env = append(env, "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
	p := &serveProc{t: t, cfgPath: cfgPath, env: env, admin: admin, logPath: filepath.Join(dir, "serve.log")}
	t.Cleanup(p.stop)
	return p, listen
}

// start runs the process and waits for /healthz.
func (p *serveProc) start() {
	t := p.t
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir(t), "ecrgate"), "serve", "--config", p.cfgPath)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.runs++
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.admin+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(p.logPath)
			t.Fatalf("ecrgate serve (run %d) did not become healthy:\n%s", p.runs, b)
		case err := <-done:
			b, _ := os.ReadFile(p.logPath)
			t.Fatalf("ecrgate serve (run %d) exited: %v\n%s", p.runs, err, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL, as a crash or an OOM kill would, and waits for the exit.
func (p *serveProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	err := <-done
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		p.t.Errorf("ecrgate serve after SIGKILL: %v", err)
	}
}

// stop sends SIGTERM and expects a clean exit.
func (p *serveProc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	t := p.t
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ecrgate serve exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("ecrgate serve did not stop within 30s of SIGTERM")
		}
	}
	b, _ := os.ReadFile(p.logPath)
	if strings.Contains(string(b), "Basic ") {
		t.Errorf("a credential reached ecrgate's log")
	}
	if t.Failed() {
		t.Logf("ecrgate serve log:\n%s", b)
	}
}

// killAfterBytes passes a request body through and calls kill once n bytes
// have gone; the rest of the body then meets a dead connection.
type killAfterBytes struct {
	r    io.ReadCloser
	left int
	kill func()
}

func (k *killAfterBytes) Read(b []byte) (int, error) {
	if k.left <= 0 {
		k.kill()
	} else if len(b) > k.left {
		b = b[:k.left]
	}
	n, err := k.r.Read(b)
	k.left -= n
	return n, err
}

func (k *killAfterBytes) Close() error { return k.r.Close() }

type hookTransport func(*http.Request) *http.Request

func (h hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return http.DefaultTransport.RoundTrip(h(req))
}

// TestServeKilledMidPush: bin/ecrgate serve is killed (SIGKILL) while a
// layer streams through it, and started again on the same port; the push,
// retried, completes and the image pulls back with the same digest.
func TestServeKilledMidPush(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "")
	os.Unsetenv("AWS_CA_BUNDLE")
	e := ecrfake.Start(t, ecrfake.Options{})
	p, listen := newServeProc(t, e, e.URL())
	p.start()

	ref, err := name.ParseReference(listen+"/faults/restart:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	var killed atomic.Bool
	hook := hookTransport(func(req *http.Request) *http.Request {
		if req.Method != http.MethodPatch || killed.Load() {
			return req
		}
		req = req.Clone(req.Context())
		req.Body = &killAfterBytes{r: req.Body, left: 256 << 10, kill: func() {
			if killed.CompareAndSwap(false, true) {
				p.kill()
			}
		}}
		return req
	})
	start := time.Now()
	err = remote.Write(ref, img, remote.WithJobs(1), remote.WithTransport(hook),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}), remote.WithRetryPredicate(func(error) bool { return false }))
	if !killed.Load() {
		t.Fatalf("ecrgate serve was not killed during the push (push: %v)", err)
	}
	if err == nil {
		t.Fatal("the push completed through a killed ecrgate serve")
	}
	t.Logf("push with ecrgate serve killed after 256 KiB of a layer: failed after %v: %v", time.Since(start).Round(time.Millisecond), err)

	restart := time.Now()
	p.start() // the same port
	t.Logf("ecrgate serve healthy again on %s after %v", listen, time.Since(restart).Round(time.Millisecond))
	retry := time.Now()
	if err := remote.Write(ref, img, remote.WithRetryBackoff(remote.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Steps: 4})); err != nil {
		t.Fatalf("push retried after the restart: %v", err)
	}
	t.Logf("retried push completed in %v", time.Since(retry).Round(time.Millisecond))
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		verifyLayer(t, l)
	}
	if n := e.Calls("CreateRepository"); n != 1 {
		t.Errorf("CreateRepository calls = %d, want 1", n)
	}
}

func verifyLayer(t *testing.T, l v1.Layer) {
	t.Helper()
	rc, err := l.Compressed() // checks the digest while reading
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("layer read back: %v", err)
	}
}

// TestServeUpstreamDown: with the registry's endpoint down, bin/ecrgate
// serve answers at once with 503 UNAVAILABLE naming the registry and the
// address it could not reach, and keeps serving.
func TestServeUpstreamDown(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "")
	os.Unsetenv("AWS_CA_BUNDLE")
	e := ecrfake.Start(t, ecrfake.Options{})
	dead := freePort(t) // nothing listens there once freePort returns
	p, listen := newServeProc(t, e, "http://"+dead)
	p.start()
	for _, path := range []string{"/v2/down/app/tags/list", "/v2/down/app/blobs/uploads/"} {
		method := http.MethodGet
		if strings.HasSuffix(path, "/uploads/") {
			method = http.MethodPost
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+listen+path, nil)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s %s: %v after %v", method, path, err, time.Since(start))
		}
		var body struct {
			Errors []struct{ Code, Message string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		cancel()
		took := time.Since(start)
		if err != nil || len(body.Errors) != 1 {
			t.Fatalf("%s %s: %d, not one registry error: %v", method, path, resp.StatusCode, err)
		}
		msg := body.Errors[0].Message
		t.Logf("%s %s with the upstream down: %d %s after %v: %s", method, path, resp.StatusCode, body.Errors[0].Code, took.Round(time.Millisecond), msg)
		if resp.StatusCode != http.StatusServiceUnavailable || body.Errors[0].Code != "UNAVAILABLE" ||
			!strings.Contains(msg, "123456789012.dkr.ecr.us-east-1.amazonaws.com") || !strings.Contains(msg, dead) ||
			!strings.Contains(msg, "retry the push") {
			t.Errorf("want 503 UNAVAILABLE naming the registry, %s and what to do", dead)
		}
		// A refused connection is reported at once; the dial timeout (10s)
		// is for addresses that do not answer at all.
		if took > 15*time.Second {
			t.Errorf("took %v", took)
		}
	}
}
