//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEnginesRunContainers: every engine × image store the e2e tests use
// runs a container (`docker run --rm --network none`) with Debian's
// containerd and runc, so a test may run what it pulled. The image is a
// static Go program built here and `docker import`ed.
func TestEnginesRunContainers(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin, containerdBin, "go")
	// Before HOME changes: the tools are cached under the user's cache dir.
	b := startBuilds(t, dockerCLI29Tool, dockerd28Tool, dockerd29Tool)
	cli29, d28, d29 := b[0], b[1], b[2]
	rootfs := helloRootfs(t)

	for _, eng := range []struct {
		name, store string
		dockerd     *toolBuild // nil: Debian's dockerd and docker CLI
	}{
		{"20.10", storeClassic, nil},
		{"28", storeClassic, d28}, {"28", storeContainerd, d28},
		{"29", storeClassic, d29}, {"29", storeContainerd, d29},
	} {
		t.Run("engine-"+eng.name+"-"+eng.store, func(t *testing.T) {
			o := DockerdOptions{Store: eng.store}
			if eng.dockerd != nil {
				o.Dockerd, o.CLI = mustBuilt(t, eng.dockerd), mustBuilt(t, cli29)
			}
			d := startDockerdWith(t, o)
			defer d.Stop()
			if out, err := d.DockerIn(t, bytes.NewReader(rootfs), "import", "-", "e2e/hello:1"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			out, err := d.Docker(t, "run", "--rm", "--network", "none", "e2e/hello:1", "/hello")
			if err != nil {
				t.Fatalf("docker run on %s (%s store): %v\n%s", d.Version, d.Store, err, out)
			}
			if !strings.Contains(out, "hello from a container") {
				t.Fatalf("docker run printed %q", out)
			}
			if left := strings.TrimSpace(d.MustDocker(t, "ps", "-aq")); left != "" {
				t.Errorf("docker run --rm left containers behind: %s", left)
			}
		})
	}
}

// helloRootfs is a tar holding /hello, a static program that prints
// "hello from a container".
func helloRootfs(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello from a container\\n\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	// The machine's environment (not the test's HOME): its Go caches.
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the hello program: %v\n%s", err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg,
		ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
