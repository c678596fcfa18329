// Package credhelper is docker-credential-ecrgate: the Docker credential
// helper protocol (docker-credential-helpers) on top of ecrauth.
//
// get answers for every host ecrhost accepts, and for the shared team
// proxies the config names (shared_proxies, the token of the registry each
// serves); any other host, local proxy hosts included, gets the library's
// "credentials not found" so Docker falls back to its own store. Registry mode (localhost:5000) never asks
// for credentials, since ecrgate answers /v2/ itself: a token handed out
// for a loopback host could only reach whatever else listens on that port
// while ecrgate is stopped (another local user). store and erase succeed, so `docker login` and
// `docker logout` against ECR hosts just work (erase also drops the cached
// token). stdout belongs to the protocol; logs go to stderr or ECRGATE_LOG.
package credhelper

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/listen"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// Timeout bounds one get, credential resolution included.
const Timeout = 60 * time.Second

// Tokens is where the helper gets tokens: the lean cache-then-fetcher
// (CachedTokens) in the binary, or an ecrauth.Source in process.
type Tokens interface {
	Token(ctx context.Context, registry string) (tokencache.Token, error)
	Forget(registry string) error
	Cached() []tokencache.Token
}

// Helper implements credentials.Helper.
type Helper struct {
	Tokens Tokens
	// LocalHosts are the registry-mode proxy hosts of the config
	// (local_hosts: keys, e.g. "host.docker.internal:5000"). Like every
	// loopback host they get no token: ecrgate answers their /v2/ itself,
	// so Docker never needs one, and a token sent there would go to
	// whoever listens on the port when ecrgate does not.
	LocalHosts map[string]string
	// SharedProxies are shared team proxies (shared_proxies: keys, lower
	// case, e.g. "ecrgate.example.internal:5000") with the ECR registry
	// each serves: another machine's ecrgate with allow_remote, which sends
	// the caller's own token upstream, so Docker must hand it one. A host
	// that is also local (loopback or in LocalHosts) still gets none.
	SharedProxies map[string]string
	Log           *slog.Logger
	// Stderr receives the one-sentence explanation of a failure.
	Stderr io.Writer
	// LogErrors also records failures in Log (when Log is a file, not stderr).
	LogErrors bool
}

var _ credentials.Helper = (*Helper)(nil)

// normalizeHost turns what docker passes ("host", "https://host/v2/",
// "host:port") into a lower-case host[:port].
func normalizeHost(serverURL string) string {
	s := strings.TrimSpace(serverURL)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(serverURL))
	}
	return strings.ToLower(strings.TrimSuffix(u.Host, "."))
}

// looksLikeECR reports whether host was meant as an ECR registry, so a typo
// in it deserves an error rather than a silent fallback.
func looksLikeECR(host string) bool {
	return strings.Contains(host, ".dkr.ecr") || strings.Contains(host, ".dkr-ecr") || strings.HasSuffix(host, "ecr.aws")
}

// errLocalHost is a target() answer for a local proxy host: credentials
// not found, so Docker pushes without any, which registry mode expects.
var errLocalHost = credentials.NewErrCredentialsNotFound()

// isLocal reports whether host is a registry-mode proxy host: loopback, or
// a local_hosts: name.
func (h *Helper) isLocal(host string) bool {
	_, ok := h.LocalHosts[host]
	return ok || listen.IsLoopbackHost(host)
}

// target resolves the registry whose token serves host. Only a host that
// ecrhost accepts, or a shared proxy named in the config, reaches the token
// source: a local proxy host or any other host gets credentials-not-found,
// and a malformed ECR host an error.
func (h *Helper) target(serverURL string) (string, error) {
	host := normalizeHost(serverURL)
	if h.isLocal(host) {
		return "", errLocalHost
	}
	if reg, ok := h.SharedProxies[host]; ok {
		r, err := ecrhost.Parse(reg)
		if err != nil {
			return "", fmt.Errorf("shared_proxies[%q]: %w", host, err)
		}
		return r.Host, nil
	}
	reg, err := ecrhost.Parse(host)
	if err != nil {
		if looksLikeECR(host) {
			return "", err
		}
		return "", credentials.NewErrCredentialsNotFound()
	}
	return reg.Host, nil
}

