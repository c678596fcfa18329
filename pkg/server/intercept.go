package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/intercept"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/proxy"
)

// InterceptHosts decides which CONNECT targets are decrypted: the ECR
// registries the config names ("configured"), or every private ECR
// registry host of the accounts it names ("all-ecr"; every account when it
// names none). Anything else is tunnelled or refused.
func InterceptHosts(cfg *config.Config) func(host string) bool {
	configured := map[string]bool{}
	accounts := map[string]bool{}
	for _, h := range cfg.RegistryHosts() {
		h = strings.ToLower(h)
		configured[h] = true
		if r, err := ecrhost.Parse(h); err == nil && r.Account != "" {
			accounts[r.Account] = true
		}
	}
	allECR := cfg.Intercept.Hosts == config.InterceptAllECR
	return func(host string) bool {
		host = strings.ToLower(host)
		if configured[host] {
			return true
		}
		if !allECR {
			return false
		}
		r, err := ecrhost.Parse(host)
		if err != nil || r.Public || r.Host != host {
			return false
		}
		return len(accounts) == 0 || accounts[r.Account]
	}
}

// InterceptResolver maps an intercepted request to its registry: the host
// dockerd asked for, under the same repository name, sent to the real host
// or to the registry's endpoint override.
func InterceptResolver(cfg *config.Config) func(host, name string) (proxy.Target, error) {
	upstreams := upstreamCache(cfg)
	return func(host, name string) (proxy.Target, error) {
		h := strings.ToLower(host)
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		if _, err := ecrhost.Parse(h); err != nil {
			return proxy.Target{}, errcode.ErrorCodeNameUnknown.WithMessage(err.Error())
		}
		upstream, err := upstreams(h)
		if err != nil {
			return proxy.Target{}, err
		}
		return proxy.Target{Registry: h, Repository: name, Upstream: upstream}, nil
	}
}

// startIntercept runs the intercept listener when a local CA exists. It
// returns the listener's address ("" when intercept mode is off).
func startIntercept(ctx context.Context, o Options, log *slog.Logger, mk func(proxy.Options) (*proxy.Proxy, error), base proxy.Options, errc chan<- error) (net.Addr, error) {
	cfg := o.Config
	dir := o.CADir
	if dir == "" {
		dir = localca.DefaultDir(o.Env)
	}
	ca, err := localca.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("intercept mode is off: no local CA (run `ecrgate ca init` and `ecrgate ca install` to turn it on)", "ca_dir", dir)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("intercept: %w", err)
	}
	ln, err := openListener(ctx, "intercept", "intercept.listen", cfg.Intercept.Listen, o.Listeners)
	if err != nil {
		return nil, err
	}
	allow := InterceptHosts(cfg)
	minter := localca.NewMinter(ca, allow, time.Now)
	po := base
	po.Resolve = InterceptResolver(cfg)
	// dockerd meets ECR's own challenge and sends the token of its
	// credential helper; ecrgate's own token is never added, and a request
	// creates a repository only with credentials the registry accepts.
	po.Mode = proxy.InterceptMode
	po.AnswerPing = false
	h, err := mk(po)
	if err != nil {
		ln.Close()
		return nil, err
	}
	is, err := intercept.New(intercept.Options{
		Intercept:    allow,
		TLSConfig:    &tls.Config{GetCertificate: minter.GetCertificate, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		Handler:      h,
		TunnelOthers: cfg.Intercept.Tunnel(),
		Logger:       log,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	go func() { errc <- is.Serve(ctx, ln) }()
	log.Info("intercept mode on", "listen", ln.Addr().String(), "hosts", cfg.Intercept.Hosts, "tunnel_others", cfg.Intercept.Tunnel(), "ca", ca.Fingerprint())
	return ln.Addr(), nil
}
