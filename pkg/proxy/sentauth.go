package proxy

import "net/http"

// sentAuth records in the request's call every Authorization value sent
// upstream (ecrgate's token, a refreshed one, or in intercept mode the
// client's own), so the handler cuts every form of it out of what it logs
// or relays of the upstream's answer (see redact.go). It sits below every
// link that sets or resends credentials, so it sees each attempt.
type sentAuth struct {
	inner http.RoundTripper
}

var _ http.RoundTripper = (*sentAuth)(nil)

// newSentAuth records the credentials of the requests sent through inner.
func newSentAuth(inner http.RoundTripper) http.RoundTripper {
	return &sentAuth{inner: inner}
}

func (t *sentAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	if c := callFrom(req.Context()); c != nil {
		for _, a := range req.Header.Values("Authorization") {
			c.sentAuth(a)
		}
	}
	return t.inner.RoundTrip(req)
}
