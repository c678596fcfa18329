//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// The two ECR registries of the client matrix, both served by one emulator.
// Registry-mode pushes (127.0.0.1:<port>/<repo>) land in the default one;
// intercept-mode pushes name the other, which no other test uses, so the
// CA this test installs in /etc/docker/certs.d cannot collide with theirs.
// containerd's hosts.toml also names the other one: ecrgate must route by
// containerd's ?ns= to reach it.
const (
	matrixAccount   = "123456789012"
	matrixDefault   = matrixAccount + ".dkr.ecr.us-east-1.amazonaws.com"
	matrixAccountX  = "210987654321"
	matrixIntercept = matrixAccountX + ".dkr.ecr.us-east-1.amazonaws.com"
)

const (
	modeRegistry  = "registry"
	modeIntercept = "intercept"
)

// TestClientMatrix pushes a new repository with every client we claim to
// support, in registry mode (127.0.0.1:<port>/…, plain HTTP) and in
// intercept mode (the real ECR name, the client's HTTPS proxy at ecrgate
// and ecrgate's CA trusted), through one `ecrgate serve`. Each cell then
// checks, at the emulator itself, that the manifest digest the client
// pushed is there and that CreateRepository ran once per new repository.
// The docker and buildx cells run against every Docker Engine we support
// (matrixEngines), with the classic image store and with the containerd
// image store. The matrix (client × engine × store × mode → pass, FAIL,
// skip or n.a. with the reason) is logged at the end.
//
// Tools that are not Debian packages are built on demand through the Go
// module proxy and cached under os.UserCacheDir()/ecrgate-e2e: the buildx
// CLI plugin, nerdctl, the docker CLI 29 and Engines 28 and 29 (in the
// background, in that order, while the cells that do not need them run).
// A missing tool skips its cells, or fails them when CI=true.
func TestClientMatrix(t *testing.T) {
	began := time.Now()
	m := &clientMatrix{}
	t.Cleanup(func() {
		t.Logf("client matrix (%s):\n%s", time.Since(began).Round(time.Second), m)
		// E2E_MATRIX_FILE=path keeps the table (Markdown) for a report.
		if p := os.Getenv("E2E_MATRIX_FILE"); p != "" {
			if err := os.WriteFile(p, []byte(m.String()+"\n"), 0o644); err != nil {
				t.Errorf("E2E_MATRIX_FILE: %v", err)
			}
		}
	})
	// Before HOME changes: the tools are cached under the user's cache dir.
	tools := startToolBuilds(t)
	t.Setenv("AWS_CA_BUNDLE", "")
	os.Unsetenv("AWS_CA_BUNDLE")

	env := startMatrix(t)
	dockerCells := []matrixClient{
		{"docker", "docker import + push", func(t *testing.T, c *cell) { cellDocker(t, c, c.d) }},
		{"buildx", "docker buildx build --push (docker driver)", func(t *testing.T, c *cell) { cellBuildx(t, c, c.d, tools) }},
	}
	otherCells := []matrixClient{
		{"podman", "podman", cellPodman},
		{"skopeo", "skopeo", cellSkopeo},
		{"crane", "crane (go-containerregistry)", cellCrane},
		{"ko-sbom", "ko-style push + SBOM", cellKoSBOM},
		{"kaniko", "kaniko push-permission probe", cellKaniko},
		{"oras", "ORAS-style artifact + referrer", cellORAS},
		{"nerdctl", "nerdctl (containerd + hosts.toml)", func(t *testing.T, c *cell) { cellNerdctl(t, c, tools) }},
	}
	engines := matrixEngines(tools)
	// Debian's engine first; the built ones last, so their builds overlap
	// the cells that need no dockerd.
	for _, e := range engines {
		if e.dockerd == nil {
			env.runEngine(t, m, e, dockerCells)
		}
	}
	for _, cl := range otherCells {
		for _, mode := range []string{modeRegistry, modeIntercept} {
			env.run(t, m, cl.slug, cl.client, mode, cl.run)
		}
	}
	for _, e := range engines {
		if e.dockerd != nil {
			env.runEngine(t, m, e, dockerCells)
		}
	}
}

// matrixClient is one row group of the matrix: a client and its cell.
type matrixClient struct {
	slug, client string // slug names the cell's repositories and subtest
	run          func(t *testing.T, c *cell)
}

// dockerEngine is a Docker Engine (dockerd and the docker CLI that goes
// with it) in one image store.
type dockerEngine struct {
	slug    string // in subtest and repository names
	name    string // in the matrix until the daemon tells its version
	store   string // storeClassic or storeContainerd
	dockerd *toolBuild
	cli     *toolBuild // nil with dockerd nil: Debian's dockerdBin and dockerCLI
	// na, when set, is why this engine cannot run in this store.
	na string
}

// storeLabels name the image stores in the matrix.
var storeLabels = map[string]string{storeClassic: "classic (vfs)", storeContainerd: "containerd (native)"}

