//go:build e2e

// Package e2e holds the end-to-end tests: real clients (the docker CLI and
// dockerd, skopeo, the AWS CLI v2) against in-process registries. They need
// root and the Debian packages docker.io, skopeo and awscli, and run with
//
//	go test -race -count=1 -tags e2e -v ./test/e2e/...
//
// This file is the harness. Every external command runs with a minimal
// environment (PATH, a per-test HOME, AWS_EC2_METADATA_DISABLED=true and what
// the caller adds), so nothing from the developer's ~/.docker, ~/.aws or proxy
// settings leaks into a test. Tool paths can be overridden with E2E_DOCKER_CLI,
// E2E_DOCKERD, E2E_SKOPEO and E2E_AWS_CLI.
package e2e

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Tool paths. The docker CLI is pinned to Debian's /usr/bin/docker (20.10,
// the same release as dockerd) when it exists: on some machines a newer
// /usr/local/bin/docker comes first in PATH. The AWS CLI is pinned to
// /usr/bin/aws (v2) because a pyenv shim for v1 may come first in PATH.
var (
	dockerCLI  = envOr("E2E_DOCKER_CLI", firstExisting("/usr/bin/docker", "docker"))
	dockerdBin = envOr("E2E_DOCKERD", "dockerd")
	skopeoBin  = envOr("E2E_SKOPEO", "skopeo")
	awsCLI     = envOr("E2E_AWS_CLI", "/usr/bin/aws")
)

const (
	// cmdTimeout bounds every command run through runCmd.
	cmdTimeout = 2 * time.Minute
	// dockerdReadyTimeout bounds the wait for a new dockerd to answer.
	dockerdReadyTimeout = 60 * time.Second
	// dockerdStopTimeout is how long dockerd gets after SIGTERM before SIGKILL.
	dockerdStopTimeout = 30 * time.Second
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func firstExisting(paths ...string) string {
	for _, p := range paths[:len(paths)-1] {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return paths[len(paths)-1]
}

// requireTools skips the test unless it runs as root and every tool (a name
// looked up in PATH or an absolute path) exists. With CI=true it fails
// instead: CI must not pass by skipping.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "not running as root (dockerd needs root)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			problems = append(problems, fmt.Sprintf("tool %q not found", tool))
		}
	}
	if len(problems) == 0 {
		return
	}
	msg := "e2e prerequisites missing: " + strings.Join(problems, "; ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true, so this is a failure, not a skip)")
	}
	t.Skip(msg + " (set CI=true to make this fatal)")
}

// testHomes maps each running test to its private HOME directory.
var testHomes sync.Map // *testing.T -> string

// testHome returns the HOME every command of this test runs with: an empty
// per-test directory, so ~/.docker, ~/.aws and ~/.config/containers of the
// machine are never read or written.
func testHome(t *testing.T) string {
	t.Helper()
	if h, ok := testHomes.Load(t); ok {
		return h.(string)
	}
	h := t.TempDir()
	testHomes.Store(t, h)
	t.Cleanup(func() { testHomes.Delete(t) })
	return h
}

// baseEnv is the environment every command starts from. Proxy variables are
// deliberately absent; callers add what they need (later entries win).
func baseEnv(t *testing.T) []string {
	t.Helper()
	path := os.Getenv("PATH")
	have := map[string]bool{}
	for _, p := range filepath.SplitList(path) {
		have[p] = true
	}
	for _, p := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if !have[p] {
			path += string(os.PathListSeparator) + p
		}
	}
	env := []string{
		"PATH=" + path,
		"HOME=" + testHome(t),
		"AWS_EC2_METADATA_DISABLED=true",
		"LANG=C.UTF-8",
	}
	if v := os.Getenv("TMPDIR"); v != "" {
		env = append(env, "TMPDIR="+v)
	}
	return env
}

// runCmd runs name with args under cmdTimeout and returns its combined
// output. env is added to baseEnv (later entries win, so env can override
// HOME or PATH). The error, if any, names the command (credentials redacted).
func runCmd(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	return runCmdIn(t, env, nil, name, args...)
}

