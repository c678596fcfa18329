package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// upstreamTransport adds the proxy's token when the client sent none,
// refreshes it once on a 401, and re-ensures a repository that vanished
// (upstream NAME_UNKNOWN on a write), retrying requests that can be replayed.
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
	injected := req.Header.Get("Authorization") == ""
	var sent *http.Request // the last request sent, with its Authorization
	send := func(refresh bool) (*http.Response, error) {
		out := req
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
			if replayable(req) && c.route.Creates() {
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
