//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
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

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// manifestGate stands between ecrgate and the emulator's registry (the
// registry's endpoint: override) and holds every manifest PUT until
// release is closed: a push that is deterministically in flight, its last
// request still running, for as long as the test wants.
type manifestGate struct {
	srv     *httptest.Server
	arrived chan struct{} // one value per manifest PUT that reached the gate
	release chan struct{}

	open func() // lets the held manifest PUTs (and every later one) through

	mu       sync.Mutex
	statuses []int // the emulator's answers to the manifest PUTs
}

func startManifestGate(t *testing.T, e *ecrfake.Emulator) *manifestGate {
	t.Helper()
	target, err := url.Parse(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	g := &manifestGate{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the emulator picks the registry from Host
		},
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0), // a client gone at the test's end is no news
	}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") {
			rp.ServeHTTP(w, r)
			return
		}
		g.arrived <- struct{}{}
		<-g.release
		rec := &statusRecorder{ResponseWriter: w}
		rp.ServeHTTP(rec, r)
		g.mu.Lock()
		g.statuses = append(g.statuses, rec.status)
		g.mu.Unlock()
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(g.release) })
		g.srv.Close()
	})
	g.open = func() { once.Do(func() { close(g.release) }) }
	return g
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// TestServeDrainsInterceptPushOnSIGTERM (issue 12, item 6): SIGTERM reaches
// a real `ecrgate serve` while dockerd's intercept-mode push is in flight
// (its manifest PUT held upstream). serve keeps running until that request
// is done, the push completes, and serve then exits 0. serve used to wait
// for its registry and admin listeners only, and cut intercept-mode pushes.
func TestServeDrainsInterceptPushOnSIGTERM(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin)
	bin := binDir(t)
	// Another region than the other intercept tests' host, so their
	// /etc/docker/certs.d entries never meet.
	const host = "123456789012.dkr.ecr.eu-central-1.amazonaws.com"
	e := ecrfake.Start(t, ecrfake.Options{Region: "eu-central-1"})
	gate := startManifestGate(t, e)

	data := t.TempDir()
	caDir := filepath.Join(data, "ecrgate", "ca")
	mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "init", "--dir", caDir)
	certFile := filepath.Join("/etc/docker/certs.d", host, "ca.crt")
	if _, err := os.Stat(certFile); err == nil {
		t.Fatalf("%s exists already; refusing to touch a real installation", certFile)
	}
	mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "install", "--dir", caDir, "--registry", host)
	t.Cleanup(func() {
		out, err := runCmd(t, nil, filepath.Join(bin, "ecrgate"), "ca", "uninstall", "--dir", caDir)
		if err != nil {
			t.Errorf("ecrgate ca uninstall: %v\n%s", err, out)
		}
		if _, err := os.Stat(certFile); err == nil {
			t.Errorf("%s left behind", certFile)
			os.Remove(certFile)
		}
		os.Remove(filepath.Dir(certFile))
	})

	// ecrgate serve, its data plane through the gate.
	dir := t.TempDir()
	listen, admin, ilisten := freePort(t), freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	cfg := fmt.Sprintf("listen: %s\nadmin_listen: %s\nintercept:\n  listen: %s\nlog_level: debug\naudit_log: %s\ndefault_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		listen, admin, ilisten, filepath.Join(dir, "audit.jsonl"), host, host, gate.srv.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	serve := exec.Command(filepath.Join(bin, "ecrgate"), "serve", "--config", cfgPath)
	serve.Env = append(baseEnv(t), e.Env()...)
	serve.Env = append(serve.Env, "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "XDG_DATA_HOME="+data,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when serve has exited, with waitErr
	var waitErr error
	go func() {
		waitErr = serve.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = serve.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("ecrgate serve log:\n%s", b)
		}
	})
	waitListening(t, ilisten, exited)
	waitListening(t, listen, exited)

	d := startDockerdWith(t, DockerdOptions{Env: []string{"HTTPS_PROXY=http://" + ilisten, "https_proxy=http://" + ilisten, "NO_PROXY=", "no_proxy="}})
	dcfg, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{host: "ecrgate"}})
	if err := os.WriteFile(filepath.Join(d.ConfigDir, "config.json"), dcfg, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(d.Env(), e.Env()...)
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "XDG_CACHE_HOME="+t.TempDir())

	ref := host + "/drain/app:1"
	importImage(t, d, ref)
	type result struct {
		out string
		err error
	}
	pushed := make(chan result, 1)
	go func() {
		out, err := runCmd(t, env, dockerCLI, "push", ref)
		pushed <- result{out, err}
	}()
	select {
	case <-gate.arrived:
	case r := <-pushed:
		t.Fatalf("docker push ended (%v) before its manifest PUT reached the registry:\n%s", r.err, r.out)
	case <-time.After(cmdTimeout):
		t.Fatal("docker push's manifest PUT never reached the registry")
	}

	// The push is in flight through the intercept listener: stop serve.
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Fatalf("ecrgate serve exited (%v) with an intercept-mode push in flight", waitErr)
	case <-time.After(2 * time.Second):
	}
	// Draining: new connections are refused, the push's own goes on.
	if c, err := net.DialTimeout("tcp", ilisten, time.Second); err == nil {
		c.Close()
		t.Errorf("the intercept listener still accepts connections 2s after SIGTERM")
	}
	gate.open()

	var r result
	select {
	case r = <-pushed:
	case <-time.After(cmdTimeout):
		t.Fatal("docker push did not finish after the manifest PUT was let through")
	}
	if r.err != nil {
		t.Fatalf("docker push %s, in flight at SIGTERM: %v\n%s", ref, r.err, r.out)
	}
	if _, err := pushDigest(r.out); err != nil {
		t.Fatal(err)
	}
	gate.mu.Lock()
	statuses := gate.statuses
	gate.mu.Unlock()
	if len(statuses) != 1 || statuses[0] != http.StatusCreated {
		t.Errorf("the registry answered the manifest PUTs %v; want one 201", statuses)
	}
	if _, ok := e.Repository("", "drain/app"); !ok {
		t.Error("drain/app was not created")
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("ecrgate serve exited with %v after SIGTERM; want 0", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ecrgate serve still runs 30s after the push it drained finished")
	}
	t.Logf("docker push through intercept mode finished after SIGTERM:\n%s", r.out)
}

// waitListening waits until addr accepts connections, failing if the
// process exits first.
func waitListening(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("ecrgate serve exited before listening on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 30s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