// runCmdIn is runCmd with stdin.
func runCmdIn(t *testing.T, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	t.Helper()
	line := redactedCmdline(name, args)
	t.Logf("$ %s", line)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(baseEnv(t), env...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// A grandchild that keeps the output pipe open must not hang the test.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", cmdTimeout, err)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w", line, err)
	}
	return out.String(), nil
}

// mustRun is runCmd that fails the test, with the output, on error.
func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(t, env, name, args...)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	return out
}

// secretFlags take a credential as their value, either as the next argument
// or after "=".
var secretFlags = []string{"--creds", "--src-creds", "--dest-creds", "--password", "-p", "--registry-token"}

func redactedCmdline(name string, args []string) string {
	parts := []string{name}
	redactNext := false
	for _, a := range args {
		switch {
		case redactNext:
			a, redactNext = "REDACTED", false
		default:
			for _, f := range secretFlags {
				if a == f {
					redactNext = true
				} else if strings.HasPrefix(a, f+"=") {
					a = f + "=REDACTED"
				}
			}
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// DockerdOptions tunes startDockerdWith.
type DockerdOptions struct {
	// Env is added to dockerd's environment, after the defaults (which set
	// HTTP_PROXY, HTTPS_PROXY and NO_PROXY empty), e.g.
	// "HTTPS_PROXY=http://127.0.0.1:5001" for intercept mode.
	Env []string
	// Args are extra dockerd flags, appended after the harness's own.
	Args []string
	// Dockerd and CLI are the daemon and docker CLI binaries; empty means
	// dockerdBin and dockerCLI (Debian's 20.10).
	Dockerd, CLI string
	// Store is storeClassic (the default: the vfs graph driver) or
	// storeContainerd (the containerd image store, on a private containerd
	// of its own; Engine 24 and later).
	Store string
}

// The image stores a dockerd can run with.
const (
	storeClassic    = "classic"
	storeContainerd = "containerd"
)

// Dockerd is a private docker daemon started for one test.
type Dockerd struct {
	// Host is the DOCKER_HOST value, unix:///tmp/e2e-dockerd…/docker.sock.
	Host string
	// ConfigDir is the DOCKER_CONFIG the CLI uses; tests may write a
	// config.json (credHelpers, auths) into it.
	ConfigDir string
	// DataRoot, ExecRoot and LogPath are dockerd's --data-root,
	// --exec-root and log file.
	DataRoot, ExecRoot, LogPath string
	// CLI is the docker CLI that goes with this daemon.
	CLI string
	// Version is the daemon's ServerVersion; Store its image store.
	Version, Store string

	baseDir    string
	containerd *containerdD // the containerd image store's own containerd
	stopOnce   sync.Once
	stopFn     func()
	cmd        *exec.Cmd
	exited     chan struct{} // closed when dockerd has exited; then waitErr is set
	waitErr    error
}

// dockerdMu admits one dockerd at a time: a vfs daemon is heavy, and tests
// that call t.Parallel still get one each, in turn. A test must not start a
// second dockerd while its first one runs.
var (
	dockerdMu     sync.Mutex
	dockerdHolder struct {
		sync.Mutex
		name string
	}
)

// startDockerd starts a private dockerd with default options.
func startDockerd(t *testing.T) *Dockerd {
	t.Helper()
	return startDockerdWith(t, DockerdOptions{})
}

// startDockerdWith starts dockerd with the vfs storage driver, no iptables and
// no bridge, its own data root, exec root, pidfile, socket and config file,
// and its own managed containerd. It waits until `docker info` answers and
// stops the daemon (SIGTERM, then SIGKILL) and removes its directories when
// the test ends; on failure the tail of the daemon's log is logged.
// Only one dockerd runs at a time (see dockerdMu).
func startDockerdWith(t *testing.T, o DockerdOptions) *Dockerd {
	t.Helper()
	dockerdHolder.Lock()
	if dockerdHolder.name == t.Name() {
		dockerdHolder.Unlock()
		t.Fatal("startDockerd: this test already runs a dockerd; only one at a time is supported")
	}
	dockerdHolder.Unlock()
	dockerdMu.Lock()
	dockerdHolder.Lock()
	dockerdHolder.name = t.Name()
	dockerdHolder.Unlock()
	release := func() {
		dockerdHolder.Lock()
		dockerdHolder.name = ""
		dockerdHolder.Unlock()
		dockerdMu.Unlock()
	}

	// Short paths under /tmp: unix socket paths are limited to 108 bytes and
	// the managed containerd puts its sockets under the exec root.
	base, err := os.MkdirTemp("/tmp", "e2e-dockerd")
	if err != nil {
		release()
		t.Fatalf("dockerd base dir: %v", err)
	}
	execRoot, err := os.MkdirTemp("/tmp", "e2e-exec")
	if err != nil {
		os.RemoveAll(base)
		release()
		t.Fatalf("dockerd exec root: %v", err)
	}
	d := &Dockerd{
		Host:      "unix://" + filepath.Join(base, "docker.sock"),
		ConfigDir: filepath.Join(base, "config"),
		DataRoot:  filepath.Join(base, "data"),
		ExecRoot:  execRoot,
		LogPath:   filepath.Join(base, "dockerd.log"),
		CLI:       cmp.Or(o.CLI, dockerCLI),
		Store:     cmp.Or(o.Store, storeClassic),
		baseDir:   base,
		exited:    make(chan struct{}),
	}
	daemonBin := cmp.Or(o.Dockerd, dockerdBin)
	d.stopFn = func() {
		defer release()
		if t.Failed() {
			t.Logf("dockerd log (%s), last lines:\n%s", d.LogPath, d.LogTail(80))
		}
		d.stop(t)
		if d.containerd != nil {
			d.containerd.stop(t)
		}
		// A killed dockerd leaves its data root bind-mounted onto itself.
		unmountUnder(t, d.ExecRoot, d.baseDir)
		for _, dir := range []string{d.ExecRoot, d.baseDir} {
			if err := os.RemoveAll(dir); err != nil {
				t.Logf("remove %s: %v", dir, err)
			}
		}
	}
	t.Cleanup(func() { d.Stop() })

	if err := os.MkdirAll(d.ConfigDir, 0o700); err != nil {
		t.Fatalf("docker config dir: %v", err)
	}
	// A daemon.json of our own, so a host /etc/docker/daemon.json (mirrors,
	// hosts, proxies) cannot change the test.
	daemonJSON := filepath.Join(base, "daemon.json")
	// Engine 29 gives containers a time namespace, which Debian's runc 1.1
	// cannot create ("namespace {"time" ""} does not exist"); older engines
	// ignore the feature.
	features := map[string]bool{"time-namespaces": false}
	storageDriver := "vfs"
	var storeArgs []string
	switch d.Store {
	case storeClassic:
	case storeContainerd:
		// The containerd image store on Debian's containerd 1.6: the native
		// snapshotter (no overlayfs on overlayfs) and a containerd of its own,
		// not one dockerd manages.
		features["containerd-snapshotter"] = true
		storageDriver = "native"
		c, err := startContainerd(t)
		if err != nil {
			t.Fatalf("containerd for the containerd image store: %v", err)
		}
		d.containerd = c
		storeArgs = []string{"--containerd=" + c.Address, "--containerd-namespace=e2e"}
	default:
		t.Fatalf("startDockerd: unknown image store %q", d.Store)
	}
	config, _ := json.Marshal(map[string]any{"features": features})
	if err := os.WriteFile(daemonJSON, config, 0o600); err != nil {
		t.Fatalf("daemon.json: %v", err)
	}
	logf, err := os.Create(d.LogPath)
	if err != nil {
		t.Fatalf("dockerd log: %v", err)
	}
	defer logf.Close() // the child has its own descriptor

	args := []string{
		"--config-file=" + daemonJSON,
		"--storage-driver=" + storageDriver,
		"--iptables=false",
		"--ip6tables=false",
		"--bridge=none",
		"--data-root=" + d.DataRoot,
		"--exec-root=" + d.ExecRoot,
		"--pidfile=" + filepath.Join(base, "docker.pid"),
		"--host=" + d.Host,
	}
	args = append(args, storeArgs...)
	args = append(args, o.Args...)
	cmd := exec.Command(daemonBin, args...)
	env := append(baseEnv(t),
		"HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY=",
		"http_proxy=", "https_proxy=", "no_proxy=",
	)
	cmd.Env = append(env, o.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so stop can signal everything it left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("$ %s", redactedCmdline(daemonBin, args))
	if err := cmd.Start(); err != nil {
		close(d.exited)
		t.Fatalf("start dockerd: %v", err)
	}
	d.cmd = cmd
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	deadline := time.Now().Add(dockerdReadyTimeout)
	var lastOut string
	for {
		select {
		case <-d.exited:
			t.Fatalf("dockerd exited before it was ready: %v\nlog tail:\n%s", d.waitErr, d.LogTail(40))
		default:
		}
		out, err := d.probe()
		if err == nil {
			d.Version = strings.TrimSpace(out)
			t.Logf("dockerd %s (%s store) ready on %s", d.Version, d.Store, d.Host)
			return d
		}
		lastOut = out
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not ready after %s: %v %s\nlog tail:\n%s", dockerdReadyTimeout, err, lastOut, d.LogTail(40))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// probe asks the daemon for its version without logging the attempt.
func (d *Dockerd) probe() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.CLI, "info", "--format", "{{.ServerVersion}}")
	// Not the test's environment: DOCKER_CONTEXT or DOCKER_TLS_VERIFY there
	// would point the CLI elsewhere.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.baseDir}, d.Env()...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err == nil && strings.TrimSpace(string(out)) == "" {
		err = errors.New("empty server version")
	}
	return string(out), err
}

// Env is what the docker CLI (or anything else speaking to this daemon
// through the CLI's conventions) needs: DOCKER_HOST and DOCKER_CONFIG.
func (d *Dockerd) Env() []string {
	return []string{"DOCKER_HOST=" + d.Host, "DOCKER_CONFIG=" + d.ConfigDir}
}

// Docker runs the docker CLI against this daemon and returns its combined
// output.
func (d *Dockerd) Docker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCmd(t, d.Env(), d.CLI, args...)
}

// DockerIn is Docker with stdin.
func (d *Dockerd) DockerIn(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	return runCmdIn(t, d.Env(), stdin, d.CLI, args...)
}

// MustDocker is Docker that fails the test, with the output, on error.
func (d *Dockerd) MustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.Docker(t, args...)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	return out
}

// LogTail returns up to the last n lines of the daemon's log.
func (d *Dockerd) LogTail(n int) string {
	f, err := os.Open(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const max = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return fmt.Sprintf("(seek log: %v)", err)
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops the daemon (and the containerd of its image store) and removes
// its directories, before the test ends if the test wants to start another
// dockerd; the test's cleanup calls it too. Only the first call acts.
func (d *Dockerd) Stop() { d.stopOnce.Do(d.stopFn) }

// stop sends SIGTERM, waits, then SIGKILLs dockerd's process group, and
// finally kills the managed containerd if dockerd left it behind.
func (d *Dockerd) stop(t *testing.T) {
	t.Helper()
	if d.cmd == nil {
		return
	}
	pid := d.cmd.Process.Pid
	select {
	case <-d.exited:
	default:
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(dockerdStopTimeout):
			t.Logf("dockerd (pid %d) ignored SIGTERM for %s; sending SIGKILL", pid, dockerdStopTimeout)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("dockerd (pid %d) still running after SIGKILL", pid)
			}
		}
	}
	// The managed containerd runs in its own session; dockerd stops it on
	// SIGTERM, but not when killed.
	pidFile := filepath.Join(d.ExecRoot, "containerd", "containerd.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		if cpid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && cpid > 0 {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cpid))
			// Only our own containerd: its command line names our exec root.
			if bytes.Contains(cmdline, []byte(d.ExecRoot)) {
				t.Logf("killing leftover containerd (pid %d)", cpid)
				_ = syscall.Kill(cpid, syscall.SIGKILL)
			}
		}
	}
}

