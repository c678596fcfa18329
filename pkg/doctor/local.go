package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/dockerconfig"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/listen"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/route"
)

// helperName is the credHelpers value for docker-credential-ecrgate.
const helperName = "ecrgate"

// dockerHosts are the credHelpers keys ecrgate setup docker writes: every
// registry of the config and its shared team proxies (shared_proxies),
// never a local proxy host.
func (d *doctor) dockerHosts() []string {
	return d.cfg.CredHelperHosts()
}

// isLocalProxyHost reports whether a credHelpers key is a local proxy host,
// for which setup docker writes no entry (and removes an old one).
func (d *doctor) isLocalProxyHost(h string) bool {
	if listen.IsLoopbackHost(h) {
		return true
	}
	for local := range d.cfg.LocalHosts {
		if strings.EqualFold(local, h) {
			return true
		}
	}
	return false
}

func (d *doctor) checkDockerConfig(context.Context) Result {
	hosts := d.dockerHosts()
	if len(hosts) == 0 {
		return Result{Status: Skip, Detail: "the config names no registry"}
	}
	path := d.o.DockerConfig
	if path == "" {
		return Result{Status: Fail, Detail: "cannot locate Docker's config.json: neither DOCKER_CONFIG nor HOME is set", Fix: "set HOME or DOCKER_CONFIG"}
	}
	plan, err := dockerconfig.PlanCredHelpersDropping(path, helperName, hosts, d.isLocalProxyHost)
	if err != nil {
		return Result{Status: Fail, Detail: err.Error(), Fix: "fix " + path + " (Docker cannot read it either), then run ecrgate setup docker"}
	}
	if len(plan.Changes) == 0 {
		return Result{Status: OK, Detail: fmt.Sprintf("%s: credHelpers use ecrgate for %s", path, strings.Join(hosts, ", "))}
	}
	var missing, others, stale []string
	for _, c := range plan.Changes {
		switch {
		case c.Old == "":
			missing = append(missing, c.Host)
		case c.New == "":
			stale = append(stale, c.Host)
		default:
			others = append(others, fmt.Sprintf("%s (uses docker-credential-%s)", c.Host, c.Old))
		}
	}
	var parts []string
	if !plan.Exists {
		parts = append(parts, path+" does not exist")
	}
	if len(missing) > 0 {
		parts = append(parts, "no credHelpers entry for "+strings.Join(missing, ", "))
	}
	if len(others) > 0 {
		parts = append(parts, "another helper for "+strings.Join(others, ", "))
	}
	if len(missing)+len(others) > 0 {
		parts[len(parts)-1] += ": Docker will not ask docker-credential-ecrgate for these hosts' tokens"
	}
	if len(stale) > 0 {
		parts = append(parts, "credHelpers entries for local proxy hosts "+strings.Join(stale, ", ")+
			" (an earlier ecrgate wrote them; the helper now gives no token there, since registry mode needs none)")
	}
	return Result{Status: Warn, Detail: strings.Join(parts, "; "), Fix: "ecrgate setup docker"}
}

func (d *doctor) checkHelperOnPath(context.Context) Result {
	p, err := d.o.LookPath("docker-credential-" + helperName)
	if err != nil {
		return Result{Status: Warn, Detail: "docker-credential-ecrgate is not on PATH, so Docker cannot run it",
			Fix: "make install, or put the directory holding docker-credential-ecrgate and ecrgate-fetch-token on PATH"}
	}
	return Result{Status: OK, Detail: p}
}

