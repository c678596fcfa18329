// Package proxy is ecrgate's registry handler: it speaks the OCI
// distribution API to Docker, makes sure a repository exists before the
// first write of a push, and forwards everything to the upstream ECR
// registry, streamed both ways.
//
// Model: net/http/httputil.ReverseProxy with Rewrite (never Director),
// FlushInterval -1, and distribution's errcode for every error the proxy
// itself originates.
package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"golang.org/x/sync/singleflight"

	"github.com/ecrgate/ecrgate/pkg/blobindex"
	"github.com/ecrgate/ecrgate/pkg/distpath"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrname"
	"github.com/ecrgate/ecrgate/pkg/regerr"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
	"github.com/ecrgate/ecrgate/pkg/respwriter"
)

// MaxManifestSize is ECR's manifest limit; larger manifests are refused
// before they reach the upstream.
const MaxManifestSize = 4 << 20

// Ensurer makes sure a repository exists before a push writes to it
// (pkg/repocreate). Errors meant for the client are errcode.Error values.
type Ensurer interface {
	Ensure(ctx context.Context, registry, repository string) error
	Invalidate(registry, repository string)
}

// Tokens hands out registry credentials (pkg/ecrauth).
type Tokens interface {
	Token(ctx context.Context, registry string) (ecrauth.Token, error)
	Forget(registry string) error
}

// Target is where a client-facing repository goes.
type Target struct {
	Registry   string   // ECR registry host, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com
	Repository string   // repository name in that registry
	Upstream   *url.URL // scheme://host[:port] requests are sent to
}

// Mode is whose credentials a Proxy sends upstream.
type Mode int

const (
	// RegistryMode (localhost:5000/<name> on loopback): every request
	// upstream carries the proxy's own token; an Authorization header a
	// client sends is dropped, never forwarded.
	RegistryMode Mode = iota
	// InterceptMode (dockerd's HTTPS_PROXY, the real ECR host name): every
	// request carries the client's own Authorization and nothing else;
	// the proxy's token is never added. Docker meets ECR's own 401
	// challenge and uses its credential helper. A request that would
	// create a repository is refused unless the upstream accepts its
	// credentials for that repository (see verifyClient): anyone who can
	// reach the listener could otherwise make ecrgate create repositories
	// with its own AWS identity.
	InterceptMode
	// CallerMode is the registry listener of a shared team proxy
	// (allow_remote: true): the credentials of InterceptMode, the caller's
	// own and nothing else, for every client, loopback ones included,
	// under registry-mode names (ecrgate.example.internal:5000/<name>).
	CallerMode
)

// ownToken reports whether m sends the proxy's own token upstream.
func (m Mode) ownToken() bool { return m == RegistryMode }

