package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Defaults of the check of client credentials (InterceptMode, CallerMode).
const (
	// DefaultVerifyTTL is how long, at most, a client's Authorization that
	// the upstream accepted for a repository counts as verified.
	DefaultVerifyTTL = 5 * time.Minute
	// maxVerified bounds how many verified credentials are remembered.
	maxVerified = 1024
)

// probeDigest is the digest of empty content: the blob the credential
// probe asks about (whether it exists does not matter).
const probeDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// errNoClientCredentials refuses a request that would create a repository
// without credentials the registry accepts.
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
// upstream accepted for a repository, by a SHA-256 fingerprint of
// upstream, registry, repository and Authorization value: never the value
// itself.
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
	return sha256.Sum256([]byte(t.Upstream.Scheme + "://" + t.Upstream.Host + "\x00" + t.Registry + "\x00" + t.Repository + "\x00" + auth))
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

// remember trusts fp for the TTL, or until expires (the token's own
// expiry) when that is sooner; not at all when expires has passed.
func (v *verified) remember(fp [sha256.Size]byte, expires time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	until := now.Add(v.ttl)
	if !expires.IsZero() && expires.Before(until) {
		until = expires
	}
	if !now.Before(until) {
		return
	}
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
	v.m[fp] = until
}

// tokenExpiry reads when an ECR token expires from the Authorization value
// that carries it, or returns the zero time when it cannot tell. An ECR
// token is "Basic " + base64("AWS:" + password), and ECR's password is the
// base64 of a JSON envelope ({"payload":…,"datakey":…,"version":"2",
// "type":"DATA_KEY","expiration":<Unix seconds>}). Nothing here trusts the
// value beyond shortening how long a check is remembered: the upstream
// decides whether the token is good.
func tokenExpiry(auth string) time.Time {
	const maxAuth = 16 << 10
	enc, ok := strings.CutPrefix(auth, "Basic ")
	if !ok || len(enc) > maxAuth {
		return time.Time{}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return time.Time{}
	}
	_, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return time.Time{}
	}
	envelope, err := base64.StdEncoding.DecodeString(password)
	if err != nil {
		if envelope, err = base64.RawStdEncoding.DecodeString(password); err != nil {
			return time.Time{}
		}
	}
	var e struct {
		Expiration json.Number `json:"expiration"`
	}
	if json.Unmarshal(envelope, &e) != nil {
		return time.Time{}
	}
	n, err := e.Expiration.Int64()
	if err != nil || n <= 0 {
		return time.Time{}
	}
	if n > 1e12 { // milliseconds
		return time.UnixMilli(n)
	}
	return time.Unix(n, 0)
}

// verifyClient checks, before a request may make ecrgate create a
// repository with its own identity, that the client's own Authorization
// is good for that repository of that registry. Whoever reaches the
// listener (any local user for intercept mode, the network for a shared
// proxy) could otherwise have repositories created with made-up
// credentials, or with a token of another account.
//
// GET /v2/ would not do: an ECR token is not bound to a registry (a token
// from GetAuthorizationToken opens every registry whose policies let its
// principal in, and /v2/ needs only a valid token), so it proves nothing
// about this registry. The probe is therefore
//
//	HEAD /v2/<repository>/blobs/sha256:<empty>
//
// with the client's Authorization: ecr:BatchCheckLayerAvailability on the
// repository, the first thing every push asks, so any identity that may
// push there may ask it, and it reads and changes nothing. ECR (and the
// emulator, pkg/ecrfake authorize) decide authorization before existence:
//
//   - 401: no or an unknown token;
//   - 403: a token that expired, or whose principal may not push to that
//     repository (another account's, without a registry or repository
//     policy that allows it; an IAM policy without the action);
//   - 404 (NAME_UNKNOWN for a repository that does not exist yet,
//     BLOB_UNKNOWN otherwise) or 200: the principal is allowed there.
//
// So 200 and 404 accept (a redirect too: it is only sent to an authorized
// caller), 401 and 403 refuse, anything else is UNAVAILABLE. An acceptance
// is remembered by a fingerprint of (upstream, registry, repository,
// Authorization) for VerifyTTL, never past the token's own expiry when it
// can be read (tokenExpiry), so a revoked or expired token stops creating
// within that bound; the push itself meets ECR's own checks anyway.
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
	// Pushers upload a manifest's blobs in parallel: the requests of one
	// client for one repository share a single probe. It runs without the
	// first caller's cancellation (the transport's timeouts bound it), so
	// one client giving up does not fail the others.
	_, err, _ := p.probes.Do(string(fp[:]), func() (any, error) {
		return nil, p.probeClient(context.WithoutCancel(ctx), t, auth, fp, refused)
	})
	return err
}

// probeClient asks the upstream whether it accepts auth for t's repository
// and remembers a yes under fp.
func (p *Proxy) probeClient(ctx context.Context, t Target, auth string, fp [sha256.Size]byte, refused func(string) error) error {
	probe, err := http.NewRequestWithContext(ctx, http.MethodHead, t.Upstream.Scheme+"://"+t.Upstream.Host+"/v2/"+t.Repository+"/blobs/"+probeDigest, nil)
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
	case http.StatusOK, http.StatusNotFound, http.StatusTemporaryRedirect, http.StatusFound:
		p.verified.remember(fp, tokenExpiry(auth))
		p.log.Debug("client credentials accepted by the upstream", "registry", t.Registry, "repository", t.Repository)
		return nil
	case http.StatusUnauthorized:
		return refused("it answered 401 to them")
	case http.StatusForbidden:
		return errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"ecrgate creates repository %q only for a client that may push to it: %s refused the client's credentials for it (403; the token expired, or its identity, perhaps of another account, may not push to this registry)",
			t.Repository, t.Registry))
	}
	return errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf("cannot check the client's credentials: %s answered %d %s to HEAD /v2/%s/blobs/…; retry the push",
		t.Registry, resp.StatusCode, http.StatusText(resp.StatusCode), t.Repository))
}
