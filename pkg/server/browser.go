package server

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/listen"
	"github.com/ecrgate/ecrgate/pkg/regerr"
)

// browserGuard keeps web pages away from the registry-mode listener, which
// serves loopback without authentication of its own and adds the user's
// ECR token. A page may send requests to 127.0.0.1 (a POST that creates a
// repository), and with DNS rebinding read the answers (pull private
// images) under a name of its own. Registry clients (docker, containerd,
// skopeo, go-containerregistry) address the proxy by a loopback name and
// send no Origin or Sec-Fetch-* headers; browsers always send Sec-Fetch-*
// (and Origin on cross-origin writes). So a request is refused when its
// Host is not localhost, a loopback address or a local_hosts name, or when
// it carries those browser headers.
func browserGuard(cfg *config.Config, next http.Handler) http.Handler {
	refusal := pageGuard(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		why := refusal(r)
		if why == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		regerr.Serve(w, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"ecrgate refuses this request: it %s; push to localhost:<port>/<name> (or add the host name to local_hosts:)", why)))
	})
}

// adminGuard applies the same rule to the admin listener: /metrics names
// accounts, regions and activity, which a rebinding page must not read.
func adminGuard(cfg *config.Config, next http.Handler) http.Handler {
	refusal := pageGuard(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := refusal(r); why != "" {
			http.Error(w, "ecrgate refuses this request: it "+why+"; ask for http://127.0.0.1:<admin port>/ instead", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pageGuard returns the check both listeners make: why a request must be
// refused as coming from a web page or naming a host that is not this
// machine, or "" to let it through.
func pageGuard(cfg *config.Config) func(r *http.Request) string {
	local := map[string]bool{}
	for h := range cfg.LocalHosts {
		local[strings.ToLower(h)] = true
	}
	return func(r *http.Request) string {
		switch {
		case r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Mode") != "" || r.Header.Get("Sec-Fetch-Site") != "":
			return "comes from a web browser"
		case !localHost(r.Host, local):
			return fmt.Sprintf("names host %q, which is not this machine", r.Host)
		}
		return ""
	}
}

// localHost reports whether a Host header names this machine: localhost
// (or a subdomain of it), a loopback address, or a configured local host.
func localHost(hostport string, local map[string]bool) bool {
	hp := strings.ToLower(hostport)
	if local[hp] {
		return true
	}
	h := hp
	if hh, _, err := net.SplitHostPort(hp); err == nil {
		h = hh
	}
	return local[h] || listen.IsLoopbackHost(hp)
}
