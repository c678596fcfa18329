//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs bin/ecrgate serve against e with the given extra config
// and returns its registry address; it is stopped (SIGTERM) at cleanup and
// must exit 0.
func startServe(t *testing.T, e *ecrfake.Emulator, extra string, env ...string) string {
	t.Helper()
	bin := binDir(t)
	dir := t.TempDir()
	listen, admin := freePort(t), freePort(t)
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	cfg := fmt.Sprintf("listen: %s\nadmin_listen: %s\nlog_level: debug\naudit_log: %s\ndefault_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n%s",
		listen, admin, filepath.Join(dir, "audit.jsonl"), registry, registry, e.URL(), extra)
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "ecrgate"), "serve", "--config", cfgPath)
	cmd.Env = append(baseEnv(t), e.Env()...)
	cmd.Env = append(cmd.Env, "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ecrgate serve exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("ecrgate serve did not stop within 30s of SIGTERM")
		}
		logf.Close()
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "Basic ") {
			t.Errorf("a credential reached ecrgate's log")
		}
		if t.Failed() {
			t.Logf("ecrgate serve log:\n%s", b)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return listen
			}
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(logPath)
			t.Fatalf("ecrgate serve did not become healthy:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestDockerPushThroughServe: the real docker CLI and dockerd push to
// localhost:<port>/<new repository> through `ecrgate serve` with no docker
// login and no repository created beforehand; skopeo copies to another.
func TestDockerPushThroughServe(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin, skopeoBin)
	e := ecrfake.Start(t, ecrfake.Options{})
	listen := startServe(t, e, "templates:\n  - prefix: e2e\n    image_tag_mutability: IMMUTABLE\n    scan_on_push: true\n    tags: {origin: ecrgate-e2e}\n")
	host := strings.Replace(listen, "127.0.0.1", "localhost", 1)
	d := startDockerd(t)

	ref := host + "/e2e/brand-new:1"
	importImage(t, d, ref)
	out, err := d.Docker(t, "push", ref)
	if err != nil {
		t.Fatalf("docker push through ecrgate serve: %v\n%s", err, out)
	}
	pushed, err := pushDigest(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("docker push %s (repository did not exist):\n%s", ref, out)
	info, ok := e.Repository("", "e2e/brand-new")
	if !ok || info.TagMutability != "IMMUTABLE" || !info.ScanOnPush || info.Tags["origin"] != "ecrgate-e2e" {
		t.Fatalf("repository = %+v (%v)", info, ok)
	}
	d.MustDocker(t, "rmi", ref)
	d.MustDocker(t, "pull", ref)
	got := strings.TrimSpace(d.MustDocker(t, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref))
	if got != host+"/e2e/brand-new@"+pushed {
		t.Fatalf("pulled %s, pushed %s", got, pushed)
	}
	// The immutable tag's error reaches docker intact.
	importImage(t, d, ref)
	out, err = d.Docker(t, "push", ref)
	if err == nil || !strings.Contains(out, "cannot be overwritten because the tag is immutable") {
		t.Fatalf("immutable overwrite through the proxy: %v\n%s", err, out)
	}

	img := writeOCIImage(t, "v1")
	dst := "docker://" + host + "/e2e/skopeo-new:v1"
	dgst := mustSkopeoCopy(t, img.Ref, dst, skopeoOpts{})
	if dgst != img.Digest {
		t.Fatalf("skopeo wrote %s, want %s", dgst, img.Digest)
	}
	if _, ok := e.Repository("", "e2e/skopeo-new"); !ok {
		t.Fatal("skopeo's push did not create e2e/skopeo-new")
	}
	if n := e.Calls("CreateRepository"); n != 2 {
		t.Errorf("CreateRepository calls = %d, want 2", n)
	}
}