// matrixEngines: Debian's dockerd 20.10 (classic store only: the
// containerd image store came with Engine 24), Engine 28.5.2 and Engine 29
// built from their modules, each in both stores, driven by the docker CLI
// 29.10.0.
func matrixEngines(tools *toolBuilds) []dockerEngine {
	es := []dockerEngine{
		{slug: "20.10", name: "20.10 (Debian)", store: storeClassic},
		{slug: "20.10", name: "20.10 (Debian)", store: storeContainerd,
			na: "the containerd image store came with Engine 24 (features.containerd-snapshotter)"},
	}
	for _, e := range []struct {
		slug, name string
		dockerd    *toolBuild
	}{{"e28", "28.5.2", tools.dockerd28}, {"e29", "29.8.1-dev (moby/v2 " + dockerd29Tool.Version + ")", tools.dockerd29}} {
		for _, store := range []string{storeClassic, storeContainerd} {
			es = append(es, dockerEngine{slug: e.slug, name: e.name, store: store, dockerd: e.dockerd, cli: tools.dockerCLI29})
		}
	}
	return es
}

// binaries waits for the engine's builds and returns its dockerd and
// docker CLI, or why there are none.
func (e dockerEngine) binaries() (dockerd, cli, missing string) {
	if e.dockerd == nil {
		return dockerdBin, dockerCLI, missingTools(dockerCLI, dockerdBin)
	}
	var err error
	if dockerd, _, err = e.dockerd.wait(); err != nil {
		return "", "", fmt.Sprintf("dockerd %s could not be built: %v", e.name, err)
	}
	if cli, _, err = e.cli.wait(); err != nil {
		return "", "", fmt.Sprintf("the docker CLI %s could not be built: %v", dockerCLI29Tool.Version, err)
	}
	tools := []string{dockerd, cli}
	if e.store == storeContainerd {
		tools = append(tools, containerdBin)
	}
	return dockerd, cli, missingTools(tools...)
}

// runEngine runs the docker cells against one engine and store, in a
// subtest that starts the engine's dockerd and stops it at its end (only
// one dockerd runs at a time).
func (m *matrixEnv) runEngine(t *testing.T, mx *clientMatrix, e dockerEngine, cells []matrixClient) {
	t.Run("engine-"+e.slug+"-"+e.store, func(t *testing.T) {
		var d *Dockerd
		engine := cmp.Or(m.engineVersions[e.slug], e.name)
		store := storeLabels[e.store]
		var missing string
		dockerd, cli := "", ""
		if e.na == "" {
			dockerd, cli, missing = e.binaries()
		}
		ran := 0
		defer func() {
			// dockerd did not start: every cell of this engine says so.
			if ran == 0 && e.na == "" {
				for _, cl := range cells {
					for _, mode := range []string{modeRegistry, modeIntercept} {
						mx.set(cl.client, engine, store, mode, "FAIL", "dockerd did not start; see the log")
					}
				}
			}
		}()
		if e.na == "" && missing == "" {
			d = m.dockerd(t, DockerdOptions{Dockerd: dockerd, CLI: cli, Store: e.store})
			engine = d.Version
			if e.dockerd != nil {
				engine += " (built), CLI " + strings.TrimSuffix(strings.TrimPrefix(dockerCLI29Tool.Version, "v"), "+incompatible")
			} else {
				engine += " (Debian)"
			}
			m.engineVersions[e.slug] = engine
			defer d.Stop()
		}
		for _, cl := range cells {
			slug := cl.slug
			if e.slug != "20.10" {
				slug += "-" + e.slug + "-" + e.store
			}
			for _, mode := range []string{modeRegistry, modeIntercept} {
				ran++
				m.runIn(t, mx, cl.slug+"/"+mode, slug, cl.client, engine, store, mode, func(t *testing.T, c *cell) {
					switch {
					case e.na != "":
						c.NotApplicable(e.na)
					case missing != "":
						c.Missing(missing)
					}
					c.d = d
					cl.run(t, c)
				})
			}
		}
	})
}

// --- the matrix --------------------------------------------------------------

type matrixCell struct{ client, engine, store, mode, result, detail string }

// clientMatrix collects the outcome of every cell.
type clientMatrix struct {
	mu    sync.Mutex
	cells []matrixCell
}

func (m *clientMatrix) set(client, engine, store, mode, result, detail string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cells = append(m.cells, matrixCell{client, engine, store, mode, result, detail})
}

// String renders the matrix as a Markdown table.
func (m *clientMatrix) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows := [][]string{{"client", "engine", "store", "mode", "result"}}
	for _, c := range m.cells {
		line := c.result
		if c.detail != "" {
			// One line per cell: a failed build's output is in the log.
			first, rest, cut := strings.Cut(strings.TrimSpace(c.detail), "\n")
			line += ": " + first
			if cut {
				line += fmt.Sprintf(" (%d more lines in the log)", strings.Count(rest, "\n")+1)
			}
		}
		rows = append(rows, []string{c.client, c.engine, c.store, c.mode, line})
	}
	w := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, f := range r {
			w[i] = max(w[i], len(f))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		b.WriteString("|")
		for i, f := range r {
			if i == len(r)-1 {
				fmt.Fprintf(&b, " %s |\n", f)
			} else {
				fmt.Fprintf(&b, " %-*s |", w[i], f)
			}
		}
	}
	line(rows[0])
	sep := make([]string, len(w))
	for i := range w {
		sep[i] = strings.Repeat("-", w[i])
	}
	sep[len(sep)-1] = "---"
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
	return strings.TrimRight(b.String(), "\n")
}

// --- the environment ---------------------------------------------------------

