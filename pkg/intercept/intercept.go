// Package intercept is ecrgate's CONNECT front: the HTTP forward proxy that
// dockerd reaches through HTTPS_PROXY. A CONNECT to an ECR registry on port
// 443 is answered with TLS from the local CA and the decrypted requests go to
// the registry handler; every other CONNECT is tunnelled byte for byte and
// never decrypted, and plain-HTTP proxy requests (absolute-form) are
// forwarded; with TunnelOthers off both are refused.
//
// Model: google/martian mitm (TLS from SNI per CONNECT host), with the
// decrypted connections served by one http.Server so keep-alive, timeouts
// and draining on shutdown are the standard library's.
package intercept

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultDialTimeout     = 10 * time.Second
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultShutdownTimeout = 5 * time.Minute
)

// Timeouts of the two http.Servers (the proxy listener and the decrypted
// connections). No read or write timeout: pushes stream large layers.
const (
	readHeaderTimeout = 30 * time.Second
	httpIdleTimeout   = 2 * time.Minute
)

// interceptPort is the only port ever decrypted: ECR's registry port.
const interceptPort = "443"

// Options configure a Server.
type Options struct {
	// Intercept reports whether CONNECT host:443 is decrypted and served by
	// Handler. host is lower-case, without port or trailing dot. Only port
	// 443 is ever intercepted: a CONNECT to another port of the same host
	// is treated like any other host (tunnelled if TunnelOthers). Nil means
	// nothing is intercepted.
	Intercept func(host string) bool
	// TLSConfig serves intercepted hosts; it needs GetCertificate (minting
	// for the SNI name, pkg/localca) or Certificates. It is cloned per
	// connection: ALPN is limited to http/1.1, and a ClientHello without
	// SNI, or with an SNI other than the CONNECT host, fails the handshake
	// before any certificate is asked for (registry clients always send the
	// host name they connect to).
	TLSConfig *tls.Config
	// Handler serves decrypted requests. They arrive with r.TLS set, r.Host
	// and r.URL.Host = the CONNECT host (without :443), r.URL.Scheme
	// "https", path and query as sent.
	Handler http.Handler
	// TunnelOthers: true tunnels every CONNECT that is not intercepted,
	// byte for byte, and forwards plain-HTTP proxy requests ("GET
	// http://host/…", what dockerd sends through HTTP_PROXY for http
	// registries); false answers both 403 without dialling. A plain-HTTP
	// request for an intercepted host is always refused (403): forwarding
	// it would send the registry token in clear text, and Handler must
	// hand out https Location URLs, so it only serves decrypted requests.
	TunnelOthers bool
	// Dial reaches tunnel targets and plain-HTTP origins (default: a
	// net.Dialer with a 10 s timeout).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger gets one debug line per CONNECT (default: discard). Request
	// bodies and headers are never logged.
	Logger *slog.Logger
	// IdleTimeout closes a tunnel once neither side has sent anything for
	// this long (default 10 min). Decrypted connections use the
	// http.Server's idle timeout instead.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds how long Serve drains decrypted requests and
	// plain-HTTP forwards after its context ends (default 5 min).
	ShutdownTimeout time.Duration
}

// Server is the forward proxy. Its zero value is not usable; call New.
type Server struct {
	o   Options
	log *slog.Logger
	fwd *httputil.ReverseProxy
	tr  *http.Transport

	inner     *http.Server  // serves decrypted connections
	innerLn   *connListener // feeds inner
	innerOnce sync.Once

	mu      sync.Mutex
	closing bool
	tunnels map[*tunnel]struct{}
	wg      sync.WaitGroup // tunnel goroutines
}

