package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/certreload"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/intercept"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/proxy"
	"github.com/ecrgate/ecrgate/pkg/route"
)

// InterceptHosts decides which CONNECT targets are decrypted: the ECR
// registries the config names ("configured"), or every private ECR
// registry host of the accounts it names ("all-ecr"; every account when it
// names none). Anything else is tunnelled or refused. It is
// route.Resolver.Intercepts.
func InterceptHosts(cfg *config.Config) func(host string) bool {
	return route.New(cfg).Intercepts
}

// InterceptResolver maps an intercepted request to its registry: the host
// dockerd asked for, under the same repository name, sent to the real host
// or to the registry's endpoint override.
func InterceptResolver(cfg *config.Config) func(host, name string) (proxy.Target, error) {
	return targets(route.New(cfg), upstreamCache(cfg), route.InterceptListener, "")
}

// startIntercept opens the intercept listener when a local CA exists. It
// returns the listener's address and the function that serves it until its
// context ends and then drains it within o.ShutdownTimeout; both are nil
// when intercept mode is off.
//
// With certs (tls: in the config) the CONNECT front itself speaks TLS with
// that certificate, HTTP/1.1 only: clients use an https:// proxy URL, and
// the CONNECT, the Proxy-Authorization it may carry and the tunnelled
// bytes are encrypted on the way to ecrgate.
func startIntercept(ctx context.Context, o Options, log *slog.Logger, rt *route.Resolver, upstreams func(string) (*url.URL, error), base proxy.Options, certs *certreload.Reloader) (net.Addr, func(context.Context) error, error) {
	cfg := o.Config
	dir := o.CADir
	if dir == "" {
		dir = localca.DefaultDir(o.Env)
	}
	ca, err := localca.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("intercept mode is off: no local CA (run `ecrgate ca init` and `ecrgate ca install` to turn it on)", "ca_dir", dir)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("intercept: %w", err)
	}
	ln, err := openListener(ctx, cfg, "intercept", config.KeyInterceptListen, cfg.Intercept.Listen, o.Listeners)
	if err != nil {
		return nil, nil, err
	}
	scheme := "http"
	if certs != nil {
		ln = tls.NewListener(ln, certs.TLSConfig("http/1.1"))
		scheme = "https"
	}
	// hosts: all-ecr may match a region newer than this CA's name
	// constraints: such a host is left to tunnel_others (tunnelled or
	// refused) instead of failing the TLS handshake. A configured registry
	// stays intercepted, so the minter's "re-create the CA" error shows.
	configured := map[string]bool{}
	for _, h := range rt.Registries() {
		configured[strings.ToLower(h)] = true
	}
	allow := func(host string) bool {
		return rt.Intercepts(host) && (configured[strings.ToLower(host)] || ca.Permits(host))
	}
	minter := localca.NewMinter(ca, allow, time.Now)
	po := base
	po.Resolve = targets(rt, upstreams, route.InterceptListener, "")
	// dockerd meets ECR's own challenge and sends the token of its
	// credential helper; ecrgate's own token is never added, and a request
	// creates a repository only with credentials the registry accepts.
	po.Mode = proxy.InterceptMode
	po.AnswerPing = false
	h, err := proxy.New(po)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	is, err := intercept.New(intercept.Options{
		Intercept:       allow,
		TLSConfig:       &tls.Config{GetCertificate: minter.GetCertificate, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		Handler:         h,
		TunnelOthers:    cfg.Intercept.Tunnel(),
		Logger:          log,
		ShutdownTimeout: o.ShutdownTimeout,
	})
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	log.Info("intercept mode on", "listen", scheme+"://"+ln.Addr().String(), "hosts", cfg.Intercept.Hosts, "tunnel_others", cfg.Intercept.Tunnel(), "ca", ca.Fingerprint())
	// Serve closes ln when it shuts down.
	return ln.Addr(), func(ctx context.Context) error { return is.Serve(ctx, ln) }, nil
}