// matrixEnv is what every cell shares: the emulator, ecrgate serve with
// both listeners, the local CA, and credentials for the clients that bring
// their own.
type matrixEnv struct {
	parent  *testing.T // the matrix test: what outlives one cell
	e       *ecrfake.Emulator
	api     *ecr.Client
	bin     string
	listen  string // registry mode, 127.0.0.1:port
	ilisten string // intercept mode (HTTPS_PROXY), 127.0.0.1:port
	caDir   string // ecrgate's CA directory
	caPEM   []byte
	caPool  *x509.CertPool

	// helperEnv lets docker-credential-ecrgate, run by a client, get tokens
	// for matrixIntercept from the emulator.
	helperEnv []string

	tokMu  sync.Mutex
	tokens map[string]string // account -> "AWS:<password>"

	caInstalled bool // in /etc/docker/certs.d, for matrixIntercept
	// engineVersions: engine slug -> what the matrix calls it, once its
	// dockerd has told its version.
	engineVersions map[string]string
}

func startMatrix(t *testing.T) *matrixEnv {
	t.Helper()
	m := &matrixEnv{parent: t, bin: binDir(t), tokens: map[string]string{}, engineVersions: map[string]string{}}
	m.e = ecrfake.Start(t, ecrfake.Options{Accounts: []string{matrixAccount, matrixAccountX}})
	m.api = ecr.NewFromConfig(aws.Config{Region: m.e.Region(), BaseEndpoint: aws.String(m.e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(m.e.AccessKey(), m.e.SecretKey(), "")})

	data := t.TempDir()
	m.caDir = filepath.Join(data, "ecrgate", "ca")
	mustRun(t, nil, filepath.Join(m.bin, "ecrgate"), "ca", "init", "--dir", m.caDir)
	pem, err := os.ReadFile(filepath.Join(m.caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	m.caPEM = pem
	m.caPool = x509.NewCertPool()
	if !m.caPool.AppendCertsFromPEM(pem) {
		t.Fatal("ecrgate's ca.crt holds no certificate")
	}
	m.ilisten = freePort(t)
	// startServe's config ends inside its registries list: the first lines
	// add the second registry to it.
	extra := fmt.Sprintf("  - host: %s\n    endpoint: %s\nintercept:\n  listen: %s\n", matrixIntercept, m.e.URL(), m.ilisten)
	m.listen = startServe(t, m.e, extra, "XDG_DATA_HOME="+data)
	m.helperEnv = append(m.e.Env(), "XDG_CACHE_HOME="+t.TempDir(),
		"PATH="+m.bin+string(os.PathListSeparator)+os.Getenv("PATH")+string(os.PathListSeparator)+"/usr/sbin:/usr/bin:/sbin:/bin")
	return m
}

// cell is one client × mode: where the client pushes, and what it must
// have created.
type cell struct {
	*matrixEnv
	t      *testing.T
	client string
	mode   string
	// Host is what the client puts in its image references: the registry
	// listener (registry mode) or the ECR host (intercept mode).
	Host string
	// Registry and Account are where the pushes land.
	Registry, Account string
	slug              string
	created           []string // repositories the cell checked were created
	note              string
	// d is the dockerd of the docker cells; nil elsewhere.
	d *Dockerd
}

// Repo returns a repository name no other cell uses.
func (c *cell) Repo(suffix string) string {
	r := "matrix/" + c.slug + "-" + c.mode
	if suffix != "" {
		r += "-" + suffix
	}
	return r
}

// Note adds a remark to the cell's matrix line.
func (c *cell) Note(format string, args ...any) {
	if c.note != "" {
		c.note += "; "
	}
	c.note += fmt.Sprintf(format, args...)
}

// NotApplicable ends the cell as "n.a." with the reason.
func (c *cell) NotApplicable(reason string) {
	c.t.Helper()
	c.note = "n.a.:" + reason
	c.t.Skip("not applicable: " + reason)
}

// Missing ends the cell for lack of a tool: a skip, or a failure with CI=true.
func (c *cell) Missing(reason string) {
	c.t.Helper()
	c.note = reason
	if os.Getenv("CI") == "true" {
		c.t.Fatalf("%s (CI=true, so this is a failure, not a skip)", reason)
	}
	c.t.Skipf("%s (set CI=true to make this fatal)", reason)
}

// run runs a cell that needs no dockerd.
func (m *matrixEnv) run(t *testing.T, mx *clientMatrix, slug, client, mode string, fn func(*testing.T, *cell)) {
	m.runIn(t, mx, slug+"/"+mode, slug, client, "-", "-", mode, fn)
}

// runIn runs one cell as the subtest name; slug names its repositories.
func (m *matrixEnv) runIn(t *testing.T, mx *clientMatrix, name, slug, client, engine, store, mode string, fn func(*testing.T, *cell)) {
	t.Run(name, func(t *testing.T) {
		c := &cell{matrixEnv: m, t: t, client: client, mode: mode, slug: slug,
			Host: m.listen, Registry: matrixDefault, Account: matrixAccount}
		if mode == modeIntercept {
			c.Host, c.Registry, c.Account = matrixIntercept, matrixIntercept, matrixAccountX
		}
		before := m.e.Calls("CreateRepository")
		start := time.Now()
		set := func(result, detail string) { mx.set(client, engine, store, mode, result, detail) }
		defer func() {
			took := time.Since(start).Round(100 * time.Millisecond)
			switch {
			case strings.HasPrefix(c.note, "n.a.:"):
				set("n.a.", strings.TrimPrefix(c.note, "n.a.:"))
			case t.Skipped():
				set("skip", c.note)
			case t.Failed():
				set("FAIL", c.note)
			default:
				n := m.e.Calls("CreateRepository") - before
				if n != len(c.created) {
					t.Errorf("CreateRepository ran %d times, want once for each of %v", n, c.created)
					set("FAIL", fmt.Sprintf("CreateRepository ran %d times for %d repositories", n, len(c.created)))
					return
				}
				detail := fmt.Sprintf("%s; %d new repo(s), CreateRepository ×%d", took, len(c.created), n)
				if c.note != "" {
					detail += "; " + c.note
				}
				set("pass", detail)
			}
		}()
		fn(t, c)
	})
}

// token returns "AWS:<password>" for an account, from the emulator.
func (m *matrixEnv) token(t *testing.T, account string) string {
	t.Helper()
	m.tokMu.Lock()
	defer m.tokMu.Unlock()
	if tok, ok := m.tokens[account]; ok {
		return tok
	}
	//lint:ignore SA1019 registryIds is deprecated but still names the registry whose proxyEndpoint ECR returns
	out, err := m.api.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{RegistryIds: []string{account}})
	if err != nil || len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		t.Fatalf("GetAuthorizationToken(%s): %v", account, err)
	}
	raw, err := base64.StdEncoding.DecodeString(*out.AuthorizationData[0].AuthorizationToken)
	if err != nil {
		t.Fatal(err)
	}
	m.tokens[account] = string(raw)
	return string(raw)
}

// Created checks that repo exists in the cell's registry, created by the
// proxy through the API (not by a create-on-push template), and counts it
// for the once-per-repository check.
func (c *cell) Created(repo string) {
	c.t.Helper()
	info, ok := c.e.Repository(c.Account, repo)
	if !ok {
		c.t.Fatalf("repository %s was not created in %s (have %v)", repo, c.Registry, c.e.Repositories(c.Account))
	}
	if info.CreatedBy != "api" {
		c.t.Errorf("repository %s was created by %q, want the proxy through the API", repo, info.CreatedBy)
	}
	c.created = append(c.created, repo)
}

// Pushed checks, at the emulator itself, that repo:ref resolves to want
// and that the proxy created repo.
func (c *cell) Pushed(repo, ref, want string) {
	c.t.Helper()
	if _, err := digest.Parse(want); err != nil {
		c.t.Fatalf("the client reported no usable digest (%q): %v", want, err)
	}
	got := c.emulatorDigest(repo, ref)
	if got != want {
		c.t.Fatalf("%s/%s:%s is %s at the emulator, the client pushed %s", c.Registry, repo, ref, got, want)
	}
	c.t.Logf("%s/%s:%s = %s at the emulator", c.Registry, repo, ref, got)
	c.Created(repo)
}

var manifestAccept = strings.Join([]string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"}, ", ")

// emulatorDigest asks the emulator, not the proxy, for a manifest's digest.
func (c *cell) emulatorDigest(repo, ref string) string {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodHead, c.e.URL()+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Host = c.Registry
	req.Header.Set("Accept", manifestAccept)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.token(c.t, c.Account))))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("HEAD %s/%s/manifests/%s at the emulator: %s", c.Registry, repo, ref, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// interceptTransport reaches ECR hosts through ecrgate's intercept
// listener, trusting ecrgate's CA only.
func (m *matrixEnv) interceptTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: m.ilisten})
	tr.TLSClientConfig = &tls.Config{RootCAs: m.caPool, MinVersion: tls.VersionTLS12}
	return tr
}

