package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/listen"
)

// DockerdProxy is dockerd's proxy environment.
type DockerdProxy struct {
	HTTPSProxy string
	NoProxy    string
	// Source says where it was read: the docker API socket, or a systemd
	// drop-in file (then the running dockerd may not have it yet).
	Source string
	// FromDropIn is true when Source is a drop-in file.
	FromDropIn bool
}

// DefaultDropInDirs are where systemd drop-ins for docker.service live.
var DefaultDropInDirs = []string{
	"/etc/systemd/system/docker.service.d",
	"/run/systemd/system/docker.service.d",
}

// DefaultDockerSocket is dockerd's API socket without DOCKER_HOST.
const DefaultDockerSocket = "/var/run/docker.sock"

// DockerdProxyFrom returns the default Options.DockerdProxy: dockerd's
// HttpsProxy and NoProxy from its API (GET /info on the unix socket of
// DOCKER_HOST, else /var/run/docker.sock), and when the API cannot be
// reached, HTTPS_PROXY and NO_PROXY from the docker.service drop-ins in
// dirs. The error says what was tried.
func DockerdProxyFrom(env []string, dirs []string) func(ctx context.Context) (DockerdProxy, error) {
	return func(ctx context.Context) (DockerdProxy, error) {
		sock := DefaultDockerSocket
		if h := environ.Get(env, "DOCKER_HOST"); h != "" {
			if p, ok := strings.CutPrefix(h, "unix://"); ok {
				sock = p
			} else {
				sock = ""
			}
		}
		var apiErr error
		if sock != "" {
			p, err := dockerInfo(ctx, sock)
			if err == nil {
				return p, nil
			}
			apiErr = fmt.Errorf("docker API at unix://%s: %w", sock, err)
		} else {
			apiErr = fmt.Errorf("DOCKER_HOST=%s is not a unix socket", environ.Get(env, "DOCKER_HOST"))
		}
		p, ok, err := dropInProxy(dirs)
		if err != nil {
			return DockerdProxy{}, errors.Join(apiErr, err)
		}
		if ok {
			return p, nil
		}
		return DockerdProxy{}, fmt.Errorf("%w; no HTTPS_PROXY in a drop-in in %s", apiErr, strings.Join(dirs, " or "))
	}
}

