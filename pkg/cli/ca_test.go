package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/localca"
)

const (
	caTestHost  = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	caTestHost2 = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
)

// runCA runs "ecrgate ca <args>" on a fresh command.
func runCA(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newCACmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.Execute()
	return out.String(), err
}

// caTestEnv points HOME, XDG_DATA_HOME and ECRGATE_CONFIG into a temporary
// directory and returns it.
func caTestEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("ECRGATE_CONFIG", "")
	t.Setenv("SUDO_USER", "")
	return dir
}

func TestCAInitAndShow(t *testing.T) {
	home := caTestEnv(t)
	caDir := filepath.Join(home, "data", "ecrgate", "ca")

	out, err := runCA(t, "init")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := localca.Load(caDir)
	if err != nil {
		t.Fatalf("init did not create the CA in the default directory: %v\n%s", err, out)
	}
	for _, want := range []string{caDir, ca.Fingerprint(), "ecrgate ca install", "--docker-desktop"} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}

	out, err = runCA(t, "init")
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second init: %v\n%s", err, out)
	}
	if again, _ := localca.Load(caDir); again == nil || again.Fingerprint() != ca.Fingerprint() {
		t.Error("second init replaced the CA")
	}

	out, err = runCA(t, "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		ca.Fingerprint(), string(ca.PEM()), "name constraints (critical)",
		"dkr.ecr.us-east-1.amazonaws.com", "dkr-ecr-fips.us-east-1.on.aws", "public.ecr.aws",
		"0.0.0.0/0, ::/0", "valid:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCA(t, "show", "--pem")
	if err != nil || out != string(ca.PEM()) {
		t.Errorf("show --pem: %v\n%s", err, out)
	}

	other := filepath.Join(home, "other")
	if _, err := runCA(t, "show", "--dir", other); err == nil || !strings.Contains(err.Error(), "ecrgate ca init") {
		t.Errorf("show without a CA: %v", err)
	}
	if _, err := runCA(t, "init", "--dir", other); err != nil {
		t.Fatal(err)
	}
	if _, err := localca.Load(other); err != nil {
		t.Errorf("init --dir: %v", err)
	}
}

