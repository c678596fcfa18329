//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// flyteRegistry is the ECR registry of TestFlyteImageSpec; no other test
// installs a CA for it in /etc/docker/certs.d.
const (
	flyteAccount  = "135791357913"
	flyteRegistry = flyteAccount + ".dkr.ecr.us-east-1.amazonaws.com"
)

// TestFlyteImageSpec replays what flytekit's ImageSpec does with its
// default builder (flytekit/image_spec/image_spec.py ImageSpec.exist and
// default_builder.py _build_image), against Engines 29 and 28 in both
// image stores, through intercept mode (dockerd's HTTPS_PROXY at ecrgate,
// ecrgate's CA in /etc/docker/certs.d, the CLI's credHelpers naming
// docker-credential-ecrgate):
//
//  1. docker-py's images.get_registry_data, that is GET
//     /v<api>/distribution/<name>/json on dockerd with the X-Registry-Auth
//     header docker-py builds from the credential helper's answer: 404 for a
//     repository that does not exist, and no repository is created by it;
//  2. `docker build --tag <real ECR name> --platform linux/amd64 --push DIR`
//     (BuildKit through the buildx plugin): the push creates the
//     repository through ecrgate;
//  3. the same GET: 200, with the digest the emulator holds.
func TestFlyteImageSpec(t *testing.T) {
	requireTools(t, containerdBin)
	// Before HOME changes: the tools are cached under the user's cache dir.
	b := startBuilds(t, buildxTool, dockerCLI29Tool, dockerd29Tool, dockerd28Tool)
	buildx, cli, d29, d28 := b[0], b[1], b[2], b[3]
	bin := binDir(t)
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{ecrfake.DefaultAccount, flyteAccount}})

	data := t.TempDir()
	caDir := filepath.Join(data, "ecrgate", "ca")
	mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "init", "--dir", caDir)
	certFile := filepath.Join("/etc/docker/certs.d", flyteRegistry, "ca.crt")
	if _, err := os.Stat(certFile); err == nil {
		t.Fatalf("%s exists already; refusing to touch a real installation", certFile)
	}
	mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "install", "--dir", caDir, "--registry", flyteRegistry)
	t.Cleanup(func() {
		out, err := runCmd(t, nil, filepath.Join(bin, "ecrgate"), "ca", "uninstall", "--dir", caDir)
		if err != nil {
			t.Errorf("ecrgate ca uninstall: %v\n%s", err, out)
		}
		if _, err := os.Stat(certFile); err == nil {
			t.Errorf("%s left behind", certFile)
			os.Remove(certFile)
		}
		os.Remove(filepath.Dir(certFile))
	})
	ilisten := freePort(t)
	startServe(t, e, fmt.Sprintf("  - host: %s\n    endpoint: %s\nintercept:\n  listen: %s\n", flyteRegistry, e.URL(), ilisten),
		"XDG_DATA_HOME="+data)
	helperEnv := append(e.Env(), "XDG_CACHE_HOME="+t.TempDir(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH")+string(os.PathListSeparator)+"/usr/sbin:/usr/bin:/sbin:/bin")

	for _, eng := range []struct {
		name    string
		dockerd *toolBuild
	}{{"29", d29}, {"28", d28}} {
		for _, store := range []string{storeClassic, storeContainerd} {
			t.Run("engine-"+eng.name+"-"+store, func(t *testing.T) {
				dockerd := mustBuilt(t, eng.dockerd)
				cliPath := mustBuilt(t, cli)
				plugin := mustBuilt(t, buildx)
				d := startDockerdWith(t, DockerdOptions{Dockerd: dockerd, CLI: cliPath, Store: store,
					Env: []string{"HTTPS_PROXY=http://" + ilisten, "https_proxy=http://" + ilisten}})
				defer d.Stop()
				flyteImageSpec(t, e, d, plugin, helperEnv, "flyte/e"+eng.name+"-"+store)
			})
		}
	}
}

// mustBuilt waits for a tool build: a skip when it failed, or a failure
// with CI=true.
func mustBuilt(t *testing.T, b *toolBuild) string {
	t.Helper()
	p, took, err := b.wait()
	if err != nil {
		msg := fmt.Sprintf("%s@%s could not be built: %v", b.tool.Module, b.tool.Version, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true, so this is a failure, not a skip)")
		}
		t.Skip(msg + " (set CI=true to make this fatal)")
	}
	if took > 0 && !b.announced.Swap(true) {
		t.Logf("%s@%s built in %s", b.tool.Module, b.tool.Version, took.Round(time.Second))
	}
	return p
}