// loopbackAddr turns a listen address into one to connect to: a wildcard
// host becomes 127.0.0.1.
func loopbackAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// checkProxy asks the registry listener for /v2/ and the admin listener
// for /metrics: ecrgate answers the first with {} and names its metrics
// ecrgate_*.
func (d *doctor) checkProxy(ctx context.Context) Result {
	addr := loopbackAddr(d.cfg.Listen)
	admin := loopbackAddr(d.cfg.AdminListen)
	start := "start it: ecrgate serve & (or systemctl --user enable --now ecrgate.socket ecrgate-admin.socket; see systemd/README.md)"
	status, hdr, body, err := d.get(ctx, "http://"+addr+"/v2/")
	if err != nil {
		if isRefused(err) {
			return Result{Status: Warn, Detail: fmt.Sprintf("nothing listens on %s (listen:): pushes to localhost names fail until the proxy runs", addr), Fix: start}
		}
		return Result{Status: Fail, Detail: fmt.Sprintf("GET http://%s/v2/: %v", addr, err), Fix: "check what listens on " + addr + " (ss -ltnp)"}
	}
	if status != http.StatusOK || hdr.Get("Docker-Distribution-Api-Version") != "registry/2.0" || strings.TrimSpace(string(body)) != "{}" {
		return Result{Status: Fail, Detail: fmt.Sprintf("%s answers GET /v2/ with status %d, not as ecrgate does: something else listens there", addr, status),
			Fix: "stop the other program, or move ecrgate with listen: in the config (and push to that address)"}
	}
	status, _, body, err = d.get(ctx, "http://"+admin+"/metrics")
	if err != nil || status != http.StatusOK || !bytes.Contains(body, []byte("ecrgate_requests_total")) {
		why := fmt.Sprintf("status %d without ecrgate metrics", status)
		if err != nil {
			why = err.Error()
		}
		return Result{Status: Warn, Detail: fmt.Sprintf("a registry answers on %s, but the admin endpoint %s does not look like ecrgate's (%s)", addr, admin, why),
			Fix: "check admin_listen: in the config; if another registry listens on " + addr + ", stop it"}
	}
	return Result{Status: OK, Detail: fmt.Sprintf("ecrgate answers on %s (admin %s)", addr, admin)}
}

// get fetches url with a bounded body.
func (d *doctor) get(ctx context.Context, url string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := d.o.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, body, err
}

func isRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// loadCA loads the local CA; nil without one.
func (d *doctor) loadCA() (*localca.CA, error) {
	ca, err := localca.Load(d.o.CADir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ca, err
}

func (d *doctor) checkCA(context.Context) Result {
	ca, err := d.loadCA()
	if err != nil {
		return Result{Status: Fail, Detail: err.Error(), Fix: "see the message; ecrgate serve refuses to start intercept mode with this CA"}
	}
	if ca == nil {
		return Result{Status: Skip, Detail: fmt.Sprintf("intercept mode is off: no local CA in %s", d.o.CADir),
			Fix: "to push real ECR names through ecrgate: ecrgate ca init, then sudo ecrgate ca install"}
	}
	cert := ca.Certificate()
	left := time.Until(cert.NotAfter)
	detail := fmt.Sprintf("%s: fingerprint %s, valid until %s", ca.Dir(), ca.Fingerprint(), cert.NotAfter.UTC().Format("2006-01-02"))
	switch {
	case left <= 0:
		return Result{Status: Fail, Detail: detail + " (expired)", Fix: "ecrgate ca uninstall, remove the CA files, ecrgate ca init, sudo ecrgate ca install"}
	case left < 30*24*time.Hour:
		return Result{Status: Warn, Detail: detail + " (expires within 30 days)", Fix: "renew it: ecrgate ca uninstall, remove the CA files, ecrgate ca init, sudo ecrgate ca install"}
	}
	return Result{Status: OK, Detail: detail}
}

// interceptHosts are the configured private ECR hosts that intercept mode
// decrypts (as serve's resolver, pkg/route, says) and which need the CA in
// certs.d.
func (d *doctor) interceptHosts() []string {
	ca, err := d.loadCA()
	if err != nil || ca == nil {
		return nil
	}
	rt := route.New(d.cfg)
	var hosts []string
	for _, h := range d.cfg.RegistryHosts() {
		if r, err := ecrhost.Parse(h); err == nil && !r.Public && rt.Intercepts(r.Host) {
			hosts = append(hosts, r.Host)
		}
	}
	return hosts
}

// checkCAInstalled looks for the CA at <certs dir>/<host>/ca.crt.
func (d *doctor) checkCAInstalled(_ context.Context, host string) Result {
	ca, err := d.loadCA()
	if err != nil || ca == nil {
		return Result{Status: Skip, Detail: "no usable local CA"}
	}
	if !ca.Permits(host) {
		return Result{Status: Fail, Detail: fmt.Sprintf("the local CA's name constraints do not permit %s", host),
			Fix: "ecrgate ca uninstall, remove the CA files, ecrgate ca init, sudo ecrgate ca install"}
	}
	severity := Warn
	if r, _ := d.result("dockerd proxy"); r.Status == OK {
		severity = Fail // dockerd sends this host through ecrgate: the push fails
	}
	var other []string
	for _, dir := range d.o.CertsDirs {
		path := filepath.Join(dir, host, "ca.crt")
		data, err := os.ReadFile(path)
		switch {
		case err == nil && bytes.Equal(bytes.TrimSpace(data), bytes.TrimSpace(ca.PEM())):
			return Result{Status: OK, Detail: path}
		case err == nil:
			other = append(other, path)
		case !errors.Is(err, fs.ErrNotExist):
			other = append(other, fmt.Sprintf("%s (%v)", path, err))
		}
	}
	install := fmt.Sprintf("sudo ecrgate ca install --dir %s (Docker Desktop: ecrgate ca install --docker-desktop)", ca.Dir())
	if len(other) > 0 {
		return Result{Status: severity, Detail: fmt.Sprintf("%s holds another certificate than the local CA: dockerd will refuse ecrgate's certificate for %s", strings.Join(other, ", "), host),
			Fix: "move the old file away, then " + install}
	}
	return Result{Status: severity, Detail: fmt.Sprintf("no ca.crt for %s in %s: a push through intercept mode fails with \"x509: certificate signed by unknown authority\"", host, strings.Join(d.o.CertsDirs, " or ")),
		Fix: install}
}

// checkInterceptListener sends a CONNECT for a configured registry to the
// intercept listener and completes a TLS handshake, trusting only the local
// CA: the way dockerd reaches ecrgate in intercept mode. Nothing goes
// upstream: the connection closes after the handshake.
func (d *doctor) checkInterceptListener(ctx context.Context) Result {
	ca, err := d.loadCA()
	if err != nil || ca == nil {
		return Result{Status: Skip, Detail: "intercept mode is off (no usable local CA)"}
	}
	hosts := d.interceptHosts()
	if len(hosts) == 0 {
		return Result{Status: Skip, Detail: "the config names no private ECR registry to intercept"}
	}
	host := hosts[0]
	addr := loopbackAddr(d.cfg.Intercept.Listen)
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		if r, _ := d.result("proxy"); r.Status != OK {
			return Result{Status: Warn, Detail: fmt.Sprintf("nothing listens on %s (intercept.listen:)", addr), Fix: "start ecrgate serve; it opens the intercept listener when a CA exists"}
		}
		return Result{Status: Fail, Detail: fmt.Sprintf("ecrgate serve runs but nothing listens on %s (intercept.listen:): it was started before the CA existed, or failed to open the port", addr),
			Fix: "restart ecrgate serve and look at its log"}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	target := net.JoinHostPort(host, "443")
	req := &http.Request{Method: http.MethodConnect} // a CONNECT answer has no body
	if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		return Result{Status: Fail, Detail: fmt.Sprintf("CONNECT via %s: %v", addr, err)}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return Result{Status: Fail, Detail: fmt.Sprintf("CONNECT %s via %s: %v", target, addr, err), Fix: "check what listens on " + addr}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{Status: Fail, Detail: fmt.Sprintf("%s refused CONNECT %s: %s", addr, target, resp.Status),
			Fix: "check intercept.hosts in the config and ecrgate serve's log"}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	if err := tc.HandshakeContext(ctx); err != nil {
		return Result{Status: Fail, Detail: fmt.Sprintf("TLS to %s through %s with the local CA: %v", host, addr, err),
			Fix: "the running ecrgate uses another CA than " + ca.Dir() + ": restart it, or pass the same --dir"}
	}
	_ = tc.Close()
	return Result{Status: OK, Detail: fmt.Sprintf("%s decrypts %s with a certificate from the local CA", addr, host)}
}
