// Package route is ecrgate's one resolver: from what a client addressed
// (the listener it reached, the Host it named, the repository name of the
// /v2/ path and containerd's ?ns= parameter) to the ECR registry and
// repository a request goes to, the mode, and the rule of the
// configuration that chose them.
//
// `ecrgate serve` asks it for every request; `ecrgate explain` and
// `ecrgate doctor` ask it the same question and only render the answer, so
// the three cannot disagree. Its errors are registry errors (errcode
// values: NAME_UNKNOWN, DENIED) because the proxy hands them to clients.
package route

import (
	"fmt"
	"net"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/listen"
)

// Listener is where a request reached ecrgate.
type Listener int

const (
	// RegistryListener is registry mode (listen:): plain HTTP on loopback,
	// localhost:5000/<name>.
	RegistryListener Listener = iota
	// InterceptListener is intercept mode (intercept.listen:): a request
	// decrypted from a CONNECT to an ECR host, under the real ECR name.
	InterceptListener
)

func (l Listener) String() string {
	switch l {
	case RegistryListener:
		return "registry"
	case InterceptListener:
		return "intercept"
	}
	return fmt.Sprintf("Listener(%d)", int(l))
}

// Mode is how a request reaches its registry.
type Mode string

const (
	// ModeRegistry: through the registry-mode listener.
	ModeRegistry Mode = "registry"
	// ModeIntercept: through the intercept listener, which decrypts the host.
	ModeIntercept Mode = "intercept"
	// ModeDirect: an ECR host intercept mode does not decrypt: the
	// intercept listener tunnels (or refuses) it, so the request goes to
	// ECR without ecrgate, which creates nothing.
	ModeDirect Mode = "direct"
)

// Kinds of Rule: what chose the registry.
const (
	RuleDefault   = "default_registry"
	RuleRoute     = "routes"
	RuleQualified = "registry-qualified path"
	RuleNS        = "?ns="
	RuleIntercept = "intercept host"
)

// Request is what a client addressed.
type Request struct {
	Listener Listener
	// Host is the Host the client named: the Host header on the registry
	// listener, the CONNECT host on the intercept listener.
	Host string
	// NS holds the values of containerd's ?ns= query parameter (registry
	// listener only): the registry a hosts.toml mirror stands in for.
	NS []string
	// Name is the repository name as the client wrote it, /v2/<name>/…;
	// "" for /v2/ itself.
	Name string
}

// Rule is the part of the configuration (or of the request) that chose
// the registry.
type Rule struct {
	Kind   string // RuleDefault, RuleRoute, RuleQualified, RuleNS or RuleIntercept
	Key    string // the config key that chose: "default_registry", "routes[1]"; "" for none
	Prefix string // RuleRoute: the prefix removed from the name, "prod/"
	File   string // the config file; "" for none
	Line   int    // 1-based line of Key in File; 0 when unknown
}

// String names the rule as a person reads it: "default_registry
// (config.yaml:4)", "routes[1] prefix prod/ (config.yaml:7)",
// "registry-qualified path", "?ns=", "intercept host".
func (r Rule) String() string {
	s := r.Kind
	if r.Key != "" {
		s = r.Key
	}
	if r.Kind == RuleRoute {
		s += " prefix " + r.Prefix
	}
	if r.Line > 0 {
		s += fmt.Sprintf(" (%s:%d)", r.File, r.Line)
	}
	return s
}

// Route is where a request goes.
type Route struct {
	Mode       Mode
	Registry   string // ECR registry host (config.Parse lower-cases the config's)
	Repository string // the repository name in Registry
	Rule       Rule
}

// Resolver answers for one configuration. It is safe for concurrent use.
type Resolver struct {
	cfg        *config.Config
	where      string          // the config file, for messages
	registries map[string]bool // lower-case registry hosts of the config
	local      map[string]bool // lower-case local_hosts keys
	accounts   map[string]bool // accounts of the configured registries
	allECR     bool            // intercept.hosts: all-ecr
}