func flyteImageSpec(t *testing.T, e *ecrfake.Emulator, d *Dockerd, buildxPlugin string, helperEnv []string, repo string) {
	pluginDir := filepath.Join(d.ConfigDir, "cli-plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := confCopyExecutable(buildxPlugin, filepath.Join(pluginDir, "docker-buildx")); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{flyteRegistry: "ecrgate"}})
	if err := os.WriteFile(filepath.Join(d.ConfigDir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(append([]string{}, helperEnv...), d.Env()...)

	// ImageSpec's tag is a hash of the spec.
	tag := make([]byte, 10)
	if _, err := rand.Read(tag); err != nil {
		t.Fatal(err)
	}
	image := flyteRegistry + "/" + repo + ":" + hex.EncodeToString(tag)
	api := dockerAPI(t, d)
	auth := dockerPyRegistryAuth(t, env, flyteRegistry)

	// 1. ImageSpec.exist before the build.
	status, body := api.inspectDistribution(t, image, auth)
	if status != http.StatusNotFound {
		t.Fatalf("GET /distribution/%s/json before the build = %d, want 404 (ImageSpec.exist → False): %s", image, status, body)
	}
	t.Logf("GET /distribution/%s/json before the build: %d %s", image, status, bytes.TrimSpace(body))
	if _, ok := e.Repository(flyteAccount, repo); ok {
		t.Fatalf("looking the image up created the repository %s", repo)
	}

	// 2. The default builder's command.
	ctxDir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  "an ImageSpec image " + image + "\n",
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCmd(t, append(env, "BUILDX_NO_DEFAULT_ATTESTATIONS=1"), d.CLI,
		"build", "--tag", image, "--platform", "linux/amd64", "--push", ctxDir)
	if err != nil {
		t.Fatalf("docker build --push through intercept mode: %v\n%s", err, out)
	}
	t.Logf("docker build --push:\n%s", tailLines(out, 15))
	info, ok := e.Repository(flyteAccount, repo)
	if !ok {
		t.Fatalf("docker build --push did not create %s (have %v)", repo, e.Repositories(flyteAccount))
	}
	if info.CreatedBy != "api" {
		t.Errorf("repository %s was created by %q, want ecrgate through the API", repo, info.CreatedBy)
	}

	// 3. ImageSpec.exist after the build.
	status, body = api.inspectDistribution(t, image, auth)
	if status != http.StatusOK {
		t.Fatalf("GET /distribution/%s/json after the build = %d, want 200: %s", image, status, body)
	}
	var dist struct {
		Descriptor struct{ Digest string }
		Platforms  []struct{ Architecture, OS string }
	}
	if err := json.Unmarshal(body, &dist); err != nil {
		t.Fatalf("distribution inspect: %v\n%s", err, body)
	}
	want := flyteManifestDigest(t, e, repo, image[strings.LastIndex(image, ":")+1:])
	if dist.Descriptor.Digest != want {
		t.Errorf("dockerd says %s is %s, the emulator holds %s", image, dist.Descriptor.Digest, want)
	}
	t.Logf("GET /distribution/%s/json after the build: 200, %s, platforms %v", image, dist.Descriptor.Digest, dist.Platforms)
}

// flyteManifestDigest asks the emulator itself for repo:tag's digest.
func flyteManifestDigest(t *testing.T, e *ecrfake.Emulator, repo, tag string) string {
	t.Helper()
	m := &matrixEnv{e: e, tokens: map[string]string{},
		api: ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
			Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})}
	c := &cell{matrixEnv: m, t: t, Registry: flyteRegistry, Account: flyteAccount}
	return c.emulatorDigest(repo, tag)
}

// dockerPyRegistryAuth is the X-Registry-Auth header docker-py sends
// (auth.get_config_header): the credential helper's answer as
// {"ServerAddress", "Username", "Password"}, JSON in URL-safe base64.
func dockerPyRegistryAuth(t *testing.T, env []string, registry string) string {
	t.Helper()
	out, err := runCmdStdoutIn(t, env, strings.NewReader(registry), "docker-credential-ecrgate", "get")
	if err != nil {
		t.Fatal(err)
	}
	var cred struct{ Username, Secret string }
	if err := json.Unmarshal([]byte(out), &cred); err != nil || cred.Secret == "" {
		t.Fatalf("docker-credential-ecrgate get: %v (%d bytes)", err, len(out))
	}
	b, _ := json.Marshal(map[string]string{"ServerAddress": registry, "Username": cred.Username, "Password": cred.Secret})
	return base64.URLEncoding.EncodeToString(b)
}

// runCmdStdoutIn runs a command with stdin and returns its stdout only,
// which holds a secret: it is not logged.
func runCmdStdoutIn(t *testing.T, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	path := name
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range filepath.SplitList(p) {
				if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
					path = filepath.Join(dir, name)
					break
				}
			}
			break
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(baseEnv(t), env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", redactedCmdline(name, args), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// dockerAPIClient speaks dockerd's API on its unix socket, at the API
// version the daemon reports (as docker-py's version="auto" does).
type dockerAPIClient struct {
	hc      *http.Client
	version string
}

func dockerAPI(t *testing.T, d *Dockerd) *dockerAPIClient {
	t.Helper()
	sock := strings.TrimPrefix(d.Host, "unix://")
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}
	c := &dockerAPIClient{hc: &http.Client{Transport: tr, Timeout: cmdTimeout}}
	status, body := c.get(t, "/version", nil)
	var v struct {
		APIVersion string `json:"ApiVersion"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || v.APIVersion == "" {
		t.Fatalf("GET /version = %d: %s", status, body)
	}
	c.version = v.APIVersion
	return c
}

// inspectDistribution is docker-py's APIClient.inspect_distribution.
func (c *dockerAPIClient) inspectDistribution(t *testing.T, image, registryAuth string) (int, []byte) {
	t.Helper()
	return c.get(t, "/v"+c.version+"/distribution/"+image+"/json", http.Header{"X-Registry-Auth": {registryAuth}})
}

func (c *dockerAPIClient) get(t *testing.T, path string, h http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, (&url.URL{Scheme: "http", Host: "docker", Path: path}).String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	t.Logf("GET %s (dockerd API)", path)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}
