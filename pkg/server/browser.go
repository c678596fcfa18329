package server

import (
	"fmt"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/regerr"
	"github.com/ecrgate/ecrgate/pkg/route"
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
//
// A shared proxy (allow_remote) lends nothing: every request carries its
// caller's own credentials. Clients reach it by its DNS name (a Service,
// an ingress), so the Host check is off there; browser requests are still
// refused, since no registry client sends those headers.
func browserGuard(rt *route.Resolver, remote bool, next http.Handler) http.Handler {
	refusal := pageGuard(rt, remote)
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
// With allow_remote, kubelet probes and Prometheus address it by the pod's
// IP: the Host check is off there as well.
func adminGuard(rt *route.Resolver, remote bool, next http.Handler) http.Handler {
	refusal := pageGuard(rt, remote)
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
// machine (route.Resolver.IsLocalHost: loopback, a local_hosts: name or
// listen:), or "" to let it through. With remote (allow_remote) any host
// may be named.
func pageGuard(rt *route.Resolver, remote bool) func(r *http.Request) string {
	return func(r *http.Request) string {
		switch {
		case r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Mode") != "" || r.Header.Get("Sec-Fetch-Site") != "":
			return "comes from a web browser"
		case !remote && !rt.IsLocalHost(r.Host):
			return fmt.Sprintf("names host %q, which is not this machine", r.Host)
		}
		return ""
	}
}
