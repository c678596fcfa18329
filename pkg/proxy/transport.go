package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Timeouts bound how long the proxy waits for an upstream registry that is
// down or hangs. Nothing bounds a body in transit: a layer streams to ECR,
// or a blob from it, for as long as it takes (the client's going away ends
// it).
type Timeouts struct {
	// Dial bounds the TCP connection (default 10s).
	Dial time.Duration
	// TLSHandshake bounds the TLS handshake (default 10s).
	TLSHandshake time.Duration
	// Header bounds the wait for the response headers of a request without
	// a body other than PUT: the pings, HEADs and GETs, upload starts,
	// upload status and deletes, which ECR answers at once (default 60s).
	Header time.Duration
	// SlowHeader bounds the wait for the response headers once a request
	// body was sent, and for PUTs: ECR answers the PUT that completes an
	// upload only after it has checked the whole layer (default 5m).
	SlowHeader time.Duration
}

// DefaultTimeouts are the timeouts of `ecrgate serve`.
var DefaultTimeouts = Timeouts{Dial: 10 * time.Second, TLSHandshake: 10 * time.Second, Header: time.Minute, SlowHeader: 5 * time.Minute}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	if t.Dial <= 0 {
		t.Dial = d.Dial
	}
	if t.TLSHandshake <= 0 {
		t.TLSHandshake = d.TLSHandshake
	}
	if t.Header <= 0 {
		t.Header = d.Header
	}
	if t.SlowHeader <= 0 {
		t.SlowHeader = d.SlowHeader
	}
	return t
}

// NewTransport returns the transport for upstream registries, bounded by t
// (zero fields take DefaultTimeouts): dial, TLS handshake and the wait for
// response headers, never the bodies. proxy.New uses it when
// Options.Transport is nil.
func NewTransport(t Timeouts) http.RoundTripper {
	t = t.withDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: t.Dial, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = t.TLSHandshake
	// Counted from the end of the request body, so uploads are not cut.
	tr.ResponseHeaderTimeout = t.SlowHeader
	return &headerTimeout{inner: tr, d: t.Header}
}

// headerTimeout gives requests without a body a shorter wait for response
// headers than the transport's ResponseHeaderTimeout, which must allow for
// the PUT that completes an upload.
type headerTimeout struct {
	inner *http.Transport
	d     time.Duration
}

var _ http.RoundTripper = (*headerTimeout)(nil)

// errNoHeaders ends a request whose upstream sent no response headers in time.
var errNoHeaders = errors.New("no response headers in time")