// goTransport and goAuth are what an in-process go-containerregistry
// client uses in the cell's mode: plain HTTP and no credentials (the proxy
// brings its own) or the intercept transport and the account's token.
func (c *cell) goTransport() http.RoundTripper {
	if c.mode == modeIntercept {
		return c.interceptTransport()
	}
	return http.DefaultTransport.(*http.Transport).Clone()
}

func (c *cell) goAuth() authn.Authenticator {
	if c.mode == modeIntercept {
		user, pass, _ := strings.Cut(c.token(c.t, c.Account), ":")
		return &authn.Basic{Username: user, Password: pass}
	}
	return authn.Anonymous
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

func (c *cell) goRef(repo, ref string) name.Reference {
	c.t.Helper()
	sep := ":"
	if strings.HasPrefix(ref, "sha256:") {
		sep = "@"
	}
	r, err := name.ParseReference(c.Host+"/"+repo+sep+ref, name.Insecure)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// cliEnv is the environment of a client CLI in the cell's mode: in
// intercept mode its HTTPS proxy is ecrgate and it can run
// docker-credential-ecrgate.
func (c *cell) cliEnv() []string {
	env := []string{"HTTP_PROXY=", "http_proxy=", "NO_PROXY=", "no_proxy="}
	if c.mode == modeIntercept {
		env = append(env, c.helperEnv...)
		env = append(env, "HTTPS_PROXY=http://"+c.ilisten, "https_proxy=http://"+c.ilisten)
	} else {
		env = append(env, "HTTPS_PROXY=", "https_proxy=")
	}
	return env
}

// certDir returns a directory holding only ecrgate's CA as ca.crt, the
// layout of skopeo's and podman's --cert-dir and of one host in a
// docker/containerd certs.d.
func (c *cell) certDir() string {
	c.t.Helper()
	dir := c.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), c.caPEM, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return dir
}

// credHelperConfig writes a docker-style config.json (also a containers
// auth.json) that names docker-credential-ecrgate for the intercept host.
func (c *cell) credHelperConfig(dir string) string {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{matrixIntercept: "ecrgate"}})
	p := filepath.Join(dir, "config.json")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// --- docker and buildx -------------------------------------------------------

