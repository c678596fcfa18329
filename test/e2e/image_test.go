//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// buildImageLayout runs tools/image (what `make image` runs) on bin/ecrgate
// for the host's architecture and returns the OCI layout's directory and
// the index digest it printed.
func buildImageLayout(t *testing.T, bin string) (dir, digest string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "image")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./tools/image", "-o", dir,
		"-version", "e2e", "-revision", "0000000000000000000000000000000000000000",
		"-source-date-epoch", "1700000000",
		"-binary", "linux/"+runtime.GOARCH+"="+filepath.Join(bin, "ecrgate"))
	cmd.Dir = root
	// The Go toolchain, not a registry client: it keeps the developer's
	// environment so it finds its build and module caches.
	cmd.Env = os.Environ()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./tools/image: %v\n%s", err, stderr.String())
	}
	return dir, strings.TrimSpace(string(out))
}

// TestImagePushPullRunServe: the image tools/image builds is pushed as an
// index through `ecrgate serve` to the emulator, pulled by dockerd from
// there, runs (`docker run <image> version` prints the binary's version), and its `serve`,
// as user 65532 with a mounted configuration on the host network, pushes an
// image to the emulator.
func TestImagePushPullRunServe(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin, "go")
	bin := binDir(t)
	dir, printed := buildImageLayout(t, bin)
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil || len(tm.Manifests) != 1 {
		t.Fatalf("layout index.json: %v, %d manifests", err, len(tm.Manifests))
	}
	if got := tm.Manifests[0].Digest.String(); got != printed {
		t.Fatalf("tools/image printed %s, the layout holds %s", printed, got)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}

	e := ecrfake.Start(t, ecrfake.Options{})
	listen := startServe(t, e, "")
	host := strings.Replace(listen, "127.0.0.1", "localhost", 1)
	image := host + "/e2e/ecrgate:test"
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push the image index through ecrgate serve: %v", err)
	}
	if _, ok := e.Repository("", "e2e/ecrgate"); !ok {
		t.Fatal("the push did not create e2e/ecrgate in the emulator")
	}

	d := startDockerd(t)
	d.MustDocker(t, "pull", image)
	if got := strings.TrimSpace(d.MustDocker(t, "image", "inspect", "--format", "{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}", image)); got != `65532:65532 ["/ecrgate"] ["serve"]` {
		t.Errorf("image config = %s", got)
	}
	want := strings.TrimSpace(mustRun(t, nil, filepath.Join(bin, "ecrgate"), "--version"))
	if got := strings.TrimSpace(d.MustDocker(t, "run", "--rm", "--network", "none", image, "version")); got != want {
		t.Fatalf("docker run %s version = %q, want %q (bin/ecrgate's)", image, got, want)
	}

	// serve in the container, as its own user 65532: the mounted
	// configuration must belong to that user (or root) and be writable by
	// no one else, or ecrgate refuses it.
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	clisten, cadmin := freePort(t), freePort(t)
	cfgDir := filepath.Join(t.TempDir(), "config")
	if err := os.Mkdir(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: %s\nadmin_listen: %s\nlog_level: debug\ndefault_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		clisten, cadmin, registry, registry, e.URL())
	cfgFile := filepath.Join(cfgDir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{cfgDir, cfgFile} {
		if err := os.Chown(f, 65532, 65532); err != nil {
			t.Fatal(err)
		}
	}
	// The emulator's keys go in an env file, not on the logged command line.
	envFile := filepath.Join(t.TempDir(), "aws.env")
	if err := os.WriteFile(envFile, []byte(strings.Join(e.Env(), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const container = "ecrgate-e2e-serve"
	d.MustDocker(t, "run", "-d", "--name", container, "--network", "host",
		"-v", cfgDir+":/config:ro", "-e", "ECRGATE_CONFIG=/config/config.yaml", "--env-file", envFile, image)
	t.Cleanup(func() {
		if out, err := d.Docker(t, "stop", "-t", "30", container); err != nil {
			t.Errorf("docker stop: %v\n%s", err, out)
		}
		code := strings.TrimSpace(d.MustDocker(t, "inspect", "--format", "{{.State.ExitCode}}", container))
		if code != "0" {
			t.Errorf("containerized ecrgate serve exited with %s after SIGTERM, want 0", code)
		}
		logs, _ := d.Docker(t, "logs", container)
		if strings.Contains(logs, "Basic ") {
			t.Errorf("a credential reached the containerized ecrgate's log")
		}
		if t.Failed() {
			t.Logf("containerized ecrgate serve log:\n%s", logs)
		}
		_, _ = d.Docker(t, "rm", "-f", container)
	})
	waitHealthy(t, d, container, cadmin)

	pushed, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushedDigest, err := pushed.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cref, err := name.ParseReference(clisten+"/e2e/from-container:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(cref, pushed, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push through the containerized ecrgate serve: %v", err)
	}
	if _, ok := e.Repository("", "e2e/from-container"); !ok {
		t.Fatal("the push through the container did not create e2e/from-container")
	}
	// The emulator has the image: read it back through the host's serve.
	back, err := name.ParseReference(host+"/e2e/from-container:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(back, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("the emulator does not have e2e/from-container:1: %v", err)
	}
	if desc.Digest != pushedDigest {
		t.Fatalf("emulator has %s, pushed %s", desc.Digest, pushedDigest)
	}
}

// waitHealthy waits for the container's admin listener to answer /healthz.
func waitHealthy(t *testing.T, d *Dockerd, container, admin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			logs, _ := d.Docker(t, "logs", container)
			t.Fatalf("containerized ecrgate serve did not become healthy:\n%s", logs)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
