package explain

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/route"
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
	via        string   // the rule that chose the registry, as route.Rule names it
	notes      []string // things worth knowing about the mapping
}

// resolve maps a parsed name to its registry and repository under cfg, by
// asking pkg/route what `ecrgate serve` would be asked: a local host
// (localhost:5000, a local_hosts: key) is a request on the registry-mode
// listener, an ECR host one on the intercept listener, and a bare name one
// on the registry-mode listener (or, with --registry, for that registry
// under the same name). registry is --registry ("" if unset), ns the ?ns=
// value of a registry-mode request ("" for none).
func resolve(cfg *config.Config, r reference, registry, ns string) (target, error) {
	where := cfg.Path
	if where == "" {
		where = "the configuration (no file)"
	}
	rt := route.New(cfg)
	var nsValues []string
	if ns != "" {
		nsValues = []string{ns}
	}
	switch {
	case r.host == "" && registry != "":
		got, err := rt.Resolve(route.Request{Listener: route.InterceptListener, Host: registry, Name: r.path})
		if err != nil {
			return target{}, fmt.Errorf("--registry %s: %s", registry, message(err))
		}
		return target{mode: ModeBare, registry: got.Registry, repository: got.Repository, via: "--registry"}, nil
	case r.host == "":
		got, err := rt.Resolve(route.Request{Listener: route.RegistryListener, Host: cfg.Listen, NS: nsValues, Name: r.path})
		switch {
		case err == nil:
		case ns != "":
			return target{}, errors.New(message(err))
		case len(cfg.RegistryHosts()) == 1:
			only := cfg.RegistryHosts()[0]
			return target{mode: ModeBare, registry: only, repository: r.path,
				notes: []string{fmt.Sprintf("no default_registry: %s is the only registry in %s", only, where)}}, nil
		default:
			return target{}, fmt.Errorf("no registry for %q: set default_registry in %s, or name one with --registry <account>.dkr.ecr.<region>.amazonaws.com", r.path, where)
		}
		t := fromRoute(got)
		t.mode = ModeBare
		return t, nil
	case rt.IsLocalHost(r.host):
		got, err := rt.Resolve(route.Request{Listener: route.RegistryListener, Host: r.host, NS: nsValues, Name: r.path})
		if err != nil {
			return target{}, errors.New(message(err))
		}
		t := fromRoute(got)
		t.mode = ModeRegistry
		if !samePort(r.host, cfg.Listen) {
			t.notes = append(t.notes, fmt.Sprintf("ecrgate listens on %s (listen: in %s), not on %s", cfg.Listen, where, r.host))
		}
		return t, nil
	}
	got, err := rt.Resolve(route.Request{Listener: route.InterceptListener, Host: r.host, Name: r.path})
	if err != nil {
		return target{}, fmt.Errorf("%s is neither an ECR registry (%s) nor ecrgate's registry-mode address (%s)", r.host, message(err), cfg.Listen)
	}
	t := fromRoute(got)
	t.mode = string(got.Mode)
	if got.Mode == route.ModeDirect {
		t.notes = append(t.notes, fmt.Sprintf(
			"intercept mode does not decrypt %s (intercept.hosts: %s): a push of this name goes straight to ECR and ecrgate creates nothing; add the registry to registries: in %s, or push localhost:%s/%s",
			got.Registry, cfg.Intercept.Hosts, where, portOf(cfg.Listen), r.path))
	}
	return t, nil
}

// fromRoute is the target of a route.
func fromRoute(got route.Route) target {
	t := target{registry: got.Registry, repository: got.Repository, via: got.Rule.String()}
	switch got.Rule.Kind {
	case route.RuleRoute:
		t.route = got.Rule.Prefix
	case route.RuleQualified:
		t.notes = append(t.notes, fmt.Sprintf(
			"the name starts with registry %s of the config (a registry-qualified path, as containerd's hosts.toml override_path sends it): that registry, without routes: or default_registry", got.Registry))
	}
	return t
}

// message is the text of a route error: a registry error's message
// without its code's description.
func message(err error) string {
	var ec errcode.Error
	if errors.As(err, &ec) {
		return ec.Message
	}
	return err.Error()
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