// dockerd starts a private dockerd for the docker and buildx cells, with
// HTTPS_PROXY at the intercept listener and ecrgate's CA installed for
// matrixIntercept in /etc/docker/certs.d (which dockerd reads; there is no
// per-daemon certs directory). Registry mode is plain HTTP to a loopback
// address, which Go's proxy rules never send through a proxy.
func (m *matrixEnv) dockerd(t *testing.T, o DockerdOptions) *Dockerd {
	t.Helper()
	m.installCA()
	o.Env = append(o.Env, "HTTPS_PROXY=http://"+m.ilisten, "https_proxy=http://"+m.ilisten)
	d := startDockerdWith(t, o)
	// The CLI (and buildx through it) gets intercept-mode tokens from
	// docker-credential-ecrgate; registry mode needs none.
	(&cell{matrixEnv: m, t: t}).credHelperConfig(d.ConfigDir)
	return d
}

// installCA installs ecrgate's CA for matrixIntercept in
// /etc/docker/certs.d for the rest of the matrix test, once.
func (m *matrixEnv) installCA() {
	t := m.parent
	t.Helper()
	if m.caInstalled {
		return
	}
	m.caInstalled = true
	certFile := filepath.Join("/etc/docker/certs.d", matrixIntercept, "ca.crt")
	if _, err := os.Stat(certFile); err == nil {
		t.Fatalf("%s exists already; refusing to touch a real installation", certFile)
	}
	mustRun(t, nil, filepath.Join(m.bin, "ecrgate"), "ca", "install", "--dir", m.caDir, "--registry", matrixIntercept)
	t.Cleanup(func() {
		out, err := runCmd(t, nil, filepath.Join(m.bin, "ecrgate"), "ca", "uninstall", "--dir", m.caDir)
		if err != nil {
			t.Errorf("ecrgate ca uninstall: %v\n%s", err, out)
		}
		if _, err := os.Stat(certFile); err == nil {
			t.Errorf("%s left behind", certFile)
			os.Remove(certFile)
		}
		os.Remove(filepath.Dir(certFile))
	})
}

// missingTools names the tools (PATH names or absolute paths) that are
// missing, or says that root is missing; "" when all is there.
func missingTools(tools ...string) string {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "not running as root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			problems = append(problems, fmt.Sprintf("%s not found", tool))
		}
	}
	return strings.Join(problems, "; ")
}

func (c *cell) dockerEnv(d *Dockerd) []string {
	return append(c.cliEnv(), d.Env()...)
}

func (c *cell) dockerRef(repo string) string {
	host := c.Host
	if c.mode == modeRegistry {
		host = strings.Replace(host, "127.0.0.1", "localhost", 1)
	}
	return host + "/" + repo + ":1"
}

func cellDocker(t *testing.T, c *cell, d *Dockerd) {
	repo := c.Repo("")
	ref := c.dockerRef(repo)
	importImage(t, d, ref)
	out, err := runCmd(t, c.dockerEnv(d), d.CLI, "push", ref)
	if err != nil {
		t.Fatalf("docker push %s: %v\n%s", ref, err, out)
	}
	dg, err := pushDigest(out)
	if err != nil {
		t.Fatal(err)
	}
	c.Pushed(repo, "1", dg)
	if c.mode == modeIntercept {
		c.Note("dockerd's HTTPS_PROXY + certs.d, token from docker-credential-ecrgate")
	}
}

func cellBuildx(t *testing.T, c *cell, d *Dockerd, tools *toolBuilds) {
	plugin, took, err := tools.buildx.wait()
	if err != nil {
		c.Missing("the buildx plugin could not be built: " + err.Error())
	}
	if took > 0 && c.mode == modeRegistry {
		c.Note("buildx built in %s", took.Round(time.Second))
	}
	pluginDir := filepath.Join(d.ConfigDir, "cli-plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(pluginDir, "docker-buildx")
	if _, err := os.Stat(dst); err != nil {
		if err := confCopyExecutable(plugin, dst); err != nil {
			t.Fatal(err)
		}
	}
	ctxDir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  fmt.Sprintf("built by buildx for %s at %s\n", c.Repo(""), time.Now().Format(time.RFC3339Nano)),
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := c.Repo("")
	ref := c.dockerRef(repo)
	meta := filepath.Join(t.TempDir(), "metadata.json")
	env := append(c.dockerEnv(d), "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
	out, err := runCmd(t, env, d.CLI, "buildx", "build", "--builder", "default", "--progress", "plain",
		"--push", "--metadata-file", meta, "-t", ref, ctxDir)
	if err != nil {
		t.Fatalf("docker buildx build --push: %v\n%s", err, out)
	}
	t.Logf("buildx output:\n%s", out)
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatalf("buildx wrote no metadata file: %v", err)
	}
	var md struct {
		Digest string `json:"containerimage.digest"`
	}
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatalf("buildx metadata %s: %v", b, err)
	}
	dg := md.Digest
	if dg == "" {
		// Older daemons do not report the pushed digest; the push output does.
		if dg, err = pushDigest(out); err != nil {
			t.Fatalf("no digest in buildx metadata %s nor output: %v", b, err)
		}
	}
	c.Pushed(repo, "1", dg)
	c.Note("dockerd pushes (docker driver)")
	if c.mode == modeIntercept {
		c.Note("so dockerd's HTTPS_PROXY + certs.d apply")
	}
}

