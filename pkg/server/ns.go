package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/proxy"
	"github.com/ecrgate/ecrgate/pkg/regerr"
)

// nsParam is the query parameter containerd adds to every request it sends
// to a host from hosts.toml that is not the image's own registry: it names
// that registry ("?ns=123456789012.dkr.ecr.us-east-1.amazonaws.com").
const nsParam = "ns"

// RegistryResolver maps every name to the same repository in registry: the
// resolver of a request that names its registry itself (containerd's ?ns=).
// A name may also be qualified with that registry; qualified with another
// one, it is refused. registry must be one the config names.
func RegistryResolver(cfg *config.Config, registry string) func(host, name string) (proxy.Target, error) {
	upstreams := upstreamCache(cfg)
	qualified := qualifiedNames(cfg)
	return func(_, name string) (proxy.Target, error) {
		if reg, rest, ok := qualified(name); ok {
			if reg != registry {
				return proxy.Target{}, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
					"the request names registry %s (ns) and %s (path): name one", registry, reg))
			}
			name = rest
		}
		upstream, err := upstreams(registry)
		if err != nil {
			return proxy.Target{}, err
		}
		return proxy.Target{Registry: registry, Repository: name, Upstream: upstream}, nil
	}
}

// qualifiedNames returns a function that splits "<registry>/<repo>" when
// <registry> is one of the config's registries (compared without regard to
// case) and <repo> is not empty.
func qualifiedNames(cfg *config.Config) func(name string) (registry, repo string, ok bool) {
	hosts := map[string]bool{}
	for _, h := range cfg.RegistryHosts() {
		hosts[h] = true
	}
	return func(name string) (string, string, bool) {
		first, rest, found := strings.Cut(name, "/")
		if !found || rest == "" || !strings.Contains(first, ".") {
			return "", "", false
		}
		first = strings.ToLower(first)
		if !hosts[first] {
			return "", "", false
		}
		return first, rest, true
	}
}

// nsRouter is the registry-mode handler. A request without ?ns=, or whose
// ns names this proxy itself, goes to def (routes and default_registry). A
// request whose ns names a registry of the config goes, without the ns
// parameter, to that registry under the name as written (less a leading
// "<that registry>/"). Any other ns is refused: ecrgate never connects to a
// host because a client named it.
//
// containerd adds ns to the requests of a pull (resolve and fetch) through
// a hosts.toml host that is not the image's registry; its pushes carry no
// ns, so a push through such a host reaches the right registry only with a
// registry-qualified path (override_path, see Resolver).
type nsRouter struct {
	def        http.Handler
	registries map[string]http.Handler // lower-case registry host -> its proxy
	where      string                  // the config file, for error messages
	log        *slog.Logger
}

// newNSRouter builds one proxy per registry of the config with base's
// options and a RegistryResolver, in front of def.
func newNSRouter(cfg *config.Config, base proxy.Options, def http.Handler, log *slog.Logger) (*nsRouter, error) {
	n := &nsRouter{def: def, registries: map[string]http.Handler{}, where: cfg.Path, log: log}
	if n.where == "" {
		n.where = "the config file"
	}
	for _, h := range cfg.RegistryHosts() {
		o := base
		o.Resolve = RegistryResolver(cfg, h)
		p, err := proxy.New(o)
		if err != nil {
			return nil, err
		}
		n.registries[h] = p
	}
	return n, nil
}

func (n *nsRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var values []string
	if r.URL.RawQuery != "" {
		values = r.URL.Query()[nsParam]
	}
	if len(values) == 0 {
		n.def.ServeHTTP(w, r)
		return
	}
	h, err := n.pick(values, r.Host)
	if err != nil {
		n.log.Warn("refused a request by its ns parameter", "ns", values, "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		regerr.Serve(w, err)
		return
	}
	r2 := r.WithContext(r.Context()) // a shallow copy; the URL is replaced, not changed
	u := *r.URL
	u.RawQuery = withoutParam(r.URL.RawQuery, nsParam)
	r2.URL = &u
	r2.RequestURI = u.RequestURI()
	h.ServeHTTP(w, r2)
}

// pick returns the handler for the registry the ns values name.
func (n *nsRouter) pick(values []string, host string) (http.Handler, error) {
	ns := normalizeNS(values[0])
	for _, v := range values[1:] {
		if normalizeNS(v) != ns {
			return nil, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
				"the request names several registries (ns=%q): name one", values))
		}
	}
	if ns == "" || strings.EqualFold(ns, host) || isLoopback(ns) {
		return n.def, nil // the client named this proxy
	}
	if h, ok := n.registries[ns]; ok {
		return h, nil
	}
	return nil, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
		"ecrgate does not serve registry %q (named by the ns query parameter): add it under registries in %s, or send that registry's requests elsewhere in containerd's hosts.toml",
		ns, n.where))
}

// normalizeNS lower-cases an ns value and drops a trailing dot and the
// default HTTPS port, the forms a registry host name can take in a
// reference.
func normalizeNS(ns string) string {
	ns = strings.ToLower(strings.TrimSpace(ns))
	ns = strings.TrimSuffix(ns, ":443")
	return strings.TrimSuffix(ns, ".")
}

// isLoopback reports whether host[:port] is localhost or a loopback address.
func isLoopback(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// withoutParam drops every key=value pair of key from a raw query and keeps
// the rest byte for byte (an upload's _state must reach the registry as it
// left it).
func withoutParam(raw, key string) string {
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == key {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}