func (m Mode) String() string {
	switch m {
	case RegistryMode:
		return "registry"
	case InterceptMode:
		return "intercept"
	case CallerMode:
		return "caller"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options configure a Proxy.
type Options struct {
	// Resolve maps the request's host and client-facing repository name
	// (name is "" for /v2/) to its target. Its errors reach the client, so
	// they should be errcode.Error values.
	Resolve func(host, name string) (Target, error)
	// Mode says whose credentials go upstream (default RegistryMode).
	Mode Mode
	// AnswerPing answers GET /v2/ itself, so Docker sends no credentials.
	// Registry mode only: New refuses it in InterceptMode and CallerMode.
	AnswerPing bool
	Ensurer    Ensurer
	Tokens     Tokens
	// Transport reaches the upstream: the innermost link of the upstream
	// chain (see newUpstreamChain), which adds the token, its refresh, the
	// re-creation of vanished repositories and the record of credentials
	// sent (default: NewTransport(DefaultTimeouts)).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Metrics   *Metrics
	// ManifestBudget bounds the bytes of manifests buffered at once; past
	// it a manifest PUT gets 429 TOOMANYREQUESTS with Retry-After. Share
	// one among the proxies of a process (default: a budget of
	// DefaultManifestBudget for this proxy alone).
	ManifestBudget *ManifestBudget
	// VerifyTTL is how long InterceptMode and CallerMode trust client
	// credentials the upstream accepted for a repository, at most (default
	// DefaultVerifyTTL; never past the token's own expiry when it can be
	// read).
	VerifyTTL time.Duration
	// Now is the clock of that trust (default time.Now).
	Now func() time.Time
	// Mounts and Blobs, both set, mount shared layers instead of letting
	// pushers upload them (see mount.go): Mounts answers whether and from
	// where, Blobs remembers where blobs were seen.
	Mounts MountFacts
	Blobs  *blobindex.Index
}

// Proxy is the registry http.Handler.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	verified *verified          // InterceptMode, CallerMode: client credentials the upstream accepted
	probes   singleflight.Group // InterceptMode, CallerMode: one credential probe at a time per fingerprint
	mounts   *mounter           // nil unless Options.Mounts and Options.Blobs are set
}

var _ http.Handler = (*Proxy)(nil)

// New returns a Proxy.
func New(o Options) (*Proxy, error) {
	if o.Resolve == nil || o.Ensurer == nil || o.Tokens == nil {
		return nil, errors.New("proxy: Resolve, Ensurer and Tokens are required")
	}
	switch o.Mode {
	case RegistryMode:
	case InterceptMode, CallerMode:
		if o.AnswerPing {
			return nil, fmt.Errorf("proxy: %v mode must not answer GET /v2/ itself: clients must meet the registry's own challenge", o.Mode)
		}
	default:
		return nil, fmt.Errorf("proxy: unknown %v", o.Mode)
	}
	if o.ManifestBudget == nil {
		o.ManifestBudget = NewManifestBudget(DefaultManifestBudget)
	}
	if o.VerifyTTL <= 0 {
		o.VerifyTTL = DefaultVerifyTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		o.Transport = NewTransport(DefaultTimeouts)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	p := &Proxy{opts: o, log: o.Logger, verified: newVerified(o.VerifyTTL, o.Now)}
	chain := newUpstreamChain(o)
	if o.Mounts != nil && o.Blobs != nil {
		p.mounts = &mounter{facts: o.Mounts, index: o.Blobs, rt: chain, direct: o.Transport, metrics: o.Metrics, o: o,
			promises: map[string]map[string]promise{}, deleted: map[string]time.Time{}}
		chain = &blobs{inner: chain, m: p.mounts}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      chain,
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	return p, nil
}

type ctxKey struct{}

// call is what the handler knows about one request, carried to the
// transport chain and ModifyResponse in the request context.
type call struct {
	route      distpath.Route
	target     Target
	mode       Mode   // the Proxy's: whose credentials go upstream
	clientName string // repository name as the client wrote it
	clientHost string // host the client addressed
	scheme     string // scheme the client used
	suffix     string // path after /v2/<name>
	start      time.Time
	// verified: InterceptMode or CallerMode, the upstream accepted the
	// client's credentials, so the request may create its repository.
	verified bool
	// sent holds every form of each Authorization value sent upstream,
	// cut out of whatever ecrgate logs or relays of the upstream's words.
	// The chain's sentAuth writes it while the request goes out; the
	// handler reads it once the answer is back, on the same goroutine.
	sent []string
}

// mayCreate reports whether ecrgate may create the request's repository
// with its own identity: always in registry mode; otherwise only for a
// client whose own credentials the upstream accepted.
func (c *call) mayCreate() bool {
	return c.mode.ownToken() || c.verified
}

// sentAuth records an Authorization value sent upstream.
func (c *call) sentAuth(auth string) {
	for _, f := range credentialForms(auth) {
		if !slices.Contains(c.sent, f) {
			c.sent = append(c.sent, f)
		}
	}
	slices.SortStableFunc(c.sent, func(a, b string) int { return len(b) - len(a) })
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(ctxKey{}).(*call)
	return c
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route := distpath.Parse(r.Method, r.URL.Path)
	sw := respwriter.New(w)
	in := &countingReader{r: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = in
	}
	var refused error // an error the proxy itself answered with
	defer func() {
		d := time.Since(start)
		p.opts.Metrics.observe(string(route.Op), sw.Status(), d, in.n, sw.Bytes())
		attrs := []any{"method", r.Method, "path", logPath(r.URL.Path), "op", route.Op, "status", sw.Status(),
			"bytes_in", in.n, "bytes_out", sw.Bytes(), "duration", d}
		if refused == nil {
			p.log.Debug("request", attrs...)
			return
		}
		// One line per refusal: what the client sent (quoted by the
		// handler, so hostile bytes cannot forge lines) and the code.
		code, msg := errInfo(refused)
		p.log.Info("request refused", append(attrs, "err.code", code, "err.message", msg)...)
	}()
	w = sw
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	refuse := func(err error) {
		refused = err
		serveError(w, err)
	}

	switch route.Op {
	case distpath.Base:
		if p.opts.AnswerPing {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
			return
		}
	case distpath.Catalog:
		refuse(errcode.ErrorCodeUnsupported.WithMessage("ECR has no catalog API; list repositories with aws ecr describe-repositories"))
		return
	case distpath.Unknown:
		refuse(errcode.ErrorCodeUnsupported.WithMessage(fmt.Sprintf("%s %q is not part of the registry API", r.Method, logPath(r.URL.Path))))
		return
	}
	target, err := p.opts.Resolve(r.Host, route.Name)
	if err != nil {
		refuse(err)
		return
	}
	if route.Name != "" {
		// Every request, reads included: a name ECR would refuse never
		// reaches the upstream.
		if err := ecrname.ValidateRepository(target.Repository); err != nil {
			refuse(nameInvalid(route.Name, target, err))
			return
		}
		if !strings.HasPrefix(r.URL.EscapedPath(), "/v2/"+route.Name+"/") {
			// Valid names hold nothing a client needs to percent-encode:
			// an encoded one (a%2Fb) tries to get past the rules.
			refuse(errcode.ErrorCodeNameInvalid.WithMessage(fmt.Sprintf("invalid repository name in %q: a repository name is never percent-encoded",
				logPath(r.URL.EscapedPath()))))
			return
		}
	}
	c := &call{route: route, target: target, mode: p.opts.Mode, clientName: route.Name, clientHost: r.Host, scheme: "http", start: start}
	if r.TLS != nil {
		c.scheme = "https"
	}
	if route.Name != "" {
		c.suffix = strings.TrimPrefix(r.URL.Path, "/v2/"+route.Name)
	}
	caller := repocreate.Caller{Addr: r.RemoteAddr}
	if !p.opts.Mode.ownToken() {
		if auth := r.Header.Values("Authorization"); len(auth) == 1 {
			caller.Token = repocreate.TokenFingerprint(auth[0])
		}
	}
	if route.Creates() && !p.opts.Mode.ownToken() {
		// Before anything is read or created: the client's own
		// credentials must be good for this repository of the registry.
		if err := p.verifyClient(r.Context(), r, target); err != nil {
			if code, _ := errInfo(err); code == errcode.ErrorCodeUnauthorized.String() {
				challenge(w, target.Registry)
			}
			refuse(err)
			return
		}
		c.verified = true
	}
	if route.Op == distpath.ManifestPut {
		// Before the ensure: a manifest ECR refuses creates no repository.
		release, err := bufferManifest(r, p.opts.ManifestBudget)
		defer release()
		if err != nil {
			if code, _ := errInfo(err); code == errcode.ErrorCodeTooManyRequests.String() {
				w.Header().Set("Retry-After", retryAfter)
			}
			refuse(err)
			return
		}
	}
	r = r.WithContext(repocreate.WithCaller(r.Context(), caller))
	if route.Creates() {
		if err := p.opts.Ensurer.Ensure(r.Context(), target.Registry, target.Repository); err != nil {
			p.opts.Metrics.Ensures.WithLabelValues("error").Inc()
			refuse(err)
			return
		}
		p.opts.Metrics.Ensures.WithLabelValues("ok").Inc()
		if p.mounts != nil {
			// The repository exists now: the layers promised to this
			// push's HEADs are mounted (or copied) before it goes on.
			if err := p.mounts.fulfil(r.Context(), c, r.Header.Get("Authorization")); err != nil {
				refuse(err)
				return
			}
		}
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
}

// nameInvalid is the NAME_INVALID answer for a client name whose target
// name breaks ECR's rules.
func nameInvalid(clientName string, t Target, err error) error {
	reason := err.Error()
	var ne *ecrname.Error
	if errors.As(err, &ne) {
		reason = ne.Reason
	}
	if t.Repository != clientName {
		return errcode.ErrorCodeNameInvalid.WithMessage(fmt.Sprintf("invalid repository name %q (%q in %s): %s",
			logPath(clientName), logPath(t.Repository), t.Registry, reason))
	}
	return errcode.ErrorCodeNameInvalid.WithMessage(fmt.Sprintf("invalid repository name %q: %s", logPath(clientName), reason))
}

// logPath shortens what a client sent for logs and messages; names are at
// most 256 characters, so nothing useful is lost.
func logPath(s string) string {
	const max = 512
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// errInfo returns the registry error code and message of err.
func errInfo(err error) (code, msg string) {
	var ec errcode.Error
	if errors.As(err, &ec) {
		return ec.Code.String(), ec.Message
	}
	var c errcode.ErrorCode
	if errors.As(err, &c) {
		return c.String(), c.Message()
	}
	return errcode.ErrorCodeUnknown.String(), err.Error()
}

// rewrite points the outgoing request at the upstream registry.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	c := callFrom(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = c.target.Upstream.Scheme
	out.URL.Host = c.target.Upstream.Host
	// ECR (and the emulator) pick the registry from Host.
	out.Host = c.target.Registry
	if c.route.Name != "" {
		out.URL.Path = "/v2/" + c.target.Repository + c.suffix
	} else {
		out.URL.Path = pr.In.URL.Path
	}
	out.URL.RawPath = ""
	if p.opts.Mode.ownToken() {
		// The upstream sees the proxy's own token only, never
		// credentials a client made up.
		out.Header.Del("Authorization")
	}
	if c.route.Op == distpath.UploadStart {
		q := out.URL.Query()
		if from := q.Get("from"); from != "" {
			ft, err := p.opts.Resolve(c.clientHost, from)
			if err == nil && ft.Registry == c.target.Registry && ecrname.ValidateRepository(ft.Repository) == nil {
				q.Set("from", ft.Repository)
			} else {
				// A mount across registries cannot work; a plain upload can.
				q.Del("from")
				q.Del("mount")
			}
			out.URL.RawQuery = q.Encode()
		}
	}
}

// modifyResponse rewrites Location and Link headers that point at the
// upstream so the client comes back through the proxy; redirects to other
// hosts (ECR sends blob downloads to S3) pass through untouched.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	c := callFrom(resp.Request.Context())
	if c == nil {
		return nil
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", p.rewriteURL(loc, c))
	}
	if links := resp.Header.Values("Link"); len(links) > 0 {
		resp.Header.Del("Link")
		for _, l := range links {
			resp.Header.Add("Link", p.rewriteLink(l, c))
		}
	}
	if len(c.sent) > 0 {
		// An upstream header that echoes a credential goes back without it.
		for k, vs := range resp.Header {
			for i, v := range vs {
				vs[i] = redact(v, c.sent)
			}
			resp.Header[k] = vs
		}
	}
	if resp.StatusCode >= 500 {
		p.opts.Metrics.UpstreamErrors.WithLabelValues("status_5xx").Inc()
	}
	if resp.StatusCode >= 400 && resp.Request.Method != http.MethodHead {
		p.checkErrorBody(resp, c)
	}
	return nil
}

// checkErrorBody replaces an upstream error body that is not a registry
// error (an HTML page from a load balancer, truncated JSON) with one, keeping
// the status, so the client shows a message instead of a parse failure. The
// credentials ecrgate sent are cut out of whatever it relays or logs of the
// body; in registry mode, where the client never knew them, a body too long
// or compressed to be checked is not relayed at all.
func (p *Proxy) checkErrorBody(resp *http.Response, c *call) {
	injected := p.opts.Mode.ownToken()
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		if injected {
			p.replaceErrorBody(resp, c, errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf(
				"%s answered %d %s with a %s-compressed body, which ecrgate does not relay", c.target.Registry, resp.StatusCode, http.StatusText(resp.StatusCode), ce)))
			resp.Header.Del("Content-Encoding")
		}
		return
	}
	body := peek(resp)
	if len(body) >= maxErrorPeek {
		if injected {
			p.replaceErrorBody(resp, c, errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf(
				"%s answered %d %s with an error body over %d KiB, which ecrgate does not relay", c.target.Registry, resp.StatusCode, http.StatusText(resp.StatusCode), maxErrorPeek>>10)))
		}
		return
	}
	text := redact(string(body), c.sent)
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 && e.Errors[0].Code != "" {
		if text != string(body) {
			// A registry error that echoes a credential: relayed without it.
			p.log.Warn("upstream error echoed the credentials sent; relayed with them cut out", "registry", c.target.Registry, "op", c.route.Op, "status", resp.StatusCode)
			setBody(resp, []byte(text))
		}
		return
	}
	shown := text
	if len(shown) > 200 {
		shown = shown[:200] + "…"
	}
	code := errcode.ErrorCodeUnknown
	if resp.StatusCode == http.StatusUnauthorized {
		// ECR's answer to missing or refused credentials ("Not Authorized"):
		// what an intercept-mode client meets before it sends its own.
		code = errcode.ErrorCodeUnauthorized
	}
	if resp.StatusCode == http.StatusUnauthorized && !injected {
		p.log.Debug("upstream asked for credentials", "registry", c.target.Registry, "op", c.route.Op, "body", shown)
	} else {
		p.opts.Metrics.UpstreamErrors.WithLabelValues("bad_error_body").Inc()
		p.log.Warn("upstream error is not a registry error", "registry", c.target.Registry, "op", c.route.Op,
			"status", resp.StatusCode, "body", shown)
	}
	p.replaceErrorBody(resp, c, code.WithMessage(fmt.Sprintf(
		"%s answered %d %s with a body that is not a registry error: %q", c.target.Registry, resp.StatusCode, http.StatusText(resp.StatusCode), shown)))
}

