package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/server"
)

const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

type fixture struct {
	e     *ecrfake.Emulator
	proxy string // host:port of the registry listener
	admin string
	api   *ecr.Client
	audit string
	logs  *bytes.Buffer
}

// start runs the emulator and `ecrgate serve` in process, the proxy's AWS
// SDK pointed at the emulator through the environment.
func start(t *testing.T, extraYAML string) *fixture {
	t.Helper()
	return startWith(t, ecrfake.Options{}, extraYAML)
}

func startWith(t *testing.T, opts ecrfake.Options, extraYAML string) *fixture {
	t.Helper()
	e := ecrfake.Start(t, opts)
	dir := t.TempDir()
	env := append(e.Env(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	audit := filepath.Join(dir, "audit.jsonl")
	yaml := fmt.Sprintf("default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\nroutes:\n  - prefix: other/\n    registry: 222222222222.dkr.ecr.us-east-1.amazonaws.com\n%s",
		registry, audit, registry, e.URL(), extraYAML)
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "ecrgate.yaml"), env)
	if err != nil {
		t.Fatal(err)
	}
	regLn, _ := net.Listen("tcp", "127.0.0.1:0")
	adminLn, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &bytes.Buffer{}
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Env: env, Logger: log, ShutdownTimeout: 60 * time.Second,
			Listeners: map[string]net.Listener{"registry": regLn, "admin": adminLn}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
		logMu.Lock()
		defer logMu.Unlock()
		if strings.Contains(logs.String(), "Basic ") || strings.Contains(logs.String(), "Authorization") {
			t.Errorf("a credential reached the log")
		}
	})
	api := ecr.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	return &fixture{e: e, proxy: regLn.Addr().String(), admin: adminLn.Addr().String(), api: api, audit: audit, logs: logs}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(f.proxy+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomImage(t *testing.T, size int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const templates = `templates:
  - prefix: team
    image_tag_mutability: IMMUTABLE
    scan_on_push: true
    tags: {team: platform}
`

func TestFirstPushCreatesRepository(t *testing.T) {
	f := start(t, templates)
	img := randomImage(t, 256<<10, 3)
	if err := remote.Write(f.ref(t, "team/new-app:1.0"), img); err != nil {
		t.Fatalf("first push through the proxy: %v", err)
	}
	info, ok := f.e.Repository("", "team/new-app")
	if !ok || info.TagMutability != "IMMUTABLE" || !info.ScanOnPush || info.Tags["team"] != "platform" {
		t.Fatalf("created repository = %+v (%v)", info, ok)
	}
	got, err := remote.Image(f.ref(t, "team/new-app:1.0"))
	if err != nil || digestOf(t, got) != digestOf(t, img) {
		t.Fatalf("pull back: %v", err)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("blob through the proxy: %v", err)
		}
		rc.Close()
	}
	// Immutability errors reach the client intact.
	err = remote.Write(f.ref(t, "team/new-app:1.0"), randomImage(t, 1024, 1))
	if te, ok := err.(*transport.Error); !ok || len(te.Errors) == 0 || te.Errors[0].Code != "TAG_INVALID" ||
		!strings.Contains(te.Errors[0].Message, "cannot be overwritten because the tag is immutable") {
		t.Fatalf("immutable overwrite: %v", err)
	}
	if n := f.e.Calls("CreateRepository"); n != 1 {
		t.Errorf("CreateRepository calls = %d", n)
	}
	b, err := os.ReadFile(f.audit)
	if err != nil {
		t.Fatal(err)
	}
	var line struct{ Registry, Repository, Template, Identity string }
	if err := json.Unmarshal(bytes.Split(b, []byte("\n"))[0], &line); err != nil || line.Repository != "team/new-app" || line.Template != "team" ||
		line.Identity != "arn:aws:iam::123456789012:user/ecrfake" || line.Registry != registry {
		t.Errorf("audit line %s (%v)", b, err)
	}
}

func TestConcurrentPushesCreateOnce(t *testing.T) {
	f := start(t, "")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- remote.Write(f.ref(t, fmt.Sprintf("race/app:%d", i)), randomImage(t, 64<<10, 6))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.e.Calls("CreateRepository"); n != 1 {
		t.Errorf("CreateRepository calls = %d for 8 concurrent pushes (48 uploads) to one new repository, want 1", n)
	}
}

func TestIndexAndCrossRepositoryMount(t *testing.T) {
	f := start(t, "")
	idx, err := random.Index(64<<10, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(f.ref(t, "multi/arch:1"), idx); err != nil {
		t.Fatalf("push an index: %v", err)
	}
	got, err := remote.Index(f.ref(t, "multi/arch:1"))
	if err != nil || digestOf(t, got) != digestOf(t, idx) {
		t.Fatalf("index back: %v", err)
	}
	// An image pulled from one repository and pushed to another: its layers
	// are mounted (POST ?mount=&from=) through the proxy, once the registry
	// has BLOB_MOUNTING enabled (ECR's default is disabled).
	if err := f.e.SetAccountSetting("", "BLOB_MOUNTING", "ENABLED"); err != nil {
		t.Fatal(err)
	}
	src := randomImage(t, 128<<10, 2)
	if err := remote.Write(f.ref(t, "mount/src:1"), src); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(f.ref(t, "mount/src:1"))
	if err != nil {
		t.Fatal(err)
	}
	before := f.e.Calls("Registry.UploadChunk")
	if err := remote.Write(f.ref(t, "mount/dst:1"), pulled); err != nil {
		t.Fatalf("push with mounts: %v", err)
	}
	if d, err := remote.Head(f.ref(t, "mount/dst:1")); err != nil || d.Digest != digestOf(t, src) {
		t.Fatalf("mounted image: %v", err)
	}
	if f.e.Calls("Registry.UploadChunk") != before {
		t.Errorf("layers were uploaded again instead of mounted")
	}
}

func TestLocationPointsAtProxy(t *testing.T) {
	f := start(t, "")
	resp, err := http.Post("http://"+f.proxy+"/v2/loc/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "http://"+f.proxy+"/v2/loc/app/blobs/uploads/") {
		t.Fatalf("upload start: %d, Location %q", resp.StatusCode, loc)
	}
}

func TestRefusalsAreRegistryErrors(t *testing.T) {
	f := start(t, "deny: [\"*/tmp*\"]\n")
	tests := []struct{ path, code, msg string }{
		{"/v2/Team/App/blobs/uploads/", "NAME_INVALID", "lower case"},
		{"/v2/team/tmp-1/blobs/uploads/", "DENIED", `*/tmp*`},
		{"/v2/other/app/blobs/uploads/", "", ""}, // routed to a registry the emulator refuses: an error, not a crash
		{"/v2/_catalog", "UNSUPPORTED", "describe-repositories"},
	}
	for _, tt := range tests {
		method := http.MethodPost
		if strings.HasSuffix(tt.path, "_catalog") {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, "http://"+f.proxy+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("%s: %d", tt.path, resp.StatusCode)
		}
		if tt.code != "" && (!strings.Contains(string(body), `"code":"`+tt.code+`"`) || !strings.Contains(string(body), tt.msg)) {
			t.Errorf("%s: %d %s", tt.path, resp.StatusCode, body)
		}
	}
	if n := f.e.Calls("CreateRepository"); n != 0 {
		t.Errorf("CreateRepository calls = %d", n)
	}
}

func TestExpiredTokenAndDeletedRepository(t *testing.T) {
	f := start(t, "")
	if err := remote.Write(f.ref(t, "life/app:1"), randomImage(t, 1024, 1)); err != nil {
		t.Fatal(err)
	}
	// The proxy's cached token expires early: it refreshes and the push goes on.
	f.e.ExpireTokens()
	if err := remote.Write(f.ref(t, "life/app:2"), randomImage(t, 1024, 1)); err != nil {
		t.Fatalf("push after the token expired: %v", err)
	}
	// The repository is deleted behind the proxy's back: its cache is wrong,
	// the upstream says NAME_UNKNOWN, the proxy creates it again.
	if _, err := f.api.DeleteRepository(context.Background(), &ecr.DeleteRepositoryInput{RepositoryName: aws.String("life/app"), Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(f.ref(t, "life/app:3"), randomImage(t, 1024, 1)); err != nil {
		t.Fatalf("push after the repository was deleted: %v", err)
	}
	if n := f.e.Calls("CreateRepository"); n != 2 {
		t.Errorf("CreateRepository calls = %d, want 2", n)
	}
}

func TestAdminEndpoints(t *testing.T) {
	f := start(t, "")
	if err := remote.Write(f.ref(t, "metrics/app:1"), randomImage(t, 1024, 1)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + f.admin + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	wants := []string{`ecrgate_requests_total{code="201",op="Registry.ManifestPut"} 1`,
		`ecrgate_repositories_created_total{how="ecrgate",registry="` + registry + `"} 1`, "ecrgate_request_duration_seconds_bucket", "ecrgate_request_bytes_total"}
	// A request is counted just after its response is written, so the
	// client can be a moment ahead of the counter: wait for it, boundedly.
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err = http.Get("http://" + f.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, m := range missing {
		t.Errorf("metrics lack %s", m)
	}
}

func TestRefusesRemoteListen(t *testing.T) {
	cfg := config.Default(nil)
	cfg.Listen = "0.0.0.0:5000"
	err := server.Run(context.Background(), server.Options{Config: cfg})
	if err == nil || !strings.Contains(err.Error(), "every network interface") {
		t.Fatalf("non-loopback listen: %v", err)
	}
}

// ECR sends blob downloads to presigned S3 URLs: the proxy passes the
// redirect to the client untouched, the client follows it itself, and
// neither the proxy's token nor the client's credentials reach S3.
func TestBlobRedirectsGoToTheClient(t *testing.T) {
	f := startWith(t, ecrfake.Options{BlobRedirect: true}, "")
	img := randomImage(t, 256<<10, 2)
	if err := remote.Write(f.ref(t, "s3/app:1"), img); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(f.ref(t, "s3/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("blob via the S3 redirect: %v", err)
		}
		rc.Close()
	}
	total, withAuth := f.e.S3Requests()
	if total < int64(len(layers)) || withAuth != 0 {
		t.Fatalf("S3 requests = %d, with Authorization = %d; want at least %d, none with Authorization", total, withAuth, len(layers))
	}
	// The redirect itself, as the proxy answers it.
	d, _ := img.Layers()
	dg, _ := d[0].Digest()
	req, _ := http.NewRequest(http.MethodGet, "http://"+f.proxy+"/v2/s3/app/blobs/"+dg.String(), nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(resp.Header.Get("Location"), "-starport-layer-bucket/") ||
		strings.HasPrefix(resp.Header.Get("Location"), "http://"+f.proxy) {
		t.Fatalf("blob GET through the proxy: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