// Get returns the ECR username and password for serverURL.
func (h *Helper) Get(serverURL string) (string, string, error) {
	start := time.Now()
	reg, err := h.target(serverURL)
	if err != nil {
		if err == errLocalHost {
			h.Log.Debug("no token for a local proxy host: ecrgate's registry mode needs none", "server", serverURL)
		} else if !credentials.IsErrCredentialsNotFound(err) {
			h.explain(serverURL, err)
		}
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	tok, err := h.Tokens.Token(ctx, reg)
	if err != nil {
		h.explain(serverURL, err)
		return "", "", err
	}
	h.Log.Debug("get", "server", serverURL, "registry", reg, "expires_at", tok.ExpiresAt, "duration", time.Since(start))
	return tok.Username, tok.Password, nil
}

func (h *Helper) explain(serverURL string, err error) {
	if h.LogErrors {
		h.Log.Error("get failed", "server", serverURL, "err", err)
	}
	if h.Stderr != nil {
		fmt.Fprintf(h.Stderr, "docker-credential-ecrgate: %v\n", err)
	}
}

// Add is called by `docker login`: ecrgate fetches ECR tokens itself, so
// there is nothing to store; succeeding keeps docker login working.
func (h *Helper) Add(c *credentials.Credentials) error {
	if host := normalizeHost(c.ServerURL); h.isLocal(host) {
		return fmt.Errorf("%s is a local ecrgate proxy host, which needs no login: remove it from credHelpers in Docker's config.json (ecrgate setup docker does)", host)
	}
	if _, err := h.target(c.ServerURL); err != nil {
		if credentials.IsErrCredentialsNotFound(err) {
			return fmt.Errorf("docker-credential-ecrgate only serves Amazon ECR registries; remove %q from credHelpers in Docker's config.json", normalizeHost(c.ServerURL))
		}
		return err
	}
	h.Log.Info("store ignored: ecrgate fetches ECR tokens itself", "server", c.ServerURL)
	return nil
}

// Delete is called by `docker logout`: it drops the cached token.
func (h *Helper) Delete(serverURL string) error {
	reg, err := h.target(serverURL)
	if err != nil {
		if credentials.IsErrCredentialsNotFound(err) {
			return nil
		}
		return err
	}
	return h.Tokens.Forget(reg)
}

// List returns the registries with a cached, unexpired token, each with
// username AWS.
func (h *Helper) List() (map[string]string, error) {
	out := map[string]string{}
	for _, t := range h.Tokens.Cached() {
		out[t.Registry] = t.Username
	}
	return out, nil
}

// Run is the helper's main: args are os.Args[1:]; it returns the exit code.
func Run(h *Helper, args []string, stdin io.Reader, stdout io.Writer) int {
	if code, ok := Info(args, stdout); ok {
		return code
	}
	if len(args) != 1 {
		fmt.Fprintln(stdout, usage())
		return 1
	}
	switch args[0] {
	case credentials.ActionStore, credentials.ActionGet, credentials.ActionErase, credentials.ActionList:
	default:
		fmt.Fprintf(stdout, "%s: unknown action %q: use get, store, erase, list, version, help or completion\n", credentials.Name, args[0])
		return 1
	}
	if err := credentials.HandleCommand(h, args[0], stdin, stdout); err != nil {
		// Docker shows this line (stdout) when the helper fails.
		fmt.Fprintln(stdout, err)
		return 1
	}
	return 0
}

// ListHosts returns List's keys sorted, for display.
func ListHosts(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var helpText = `docker-credential-ecrgate is a Docker credential helper for Amazon ECR.
Name it in ~/.docker/config.json:

  {"credHelpers": {"123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecrgate"}}

(` + "`ecrgate setup docker`" + ` writes this for you). Tokens are cached in
$XDG_CACHE_HOME/ecrgate (default ~/.cache/ecrgate) and refreshed before they
expire. Per-registry AWS profiles and roles come from ecrgate's config file
($XDG_CONFIG_HOME/ecrgate/config.yaml, or ECRGATE_CONFIG).

Actions (Docker runs get, store, erase and list; each reads its input from stdin):
  get         print {"ServerURL","Username","Secret"} for the registry host on stdin
  store       accept docker login (ecrgate fetches tokens itself; nothing is stored)
  erase       drop the cached token of the registry host on stdin (docker logout)
  list        print the registries that have a cached token
  version     print the version
  completion  print a bash, zsh or fish completion script

Examples:
  echo 123456789012.dkr.ecr.us-east-1.amazonaws.com | docker-credential-ecrgate get
  docker-credential-ecrgate list
  echo 123456789012.dkr.ecr.us-east-1.amazonaws.com | docker-credential-ecrgate erase
  docker-credential-ecrgate completion bash > ~/.local/share/bash-completion/completions/docker-credential-ecrgate
  docker-credential-ecrgate completion zsh > "${fpath[1]}/_docker-credential-ecrgate"
  docker-credential-ecrgate completion fish > ~/.config/fish/completions/docker-credential-ecrgate.fish

Environment:
  ECRGATE_CONFIG          config file path
  ECRGATE_DISABLE_CACHE=1 call AWS on every get
  ECRGATE_LOG=PATH        append logs to PATH (never tokens)
  ECRGATE_LOG_LEVEL       debug | info | warn | error (default warn)
  ECRGATE_FETCHER=PATH    the ecrgate-fetch-token to run on a cache miss
  AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_ECR and the rest of the AWS SDK's variables`