// --- podman, skopeo ----------------------------------------------------------

var podmanBin = envOr("E2E_PODMAN", "podman")

func cellPodman(t *testing.T, c *cell) {
	if p := missingTools(podmanBin); p != "" {
		c.Missing("podman (Debian package podman): " + p)
	}
	// Storage, configuration and credentials of this test only.
	dir, err := os.MkdirTemp("/tmp", "e2e-podman")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountUnder(t, dir)
		os.RemoveAll(dir)
	})
	conf := map[string]string{
		"containers.conf": "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n",
		"registries.conf": "unqualified-search-registries = []\n",
		"storage.conf": fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
			filepath.Join(dir, "root"), filepath.Join(dir, "run")),
	}
	for n, body := range conf {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	authFile := c.credHelperConfig(filepath.Join(dir, "auth"))
	env := append(c.cliEnv(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"REGISTRY_AUTH_FILE="+authFile,
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "xdg"),
	)
	podman := func(args ...string) string {
		t.Helper()
		full := append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--storage-driver", "vfs", "--tmpdir", filepath.Join(dir, "tmp"), "--events-backend", "file",
			"--cgroup-manager", "cgroupfs"}, args...)
		return mustRun(t, env, podmanBin, full...)
	}
	tarball := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarball, randomRootfs(t), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := c.Repo("")
	ref := c.Host + "/" + repo + ":1"
	podman("import", tarball, ref)
	digestFile := filepath.Join(dir, "digest")
	args := []string{"push", "--digestfile", digestFile}
	if c.mode == modeRegistry {
		args = append(args, "--tls-verify=false")
	} else {
		args = append(args, "--cert-dir", c.certDir(), "--authfile", authFile)
	}
	podman(append(args, ref)...)
	b, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatal(err)
	}
	c.Pushed(repo, "1", strings.TrimSpace(string(b)))
	if c.mode == modeIntercept {
		c.Note("HTTPS_PROXY env, --cert-dir, credHelpers in --authfile")
	}
}

func cellSkopeo(t *testing.T, c *cell) {
	if p := missingTools(skopeoBin); p != "" {
		c.Missing("skopeo: " + p)
	}
	img := writeOCIImage(t, "v1")
	repo := c.Repo("")
	dst := "docker://" + c.Host + "/" + repo + ":v1"
	var dg string
	if c.mode == modeRegistry {
		dg = mustSkopeoCopy(t, img.Ref, dst, skopeoOpts{})
	} else {
		// Verified TLS against ecrgate's CA, credentials from
		// docker-credential-ecrgate through the auth file's credHelpers.
		digestFile := filepath.Join(t.TempDir(), "digest")
		authFile := c.credHelperConfig(t.TempDir())
		mustRun(t, c.cliEnv(), skopeoBin, "--insecure-policy", "copy", "--digestfile", digestFile,
			"--dest-cert-dir", c.certDir(), "--dest-authfile", authFile, img.Ref, dst)
		b, err := os.ReadFile(digestFile)
		if err != nil {
			t.Fatal(err)
		}
		dg = strings.TrimSpace(string(b))
	}
	if dg != img.Digest {
		t.Errorf("skopeo pushed %s, the layout holds %s", dg, img.Digest)
	}
	c.Pushed(repo, "v1", dg)
	if c.mode == modeIntercept {
		c.Note("HTTPS_PROXY env, --dest-cert-dir, credHelpers in --dest-authfile")
	}
}

// --- in-process clients: crane, ko, kaniko, ORAS ------------------------------

func cellCrane(t *testing.T, c *cell) {
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	repo := c.Repo("")
	ref := c.Host + "/" + repo + ":1"
	opts := []crane.Option{crane.WithTransport(c.goTransport()), crane.WithAuth(c.goAuth())}
	if c.mode == modeRegistry {
		opts = append(opts, crane.Insecure)
	}
	if err := crane.Push(img, ref, opts...); err != nil {
		t.Fatalf("crane.Push %s: %v", ref, err)
	}
	dg, err := crane.Digest(ref, opts...)
	if err != nil {
		t.Fatalf("crane.Digest %s through the proxy: %v", ref, err)
	}
	want, _ := img.Digest()
	if dg != want.String() {
		t.Errorf("crane.Digest through the proxy = %s, pushed %s", dg, want)
	}
	c.Pushed(repo, "1", want.String())
	if c.mode == modeIntercept {
		c.Note("in process: http.ProxyURL + ecrgate's CA, ECR Basic auth")
	}
}