var _ http.Handler = (*Server)(nil)

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Intercept != nil {
		if o.Handler == nil {
			return nil, errors.New("intercept: Options.Handler is required when Intercept is set")
		}
		if o.TLSConfig == nil || (o.TLSConfig.GetCertificate == nil && len(o.TLSConfig.Certificates) == 0 && o.TLSConfig.GetConfigForClient == nil) {
			return nil, errors.New("intercept: Options.TLSConfig with GetCertificate or Certificates is required when Intercept is set")
		}
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{Timeout: DefaultDialTimeout}).DialContext
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	s := &Server{o: o, log: o.Logger, tunnels: map[*tunnel]struct{}{}}
	errLog := slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug)

	// Plain-HTTP forwarding. Proxy is nil on purpose: never chain through
	// the environment's proxy (which may be ecrgate itself).
	s.tr = &http.Transport{
		DialContext:           o.Dial,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	s.fwd = &httputil.ReverseProxy{
		// Rewrite (not Director): hop-by-hop and X-Forwarded-* headers are
		// already gone from pr.Out, and none are added back.
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *pr.In.URL
			pr.Out.URL = &u
			pr.Out.Host = ""
		},
		Transport:     s.tr,
		FlushInterval: -1,
		ErrorLog:      errLog,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Debug("forward failed", "host", r.URL.Host, "method", r.Method, "err", err)
			textError(w, http.StatusBadGateway, fmt.Sprintf("ecrgate could not forward to %s: %v", r.URL.Host, err))
		},
	}

	s.innerLn = newConnListener()
	s.inner = &http.Server{
		Handler:           http.HandlerFunc(s.serveDecrypted),
		ConnContext:       connectHostContext,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          errLog,
	}
	return s, nil
}

// Serve runs an http.Server with s as its handler on ln until ctx ends, then
// shuts down: stops accepting, closes tunnels, and lets decrypted requests
// and plain-HTTP forwards finish within ShutdownTimeout. It returns nil
// after a clean shutdown. A Server serves once: Serve ends with Shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	outer := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- outer.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("intercept: serve: %w", err)
		}
	}
	// A fresh context: the one that ended must not cut the drain short.
	sctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownTimeout)
	defer cancel()
	var outerErr, innerErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if outerErr = outer.Shutdown(sctx); outerErr != nil {
			_ = outer.Close()
			outerErr = fmt.Errorf("intercept: drain proxy connections: %w", outerErr)
		}
	})
	wg.Go(func() { innerErr = s.Shutdown(sctx) })
	wg.Wait()
	return errors.Join(serveErr, outerErr, innerErr)
}

// Shutdown refuses new CONNECTs, closes every tunnel at once, and drains
// decrypted connections until ctx ends (then closes them). Use it when s is
// mounted in a server of one's own; Serve calls it. It is final.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	open := make([]*tunnel, 0, len(s.tunnels))
	for t := range s.tunnels {
		open = append(open, t)
	}
	s.mu.Unlock()
	for _, t := range open {
		t.close()
	}
	_ = s.innerLn.Close() // in case inner never started
	err := s.inner.Shutdown(ctx)
	if err != nil {
		_ = s.inner.Close()
		err = fmt.Errorf("intercept: drain intercepted connections: %w", err)
	}
	s.wg.Wait()
	s.tr.CloseIdleConnections()
	return err
}

// ServeHTTP is the forward proxy: CONNECT and absolute-form requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		s.connect(w, r)
	case r.URL.IsAbs() && r.URL.Host != "":
		s.forward(w, r)
	default:
		textError(w, http.StatusBadRequest, "this is an HTTP proxy; point HTTPS_PROXY at it")
	}
}

func (s *Server) closingNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// connect handles one CONNECT request.
func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	authority := r.Host
	host, port, err := net.SplitHostPort(authority)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		s.logConnect(r.RemoteAddr, authority, "refused", 0, 0, start, "reason", "no host:port")
		textError(w, http.StatusBadRequest, fmt.Sprintf("CONNECT needs host:port, got %q", authority))
		return
	}
	name := normalizeHost(host)
	if s.closingNow() {
		s.logConnect(r.RemoteAddr, authority, "refused", 0, 0, start, "reason", "shutting down")
		textError(w, http.StatusServiceUnavailable, "ecrgate is shutting down")
		return
	}
	if port == interceptPort && s.o.Intercept != nil && s.o.Intercept(name) {
		s.intercept(w, r, name, authority, start)
		return
	}
	if !s.o.TunnelOthers {
		s.logConnect(r.RemoteAddr, authority, "refused", 0, 0, start, "reason", "tunnel_others off")
		textError(w, http.StatusForbidden, fmt.Sprintf(
			"ecrgate only intercepts ECR registries, and tunnel_others is off: not tunnelling to %s "+
				"(set intercept.tunnel_others: true, or add the host to NO_PROXY)", authority))
		return
	}
	s.tunnel(w, r, authority, start)
}

