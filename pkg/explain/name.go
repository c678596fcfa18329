package explain

import (
	"fmt"
	"net"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// Ways a name reaches ECR, the values of Result.Mode.
const (
	// ModeRegistry: localhost:5000/<name>, ecrgate's registry-mode
	// listener maps it to a registry by routes: and default_registry.
	ModeRegistry = "registry"
	// ModeIntercept: the real ECR name, of a host ecrgate intercepts.
	ModeIntercept = "intercept"
	// ModeDirect: the real ECR name of a host ecrgate does not intercept:
	// the push goes to ECR without ecrgate, which creates nothing.
	ModeDirect = "direct"
	// ModeBare: a name without a host, mapped like a registry-mode name
	// (or to --registry).
	ModeBare = "bare"
)

// reference is an image name split the way Docker splits it.
type reference struct {
	host string // "" for a bare name
	path string // repository path
	ref  string // ":tag" or "@digest", as written; "" for none
}

// parseReference splits s ("[host/]path[:tag][@digest]") like Docker: the
// first component is a host when it holds a "." or a ":" or is "localhost".
func parseReference(input string) (reference, error) {
	s := strings.TrimSpace(input)
	for _, scheme := range []string{"https://", "http://"} {
		if len(s) > len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			s = s[len(scheme):]
		}
	}
	var r reference
	if i := strings.IndexByte(s, '@'); i >= 0 {
		r.ref, s = s[i:], s[:i]
	}
	if i := strings.IndexByte(s, '/'); i > 0 {
		first := s[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			r.host, s = strings.ToLower(first), s[i+1:]
		}
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "/") {
		r.ref, s = s[i:]+r.ref, s[:i]
	}
	r.path = s
	if r.path == "" {
		return r, fmt.Errorf("%q names no repository: give the name as you would push it, e.g. localhost:5000/team/app:1.0 or 123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app", input)
	}
	return r, nil
}

// target is where a name goes: the registry, the repository in it, and how.
type target struct {
	mode       string
	registry   string
	repository string
	route      string   // the routes: prefix that matched ("" for none)
	notes      []string // things worth knowing about the mapping
}

// resolve maps a parsed name to its registry and repository under cfg, as
// `ecrgate serve` does. registry is --registry for bare names ("" if unset).
func resolve(cfg *config.Config, r reference, registry string) (target, error) {
	where := cfg.Path
	if where == "" {
		where = "the configuration (no file)"
	}
	switch {
	case r.host == "" && registry != "":
		reg, err := ecrhost.Parse(registry)
		if err != nil {
			return target{}, fmt.Errorf("--registry %s: %w", registry, err)
		}
		return target{mode: ModeBare, registry: reg.Host, repository: r.path}, nil
	case r.host == "":
		t, err := byRoutes(cfg, r.path, where)
		if err != nil && len(cfg.RegistryHosts()) == 1 {
			only := cfg.RegistryHosts()[0]
			return target{mode: ModeBare, registry: only, repository: r.path,
				notes: []string{fmt.Sprintf("no default_registry: %s is the only registry in %s", only, where)}}, nil
		}
		if err != nil {
			return target{}, fmt.Errorf("no registry for %q: set default_registry in %s, or name one with --registry <account>.dkr.ecr.<region>.amazonaws.com", r.path, where)
		}
		t.mode = ModeBare
		return t, nil
	case isLocal(cfg, r.host):
		t, err := byRoutes(cfg, r.path, where)
		if err != nil {
			return target{}, err
		}
		t.mode = ModeRegistry
		if !samePort(r.host, cfg.Listen) {
			t.notes = append(t.notes, fmt.Sprintf("ecrgate listens on %s (listen: in %s), not on %s", cfg.Listen, where, r.host))
		}
		return t, nil
	}
	reg, err := ecrhost.Parse(r.host)
	if err != nil {
		return target{}, fmt.Errorf("%s is neither an ECR registry (%v) nor ecrgate's registry-mode address (%s)", r.host, err, cfg.Listen)
	}
	t := target{mode: ModeDirect, registry: reg.Host, repository: r.path}
	if server.InterceptHosts(cfg)(reg.Host) {
		t.mode = ModeIntercept
	} else {
		t.notes = append(t.notes, fmt.Sprintf(
			"intercept mode does not decrypt %s (intercept.hosts: %s): a push of this name goes straight to ECR and ecrgate creates nothing; add the registry to registries: in %s, or push localhost:%s/%s",
			reg.Host, cfg.Intercept.Hosts, where, portOf(cfg.Listen), r.path))
	}
	return t, nil
}

// byRoutes maps a registry-mode name with routes: and default_registry.
func byRoutes(cfg *config.Config, path, where string) (target, error) {
	registry, repo := cfg.RegistryFor(path)
	if registry == "" {
		return target{}, fmt.Errorf("no ECR registry for %q: set default_registry (or a route for its prefix) in %s", path, where)
	}
	t := target{registry: registry, repository: repo}
	if repo != path {
		t.route = strings.TrimSuffix(path, repo)
	}
	return t, nil
}

// isLocal reports whether host is ecrgate's registry-mode address: a
// local_hosts: key, the listen address, or a loopback host.
func isLocal(cfg *config.Config, host string) bool {
	if _, ok := cfg.LocalRegistry(host); ok || strings.EqualFold(host, cfg.Listen) {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func portOf(hostport string) string {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	return port
}

func samePort(host, listen string) bool {
	p := portOf(host)
	if p == "" {
		p = "80" // Docker's default for a plain-HTTP loopback registry
	}
	return p == portOf(listen)
}
