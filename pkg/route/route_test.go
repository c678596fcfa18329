package route_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/route"
)

const (
	regA = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	regB = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
	regC = "333333333333.dkr.ecr.us-west-2.amazonaws.com"
)

// configYAML: line numbers are asserted.
const configYAML = `default_registry: ` + regA + `
routes:
  - prefix: prod/
    registry: ` + regB + `
  - prefix: prod/eu/
    registry: ` + regC + `
registries:
  - host: ` + regB + `
local_hosts:
  myproxy:5000: ` + regA + `
  devbox: ` + regA + `
`

func load(t testing.TB, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, []string{"HOME=" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestResolve(t *testing.T) {
	cfg := load(t, configYAML)
	rt := route.New(cfg)
	file := cfg.Path
	for _, tc := range []struct {
		name     string
		req      route.Request
		registry string
		repo     string
		mode     route.Mode
		rule     string // Rule.String()
		code     string // "" = resolved
	}{
		{"default_registry", route.Request{Host: "localhost:5000", Name: "team/app"}, regA, "team/app", route.ModeRegistry,
			"default_registry (" + file + ":1)", ""},
		{"/v2/ itself", route.Request{Host: "localhost:5000"}, regA, "", route.ModeRegistry, "default_registry (" + file + ":1)", ""},
		{"route", route.Request{Host: "localhost:5000", Name: "prod/svc"}, regB, "svc", route.ModeRegistry,
			"routes[0] prefix prod/ (" + file + ":3)", ""},
		{"longest route", route.Request{Host: "localhost:5000", Name: "prod/eu/svc"}, regC, "svc", route.ModeRegistry,
			"routes[1] prefix prod/eu/ (" + file + ":5)", ""},
		{"the prefix alone is no route", route.Request{Host: "localhost:5000", Name: "prod"}, regA, "prod", route.ModeRegistry,
			"default_registry (" + file + ":1)", ""},
		// The motivating bug of issue 12: explain said regA and the whole
		// path, serve regB and team/app.
		{"registry-qualified path", route.Request{Host: "localhost:5000", Name: regB + "/team/app"}, regB, "team/app", route.ModeRegistry,
			"registry-qualified path", ""},
		{"qualified in upper case", route.Request{Host: "localhost:5000", Name: strings.ToUpper(regB) + "/prod/x"}, regB, "prod/x", route.ModeRegistry,
			"registry-qualified path", ""},
		{"qualified with an unconfigured host: a plain name", route.Request{Host: "localhost:5000", Name: "999999999999.dkr.ecr.us-east-1.amazonaws.com/x"},
			regA, "999999999999.dkr.ecr.us-east-1.amazonaws.com/x", route.ModeRegistry, "default_registry (" + file + ":1)", ""},
		{"qualified with nothing after it", route.Request{Host: "localhost:5000", Name: regB + "/"}, regA, regB + "/", route.ModeRegistry,
			"default_registry (" + file + ":1)", ""},
		{"ns names B", route.Request{Host: "localhost:5000", NS: []string{regB}, Name: "prod/svc"}, regB, "prod/svc", route.ModeRegistry, "?ns=", ""},
		{"ns upper case with port", route.Request{Host: "localhost:5000", NS: []string{strings.ToUpper(regB) + ":443"}, Name: "a"}, regB, "a", route.ModeRegistry, "?ns=", ""},
		{"ns and qualified agree", route.Request{Host: "localhost:5000", NS: []string{regB}, Name: regB + "/a"}, regB, "a", route.ModeRegistry, "?ns=", ""},
		{"ns names the proxy", route.Request{Host: "localhost:5000", NS: []string{"localhost:5000"}, Name: "prod/svc"}, regB, "svc", route.ModeRegistry,
			"routes[0] prefix prod/ (" + file + ":3)", ""},
		{"ns names its own Host", route.Request{Host: "myproxy:5000", NS: []string{"MyProxy:5000"}, Name: "a"}, regA, "a", route.ModeRegistry,
			"default_registry (" + file + ":1)", ""},
		{"ns and qualified disagree", route.Request{Host: "localhost:5000", NS: []string{regB}, Name: regA + "/a"}, "", "", "", "", "DENIED"},
		{"ns unconfigured", route.Request{Host: "localhost:5000", NS: []string{"docker.io"}, Name: "a"}, "", "", "", "", "DENIED"},
		{"ns several", route.Request{Host: "localhost:5000", NS: []string{regA, regB}, Name: "a"}, "", "", "", "", "DENIED"},
		{"intercept configured", route.Request{Listener: route.InterceptListener, Host: regB, Name: "prod/svc"}, regB, "prod/svc", route.ModeIntercept,
			"intercept.hosts", ""},
		{"intercept upper case with port", route.Request{Listener: route.InterceptListener, Host: strings.ToUpper(regA) + ":443", Name: "a"}, regA, "a", route.ModeIntercept,
			"intercept.hosts", ""},
		{"intercept not decrypted", route.Request{Listener: route.InterceptListener, Host: "999999999999.dkr.ecr.us-east-1.amazonaws.com", Name: "a"},
			"999999999999.dkr.ecr.us-east-1.amazonaws.com", "a", route.ModeDirect, "intercept.hosts", ""},
		{"intercept of no ECR host", route.Request{Listener: route.InterceptListener, Host: "ghcr.io", Name: "a"}, "", "", "", "", "NAME_UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rt.Resolve(tc.req)
			if tc.code != "" {
				var ec errcode.Error
				if !errors.As(err, &ec) || ec.Code.String() != tc.code {
					t.Fatalf("Resolve(%+v) = %+v, %v; want %s", tc.req, got, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%+v): %v", tc.req, err)
			}
			if got.Registry != tc.registry || got.Repository != tc.repo || got.Mode != tc.mode || got.Rule.String() != tc.rule {
				t.Errorf("Resolve(%+v) = %s %q %s by %q; want %s %q %s by %q", tc.req, got.Registry, got.Repository, got.Mode, got.Rule,
					tc.registry, tc.repo, tc.mode, tc.rule)
			}
		})
	}
}

// Without default_registry a name no route covers has no registry: the
// proxy's NAME_UNKNOWN, naming the file.
func TestResolveNoRegistry(t *testing.T) {
	cfg := load(t, "routes:\n  - prefix: prod/\n    registry: "+regB+"\n")
	rt := route.New(cfg)
	_, err := rt.Resolve(route.Request{Host: "localhost:5000", Name: "team/app"})
	var ec errcode.Error
	if !errors.As(err, &ec) || ec.Code != errcode.ErrorCodeNameUnknown || !strings.Contains(ec.Message, cfg.Path) ||
		!strings.Contains(ec.Message, "default_registry") {
		t.Fatalf("got %v, want NAME_UNKNOWN naming default_registry and %s", err, cfg.Path)
	}
	if got, err := rt.Resolve(route.Request{Host: "localhost:5000", Name: "prod/x"}); err != nil || got.Registry != regB || got.Repository != "x" {
		t.Fatalf("route: %+v %v", got, err)
	}
	// A Config built in code: no file, no lines.
	rt = route.New(&config.Config{DefaultRegistry: regA})
	got, err := rt.Resolve(route.Request{Host: "localhost:5000", Name: "x"})
	if err != nil || got.Rule.String() != "default_registry" || got.Rule.Line != 0 {
		t.Fatalf("no file: %+v %v", got, err)
	}
}

// The rule names the route config.RegistryFor chose, the first of equal
// prefixes.
func TestRouteRuleMatchesRegistryFor(t *testing.T) {
	cfg := &config.Config{DefaultRegistry: regA, Routes: []config.Route{
		{Prefix: "a", Registry: regB}, {Prefix: "a/", Registry: regC}, {Prefix: "a/b/", Registry: regC}, {Prefix: "/", Registry: regC}}}
	rt := route.New(cfg)
	for _, name := range []string{"a/x", "a/b/x", "a/b", "ab/x", "/x", "x"} {
		got, err := rt.Resolve(route.Request{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		reg, rest := cfg.RegistryFor(name)
		if got.Registry != reg || got.Repository != rest {
			t.Errorf("%s: %s %s, RegistryFor says %s %s", name, got.Registry, got.Repository, reg, rest)
		}
		if rest != name {
			want := map[string]string{"a/x": "routes[0]", "a/b/x": "routes[2]", "a/b": "routes[0]"}[name]
			if got.Rule.Kind != route.RuleRoute || got.Rule.Key != want || got.Rule.Prefix != name[:len(name)-len(rest)] {
				t.Errorf("%s: rule %+v, want %s", name, got.Rule, want)
			}
		}
	}
}

func TestIsLocalHost(t *testing.T) {
	rt := route.New(load(t, configYAML))
	for host, want := range map[string]bool{
		"localhost:5000":          true,
		"localhost":               true,
		"127.0.0.1:5000":          true,
		"[::1]:5000":              true,
		"registry.localhost:5000": true,
		"myproxy:5000":            true,
		"MYPROXY:5000":            true,
		"myproxy:6000":            false,
		"myproxy":                 false,
		"devbox":                  true,
		"devbox:5000":             true, // a key without port covers every port, as for the registry listener's guard
		"otherproxy:5000":         false,
		regA:                      false,
		"10.0.0.1:5000":           false,
	} {
		if got := rt.IsLocalHost(host); got != want {
			t.Errorf("IsLocalHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestIntercepts(t *testing.T) {
	rt := route.New(load(t, configYAML))
	for host, want := range map[string]bool{regA: true, strings.ToUpper(regB): true, regC: true,
		"999999999999.dkr.ecr.us-east-1.amazonaws.com": false, "public.ecr.aws": false, "example.com": false} {
		if got := rt.Intercepts(host); got != want {
			t.Errorf("Intercepts(%q) = %v, want %v", host, got, want)
		}
	}
	rt = route.New(load(t, configYAML+"intercept: {hosts: all-ecr}\n"))
	for host, want := range map[string]bool{"123456789012.dkr.ecr.ap-south-1.amazonaws.com": true,
		"999999999999.dkr.ecr.us-east-1.amazonaws.com": false, "public.ecr.aws": false} {
		if got := rt.Intercepts(host); got != want {
			t.Errorf("all-ecr: Intercepts(%q) = %v, want %v", host, got, want)
		}
	}
}

// FuzzResolve: any request resolves without panicking, to a registry the
// config names (registry listener) or the host asked for (intercept), or
// is refused with a registry error.
func FuzzResolve(f *testing.F) {
	f.Add(false, "localhost:5000", "", regB+"/team/app")
	f.Add(false, "localhost:5000", regB, regA+"/x")
	f.Add(false, "localhost:5000", "localhost:5000", "prod/eu/x")
	f.Add(true, regB, "", "team/app")
	f.Add(true, "ghcr.io", "", "team/app")
	cfg := load(f, configYAML)
	rt := route.New(cfg)
	known := map[string]bool{}
	for _, h := range cfg.RegistryHosts() {
		known[h] = true
	}
	f.Fuzz(func(t *testing.T, intercept bool, host, ns, name string) {
		req := route.Request{Host: host, Name: name}
		if intercept {
			req.Listener = route.InterceptListener
		} else if ns != "" {
			req.NS = []string{ns}
		}
		got, err := rt.Resolve(req)
		if err != nil {
			var ec errcode.Error
			if !errors.As(err, &ec) {
				t.Fatalf("Resolve(%+v): %v is not a registry error", req, err)
			}
			return
		}
		if !intercept && !known[got.Registry] {
			t.Fatalf("Resolve(%+v) = %+v: a registry the config does not name", req, got)
		}
		if !strings.HasSuffix(name, got.Repository) {
			t.Fatalf("Resolve(%+v) = %+v: the repository is not the end of the name", req, got)
		}
	})
}
