package proxy

import (
	"log/slog"
	"net/http"
	"strings"
)

// recreate handles a repository that vanished upstream after ecrgate
// ensured it (deleted behind its back): on a write the upstream answers
// 404 NAME_UNKNOWN, it makes the ensurer forget the repository and, if the
// request may create it and can be replayed, ensures it again and sends
// the request once more. Otherwise, or if that fails, the client gets the
// upstream's answer.
type recreate struct {
	inner http.RoundTripper
	ens   Ensurer
	log   *slog.Logger
}

var _ http.RoundTripper = (*recreate)(nil)

// newRecreate re-ensures through ens the repositories that requests sent
// through inner find missing.
func newRecreate(inner http.RoundTripper, ens Ensurer, log *slog.Logger) http.RoundTripper {
	return &recreate{inner: inner, ens: ens, log: log}
}

func (t *recreate) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	c := callFrom(req.Context())
	if err != nil || c == nil || !c.route.Write || resp.StatusCode != http.StatusNotFound ||
		!strings.Contains(string(peek(resp)), "NAME_UNKNOWN") {
		return resp, err
	}
	registry, repository := c.target.Registry, c.target.Repository
	t.ens.Invalidate(registry, repository)
	t.log.Info("repository vanished upstream", "registry", registry, "repository", repository)
	if !c.route.Creates() || !c.mayCreate() || !replayable(req) {
		return resp, nil
	}
	if err := t.ens.Ensure(req.Context(), registry, repository); err != nil {
		return resp, nil
	}
	again, err := rewind(req)
	if err != nil {
		return resp, nil
	}
	drain(resp)
	return t.inner.RoundTrip(again)
}
