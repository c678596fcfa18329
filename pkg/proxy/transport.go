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
// Options.Transport is nil; it is the innermost link of the upstream chain
// (see newUpstreamChain).
func NewTransport(t Timeouts) http.RoundTripper {
	t = t.withDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: t.Dial, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = t.TLSHandshake
	// Counted from the end of the request body, so uploads are not cut.
	tr.ResponseHeaderTimeout = t.SlowHeader
	return newHeaderTimeout(tr, t.Header, t.SlowHeader)
}

// headerTimeout gives requests without a body (other than PUT) a shorter
// wait for response headers than the inner transport's own, which must
// allow for the PUT that completes an upload; it names the upstream and
// says what to do in every error.
type headerTimeout struct {
	inner http.RoundTripper
	d     time.Duration // the wait it enforces
	slow  time.Duration // the inner transport's wait (ResponseHeaderTimeout), for its errors
}

var _ http.RoundTripper = (*headerTimeout)(nil)

// newHeaderTimeout bounds the wait for response headers of requests without
// a body other than PUT by d; slow is the inner transport's own
// ResponseHeaderTimeout, which bounds the others.
func newHeaderTimeout(inner http.RoundTripper, d, slow time.Duration) http.RoundTripper {
	return &headerTimeout{inner: inner, d: d, slow: slow}
}

// errNoHeaders ends a request whose upstream sent no response headers in time.
var errNoHeaders = errors.New("no response headers in time")

func (h *headerTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut || (req.Body != nil && req.Body != http.NoBody) {
		resp, err := h.inner.RoundTrip(req)
		if err != nil && isHeaderTimeout(err) {
			return nil, &upstreamTimeoutError{host: req.URL.Host, d: h.slow}
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

// newUpstreamChain builds, in this one place, the transport the handler's
// ReverseProxy sends every upstream request through: one small
// RoundTripper per job, outermost first,
//
//	recreate     a write the upstream answers NAME_UNKNOWN: forget the
//	             repository, ensure it again and retry once (registry mode,
//	             or an intercept client the upstream accepted)
//	tokenAuth    registry mode: ecrgate's own token on every request,
//	             refreshed once when the upstream refuses it
//	sentAuth     records every Authorization value that leaves, so nothing
//	             the upstream echoes of it is logged or relayed
//	o.Transport  NewTransport by default: headerTimeout around an
//	             http.Transport (dial, TLS handshake, response headers)
//
// so each attempt, the retries and the /v2/ probe included, carries a fresh
// token, is recorded and is bounded. No link holds the Proxy: what one
// needs to know of a request (registry, repository, route, mode, whether
// the client was verified) comes with it in its context (the call), the
// rest through its constructor. o must have its defaults (see New).
func newUpstreamChain(o Options) http.RoundTripper {
	rt := o.Transport
	rt = newSentAuth(rt)
	rt = newTokenAuth(rt, o.Tokens, o.Logger)
	rt = newRecreate(rt, o.Ensurer, o.Logger)
	return rt
}

// maxErrorPeek bounds how much of an upstream error body is read to
// classify it.
const maxErrorPeek = 64 << 10

// replayable reports whether r can be sent again: it has no body, or one
// GetBody can give again.
func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
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
