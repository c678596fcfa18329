//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var containerdBin = envOr("E2E_CONTAINERD", "containerd")

// containerdD is a private containerd: its own root, state, sockets and
// config, the CRI plugin off (nothing runs; nerdctl only loads and pushes).
type containerdD struct {
	Address string // the gRPC socket
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	stopped sync.Once
}

var (
	containerdOnce sync.Once
	containerdInst *containerdD
	containerdErr  error
)

// sharedContainerd starts one containerd for the life of parent (the
// matrix test), on first use.
func sharedContainerd(parent *testing.T) (*containerdD, error) {
	containerdOnce.Do(func() { containerdInst, containerdErr = startContainerd(parent) })
	return containerdInst, containerdErr
}

func startContainerd(t *testing.T) (*containerdD, error) {
	// Short paths: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "e2e-ctrd")
	if err != nil {
		return nil, err
	}
	c := &containerdD{Address: filepath.Join(dir, "containerd.sock"), dir: dir, exited: make(chan struct{}),
		logPath: filepath.Join(dir, "containerd.log")}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc",
		filepath.Join(dir, "debug.sock"), filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c.cmd = exec.Command(containerdBin, "--config", cfgPath)
	c.cmd.Env = append(baseEnv(t), "HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY=", "http_proxy=", "https_proxy=", "no_proxy=")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("$ %s --config %s", containerdBin, cfgPath)
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() { c.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := os.Stat(c.Address); err == nil && st.Mode()&fs.ModeSocket != 0 {
			return c, nil
		}
		select {
		case <-c.exited:
			b, _ := os.ReadFile(c.logPath)
			return nil, fmt.Errorf("containerd exited before it was ready:\n%s", tailLines(string(b), 30))
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("containerd socket %s did not appear within 30s", c.Address)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops containerd (SIGTERM, then SIGKILL to its process group) and
// removes its directory; only the first call does anything.
func (c *containerdD) stop(t *testing.T) {
	t.Helper()
	c.stopped.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(c.logPath)
			t.Logf("containerd log, last lines:\n%s", tailLines(string(b), 40))
		}
		unmountUnder(t, c.dir)
		os.RemoveAll(c.dir)
	})
}