// New returns the resolver of cfg. It does no I/O: the lines of the keys
// it cites come from the parsed config (config.Line).
func New(cfg *config.Config) *Resolver {
	r := &Resolver{cfg: cfg, where: cfg.Path, registries: map[string]bool{}, local: map[string]bool{}, accounts: map[string]bool{},
		allECR: cfg.Intercept.Hosts == config.InterceptAllECR}
	if r.where == "" {
		r.where = "the config file"
	}
	for _, h := range cfg.RegistryHosts() {
		r.registries[h] = true
		if reg, err := ecrhost.Parse(h); err == nil && reg.Account != "" {
			r.accounts[reg.Account] = true
		}
	}
	for h := range cfg.LocalHosts {
		r.local[strings.ToLower(h)] = true
	}
	return r
}

// Resolve answers where req goes. Errors are errcode values: NAME_UNKNOWN
// when no registry is configured for a name or an intercepted host is no
// ECR registry, DENIED when ?ns= names a registry ecrgate does not serve or
// contradicts the path.
func (r *Resolver) Resolve(req Request) (Route, error) {
	if req.Listener == InterceptListener {
		return r.intercepted(req)
	}
	if len(req.NS) > 0 {
		reg, err := r.NSRegistry(req.NS, req.Host)
		if err != nil {
			return Route{}, err
		}
		if reg != "" {
			return r.byNS(reg, req.Name)
		}
	}
	return r.byName(req.Name)
}

// byName maps a registry-mode name without ?ns=: a name qualified with a
// registry of the config (<registry host>/<repo>, what a containerd
// hosts.toml host with override_path sends) goes to that registry; any
// other by routes and default_registry.
func (r *Resolver) byName(name string) (Route, error) {
	rt := Route{Mode: ModeRegistry, Registry: r.cfg.DefaultRegistry, Repository: name, Rule: r.rule(RuleDefault, "default_registry", -1)}
	if reg, rest, ok := r.qualified(name); ok {
		rt.Registry, rt.Repository, rt.Rule = reg, rest, Rule{Kind: RuleQualified}
	} else if name != "" {
		rt.Registry, rt.Repository = r.cfg.RegistryFor(name)
		if prefix := name[:len(name)-len(rt.Repository)]; prefix != "" {
			rt.Rule = r.routeRule(prefix)
		}
	}
	if rt.Registry == "" {
		return Route{}, errcode.ErrorCodeNameUnknown.WithMessage(fmt.Sprintf(
			"no ECR registry for %q: set default_registry (or a route for its prefix) in %s", name, r.where))
	}
	return rt, nil
}

// routeRule is the rule of the route whose prefix config.RegistryFor
// removed: the first of the longest (RegistryFor keeps the first of equal
// lengths).
func (r *Resolver) routeRule(prefix string) Rule {
	for i, rt := range r.cfg.Routes {
		if strings.TrimSuffix(rt.Prefix, "/")+"/" == prefix {
			rule := r.rule(RuleRoute, "routes", i)
			rule.Prefix = prefix
			return rule
		}
	}
	return Rule{Kind: RuleRoute, Prefix: prefix}
}

// byNS maps a name to the registry ?ns= named: the name as written, less a
// leading "<that registry>/"; qualified with another registry, it is refused.
func (r *Resolver) byNS(registry, name string) (Route, error) {
	if reg, rest, ok := r.qualified(name); ok {
		if reg != registry {
			return Route{}, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
				"the request names registry %s (ns) and %s (path): name one", registry, reg))
		}
		name = rest
	}
	return Route{Mode: ModeRegistry, Registry: registry, Repository: name, Rule: Rule{Kind: RuleNS}}, nil
}