func (h *headerTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut || (req.Body != nil && req.Body != http.NoBody) {
		resp, err := h.inner.RoundTrip(req)
		if err != nil && isHeaderTimeout(err) {
			return nil, &upstreamTimeoutError{host: req.URL.Host, d: h.inner.ResponseHeaderTimeout}
		}
		return resp, withAdvice(req.URL.Host, err)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(h.d, func() { cancel(errNoHeaders) })
	resp, err := h.inner.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() {
		// The time ran out, perhaps just as the headers came: the request's
		// context is gone, so its body could not be read.
		if err == nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, &upstreamTimeoutError{host: req.URL.Host, d: h.d}
	}
	if err != nil {
		cancel(nil)
		return nil, withAdvice(req.URL.Host, err)
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	return resp, nil
}

// withAdvice names the upstream host in err and says what to do about an
// upstream that cannot be connected to or dropped the connection.
func withAdvice(host string, err error) error {
	if err == nil {
		return nil
	}
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial": // the dial error names the address
		return fmt.Errorf("%w; check the network and the registry's endpoint: setting, then retry the push", err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("upstream %s closed the connection before answering (%w); retry the push", host, err)
	}
	return err
}

func isHeaderTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && strings.Contains(err.Error(), "awaiting response headers")
}

// upstreamTimeoutError is an upstream that took a connection and did not answer.
type upstreamTimeoutError struct {
	host string
	d    time.Duration
}

func (e *upstreamTimeoutError) Error() string {
	return fmt.Sprintf("upstream %s accepted the connection but sent no response headers within %v; check that the registry (or its endpoint: override) is healthy, then retry the push", e.host, e.d)
}

func (e *upstreamTimeoutError) Timeout() bool { return true }

// cancelOnClose ends a request's context once its response body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// upstreamTransport adds the proxy's token in registry mode and refreshes
// it once on a 401 (never in intercept mode, where the client's own
// credentials go upstream untouched), and re-ensures a repository that
// vanished (upstream NAME_UNKNOWN on a write), retrying requests that can
// be replayed. It records every Authorization value it sends, so nothing
// the upstream echoes of it is logged or relayed.
type upstreamTransport struct {
	p     *Proxy
	inner http.RoundTripper
}

var _ http.RoundTripper = (*upstreamTransport)(nil)

// maxErrorPeek bounds how much of an upstream error body is read to
// classify it.
const maxErrorPeek = 64 << 10

func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := callFrom(req.Context())
	if c == nil {
		return t.inner.RoundTrip(req)
	}
	// Registry mode only; the handler's Rewrite dropped the client's own.
	injected := t.p.opts.Mode == RegistryMode
	var sent *http.Request // the last request sent, with its Authorization
	send := func(refresh bool) (*http.Response, error) {
		out := req
		defer func() {
			for _, a := range out.Header.Values("Authorization") {
				c.sentAuth(a)
			}
		}()
		if injected {
			if refresh {
				if err := t.p.opts.Tokens.Forget(c.target.Registry); err != nil {
					t.p.log.Warn("could not drop the refused token from the cache", "registry", c.target.Registry, "err", err)
				}
			}
			tok, err := t.p.opts.Tokens.Token(req.Context(), c.target.Registry)
			if err != nil {
				return nil, &tokenError{err: err}
			}
			// Clone before setting headers: never mutate the caller's request.
			out = req.Clone(req.Context())
			out.Header.Set("Authorization", basicAuth(tok))
		}
		sent = out
		return t.inner.RoundTrip(out)
	}
	resp, err := send(false)
	if err != nil {
		return nil, err
	}
	if injected && (tokenRefused(resp) || (req.Method == http.MethodHead && resp.StatusCode == http.StatusForbidden && t.tokenExpired(sent))) && replayable(req) {
		// The cached token was revoked or expired early: refresh once.
		if req, err = rewind(req); err == nil {
			drain(resp)
			t.p.log.Info("upstream refused the token; refreshing", "registry", c.target.Registry)
			return send(true)
		}
	}
	if resp.StatusCode == http.StatusNotFound && c.route.Write {
		body := peek(resp)
		if strings.Contains(string(body), "NAME_UNKNOWN") {
			// A repository we believed in was deleted: forget it, and if the
			// request can be replayed, create it again and retry once.
			t.p.opts.Ensurer.Invalidate(c.target.Registry, c.target.Repository)
			t.p.log.Info("repository vanished upstream", "registry", c.target.Registry, "repository", c.target.Repository)
			// Never for an intercept-mode client the upstream did not
			// accept: ecrgate creates with its own identity.
			mayCreate := injected || c.verified
			if replayable(req) && c.route.Creates() && mayCreate {
				if err := t.p.opts.Ensurer.Ensure(req.Context(), c.target.Registry, c.target.Repository); err == nil {
					if req, err = rewind(req); err == nil {
						drain(resp)
						return send(false)
					}
				}
			}
		}
	}
	return resp, nil
}

// tokenRefused reports an upstream answer that means "get a new token":
// 401, or ECR's 403 "Your authorization token has expired".
func tokenRefused(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		return strings.Contains(string(peek(resp)), "authorization token has expired")
	}
	return false
}

// tokenExpired asks the upstream's /v2/ with the same credentials whether a
// 403 without a body (a HEAD) means an expired token rather than a denial.
func (t *upstreamTransport) tokenExpired(sent *http.Request) bool {
	probe, err := http.NewRequestWithContext(sent.Context(), http.MethodGet, sent.URL.Scheme+"://"+sent.URL.Host+"/v2/", nil)
	if err != nil {
		return false
	}
	probe.Host = sent.Host
	probe.Header.Set("Authorization", sent.Header.Get("Authorization"))
	resp, err := t.inner.RoundTrip(probe)
	if err != nil {
		return false
	}
	defer drain(resp)
	return tokenRefused(resp)
}

// rewind returns req with a fresh body for a second attempt.
func rewind(req *http.Request) (*http.Request, error) {
	if req.GetBody == nil {
		return req, nil
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r2 := req.Clone(req.Context())
	r2.Body = b
	return r2, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorPeek))
	resp.Body.Close()
}

// peek reads the start of an error body and puts it back.
func peek(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorPeek))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return b
}