// unmountUnder detaches every mount at or below dirs (deepest first). It is
// only called with directories the harness created.
func unmountUnder(t *testing.T, dirs ...string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Logf("read mountinfo: %v", err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		for _, dir := range dirs {
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				points = append(points, mp)
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", mp, err)
		}
	}
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, …) of
// /proc/self/mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// randomRootfs returns an uncompressed tar of a tiny root filesystem whose
// content is random, so every call yields a distinct image: /hello.txt and
// /data/random.bin of 1–2 MiB.
func randomRootfs(t *testing.T) []byte {
	t.Helper()
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatalf("random: %v", err)
	}
	blob := make([]byte, 1<<20+mrand.IntN(1<<20))
	if _, err := rand.Read(blob); err != nil {
		t.Fatalf("random: %v", err)
	}
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		dir  bool
		body []byte
	}{
		{name: "data/", dir: true},
		{name: "hello.txt", body: []byte("hello from the ecrgate e2e harness " + hex.EncodeToString(nonce) + "\n")},
		{name: "data/random.bin", body: blob},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, ModTime: mtime, Uid: 0, Gid: 0, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		} else {
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar body %s: %v", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("tar close: %v", err)
	}
	return buf.Bytes()
}

var imageIDRe = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// importImage `docker import`s a fresh random root filesystem as ref and
// returns the image ID (sha256:…, the digest of its config).
func importImage(t *testing.T, d *Dockerd, ref string) string {
	t.Helper()
	out, err := d.DockerIn(t, bytes.NewReader(randomRootfs(t)), "import", "-", ref)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	id := imageIDRe.FindString(out)
	if id == "" {
		t.Fatalf("docker import %s: no image ID in output %q", ref, out)
	}
	return id
}