// replaceErrorBody makes e the body of resp, keeping the status.
func (p *Proxy) replaceErrorBody(resp *http.Response, c *call, e errcode.Error) {
	e.Message = redact(e.Message, c.sent)
	b, err := json.Marshal(errcode.Errors{e})
	if err != nil {
		return
	}
	drain(resp)
	setBody(resp, b)
	resp.Header.Set("Content-Type", "application/json; charset=utf-8")
}

// setBody replaces the body of resp with b.
func setBody(resp *http.Response, b []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

func (p *Proxy) rewriteURL(raw string, c *call) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Host != "" && !strings.EqualFold(u.Host, c.target.Registry) && !strings.EqualFold(u.Host, c.target.Upstream.Host) {
		return raw // S3 and other hosts: the client follows them itself
	}
	if u.Host != "" {
		u.Scheme, u.Host = c.scheme, c.clientHost
	}
	if c.route.Name != "" {
		prefix := "/v2/" + c.target.Repository + "/"
		if strings.HasPrefix(u.Path, prefix) {
			u.Path = "/v2/" + c.clientName + "/" + strings.TrimPrefix(u.Path, prefix)
			u.RawPath = ""
		}
	}
	return u.String()
}

// rewriteLink rewrites the URL of one Link header (`<url>; rel="next"`).
func (p *Proxy) rewriteLink(l string, c *call) string {
	i, j := strings.Index(l, "<"), strings.Index(l, ">")
	if i < 0 || j < i {
		return l
	}
	return l[:i+1] + p.rewriteURL(l[i+1:j], c) + l[j:]
}

func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	c := callFrom(r.Context())
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	// An error may quote what the upstream sent (a malformed status line):
	// the credentials ecrgate sent are cut out.
	var te *tokenError
	if errors.As(err, &te) {
		msg := redact(te.err.Error(), c.sent)
		p.log.Warn("no token for upstream", "registry", c.target.Registry, "err", msg)
		serveError(w, errcode.ErrorCodeUnauthorized.WithMessage(msg))
		return
	}
	msg := redact(err.Error(), c.sent)
	p.opts.Metrics.UpstreamErrors.WithLabelValues("unreachable").Inc()
	p.log.Warn("upstream unreachable", "registry", c.target.Registry, "upstream", c.target.Upstream.String(), "err", msg)
	serveError(w, errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf("cannot reach %s: %s", c.target.Registry, msg)))
}

func serveError(w http.ResponseWriter, err error) { regerr.Serve(w, err) }

// tokenError is a failure to get the proxy's own token for the upstream.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

func basicAuth(t ecrauth.Token) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(t.Username+":"+t.Password))
}
