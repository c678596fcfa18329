// Package server runs `ecrgate serve`: the registry-mode proxy on its
// listener, intercept mode on its own listener when a local CA exists, and
// /healthz and /metrics on the admin listener, wired to the token source,
// the repository ensurer, the configuration and its one resolver
// (pkg/route), until the context ends; then it lets in-flight pushes on
// every listener finish.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"golang.org/x/sync/errgroup"

	"github.com/ecrgate/ecrgate/pkg/blobindex"
	"github.com/ecrgate/ecrgate/pkg/certreload"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/listen"
	"github.com/ecrgate/ecrgate/pkg/proxy"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
	"github.com/ecrgate/ecrgate/pkg/route"
)

// DefaultShutdownTimeout is how long in-flight pushes get after a stop signal.
const DefaultShutdownTimeout = 5 * time.Minute

// DefaultIdleTimeout is how long the registry and admin listeners keep an
// idle keep-alive connection: long enough for the pause between a push's
// requests, short enough that idle connections cannot pile up.
const DefaultIdleTimeout = 30 * time.Second

// Header timeouts: how long a client may take to send a request's headers.
const (
	registryHeaderTimeout = 30 * time.Second
	adminHeaderTimeout    = 10 * time.Second
)

// Options configure Run.
type Options struct {
	Config *config.Config
	Env    []string
	Logger *slog.Logger
	// Listeners are already-open listeners by name ("registry", "admin"),
	// from systemd socket activation or a test; missing ones are opened
	// from the config.
	Listeners map[string]net.Listener
	// Ready is called once both listeners accept connections.
	Ready func(registry, admin net.Addr)
	// Stopping is called when shutdown starts.
	Stopping func()
	// ShutdownTimeout bounds the wait for in-flight requests (default 5 min).
	ShutdownTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections on the registry and
	// admin listeners (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// Transport reaches the upstream registries (default:
	// proxy.NewTransport(proxy.DefaultTimeouts), which bounds dial, TLS
	// handshake and the wait for response headers, never a body in transit).
	Transport http.RoundTripper
	// CADir holds the local CA for intercept mode (default localca.DefaultDir);
	// without a CA there, intercept mode is off.
	CADir string
	// InterceptReady is called with the intercept listener's address when
	// intercept mode is on.
	InterceptReady func(net.Addr)
}

// Resolver maps registry-mode names to upstream targets by the config, as
// pkg/route resolves them: a name qualified with a registry of the config
// (<registry host>/<repo>, what a containerd hosts.toml host with
// override_path sends) goes to that registry; any other by routes and
// default_registry.
func Resolver(cfg *config.Config) func(host, name string) (proxy.Target, error) {
	return targets(route.New(cfg), upstreamCache(cfg), route.RegistryListener, "")
}

// targets returns the proxy's Resolve for requests on listener (with
// ?ns=ns when ns is not ""): the route rt answers, sent to the registry's
// upstream.
func targets(rt *route.Resolver, upstreams func(string) (*url.URL, error), listener route.Listener, ns string) func(host, name string) (proxy.Target, error) {
	var nsValues []string
	if ns != "" {
		nsValues = []string{ns}
	}
	return func(host, name string) (proxy.Target, error) {
		r, err := rt.Resolve(route.Request{Listener: listener, Host: host, NS: nsValues, Name: name})
		if err != nil {
			return proxy.Target{}, err
		}
		upstream, err := upstreams(r.Registry)
		if err != nil {
			return proxy.Target{}, err
		}
		return proxy.Target{Registry: r.Registry, Repository: r.Repository, Upstream: upstream}, nil
	}
}

// upstreamCache returns where a registry's requests go, https://<host> or
// its endpoint override, parsed once per registry.
func upstreamCache(cfg *config.Config) func(registry string) (*url.URL, error) {
	var cache sync.Map // registry -> *url.URL
	return func(registry string) (*url.URL, error) {
		if u, ok := cache.Load(registry); ok {
			return u.(*url.URL), nil
		}
		upstream := &url.URL{Scheme: "https", Host: registry}
		if rc, ok := cfg.RegistryConfig(registry); ok && rc.Endpoint != "" {
			u, err := url.Parse(rc.Endpoint)
			if err != nil {
				return nil, errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf("registries[%s].endpoint: %v", registry, err))
			}
			upstream = &url.URL{Scheme: u.Scheme, Host: u.Host}
		}
		cache.Store(registry, upstream)
		return upstream, nil
	}
}

