package explain_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/explain"
)

// Every form of a name resolves as `ecrgate serve` resolves the request it
// becomes (pkg/route): issue 12's bug was explain sending a
// registry-qualified path to default_registry under the whole path while
// serve sent it to the named registry.
func TestExplainResolvesLikeServe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	yaml := "default_registry: " + reg + "\nroutes:\n  - prefix: prod/\n    registry: " + other + "\nregistries:\n  - host: " + other + "\nlocal_hosts:\n  devbox: " + reg + "\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, []string{"HOME=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, registry, repo, mode, via string
		registryFlag, ns                string
	}{
		{"localhost:5000/" + other + "/team/app:1", other, "team/app", explain.ModeRegistry, "registry-qualified path", "", ""},
		{"localhost:5000/team/app:1", reg, "team/app", explain.ModeRegistry, "default_registry (" + path + ":1)", "", ""},
		{"127.0.0.1:5000/prod/svc", other, "svc", explain.ModeRegistry, "routes[0] prefix prod/ (" + path + ":3)", "", ""},
		{"registry.localhost:5000/team/app", reg, "team/app", explain.ModeRegistry, "default_registry (" + path + ":1)", "", ""},
		{"devbox:5000/team/app", reg, "team/app", explain.ModeRegistry, "default_registry (" + path + ":1)", "", ""},
		{other + "/prod/svc:1", other, "prod/svc", explain.ModeIntercept, "intercept.hosts", "", ""},
		{"team/app", reg, "team/app", explain.ModeBare, "default_registry (" + path + ":1)", "", ""},
		{"team/app", other, "team/app", explain.ModeBare, "--registry", other, ""},
		// containerd's ?ns= through a hosts.toml mirror: the name as written.
		{"localhost:5000/prod/svc", other, "prod/svc", explain.ModeRegistry, "?ns=", "", other},
		{"localhost:5000/prod/svc", other, "svc", explain.ModeRegistry, "routes[0] prefix prod/ (" + path + ":3)", "", "localhost:5000"},
	} {
		r, err := explain.Explain(context.Background(), tc.name, explain.Options{Config: cfg, Offline: true, Registry: tc.registryFlag, NS: tc.ns})
		if err != nil {
			t.Fatalf("Explain(%q): %v", tc.name, err)
		}
		if r.Registry != tc.registry || r.Repository != tc.repo || r.Mode != tc.mode || r.Via != tc.via {
			t.Errorf("Explain(%q, ns %q) = %s %q %s via %q; want %s %q %s via %q", tc.name, tc.ns, r.Registry, r.Repository, r.Mode, r.Via,
				tc.registry, tc.repo, tc.mode, tc.via)
		}
	}
	// The text names the rule that chose the registry.
	r, err := explain.Explain(context.Background(), "localhost:5000/"+other+"/team/app:1", explain.Options{Config: cfg, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), "registry mode: registry-qualified path") {
		t.Errorf("text for a registry-qualified path (%v):\n%s", err, b.String())
	}
	// An ns serve refuses, explain refuses with serve's words.
	_, err = explain.Explain(context.Background(), "localhost:5000/team/app", explain.Options{Config: cfg, Offline: true, NS: "docker.io"})
	if err == nil || !strings.Contains(err.Error(), `ecrgate does not serve registry "docker.io"`) {
		t.Errorf("ns docker.io: %v", err)
	}
}