var pushDigestRe = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: [0-9]+`)

// pushDigest extracts the manifest digest from `docker push` output
// ("1: digest: sha256:… size: 527").
func pushDigest(out string) (string, error) {
	m := pushDigestRe.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		return "", fmt.Errorf("want exactly one \"digest: … size: …\" line in docker push output, found %d:\n%s", len(m), out)
	}
	return m[0][1], nil
}

// ociImage is an image written as an OCI image layout by writeOCIImage.
type ociImage struct {
	// Ref is the skopeo source reference, oci:<dir>:<tag>.
	Ref string
	// Digest is the manifest digest; skopeo keeps it when copying to a
	// registry (the layer is already gzip-compressed).
	Digest string
	// ConfigDigest is the config blob's digest (docker's image ID).
	ConfigDigest string
}

// writeOCIImage writes a single-layer linux image with random content as an
// OCI image layout in a temporary directory, a skopeo source that needs
// neither dockerd nor the internet. (go-containerregistry's layout package
// would need modules go.sum does not have; the format is small enough to
// write directly.)
func writeOCIImage(t *testing.T, tag string) ociImage {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBlob := func(mediaType string, b []byte) ocispec.Descriptor {
		dg := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, dg.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: mediaType, Digest: dg, Size: int64(len(b))}
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	rootfs := randomRootfs(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(rootfs); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	layer := writeBlob(ocispec.MediaTypeImageLayerGzip, gz.Bytes())
	created := time.Now().UTC().Truncate(time.Second)
	config := writeBlob(ocispec.MediaTypeImageConfig, mustJSON(ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Cmd: []string{"/hello.txt"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(rootfs)}},
	}))
	manifest := writeBlob(ocispec.MediaTypeImageManifest, mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    []ocispec.Descriptor{layer},
	}))
	manifest.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifest},
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), mustJSON(index), 0o644); err != nil {
		t.Fatal(err)
	}
	layout := mustJSON(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), layout, 0o644); err != nil {
		t.Fatal(err)
	}
	return ociImage{Ref: "oci:" + dir + ":" + tag, Digest: manifest.Digest.String(), ConfigDigest: config.Digest.String()}
}

// skopeoOpts are the per-call settings of skopeoCopy.
type skopeoOpts struct {
	// SrcCreds and DestCreds are "USER:PASS" for docker:// references;
	// empty means anonymous (--src-no-creds / --dest-no-creds).
	SrcCreds, DestCreds string
	// SrcDaemonHost is needed for docker-daemon: sources: skopeo 1.9 ignores
	// DOCKER_HOST and would use /var/run/docker.sock. Pass (*Dockerd).Host.
	SrcDaemonHost string
	// Extra flags for `skopeo copy`, placed before the references.
	Extra []string
}

// skopeoCopy copies src to dst (any skopeo transports). For docker://
// references TLS verification is off, which lets skopeo fall back to plain
// HTTP for loopback registries. The signature policy is skipped
// (--insecure-policy), so no /etc/containers/policy.json is needed. It
// returns the digest of the manifest written to dst (--digestfile) and the
// combined output.
func skopeoCopy(t *testing.T, src, dst string, o skopeoOpts) (dgst, out string, err error) {
	t.Helper()
	digestFile := filepath.Join(t.TempDir(), "digest")
	args := []string{"--insecure-policy", "copy", "--digestfile", digestFile}
	if strings.HasPrefix(src, "docker://") {
		args = append(args, "--src-tls-verify=false")
		args = append(args, credsFlag("--src", o.SrcCreds)...)
	}
	if o.SrcDaemonHost != "" {
		args = append(args, "--src-daemon-host", o.SrcDaemonHost)
	}
	if strings.HasPrefix(dst, "docker://") {
		args = append(args, "--dest-tls-verify=false")
		args = append(args, credsFlag("--dest", o.DestCreds)...)
	}
	args = append(args, o.Extra...)
	args = append(args, src, dst)
	out, err = runCmd(t, nil, skopeoBin, args...)
	if err != nil {
		return "", out, err
	}
	b, err := os.ReadFile(digestFile)
	if err != nil {
		return "", out, fmt.Errorf("skopeo copy succeeded but wrote no digest file: %w", err)
	}
	dgst = strings.TrimSpace(string(b))
	if _, err := digest.Parse(dgst); err != nil {
		return "", out, fmt.Errorf("skopeo digest file holds %q: %w", dgst, err)
	}
	return dgst, out, nil
}

// mustSkopeoCopy is skopeoCopy that fails the test on error.
func mustSkopeoCopy(t *testing.T, src, dst string, o skopeoOpts) string {
	t.Helper()
	dgst, out, err := skopeoCopy(t, src, dst, o)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	return dgst
}

func credsFlag(prefix, creds string) []string {
	if creds == "" {
		return []string{prefix + "-no-creds"}
	}
	return []string{prefix + "-creds", creds}
}

// skopeoImage is the part of `skopeo inspect` output the tests use.
type skopeoImage struct {
	Name         string
	Digest       string
	RepoTags     []string
	Architecture string
	Os           string
	Layers       []string
}

// skopeoInspect runs `skopeo inspect --tls-verify=false` on a docker://
// reference (creds "USER:PASS" or empty for anonymous; --no-tags keeps it
// from listing the repository's tags).
func skopeoInspect(t *testing.T, ref, creds string) (skopeoImage, error) {
	t.Helper()
	out, err := runSkopeoInspect(t, ref, creds)
	if err != nil {
		return skopeoImage{}, fmt.Errorf("%w\noutput:\n%s", err, out)
	}
	var img skopeoImage
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		return skopeoImage{}, fmt.Errorf("decode skopeo inspect output: %w\n%s", err, out)
	}
	return img, nil
}

// skopeoInspectRaw returns the manifest exactly as the registry serves it.
func skopeoInspectRaw(t *testing.T, ref, creds string) ([]byte, error) {
	t.Helper()
	out, err := runSkopeoInspect(t, ref, creds, "--raw")
	if err != nil {
		return nil, fmt.Errorf("%w\noutput:\n%s", err, out)
	}
	return []byte(out), nil
}

func runSkopeoInspect(t *testing.T, ref, creds string, extra ...string) (string, error) {
	t.Helper()
	args := []string{"inspect", "--tls-verify=false", "--no-tags"}
	args = append(args, credsFlag("-", creds)...)
	args = append(args, extra...)
	args = append(args, ref)
	// stdout only: a warning on stderr would break the JSON.
	return runCmdStdout(t, nil, skopeoBin, args...)
}

// runCmdStdout is runCmd for commands whose stdout is data: stdout is
// returned, stderr is appended to the error.
func runCmdStdout(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	line := redactedCmdline(name, args)
	t.Logf("$ %s", line)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(baseEnv(t), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", cmdTimeout, err)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// sha256Digest is the digest of b in the registry's notation.
func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