// cellKoSBOM pushes an image as ko does (go-containerregistry's
// remote.Write), then its SBOM the two ways ko/cosign attach one: the
// tag scheme (sha256-<hex>.sbom, a layer of text/spdx+json) and an OCI 1.1
// referrer (a manifest whose subject is the image), which the referrers API
// must then list through the proxy.
func cellKoSBOM(t *testing.T, c *cell) {
	opts := []remote.Option{remote.WithTransport(c.goTransport()), remote.WithAuth(c.goAuth())}
	img, err := random.Image(32<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	repo := c.Repo("")
	if err := remote.Write(c.goRef(repo, "1"), img, opts...); err != nil {
		t.Fatalf("push the image: %v", err)
	}
	imgDigest, _ := img.Digest()
	c.Pushed(repo, "1", imgDigest.String())

	sbom := []byte(fmt.Sprintf(`{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"%s","documentNamespace":"https://ecrgate.invalid/%s"}`, repo, imgDigest.Hex))
	// The tag scheme: cosign's static image, one text/spdx+json layer.
	sbomImg, err := mutate.Append(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1),
		mutate.Addendum{Layer: static.NewLayer(sbom, "text/spdx+json"), MediaType: "text/spdx+json"})
	if err != nil {
		t.Fatal(err)
	}
	sbomTag := "sha256-" + imgDigest.Hex + ".sbom"
	if err := remote.Write(c.goRef(repo, sbomTag), sbomImg, opts...); err != nil {
		t.Fatalf("push the SBOM as %s: %v", sbomTag, err)
	}
	sbomDigest, _ := sbomImg.Digest()
	if got := c.emulatorDigest(repo, sbomTag); got != sbomDigest.String() {
		t.Fatalf("%s is %s at the emulator, pushed %s", sbomTag, got, sbomDigest)
	}

	// The OCI 1.1 referrer.
	layer := static.NewLayer(sbom, "text/spdx+json")
	cfg := static.NewLayer([]byte("{}"), types.MediaType(ocispec.MediaTypeEmptyJSON))
	for _, l := range []v1.Layer{layer, cfg} {
		if err := remote.WriteLayer(c.goRef(repo, "1").Context(), l, opts...); err != nil {
			t.Fatalf("upload a referrer blob: %v", err)
		}
	}
	imgSize, _ := img.Size()
	imgMT, _ := img.MediaType()
	subject := ocispec.Descriptor{MediaType: string(imgMT), Digest: digest.Digest(imgDigest.String()), Size: imgSize}
	ref := referrerManifest(t, "text/spdx+json", descOf(t, cfg), descOf(t, layer), subject)
	refDigest := digest.FromBytes(ref)
	if err := remote.Put(c.goRef(repo, refDigest.String()), rawManifest{ref, types.OCIManifestSchema1}, opts...); err != nil {
		t.Fatalf("push the SBOM referrer: %v", err)
	}
	c.checkReferrers(repo, subject.Digest, refDigest, "text/spdx+json")
	c.Note("SBOM as %s tag and as OCI 1.1 referrer, listed by /referrers", "sha256-<hex>.sbom")
}

func descOf(t *testing.T, l v1.Layer) ocispec.Descriptor {
	t.Helper()
	dg, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, _ := l.Size()
	mt, _ := l.MediaType()
	return ocispec.Descriptor{MediaType: string(mt), Digest: digest.Digest(dg.String()), Size: size}
}

