package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/proxy"
	"github.com/ecrgate/ecrgate/pkg/regerr"
	"github.com/ecrgate/ecrgate/pkg/route"
)

// nsParam is the query parameter containerd adds to every request it sends
// to a host from hosts.toml that is not the image's own registry: it names
// that registry ("?ns=123456789012.dkr.ecr.us-east-1.amazonaws.com").
const nsParam = "ns"

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
	route      *route.Resolver
	log        *slog.Logger
}

// newNSRouter builds one proxy per registry of the config with base's
// options, resolving as if each request named that registry with ?ns=, in
// front of def.
func newNSRouter(rt *route.Resolver, upstreams func(string) (*url.URL, error), base proxy.Options, def http.Handler, log *slog.Logger) (*nsRouter, error) {
	n := &nsRouter{def: def, registries: map[string]http.Handler{}, route: rt, log: log}
	for _, h := range rt.Registries() {
		o := base
		o.Resolve = targets(rt, upstreams, route.RegistryListener, h)
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

// pick returns the handler for the registry the ns values name (the route
// decides which).
func (n *nsRouter) pick(values []string, host string) (http.Handler, error) {
	reg, err := n.route.NSRegistry(values, host)
	if err != nil {
		return nil, err
	}
	if reg == "" {
		return n.def, nil // the client named this proxy
	}
	if h, ok := n.registries[reg]; ok {
		return h, nil
	}
	return nil, fmt.Errorf("route: ns registry %s has no proxy", reg) // cannot happen: both come from the config's registries
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