// intercept answers the CONNECT and hands the TLS connection to the inner
// http.Server.
func (s *Server) intercept(w http.ResponseWriter, r *http.Request, host, authority string, start time.Time) {
	conn, pre, err := hijack(w)
	if err != nil {
		s.logConnect(r.RemoteAddr, authority, "error", 0, 0, start, "err", err)
		textError(w, http.StatusInternalServerError, "ecrgate cannot take over this connection")
		return
	}
	if _, err := io.WriteString(conn, connectionEstablished); err != nil {
		_ = conn.Close()
		s.logConnect(r.RemoteAddr, authority, "error", 0, 0, start, "err", err)
		return
	}
	ic := &interceptConn{Conn: conn, pre: pre, host: host}
	client := r.RemoteAddr
	ic.onClose = func() {
		s.logConnect(client, authority, "intercepted", ic.rx.Load(), ic.tx.Load(), start)
	}
	s.innerOnce.Do(func() { go func() { _ = s.inner.Serve(s.innerLn) }() })
	if err := s.innerLn.push(tls.Server(ic, s.tlsConfigFor(host))); err != nil {
		_ = ic.Close()
	}
}

const connectionEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// tlsConfigFor is the TLS configuration for one intercepted connection.
func (s *Server) tlsConfigFor(host string) *tls.Config {
	cfg := s.o.TLSConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	if get := cfg.GetCertificate; get != nil {
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			switch sni := normalizeHost(hello.ServerName); sni {
			case host:
				return get(hello)
			case "":
				return nil, fmt.Errorf("intercept: the TLS client sent no server name (SNI) for CONNECT host %q; connect by host name", host)
			default:
				return nil, fmt.Errorf("intercept: TLS server name %q is not the CONNECT host %q", hello.ServerName, host)
			}
		}
	}
	return cfg
}

type connectHostKey struct{}

// connectHostContext carries the CONNECT host of a decrypted connection to
// its requests.
func connectHostContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		if ic, ok := tc.NetConn().(*interceptConn); ok {
			return context.WithValue(ctx, connectHostKey{}, ic.host)
		}
	}
	return ctx
}

func (s *Server) serveDecrypted(w http.ResponseWriter, r *http.Request) {
	host, ok := r.Context().Value(connectHostKey{}).(string)
	if !ok || r.TLS == nil {
		textError(w, http.StatusInternalServerError, "ecrgate: decrypted request without its CONNECT host")
		return
	}
	r.Host = host
	r.URL.Host = host
	r.URL.Scheme = "https"
	s.o.Handler.ServeHTTP(w, r)
}

// tunnel dials the target, answers the CONNECT and copies bytes both ways.
func (s *Server) tunnel(w http.ResponseWriter, r *http.Request, authority string, start time.Time) {
	target, err := s.o.Dial(r.Context(), "tcp", authority)
	if err != nil {
		s.logConnect(r.RemoteAddr, authority, "error", 0, 0, start, "err", err)
		textError(w, http.StatusBadGateway, fmt.Sprintf("ecrgate could not reach %s: %v", authority, err))
		return
	}
	t := newTunnel(target, s.o.IdleTimeout)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = target.Close()
		s.logConnect(r.RemoteAddr, authority, "refused", 0, 0, start, "reason", "shutting down")
		textError(w, http.StatusServiceUnavailable, "ecrgate is shutting down")
		return
	}
	s.tunnels[t] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.tunnels, t)
		s.mu.Unlock()
		s.wg.Done()
	}()

	client, pre, err := hijack(w)
	if err != nil {
		_ = target.Close()
		s.logConnect(r.RemoteAddr, authority, "error", 0, 0, start, "err", err)
		textError(w, http.StatusInternalServerError, "ecrgate cannot take over this connection")
		return
	}
	t.setClient(client)
	if _, err := io.WriteString(client, connectionEstablished); err != nil {
		t.close()
		s.logConnect(r.RemoteAddr, authority, "error", 0, 0, start, "err", err)
		return
	}
	t.run(pre)
	s.logConnect(r.RemoteAddr, authority, "tunnelled", t.up.Load(), t.down.Load(), start)
}