// referrerManifest is an OCI 1.1 artifact manifest (an image manifest with
// artifactType and subject), as ORAS and cosign write them.
func referrerManifest(t *testing.T, artifactType string, config, layer, subject ocispec.Descriptor) []byte {
	t.Helper()
	b, err := json.Marshal(ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       config,
		Layers:       []ocispec.Descriptor{layer},
		Subject:      &subject,
		Annotations:  map[string]string{ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// checkReferrers lists subject's referrers through the proxy and wants
// referrer among them with artifactType.
func (c *cell) checkReferrers(repo string, subject, referrer digest.Digest, artifactType string) {
	c.t.Helper()
	rc := c.rawClient()
	resp, body := rc.must(http.MethodGet, "/v2/"+repo+"/referrers/"+subject.String(), nil, nil, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, ocispec.MediaTypeImageIndex) {
		c.t.Errorf("referrers Content-Type = %q, want %s", ct, ocispec.MediaTypeImageIndex)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		c.t.Fatalf("referrers of %s: %v\n%s", subject, err, body)
	}
	for _, m := range idx.Manifests {
		if m.Digest == referrer {
			if m.ArtifactType != artifactType {
				c.t.Errorf("referrer %s has artifactType %q, want %q", referrer, m.ArtifactType, artifactType)
			}
			c.t.Logf("GET /v2/%s/referrers/%s through the proxy lists %s (%s)", repo, subject, referrer, m.ArtifactType)
			return
		}
	}
	c.t.Fatalf("the referrers of %s through the proxy do not list %s:\n%s", subject, referrer, body)
}

// rawClient speaks the distribution API directly, as ORAS and kaniko's
// probe do: through the registry listener without credentials, or to the
// ECR host through the intercept listener with ECR's Basic credentials.
func (c *cell) rawClient() *rawRegistry {
	if c.mode == modeIntercept {
		return &rawRegistry{t: c.t, base: "https://" + c.Host, hc: &http.Client{Transport: c.interceptTransport()},
			auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(c.token(c.t, c.Account)))}
	}
	return &rawRegistry{t: c.t, base: "http://" + c.Host, hc: &http.Client{}}
}

type rawRegistry struct {
	t    *testing.T
	base string
	hc   *http.Client
	auth string
}

// do sends one request; target is a path or a Location (absolute or relative).
func (r *rawRegistry) do(method, target string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	base, _ := url.Parse(r.base + "/")
	u, err := base.Parse(target)
	if err != nil {
		return nil, nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		return nil, nil, err
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

func (r *rawRegistry) must(method, target string, body []byte, hdr map[string]string, want int) (*http.Response, []byte) {
	r.t.Helper()
	resp, b, err := r.do(method, target, body, hdr)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, target, err)
	}
	if resp.StatusCode != want {
		r.t.Fatalf("%s %s = %s, want %d: %s", method, target, resp.Status, want, b)
	}
	return resp, b
}

// pushBlob uploads b as ORAS does for small blobs: POST, then one PUT with
// the digest (no PATCH).
func (r *rawRegistry) pushBlob(repo string, mediaType string, b []byte) ocispec.Descriptor {
	r.t.Helper()
	dg := digest.FromBytes(b)
	resp, _ := r.must(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	if loc == "" {
		r.t.Fatal("upload started without a Location")
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	r.must(http.MethodPut, loc+sep+"digest="+url.QueryEscape(dg.String()), b,
		map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	return ocispec.Descriptor{MediaType: mediaType, Digest: dg, Size: int64(len(b))}
}

func (r *rawRegistry) putManifest(repo, ref, mediaType string, b []byte) *http.Response {
	r.t.Helper()
	resp, _ := r.must(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, b, map[string]string{"Content-Type": mediaType}, http.StatusCreated)
	return resp
}

// cellKaniko is kaniko's push-permission check: a bare POST
// /v2/<repo>/blobs/uploads/ and a DELETE of the upload it started, done
// twice: by hand, to see the statuses, and by go-containerregistry's
// remote.CheckPushPermission, which kaniko calls. Both must create the
// repository: the probe is the first request a kaniko push sends.
func cellKaniko(t *testing.T, c *cell) {
	rc := c.rawClient()
	repo := c.Repo("")
	resp, body := rc.must(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatalf("POST blobs/uploads/ answered 202 without a Location: %s", body)
	}
	if u, err := url.Parse(loc); err == nil && u.Host != "" && u.Host != c.Host {
		t.Errorf("Location %s leads away from the host the client used (%s)", loc, c.Host)
	}
	resp, body, err := rc.do(http.MethodDelete, loc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE of the upload = %s, want 204: %s", resp.Status, body)
	}
	c.Note("POST 202, DELETE %d", resp.StatusCode)
	c.Created(repo)

	repo2 := c.Repo("ggcr")
	if err := remote.CheckPushPermission(c.goRef(repo2, "1"), staticKeychain{c.goAuth()}, c.goTransport()); err != nil {
		t.Fatalf("remote.CheckPushPermission (kaniko's probe) on a new repository: %v", err)
	}
	c.Created(repo2)
}

// cellORAS pushes a small image and then an artifact that refers to it,
// the way `oras push` / `oras attach` do: blobs by POST + PUT, the
// artifact manifest (artifactType, the empty config, a subject) by digest.
func cellORAS(t *testing.T, c *cell) {
	rc := c.rawClient()
	repo := c.Repo("")
	created := time.Now().UTC()
	layerTar := smallTarGz(t, "artifact-subject.txt", []byte("subject of an ORAS artifact, "+created.String()))
	layer := rc.pushBlob(repo, ocispec.MediaTypeImageLayerGzip, layerTar)
	cfgJSON, _ := json.Marshal(ocispec.Image{Created: &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{gunzipDigest(t, layerTar)}}})
	cfg := rc.pushBlob(repo, ocispec.MediaTypeImageConfig, cfgJSON)
	man, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfg, Layers: []ocispec.Descriptor{layer}})
	rc.putManifest(repo, "1", ocispec.MediaTypeImageManifest, man)
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(man), Size: int64(len(man))}
	c.Pushed(repo, "1", subject.Digest.String())

	const artifactType = "application/vnd.ecrgate.e2e.note.v1"
	emptyCfg := rc.pushBlob(repo, ocispec.MediaTypeEmptyJSON, []byte("{}"))
	if emptyCfg.Digest != ocispec.DescriptorEmptyJSON.Digest {
		t.Fatalf("the empty config's digest is %s, want %s", emptyCfg.Digest, ocispec.DescriptorEmptyJSON.Digest)
	}
	note := rc.pushBlob(repo, "text/plain", []byte("an ORAS-style note about "+subject.Digest.String()))
	art := referrerManifest(t, artifactType, emptyCfg, note, subject)
	artDigest := digest.FromBytes(art)
	resp := rc.putManifest(repo, artDigest.String(), ocispec.MediaTypeImageManifest, art)
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Errorf("OCI-Subject of the artifact PUT = %q, want %s (a client without it falls back to the tag scheme)", got, subject.Digest)
	}
	if got := c.emulatorDigest(repo, artDigest.String()); got != artDigest.String() {
		t.Fatalf("artifact %s is %s at the emulator", artDigest, got)
	}
	c.checkReferrers(repo, subject.Digest, artDigest, artifactType)
	c.Note("artifactType + empty config + subject; OCI-Subject answered; /referrers lists it")
}

func smallTarGz(t *testing.T, name string, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg,
		ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gunzipDigest(t *testing.T, gz []byte) digest.Digest {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	dg, err := digest.FromReader(zr)
	if err != nil {
		t.Fatal(err)
	}
	return dg
}