// intercepted maps a decrypted request to the host dockerd asked for,
// under the same repository name.
func (r *Resolver) intercepted(req Request) (Route, error) {
	reg, err := ecrhost.Parse(req.Host)
	if err != nil {
		return Route{}, errcode.ErrorCodeNameUnknown.WithMessage(err.Error())
	}
	rt := Route{Mode: ModeIntercept, Registry: reg.Host, Repository: req.Name, Rule: Rule{Kind: RuleIntercept, Key: "intercept.hosts"}}
	if !r.Intercepts(reg.Host) {
		rt.Mode = ModeDirect
	}
	return rt, nil
}

// Intercepts reports whether intercept mode decrypts CONNECTs to host: a
// registry the config names ("configured"), or with intercept.hosts:
// all-ecr any private ECR registry host of the accounts it names (every
// account when it names none). host is compared in lower case.
func (r *Resolver) Intercepts(host string) bool {
	host = strings.ToLower(host)
	if r.registries[host] {
		return true
	}
	if !r.allECR {
		return false
	}
	reg, err := ecrhost.Parse(host)
	if err != nil || reg.Public || reg.Host != host {
		return false
	}
	return len(r.accounts) == 0 || r.accounts[reg.Account]
}

// NSRegistry returns the registry the ?ns= values of a request name: ""
// when they name this proxy itself (empty, the request's own host, or a
// loopback host), a registry of the config, or a DENIED error for any other
// host or for values that disagree. ecrgate never connects to a host
// because a client named it.
func (r *Resolver) NSRegistry(values []string, host string) (string, error) {
	if len(values) == 0 {
		return "", nil
	}
	ns := normalizeNS(values[0])
	for _, v := range values[1:] {
		if normalizeNS(v) != ns {
			return "", errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
				"the request names several registries (ns=%q): name one", values))
		}
	}
	if ns == "" || strings.EqualFold(ns, host) || listen.IsLoopbackHost(ns) {
		return "", nil
	}
	if r.registries[ns] {
		return ns, nil
	}
	return "", errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
		"ecrgate does not serve registry %q (named by the ns query parameter): add it under registries in %s, or send that registry's requests elsewhere in containerd's hosts.toml",
		ns, r.where))
}

// Registries returns the registries ?ns= may name: every registry of the
// config, lower case, sorted.
func (r *Resolver) Registries() []string { return r.cfg.RegistryHosts() }

// IsLocalHost reports whether hostport (from an image name or a Host
// header) names ecrgate's registry-mode listener: a loopback host
// (listen.IsLoopbackHost), a local_hosts: key (with or without the port),
// or the listen: address itself.
func (r *Resolver) IsLocalHost(hostport string) bool {
	hp := strings.ToLower(hostport)
	if r.local[hp] || strings.EqualFold(hp, r.cfg.Listen) || listen.IsLoopbackHost(hp) {
		return true
	}
	h, _, err := net.SplitHostPort(hp)
	return err == nil && r.local[h]
}

// qualified splits "<registry>/<repo>" when <registry> is one of the
// config's registries (compared without regard to case) and <repo> is not
// empty.
func (r *Resolver) qualified(name string) (registry, repo string, ok bool) {
	first, rest, found := strings.Cut(name, "/")
	if !found || rest == "" || !strings.Contains(first, ".") {
		return "", "", false
	}
	first = strings.ToLower(first)
	if !r.registries[first] {
		return "", "", false
	}
	return first, rest, true
}

// rule is a rule of kind citing the top-level key (index >= 0: its
// index'th list item, key[index]).
func (r *Resolver) rule(kind, key string, index int) Rule {
	rule := Rule{Kind: kind, Key: key, File: r.cfg.Path}
	if index >= 0 {
		rule.Key = fmt.Sprintf("%s[%d]", key, index)
	}
	rule.Line = r.cfg.Line(rule.Key)
	return rule
}

// normalizeNS lower-cases an ns value and drops a trailing dot and the
// default HTTPS port, the forms a registry host name can take in a
// reference.
func normalizeNS(ns string) string {
	ns = strings.ToLower(strings.TrimSpace(ns))
	ns = strings.TrimSuffix(ns, ":443")
	return strings.TrimSuffix(ns, ".")
}