// Run serves until ctx ends.
func Run(ctx context.Context, o Options) error {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	var certs *certreload.Reloader
	if cfg.TLS.Enabled() {
		var err error
		if certs, err = certreload.New(cfg.TLS.CertFile, cfg.TLS.KeyFile, certreload.Options{Logger: log}); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	regLn, err := openListener(ctx, cfg, "registry", config.KeyListen, cfg.Listen, o.Listeners)
	if err != nil {
		return err
	}
	defer regLn.Close()
	adminLn, err := openListener(ctx, cfg, "admin", config.KeyAdminListen, cfg.AdminListen, o.Listeners)
	if err != nil {
		return err
	}
	defer adminLn.Close()

	w, err := wire(cfg, o, log)
	if err != nil {
		return err
	}
	defer w.ens.Close()
	defer w.closeBlobs(log)
	rt, upstreams, base := w.rt, w.upstreams, w.base
	regSrv := &http.Server{Handler: browserGuard(rt, cfg.AllowRemote, w.registry), ReadHeaderTimeout: registryHeaderTimeout, IdleTimeout: o.IdleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	regScheme := "http"
	if certs != nil {
		// HTTPS, HTTP/2 offered (ServeTLS adds it); each handshake gets
		// the pair in the files now.
		regSrv.TLSConfig = certs.TLSConfig()
		regScheme = "https"
	}
	adminSrv := &http.Server{Handler: adminGuard(rt, cfg.AllowRemote, w.admin), ReadHeaderTimeout: adminHeaderTimeout, IdleTimeout: o.IdleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}

	iaddr, serveIntercept, err := startIntercept(ctx, o, log, rt, upstreams, base, certs)
	if err != nil {
		return err
	}
	if iaddr != nil && o.InterceptReady != nil {
		o.InterceptReady(iaddr)
	}

	// Every listener serves in the group until runCtx ends (the stop
	// signal, or one of them failing) and then drains its in-flight
	// requests within ShutdownTimeout; Run returns when all have drained.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		g    errgroup.Group
		mu   sync.Mutex
		errs []error
	)
	run := func(serve func(ctx context.Context) error) {
		g.Go(func() error {
			err := serve(runCtx)
			if err != nil {
				stop()
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return err
		})
	}
	run(func(ctx context.Context) error { return serveHTTP(ctx, regSrv, regLn, o.ShutdownTimeout, stop) })
	run(func(ctx context.Context) error { return serveHTTP(ctx, adminSrv, adminLn, o.ShutdownTimeout, stop) })
	if serveIntercept != nil {
		run(serveIntercept)
	}
	log.Info("ecrgate serving", "registry", regScheme+"://"+regLn.Addr().String(), "admin", "http://"+adminLn.Addr().String(),
		"default_registry", cfg.DefaultRegistry, "routes", len(cfg.Routes), "dry_run", cfg.DryRun, "allow_remote", cfg.AllowRemote, "config", cfg.Path)
	if o.Ready != nil {
		o.Ready(regLn.Addr(), adminLn.Addr())
	}
	<-runCtx.Done()
	log.Info("shutting down; letting in-flight pushes finish", "timeout", o.ShutdownTimeout)
	if o.Stopping != nil {
		o.Stopping()
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// wiring is what the listeners serve: the registry-mode handler (with its
// ?ns= router), the admin handler, and what intercept mode builds on.
type wiring struct {
	rt        *route.Resolver
	upstreams func(registry string) (*url.URL, error)
	base      proxy.Options // the registry-mode proxy's options
	ens       *repocreate.Ensurer
	blobs     *blobindex.Index // nil with mount_shared_layers: false
	registry  http.Handler
	admin     http.Handler
}

// wire builds the token source, the ensurer, the resolver and the
// handlers of one server. One manifest budget serves every proxy it runs
// (registry mode, each ?ns= registry, intercept mode): the cap is on the
// process. One resolver answers for all of them.
func wire(cfg *config.Config, o Options, log *slog.Logger) (*wiring, error) {
	tokens := ecrauth.New(ecrauth.Options{
		CacheDir: ecrauth.DefaultCacheDir(o.Env),
		Env:      o.Env,
		Logger:   log,
		Identities: func(host string) ecrauth.Identity {
			r, _ := cfg.RegistryConfig(host)
			return ecrauth.Identity{Profile: r.Profile, RoleARN: r.RoleARN, APIEndpoint: r.APIEndpoint}
		},
	})
	metrics := proxy.NewMetrics()
	ens, err := repocreate.New(repocreate.Options{Config: cfg, Env: o.Env, Logger: log,
		OnCreate: func(registry, how string) { metrics.Creations.WithLabelValues(registry, how).Inc() }})
	if err != nil {
		return nil, err
	}
	w := &wiring{rt: route.New(cfg), upstreams: upstreamCache(cfg), ens: ens}
	w.base = proxy.Options{Resolve: targets(w.rt, w.upstreams, route.RegistryListener, ""), AnswerPing: true, Ensurer: ens, Tokens: tokens,
		Transport: o.Transport, Logger: log, Metrics: metrics, ManifestBudget: proxy.NewManifestBudget(proxy.DefaultManifestBudget)}
	if cfg.MountShared() {
		// One index for every proxy of the process: where blobs were
		// seen, so shared layers are mounted instead of uploaded.
		w.blobs = blobindex.Open(blobindex.Options{Path: blobindex.DefaultPath(o.Env), Logger: log})
		w.base.Mounts, w.base.Blobs = ens, w.blobs
	}
	if cfg.AllowRemote {
		// A shared service has no privileged neighbours: every client,
		// loopback ones too, meets ECR's own challenge and brings its own
		// token; ecrgate's identity only creates repositories, and only
		// for a caller ECR lets push there.
		w.base.Mode, w.base.AnswerPing = proxy.CallerMode, false
	}
	p, err := proxy.New(w.base)
	if err == nil {
		w.registry, err = newNSRouter(w.rt, w.upstreams, w.base, p, log)
	}
	if err != nil {
		ens.Close()
		w.closeBlobs(log)
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /metrics", metrics.Handler())
	w.admin = mux
	return w, nil
}

// closeBlobs writes the blob index one last time.
func (w *wiring) closeBlobs(log *slog.Logger) {
	if err := w.blobs.Close(); err != nil {
		log.Warn("blob index not saved", "err", err)
	}
}

// serveHTTP serves s on ln until ctx ends, or calls stop when serving
// fails; then it drains s's in-flight requests within timeout.
// A server with a TLSConfig serves HTTPS on ln.
func serveHTTP(ctx context.Context, s *http.Server, ln net.Listener, timeout time.Duration, stop func()) error {
	errc := make(chan error, 1)
	go func() {
		if s.TLSConfig != nil {
			errc <- s.ServeTLS(ln, "", "")
			return
		}
		errc <- s.Serve(ln)
	}()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc: // only a failure: ErrServerClosed comes after Shutdown
		stop()
	}
	// A fresh context: the one that ended must not cut the drain short.
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return errors.Join(serveErr, s.Shutdown(sctx))
}

// openListener returns the listener called name: one given (socket
// activation, a test), else a new one on addr, which the config's one rule
// (config.CheckListen: loopback, or off loopback with allow_remote and, for
// the registry and intercept listeners, TLS) must allow first.
func openListener(ctx context.Context, cfg *config.Config, name, key, addr string, given map[string]net.Listener) (net.Listener, error) {
	if ln, ok := given[name]; ok {
		return ln, nil
	}
	if err := cfg.CheckListen(key, addr); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var ln net.Listener
	var err error
	if listen.CheckLoopback(addr) == nil {
		ln, err = listen.TCP(ctx, name, addr, nil)
	} else {
		ln, err = listen.Remote(ctx, addr)
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s: %w: is another ecrgate running?", key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return ln, nil
}