// dockerInfo asks dockerd's API for its proxy settings.
func dockerInfo(ctx context.Context, sock string) (DockerdProxy, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/info", nil)
	if err != nil {
		return DockerdProxy{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return DockerdProxy{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return DockerdProxy{}, fmt.Errorf("GET /info: %s", resp.Status)
	}
	var info struct {
		HTTPSProxy string `json:"HttpsProxy"`
		NoProxy    string `json:"NoProxy"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&info); err != nil {
		return DockerdProxy{}, fmt.Errorf("GET /info: %w", err)
	}
	return DockerdProxy{HTTPSProxy: info.HTTPSProxy, NoProxy: info.NoProxy, Source: "the docker API (unix://" + sock + ")"}, nil
}

// dropInProxy reads HTTPS_PROXY and NO_PROXY from Environment= lines of the
// *.conf files in dirs (later files win, as in systemd).
func dropInProxy(dirs []string) (DockerdProxy, bool, error) {
	var p DockerdProxy
	found := false
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
		slices.Sort(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return p, false, fmt.Errorf("read %s: %w", f, err)
			}
			for _, line := range strings.Split(string(data), "\n") {
				v, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment=")
				if !ok {
					continue
				}
				for _, kv := range envWords(v) {
					k, val, _ := strings.Cut(kv, "=")
					switch strings.ToUpper(k) {
					case "HTTPS_PROXY":
						p.HTTPSProxy, p.Source, p.FromDropIn, found = val, f, true, true
					case "NO_PROXY":
						p.NoProxy = val
					}
				}
			}
		}
	}
	return p, found, nil
}

// envWords splits a systemd Environment= value into its assignments,
// honouring double and single quotes.
func envWords(s string) []string {
	var out []string
	var b strings.Builder
	var quote rune
	in := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			b.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}

// checkDockerdProxy checks that dockerd sends HTTPS through ecrgate's
// intercept listener and does not bypass it for the configured registries.
func (d *doctor) checkDockerdProxy(ctx context.Context) Result {
	ca, _ := d.loadCA()
	listen := loopbackAddr(d.cfg.Intercept.Listen)
	p, err := d.o.DockerdProxy(ctx)
	if err != nil {
		if ca == nil {
			return Result{Status: Skip, Detail: "intercept mode is off (no local CA)"}
		}
		return Result{Status: Warn, Detail: "could not determine dockerd's HTTPS_PROXY: " + err.Error(),
			Fix: fmt.Sprintf("run ecrgate doctor as a member of the docker group, or check by hand: docker info | grep -i proxy (want http://%s)", listen)}
	}
	install := "sudo install -D -m 0644 systemd/docker.service.d/ecrgate-proxy.conf /etc/systemd/system/docker.service.d/ecrgate-proxy.conf && sudo systemctl daemon-reload && sudo systemctl restart docker"
	if p.HTTPSProxy == "" {
		if ca == nil {
			return Result{Status: Skip, Detail: "intercept mode is off: no local CA, and dockerd has no HTTPS_PROXY (" + p.Source + ")"}
		}
		return Result{Status: Warn, Detail: fmt.Sprintf("dockerd has no HTTPS_PROXY (%s): pushes of real ECR names bypass ecrgate, so missing repositories are not created", p.Source),
			Fix: install}
	}
	if !sameEndpoint(p.HTTPSProxy, listen) {
		return Result{Status: Warn, Detail: fmt.Sprintf("dockerd's HTTPS_PROXY is %s (%s), not ecrgate's intercept listener http://%s", p.HTTPSProxy, p.Source, listen),
			Fix: fmt.Sprintf("point HTTPS_PROXY of docker.service at http://%s (systemd/docker.service.d/ecrgate-proxy.conf), or set intercept.listen: to match", listen)}
	}
	if ca == nil {
		return Result{Status: Fail, Detail: fmt.Sprintf("dockerd's HTTPS_PROXY is ecrgate's intercept listener (%s), but there is no local CA, so ecrgate does not listen there and every docker pull and push fails", p.Source),
			Fix: "ecrgate ca init && sudo ecrgate ca install, then restart ecrgate serve; or remove the drop-in"}
	}
	var bypassed []string
	for _, h := range d.interceptHosts() {
		if noProxyCovers(p.NoProxy, h) {
			bypassed = append(bypassed, h)
		}
	}
	if len(bypassed) > 0 {
		return Result{Status: Warn, Detail: fmt.Sprintf("dockerd's NO_PROXY (%s) bypasses ecrgate for %s", p.NoProxy, strings.Join(bypassed, ", ")),
			Fix: "remove those entries from NO_PROXY of docker.service"}
	}
	detail := fmt.Sprintf("HTTPS_PROXY=%s (%s)", p.HTTPSProxy, p.Source)
	if p.FromDropIn {
		return Result{Status: OK, Detail: detail + "; read from the drop-in, not from the running dockerd: restart docker if you changed it"}
	}
	return Result{Status: OK, Detail: detail}
}

// sameEndpoint reports whether proxy (a URL or host:port) is the listen
// address addr, taking any loopback name for any other.
func sameEndpoint(proxy, addr string) bool {
	hostport := proxy
	if u, err := url.Parse(proxy); err == nil && u.Host != "" {
		if u.Scheme != "http" {
			return false
		}
		hostport = u.Host
	}
	ph, pp, err1 := net.SplitHostPort(hostport)
	lh, lp, err2 := net.SplitHostPort(addr)
	if err1 != nil || err2 != nil || pp != lp {
		return false
	}
	// listen.CheckLoopback, not IsLoopbackHost: dockerd dials the proxy,
	// and a name under .localhost need not resolve to this machine there.
	return strings.EqualFold(ph, lh) || listen.CheckLoopback(hostport) == nil && listen.CheckLoopback(addr) == nil
}

// noProxyCovers reports whether a NO_PROXY list matches host the way Go's
// and dockerd's proxy selection do: "*", the host itself, or a domain
// suffix (".example.com" or "example.com").
func noProxyCovers(noProxy, host string) bool {
	for _, e := range strings.Split(noProxy, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if h, _, err := net.SplitHostPort(e); err == nil {
			e = h
		}
		switch {
		case e == "":
		case e == "*", e == host:
			return true
		case strings.HasPrefix(e, "*."):
			if strings.HasSuffix(host, e[1:]) {
				return true
			}
		case strings.HasPrefix(e, "."):
			if strings.HasSuffix(host, e) {
				return true
			}
		case strings.HasSuffix(host, "."+e):
			return true
		}
	}
	return false
}
