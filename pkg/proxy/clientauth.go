package proxy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Defaults of the intercept-mode credential check.
const (
	// DefaultVerifyTTL is how long a client's Authorization that the
	// upstream accepted counts as verified.
	DefaultVerifyTTL = 5 * time.Minute
	// maxVerified bounds how many verified credentials are remembered.
	maxVerified = 1024
)

// errNoClientCredentials refuses an intercept-mode request that would create
// a repository without credentials the registry accepts.
type errNoClientCredentials struct {
	registry, repository, why string
}

func (e *errNoClientCredentials) Error() string {
	return fmt.Sprintf("ecrgate creates repository %q only for a client whose credentials %s accepts (%s): configure a credential helper for %s in the client's Docker config (credHelpers: {%q: \"ecrgate\"})",
		e.repository, e.registry, e.why, e.registry, e.registry)
}

// challenge writes ECR's own answer to a request without valid
// credentials: 401, a Basic challenge naming the registry, UNAUTHORIZED.
func challenge(w http.ResponseWriter, registry string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="https://%s/",service="ecr.amazonaws.com"`, registry))
}

// verified remembers, for a bounded time, the client credentials an
// upstream accepted, by a SHA-256 fingerprint of upstream, registry and
// Authorization value: never the value itself.
type verified struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[[sha256.Size]byte]time.Time // fingerprint -> expiry
}

func newVerified(ttl time.Duration, now func() time.Time) *verified {
	return &verified{ttl: ttl, now: now, m: map[[sha256.Size]byte]time.Time{}}
}

func fingerprint(t Target, auth string) [sha256.Size]byte {
	return sha256.Sum256([]byte(t.Upstream.Scheme + "://" + t.Upstream.Host + "\x00" + t.Registry + "\x00" + auth))
}

func (v *verified) known(fp [sha256.Size]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	exp, ok := v.m[fp]
	if ok && !v.now().Before(exp) {
		delete(v.m, fp)
		return false
	}
	return ok
}

func (v *verified) remember(fp [sha256.Size]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if _, ok := v.m[fp]; !ok && len(v.m) >= maxVerified {
		// Full: drop what expired, then, if need be, what expires first.
		var first [sha256.Size]byte
		var firstExp time.Time
		for k, exp := range v.m {
			if !now.Before(exp) {
				delete(v.m, k)
				continue
			}
			if firstExp.IsZero() || exp.Before(firstExp) {
				first, firstExp = k, exp
			}
		}
		if len(v.m) >= maxVerified {
			delete(v.m, first)
		}
	}
	v.m[fp] = now.Add(v.ttl)
}

// verifyClient checks, before an intercept-mode request may create a
// repository, that the client's own Authorization is accepted by the
// upstream (GET /v2/ answers 200 with it). Any local user can reach the
// intercept listener: without this check, made-up credentials would make
// ecrgate create repositories with its own AWS identity.
func (p *Proxy) verifyClient(ctx context.Context, r *http.Request, t Target) error {
	values := r.Header.Values("Authorization")
	refused := func(why string) error {
		return errcode.ErrorCodeUnauthorized.WithMessage((&errNoClientCredentials{registry: t.Registry, repository: t.Repository, why: why}).Error())
	}
	switch {
	case len(values) == 0 || values[0] == "":
		return refused("the request carries none")
	case len(values) > 1:
		return refused("the request carries several Authorization headers")
	}
	auth := values[0]
	fp := fingerprint(t, auth)
	if p.verified.known(fp) {
		return nil
	}
	probe, err := http.NewRequestWithContext(ctx, http.MethodGet, t.Upstream.Scheme+"://"+t.Upstream.Host+"/v2/", nil)
	if err != nil {
		return err
	}
	probe.Host = t.Registry
	probe.Header.Set("Authorization", auth)
	resp, err := p.opts.Transport.RoundTrip(probe)
	if err != nil {
		msg := redact(fmt.Sprintf("cannot check the client's credentials with %s: %v", t.Registry, err), credentialForms(auth))
		p.opts.Metrics.UpstreamErrors.WithLabelValues("unreachable").Inc()
		return errcode.ErrorCodeUnavailable.WithMessage(msg)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		p.verified.remember(fp)
		p.log.Debug("client credentials accepted by the upstream", "registry", t.Registry)
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return refused(fmt.Sprintf("it answered %d to them", resp.StatusCode))
	}
	return errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf("cannot check the client's credentials: %s answered %d %s to GET /v2/; retry the push",
		t.Registry, resp.StatusCode, http.StatusText(resp.StatusCode)))
}
