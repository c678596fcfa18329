package localca

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestInstallUninstall(t *testing.T) {
	ca, err := Init(filepath.Join(t.TempDir(), "ca"), epoch)
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(t.TempDir(), "certs.d")
	hostA, hostB := testHost, "123456789012.dkr-ecr.eu-west-1.on.aws"
	pathA, pathB := filepath.Join(certs, hostA, "ca.crt"), filepath.Join(certs, hostB, "ca.crt")

	rep, err := ca.Install(certs, []string{hostA, "https://" + strings.ToUpper(hostB) + "/v2/", hostA})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Written, []string{pathA, pathB}) || len(rep.Unchanged) != 0 {
		t.Fatalf("first install: %+v", rep)
	}
	for _, p := range []string{pathA, pathB} {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != string(ca.PEM()) {
			t.Fatalf("%s: %v", p, err)
		}
		if info, _ := os.Stat(p); runtime.GOOS != "windows" && info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %04o", p, info.Mode().Perm())
		}
	}
	manifest, _ := os.ReadFile(rep.Manifest)
	if got, _ := Installed(ca.Dir()); !slices.Equal(got, []string{pathB, pathA}) { // sorted
		t.Fatalf("Installed = %v", got)
	}

	// Twice: no change, not even to the manifest.
	rep, err = ca.Install(certs, []string{hostA, hostB})
	if err != nil || rep.Changed() || !slices.Equal(rep.Unchanged, []string{pathA, pathB}) {
		t.Fatalf("second install: %+v, %v", rep, err)
	}
	if again, _ := os.ReadFile(rep.Manifest); string(again) != string(manifest) {
		t.Error("second install rewrote the manifest")
	}

	// Another file in A's directory (a client certificate) keeps it; B's
	// ca.crt is edited by someone else and must survive.
	other := filepath.Join(certs, hostA, "client.cert")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pathB, []byte("someone else's CA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	urep, err := Uninstall(ca.Dir(), []string{certs})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(urep.Removed, []string{pathA}) || !slices.Equal(urep.Modified, []string{pathB}) || len(urep.RemovedDirs) != 0 {
		t.Fatalf("uninstall: %+v", urep)
	}
	if _, err := os.Stat(pathA); !errors.Is(err, fs.ErrNotExist) {
		t.Error("uninstall left ca.crt of A")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("uninstall removed a file it did not write")
	}
	if b, _ := os.ReadFile(pathB); string(b) != "someone else's CA\n" {
		t.Error("uninstall touched a modified file")
	}
	if _, err := os.Stat(rep.Manifest); !errors.Is(err, fs.ErrNotExist) {
		t.Error("uninstall left the manifest")
	}

	// Twice: nothing to do.
	urep, err = Uninstall(ca.Dir(), []string{certs})
	if err != nil || urep.Changed() || len(urep.Modified)+len(urep.Missing) != 0 {
		t.Fatalf("second uninstall: %+v, %v", urep, err)
	}

	// A ca.crt ecrgate did not write is never replaced.
	rep, err = ca.Install(certs, []string{hostA, hostB})
	if err == nil || !strings.Contains(err.Error(), pathB) || !strings.Contains(err.Error(), "left alone") {
		t.Fatalf("install over a foreign ca.crt: %v", err)
	}
	if !slices.Equal(rep.Written, []string{pathA}) {
		t.Errorf("install over a foreign ca.crt wrote %v", rep.Written)
	}
	if b, _ := os.ReadFile(pathB); string(b) != "someone else's CA\n" {
		t.Error("install replaced a foreign ca.crt")
	}

	// A directory that only held our file goes with it.
	os.Remove(other)
	urep, err = Uninstall(ca.Dir(), []string{certs})
	if err != nil || !slices.Equal(urep.RemovedDirs, []string{filepath.Dir(pathA)}) {
		t.Fatalf("uninstall: %+v, %v", urep, err)
	}
}

// TestInstallReplacesOwnOldCA: after the CA is recreated in the same
// directory, Install replaces the old certificate it wrote itself.
func TestInstallReplacesOwnOldCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	old, err := Init(dir, epoch)
	if err != nil {
		t.Fatal(err)
	}
	certs := t.TempDir()
	if _, err := old.Install(certs, []string{testHost}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, KeyFile))
	os.Remove(filepath.Join(dir, CertFile))
	ca, err := Init(dir, epoch)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ca.Install(certs, []string{testHost})
	if err != nil || len(rep.Written) != 1 {
		t.Fatalf("install of the new CA: %+v, %v", rep, err)
	}
	if b, _ := os.ReadFile(rep.Written[0]); string(b) != string(ca.PEM()) {
		t.Error("old CA still installed")
	}
	urep, err := Uninstall(dir, []string{certs})
	if err != nil || len(urep.Removed) != 1 {
		t.Fatalf("uninstall: %+v, %v", urep, err)
	}
}

func TestInstallRefuses(t *testing.T) {
	ca := testCA(t)
	certs := t.TempDir()
	_, err := ca.Install(certs, []string{"example.com", "api.ecr.us-east-1.amazonaws.com", testHost})
	if err == nil || !strings.Contains(err.Error(), `"example.com" is not an Amazon ECR registry host`) || !strings.Contains(err.Error(), "API endpoint") {
		t.Fatalf("Install of non-ECR hosts: %v", err)
	}
	if entries, _ := os.ReadDir(certs); len(entries) != 0 {
		t.Error("a refused install wrote files")
	}
	if _, err := ca.Install(certs, nil); err == nil {
		t.Error("Install of no hosts succeeded")
	}

	// A manifest entry pointing anywhere but a ca.crt is refused.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"files":[{"path":"/etc/passwd","sha256":"00"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(dir, nil); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Uninstall with a tampered manifest: %v", err)
	}
}

func TestInstallPermissionDenied(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("needs a non-root user on a Unix file system")
	}
	ca := testCA(t)
	certs := t.TempDir()
	if err := os.Chmod(certs, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(certs, 0o755) })
	_, err := ca.Install(certs, []string{testHost})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Install into a read-only directory: %v, want fs.ErrPermission", err)
	}
}