func TestCAInstallUninstall(t *testing.T) {
	home := caTestEnv(t)
	caDir := filepath.Join(home, "ca")
	certs := filepath.Join(home, "certs.d")
	cfg := filepath.Join(home, "ecrgate.yaml")
	if err := os.WriteFile(cfg, []byte("default_registry: "+caTestHost+"\nregistries:\n  - host: "+caTestHost2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCA(t, "install", "--dir", caDir, "--certs-dir", certs, "--config", cfg); err == nil || !strings.Contains(err.Error(), "ecrgate ca init") {
		t.Fatalf("install without a CA: %v", err)
	}
	if _, err := runCA(t, "init", "--dir", caDir); err != nil {
		t.Fatal(err)
	}
	ca, err := localca.Load(caDir)
	if err != nil {
		t.Fatal(err)
	}
	path1 := filepath.Join(certs, caTestHost, "ca.crt")
	path2 := filepath.Join(certs, caTestHost2, "ca.crt")

	// The hosts come from the config.
	out, err := runCA(t, "install", "--dir", caDir, "--certs-dir", certs, "--config", cfg)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	for _, want := range []string{"wrote " + path1, "wrote " + path2, "no restart needed", localca.ManifestFile, `"ecrgate ca uninstall --certs-dir ` + certs + `" removes exactly these files`} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	for _, p := range []string{path1, path2} {
		if b, err := os.ReadFile(p); err != nil || string(b) != string(ca.PEM()) {
			t.Fatalf("%s: %v", p, err)
		}
	}

	// Twice: nothing changes.
	out, err = runCA(t, "install", "--dir", caDir, "--certs-dir", certs, "--config", cfg)
	if err != nil || !strings.Contains(out, "nothing to do") || strings.Contains(out, "wrote") {
		t.Fatalf("second install: %v\n%s", err, out)
	}

	// Someone edits one file: uninstall leaves it and says so.
	if err := os.WriteFile(path2, []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCA(t, "uninstall", "--dir", caDir, "--certs-dir", certs)
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	for _, want := range []string{"removed " + path1, "removed empty directory " + filepath.Dir(path1), "left in place: " + path2} {
		if !strings.Contains(out, want) {
			t.Errorf("uninstall output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Dir(path1)); !os.IsNotExist(err) {
		t.Error("uninstall left the empty host directory")
	}
	if b, _ := os.ReadFile(path2); string(b) != "edited\n" {
		t.Error("uninstall touched the edited file")
	}

	// Twice: nothing to do.
	out, err = runCA(t, "uninstall", "--dir", caDir, "--certs-dir", certs)
	if err != nil || !strings.Contains(out, "nothing to do") || strings.Contains(out, "removed") {
		t.Fatalf("second uninstall: %v\n%s", err, out)
	}

	// --registry instead of the config; the edited file is not ours and stays.
	out, err = runCA(t, "install", "--dir", caDir, "--certs-dir", certs, "--registry", caTestHost, "--registry", caTestHost2)
	if err == nil || !strings.Contains(err.Error(), "left alone") || !strings.Contains(out, "wrote "+path1) {
		t.Fatalf("install over the edited file: %v\n%s", err, out)
	}
	if _, err := runCA(t, "uninstall", "--dir", caDir, "--certs-dir", certs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path1); !os.IsNotExist(err) {
		t.Error("uninstall left " + path1)
	}
}

func TestCAInstallTargets(t *testing.T) {
	home := caTestEnv(t)
	if _, err := runCA(t, "init"); err != nil {
		t.Fatal(err)
	}

	// Non-ECR hosts are refused with ecrhost's reason.
	_, err := runCA(t, "install", "--certs-dir", filepath.Join(home, "certs.d"), "--registry", "example.com", "--registry", "ghcr.io")
	if err == nil || !strings.Contains(err.Error(), `--registry example.com: "example.com" is not an Amazon ECR registry host`) || !strings.Contains(err.Error(), "ghcr.io") {
		t.Errorf("install for non-ECR hosts: %v", err)
	}

	// No registries anywhere.
	if _, err := runCA(t, "install", "--certs-dir", filepath.Join(home, "certs.d")); err == nil || !strings.Contains(err.Error(), "--registry") {
		t.Errorf("install without registries: %v", err)
	}

	// Docker Desktop: ~/.docker/certs.d.
	out, err := runCA(t, "install", "--docker-desktop", "--registry", caTestHost)
	want := filepath.Join(home, ".docker", "certs.d", caTestHost, "ca.crt")
	if err != nil || !strings.Contains(out, "wrote "+want) || !strings.Contains(out, "restart Docker Desktop") {
		t.Fatalf("install --docker-desktop: %v\n%s", err, out)
	}
	if _, err := runCA(t, "install", "--docker-desktop", "--certs-dir", home, "--registry", caTestHost); err == nil {
		t.Error("--docker-desktop with --certs-dir accepted")
	}
	if out, err := runCA(t, "uninstall"); err != nil || !strings.Contains(out, "removed "+want) {
		t.Errorf("uninstall: %v\n%s", err, out)
	}
}

func TestCAInstallNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write anywhere")
	}
	home := caTestEnv(t)
	if _, err := runCA(t, "init"); err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(home, "root-only")
	if err := os.Mkdir(certs, 0o555); err != nil {
		t.Fatal(err)
	}
	_, err := runCA(t, "install", "--certs-dir", certs, "--registry", caTestHost)
	if err == nil || !strings.Contains(err.Error(), "run with sudo") || !strings.Contains(err.Error(), "sudo ecrgate ca install --dir "+filepath.Join(home, "data", "ecrgate", "ca")) {
		t.Errorf("install into a read-only directory: %v", err)
	}
}

// Uninstall looks only in dockerd's and Docker Desktop's certs.d and the
// --certs-dir it is given, whatever the manifest names, and removes only
// this CA's own certificate there.
func TestCAUninstallLooksOnlyInCertsDirs(t *testing.T) {
	home := caTestEnv(t)
	caDir := filepath.Join(home, "ca")
	certs := filepath.Join(home, "certs.d")
	if _, err := runCA(t, "init", "--dir", caDir); err != nil {
		t.Fatal(err)
	}
	if out, err := runCA(t, "install", "--dir", caDir, "--certs-dir", certs, "--registry", caTestHost); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	path := filepath.Join(certs, caTestHost, "ca.crt")

	out, err := runCA(t, "uninstall", "--dir", caDir)
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	for _, want := range []string{"left in place: " + path, localca.DockerCertsDir, `run "ecrgate ca uninstall --certs-dir DIR"`, "still records"} {
		if !strings.Contains(out, want) {
			t.Errorf("uninstall without --certs-dir: output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("uninstall without --certs-dir removed %s: %v", path, err)
	}

	out, err = runCA(t, "uninstall", "--dir", caDir, "--certs-dir", certs)
	if err != nil || !strings.Contains(out, "removed "+path) || !strings.Contains(out, "cleared") {
		t.Fatalf("uninstall --certs-dir: %v\n%s", err, out)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("uninstall --certs-dir left %s", path)
	}
}

// Without the CA certificate, uninstall cannot tell its files from others'
// and removes none; it names them instead.
func TestCAUninstallWithoutCA(t *testing.T) {
	home := caTestEnv(t)
	caDir := filepath.Join(home, "ca")
	certs := filepath.Join(home, "certs.d")
	if _, err := runCA(t, "init", "--dir", caDir); err != nil {
		t.Fatal(err)
	}
	if out, err := runCA(t, "install", "--dir", caDir, "--certs-dir", certs, "--registry", caTestHost); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	path := filepath.Join(certs, caTestHost, "ca.crt")
	for _, name := range []string{localca.KeyFile, localca.CertFile} {
		if err := os.Remove(filepath.Join(caDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := runCA(t, "uninstall", "--dir", caDir)
	if err == nil || !strings.Contains(err.Error(), "removes none") || !strings.Contains(err.Error(), path) {
		t.Errorf("uninstall without the CA: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("uninstall without the CA removed %s: %v", path, err)
	}
}
