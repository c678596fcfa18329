// Command passthrough is the proxy table's reference Go reverse proxy: the
// standard library's httputil.ReverseProxy in front of one upstream, with
// nothing of ecrgate's (no routing, ensure, token or header rewriting). It
// tells apart what Go's net/http costs from what ecrgate's own code adds.
// Standard library only.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:41234")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		fmt.Fprintf(os.Stderr, "passthrough: -upstream %q: want http://host:port\n", *upstream)
		os.Exit(2)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // upload URLs the upstream hands out point back here
		},
		Transport:     tr,
		FlushInterval: -1,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "passthrough:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(os.Stderr, "passthrough: ", 0)}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "passthrough:", err)
		os.Exit(1)
	}
}
