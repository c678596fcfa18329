package proxy

import (
	"log/slog"
	"net/http"
	"strings"
)

// tokenAuth sends ecrgate's own token for the request's registry upstream,
// in registry mode only: in the other modes the client's own credentials go
// upstream untouched, and the token is never asked for. When the upstream
// refuses the token (401, ECR's 403 "Your authorization token has expired",
// or a 403 to a HEAD that a probe of /v2/ shows to be one of those) and the
// request can be replayed, it drops the token from the cache and sends the
// request once more with a new one.
type tokenAuth struct {
	inner  http.RoundTripper
	tokens Tokens
	log    *slog.Logger
}

var _ http.RoundTripper = (*tokenAuth)(nil)

// newTokenAuth adds the tokens of tokens to the registry-mode requests sent
// through inner.
func newTokenAuth(inner http.RoundTripper, tokens Tokens, log *slog.Logger) http.RoundTripper {
	return &tokenAuth{inner: inner, tokens: tokens, log: log}
}

func (t *tokenAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	c := callFrom(req.Context())
	if c == nil || !c.mode.ownToken() {
		return t.inner.RoundTrip(req)
	}
	registry := c.target.Registry
	out, err := t.authorize(req, registry)
	if err != nil {
		return nil, err
	}
	resp, err := t.inner.RoundTrip(out)
	if err != nil || !replayable(req) {
		return resp, err
	}
	if !tokenRefused(resp) && (req.Method != http.MethodHead || resp.StatusCode != http.StatusForbidden || !t.tokenExpired(out)) {
		return resp, nil
	}
	// The cached token was revoked or expired early: refresh once.
	again, err := rewind(req)
	if err != nil {
		return resp, nil
	}
	drain(resp)
	t.log.Info("upstream refused the token; refreshing", "registry", registry)
	if err := t.tokens.Forget(registry); err != nil {
		t.log.Warn("could not drop the refused token from the cache", "registry", registry, "err", err)
	}
	if out, err = t.authorize(again, registry); err != nil {
		return nil, err
	}
	return t.inner.RoundTrip(out)
}

// authorize returns a copy of req carrying the token for registry: never
// the caller's request with headers changed.
func (t *tokenAuth) authorize(req *http.Request, registry string) (*http.Request, error) {
	tok, err := t.tokens.Token(req.Context(), registry)
	if err != nil {
		return nil, &tokenError{err: err}
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", basicAuth(tok))
	return out, nil
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
func (t *tokenAuth) tokenExpired(sent *http.Request) bool {
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