// forward serves an absolute-form plain-HTTP proxy request.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	if r.URL.Scheme != "http" {
		textError(w, http.StatusBadRequest, fmt.Sprintf("ecrgate forwards only http:// URLs; use CONNECT for %s://", r.URL.Scheme))
		return
	}
	host := normalizeHost(r.URL.Hostname())
	if s.o.Intercept != nil && s.o.Intercept(host) {
		textError(w, http.StatusForbidden, fmt.Sprintf(
			"ecrgate serves %s only over https (CONNECT); plain http would send the registry token in clear text", host))
		return
	}
	if !s.o.TunnelOthers {
		textError(w, http.StatusForbidden, fmt.Sprintf(
			"ecrgate only intercepts ECR registries, and tunnel_others is off: not forwarding to %s "+
				"(set intercept.tunnel_others: true, or add the host to NO_PROXY)", r.URL.Host))
		return
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && isSelf(r.URL, la) {
		textError(w, http.StatusLoopDetected, "ecrgate will not forward a request to itself")
		return
	}
	s.fwd.ServeHTTP(w, r)
}

// isSelf reports whether u names the listener the request came in on, by
// IP literal and port (a best effort against forwarding loops).
func isSelf(u *url.URL, la net.Addr) bool {
	ta, ok := la.(*net.TCPAddr)
	if !ok {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	ip := net.ParseIP(u.Hostname())
	return port == strconv.Itoa(ta.Port) && ip != nil && (ip.Equal(ta.IP) || (ta.IP.IsUnspecified() && ip.IsLoopback()))
}

func (s *Server) logConnect(client, authority, mode string, fromClient, toClient int64, start time.Time, extra ...any) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	args := append([]any{"host", authority, "mode", mode, "client", client,
		"bytes_from_client", fromClient, "bytes_to_client", toClient,
		"duration", time.Since(start).Round(time.Millisecond)}, extra...)
	s.log.Debug("connect", args...)
}

func textError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// normalizeHost lower-cases a host name and drops a trailing dot.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hijack takes the connection over, clears the server's deadlines, and
// returns any bytes the client sent after the CONNECT head (a ClientHello
// sent without waiting for the 200).
func hijack(w http.ResponseWriter) (net.Conn, []byte, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	var pre []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pre = append([]byte(nil), b...)
	}
	return conn, pre, nil
}

// interceptConn is the client side of an intercepted CONNECT under TLS:
// it replays bytes read ahead by the proxy server, counts bytes, and logs
// once on close.
type interceptConn struct {
	net.Conn
	host      string
	pre       []byte // only touched by Read, which tls.Conn serialises
	rx, tx    atomic.Int64
	onClose   func()
	closeOnce sync.Once
}

func (c *interceptConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		c.rx.Add(int64(n))
		return n, nil
	}
	n, err := c.Conn.Read(p)
	c.rx.Add(int64(n))
	return n, err
}

func (c *interceptConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.tx.Add(int64(n))
	return n, err
}

func (c *interceptConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// connListener is a net.Listener fed with connections by push.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) error {
	select {
	case l.ch <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		select {
		case <-l.done:
			_ = c.Close()
			return nil, net.ErrClosed
		default:
			return c, nil
		}
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return interceptAddr{} }

type interceptAddr struct{}

func (interceptAddr) Network() string { return "intercept" }
func (interceptAddr) String() string  { return "intercept" }
