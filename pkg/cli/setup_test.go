package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const acct = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

func execute(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestSetupDocker(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("ECRGATE_CONFIG", filepath.Join(dir, "missing.yaml"))
	path := filepath.Join(dir, "config.json")
	orig := "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"c2VjcmV0\"\n\t\t}\n\t},\n\t\"currentContext\": \"desktop\"\n}\n"
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}

	out, _, err := execute(t, "setup", "docker", "--registry", acct, "--dry-run")
	if err != nil || !strings.Contains(out, `"`+acct+`": "ecrgate"`) || strings.Contains(out, "c2VjcmV0") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Fatal("dry run wrote the file")
	}

	out, _, err = execute(t, "setup", "docker", "--registry", acct)
	if err != nil || !strings.Contains(out, "previous version saved as") {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	var got struct {
		Auths          map[string]map[string]string `json:"auths"`
		CredHelpers    map[string]string            `json:"credHelpers"`
		CurrentContext string                       `json:"currentContext"`
	}
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &got); err != nil || got.CredHelpers[acct] != "ecrgate" || got.Auths["ghcr.io"]["auth"] != "c2VjcmV0" || got.CurrentContext != "desktop" {
		t.Fatalf("config.json after setup: %s (%v)", b, err)
	}

	out, _, err = execute(t, "setup", "docker", "--registry", acct)
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second run: %v\n%s", err, out)
	}

	if _, _, err := execute(t, "setup", "docker", "--undo", "--registry", acct); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Fatalf("undo did not restore the original:\n%s", b)
	}
}

func TestSetupDockerFromConfigAndErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	cfg := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfg, []byte("default_registry: "+acct+"\nregistries:\n  - host: 222222222222.dkr.ecr.eu-west-1.amazonaws.com\n    profile: prod\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ECRGATE_CONFIG", cfg)
	if _, _, err := execute(t, "setup", "docker"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	for _, h := range []string{acct, "222222222222.dkr.ecr.eu-west-1.amazonaws.com"} {
		if !strings.Contains(string(b), `"`+h+`": "ecrgate"`) {
			t.Errorf("config.json lacks %s:\n%s", h, b)
		}
	}
	if strings.Contains(string(b), "localhost") || strings.Contains(string(b), "127.0.0.1") {
		t.Errorf("config.json names a local proxy host:\n%s", b)
	}
	if st, _ := os.Stat(filepath.Join(dir, "config.json")); st.Mode().Perm() != 0o600 {
		t.Errorf("new config.json mode %v", st.Mode().Perm())
	}
	if _, _, err := execute(t, "setup", "docker", "--registry", "localhost:5000"); err == nil || !strings.Contains(err.Error(), "needs no credential helper") {
		t.Errorf("--registry localhost:5000: %v", err)
	}

	_, _, err := execute(t, "setup", "docker", "--registry", "123456789012.dkr.ecr.us-eas-1.amazonaws.com")
	if err == nil || !strings.Contains(err.Error(), "did you mean us-east-1?") {
		t.Errorf("typo: %v", err)
	}
	t.Setenv("ECRGATE_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	_, _, err = execute(t, "setup", "docker")
	if err == nil || !strings.Contains(err.Error(), "no registries to set up") {
		t.Errorf("nothing configured: %v", err)
	}
}

// B1 of issue 11: local proxy hosts get no credHelpers entry, and the ones
// an earlier ecrgate wrote are removed; another helper's entry stays.
func TestSetupDockerRemovesLocalHostEntries(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	cfg := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfg, []byte("default_registry: "+acct+"\nlocal_hosts:\n  \"host.docker.internal:5000\": "+acct+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ECRGATE_CONFIG", cfg)
	path := filepath.Join(dir, "config.json")
	old := `{"credHelpers": {"localhost:5000": "ecrgate", "127.0.0.1:5000": "ecrgate", "host.docker.internal:5000": "ecrgate", "localhost:6000": "other", "` + acct + `": "ecrgate"}}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := execute(t, "setup", "docker")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost:5000", "127.0.0.1:5000", "host.docker.internal:5000"} {
		if !strings.Contains(out, `remove credHelpers["`+h+`"]`) {
			t.Errorf("output does not report removing %s:\n%s", h, out)
		}
	}
	var got struct{ CredHelpers map[string]string }
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{acct: "ecrgate", "localhost:6000": "other"}
	if len(got.CredHelpers) != len(want) || got.CredHelpers[acct] != "ecrgate" || got.CredHelpers["localhost:6000"] != "other" {
		t.Errorf("credHelpers = %v, want %v", got.CredHelpers, want)
	}
}

// A shared team proxy (shared_proxies:, issue #15) gets a credHelpers
// entry: it passes the caller's own token to ECR.
func TestSetupDockerWritesSharedProxies(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	cfg := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfg, []byte("shared_proxies:\n  ECRGATE.example.internal:5000: "+acct+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ECRGATE_CONFIG", cfg)
	if _, _, err := execute(t, "setup", "docker"); err != nil {
		t.Fatal(err)
	}
	var got struct{ CredHelpers map[string]string }
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.CredHelpers["ecrgate.example.internal:5000"] != "ecrgate" || got.CredHelpers[acct] != "ecrgate" {
		t.Errorf("credHelpers = %v; want the shared proxy and its registry", got.CredHelpers)
	}
	if _, _, err := execute(t, "setup", "docker", "--registry", "ecrgate.example.internal:5000"); err != nil {
		t.Errorf("--registry <shared proxy>: %v", err)
	}
	if _, _, err := execute(t, "setup", "docker", "--registry", "elsewhere.example.internal:5000"); err == nil {
		t.Error("--registry with a host that is neither ECR nor a shared proxy was accepted")
	}
}