// cellNerdctl: nerdctl (containerd's client library) loads an image into
// a private containerd and pushes it under its ECR name.
//
// Registry mode: the hosts directory holds <ecr host>/hosts.toml naming
// ecrgate's registry listener as a host with the push capability. containerd
// then sends every request there with ?ns=<ecr host>, and ecrgate must route
// by ns: the repository lands in that registry, not in default_registry.
//
// Intercept mode: the hosts directory holds only <ecr host>/ca.crt (the
// docker certs.d layout containerd also reads), HTTPS_PROXY is ecrgate,
// and credentials come from docker-credential-ecrgate via DOCKER_CONFIG.
func cellNerdctl(t *testing.T, c *cell, tools *toolBuilds) {
	if p := missingTools(containerdBin); p != "" {
		c.Missing("containerd (Debian package containerd): " + p)
	}
	nerdctl, took, err := tools.nerdctl.wait()
	if err != nil {
		c.Missing("nerdctl could not be built: " + err.Error())
	}
	if took > 0 && c.mode == modeRegistry {
		c.Note("nerdctl built in %s", took.Round(time.Second))
	}
	ctrd, err := sharedContainerd(c.parent)
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	// Both modes name the ECR registry; in registry mode only the ns
	// parameter can bring the push there.
	c.Registry, c.Account = matrixIntercept, matrixAccountX
	repo := c.Repo("")
	ref := matrixIntercept + "/" + repo + ":1"

	// Not t.TempDir: nerdctl splits --hosts-dir at commas, and a short
	// path keeps containerd's socket paths short.
	work, err := os.MkdirTemp("/tmp", "e2e-nerdctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	hostsDir := filepath.Join(work, "certs.d")
	hostDir := filepath.Join(hostsDir, matrixIntercept)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if c.mode == modeRegistry {
		// containerd adds ?ns= to pull requests only (its fetcher and
		// resolver; the pusher never does, in 1.6, 1.7 and 2.x), so a push
		// must name the registry in the path: override_path makes
		// containerd send /v2/<ecr host>/<repo>/…, a registry-qualified name.
		writeHostsTOML(t, hostDir, fmt.Sprintf("http://%s/v2/%s", c.listen, matrixIntercept), true)
	} else if err := os.WriteFile(filepath.Join(hostDir, "ca.crt"), c.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	dockerConfig := filepath.Join(work, "docker")
	if c.mode == modeIntercept {
		c.credHelperConfig(dockerConfig)
	}

	archive, want := ociArchive(t, ref)
	env := append(c.cliEnv(), "DOCKER_CONFIG="+dockerConfig, "NERDCTL_TOML="+filepath.Join(work, "nerdctl.toml"))
	run := func(args ...string) string {
		t.Helper()
		full := append([]string{"--address", ctrd.Address, "--namespace", "ecrgate-e2e", "--snapshotter", "native",
			"--data-root", filepath.Join(work, "nerdctl"), "--hosts-dir", hostsDir}, args...)
		return mustRun(t, env, nerdctl, full...)
	}
	run("load", "--input", archive)
	out := run("push", ref)
	t.Logf("nerdctl push %s:\n%s", ref, out)
	c.Pushed(repo, "1", want)
	if c.mode != modeRegistry {
		c.Note("HTTPS_PROXY env, <hosts-dir>/<host>/ca.crt, credHelpers via DOCKER_CONFIG")
		return
	}

	// Pull it back through a plain hosts.toml (no path): containerd then
	// sends /v2/<repo>/…?ns=<ecr host>, and only routing by ns finds the
	// image (default_registry does not have it).
	plainDir := filepath.Join(work, "plain.d")
	writeHostsTOML(t, filepath.Join(plainDir, matrixIntercept), "http://"+c.listen, false)
	run("rmi", ref)
	pull := func(args ...string) string {
		t.Helper()
		full := append([]string{"--address", ctrd.Address, "--namespace", "ecrgate-e2e", "--snapshotter", "native",
			"--data-root", filepath.Join(work, "nerdctl"), "--hosts-dir", plainDir}, args...)
		return mustRun(t, env, nerdctl, full...)
	}
	pull("pull", ref)
	if out := pull("image", "inspect", "--mode", "native", ref); !strings.Contains(out, want) {
		t.Fatalf("nerdctl pulled %s through ns routing, but not %s:\n%s", ref, want, out)
	}
	c.Note("push via override_path hosts.toml, pull via ?ns=")
}

// writeHostsTOML writes <dir>/hosts.toml: the ECR registry as server and
// host as a mirror with pull, resolve and push.
func writeHostsTOML(t *testing.T, dir, host string, overridePath bool) {
	t.Helper()
	body := fmt.Sprintf("server = \"https://%s\"\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n",
		matrixIntercept, host)
	if overridePath {
		body += "  override_path = true\n"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s:\n%s", filepath.Join(dir, "hosts.toml"), body)
}

// ociArchive writes a random single-layer image as an OCI archive whose
// index names it ref (containerd's io.containerd.image.name), and returns
// the archive's path and the manifest digest.
func ociArchive(t *testing.T, ref string) (string, string) {
	t.Helper()
	img := writeOCIImage(t, "1")
	dir := strings.TrimPrefix(img.Ref, "oci:")
	dir = dir[:strings.LastIndex(dir, ":")]
	indexPath := filepath.Join(dir, "index.json")
	b, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for i := range idx.Manifests {
		idx.Manifests[i].Annotations["io.containerd.image.name"] = ref
	}
	if b, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(indexPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(body)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("write the OCI archive: %v", err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return archive, img.Digest
}
