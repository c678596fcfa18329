package envtoken_test

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/envtoken"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

const host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// keys is an environment with access keys and a HOME without ~/.aws.
func keys(t *testing.T, extra ...string) map[string]string {
	t.Helper()
	env := []string{"HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=AKIAEXAMPLE000000001", "AWS_SECRET_ACCESS_KEY=secret"}
	return environ.Map(append(env, extra...))
}

func TestForDecides(t *testing.T) {
	home := t.TempDir()
	awsDir := filepath.Join(home, ".aws")
	if err := os.MkdirAll(awsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	plainConfig := filepath.Join(awsDir, "plain")
	os.WriteFile(plainConfig, []byte("[default]\nregion = eu-west-1\n"), 0o600)
	endpointConfig := filepath.Join(awsDir, "endpoint")
	os.WriteFile(endpointConfig, []byte("[default]\nendpoint_url = https://elsewhere.example\n"), 0o600)
	bundleConfig := filepath.Join(awsDir, "bundle")
	os.WriteFile(bundleConfig, []byte("[default]\nca_bundle = /etc/x.pem\n"), 0o600)

	for _, tc := range []struct {
		name     string
		host     string
		id       tokencache.Identity
		env      map[string]string
		endpoint string // want this endpoint, or "" to want a refusal
		reason   string // part of the refusal
	}{
		{name: "standard endpoint", host: host, env: keys(t), endpoint: "https://api.ecr.us-east-1.amazonaws.com"},
		{name: "china", host: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", env: keys(t), endpoint: "https://api.ecr.cn-north-1.amazonaws.com.cn"},
		{name: "service env endpoint", host: host, env: keys(t, "AWS_ENDPOINT_URL_ECR=http://127.0.0.1:9/", "AWS_ENDPOINT_URL=http://127.0.0.1:8"), endpoint: "http://127.0.0.1:9/"},
		{name: "global env endpoint", host: host, env: keys(t, "AWS_ENDPOINT_URL=http://127.0.0.1:8"), endpoint: "http://127.0.0.1:8"},
		{name: "config endpoint wins", host: host, id: tokencache.Identity{APIEndpoint: "http://127.0.0.1:7"}, env: keys(t, "AWS_ENDPOINT_URL_ECR=http://127.0.0.1:9"), endpoint: "http://127.0.0.1:7"},
		{name: "harmless shared config", host: host, env: keys(t, "AWS_CONFIG_FILE="+plainConfig), endpoint: "https://api.ecr.us-east-1.amazonaws.com"},
		{name: "session token", host: host, env: keys(t, "AWS_SESSION_TOKEN=tok", "AWS_PROFILE=dev"), endpoint: "https://api.ecr.us-east-1.amazonaws.com"},

		{name: "not ECR", host: "ghcr.io", env: keys(t), reason: "not an ECR"},
		{name: "public", host: "public.ecr.aws", env: keys(t), reason: "ECR Public"},
		{name: "fips host", host: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", env: keys(t), reason: "FIPS"},
		{name: "dual-stack host", host: "123456789012.dkr-ecr.us-east-1.on.aws", env: keys(t), reason: "dual-stack"},
		{name: "profile in config", host: host, id: tokencache.Identity{Profile: "dev"}, env: keys(t), reason: "profile or role"},
		{name: "role in config", host: host, id: tokencache.Identity{RoleARN: "arn:aws:iam::1:role/x"}, env: keys(t), reason: "profile or role"},
		{name: "no keys", host: host, env: map[string]string{"HOME": home}, reason: "no access keys"},
		{name: "secret missing", host: host, env: map[string]string{"HOME": home, "AWS_ACCESS_KEY_ID": "AKIA"}, reason: "no access keys"},
		{name: "fips env", host: host, env: keys(t, "AWS_USE_FIPS_ENDPOINT=true"), reason: "FIPS"},
		{name: "dual-stack env", host: host, env: keys(t, "AWS_USE_DUALSTACK_ENDPOINT=TRUE"), reason: "dual-stack"},
		{name: "ignore endpoints", host: host, env: keys(t, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true"), reason: "IGNORE_CONFIGURED"},
		{name: "shared config endpoint", host: host, env: keys(t, "AWS_CONFIG_FILE="+endpointConfig), reason: "endpoint_url"},
		{name: "shared config bundle", host: host, env: keys(t, "AWS_CONFIG_FILE="+bundleConfig, "AWS_ENDPOINT_URL_ECR=http://127.0.0.1:9"), reason: "ca_bundle"},
		{name: "unreadable shared config", host: host, env: keys(t, "AWS_CONFIG_FILE="+awsDir), reason: "could not be read"},
		{name: "bad endpoint", host: host, env: keys(t, "AWS_ENDPOINT_URL_ECR=ftp://x"), reason: "not a plain http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, why := envtoken.For(tc.host, tc.id, tc.env)
			if tc.endpoint == "" {
				if req != nil || !strings.Contains(why, tc.reason) {
					t.Fatalf("For = %v, %q; want a refusal mentioning %q", req, why, tc.reason)
				}
				return
			}
			if req == nil {
				t.Fatalf("For refused: %s", why)
			}
			if got := req.Endpoint.String(); got != tc.endpoint {
				t.Errorf("endpoint %s, want %s", got, tc.endpoint)
			}
		})
	}
}

// The emulator checks SigV4 signatures, so a token from it proves the
// request was signed as ECR expects; the token must also open its registry.
func TestFetchFromEmulator(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "")
	e := ecrfake.Start(t, ecrfake.Options{})
	env := environ.Map(append(e.Env(), "HOME="+t.TempDir()))
	req, why := envtoken.For(host, tokencache.Identity{}, env)
	if req == nil {
		t.Fatalf("For refused: %s", why)
	}
	tok, err := req.Fetch(context.Background(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Registry != host || tok.Username != "AWS" || !tok.Usable(time.Now(), time.Hour) {
		t.Fatalf("token %v", tok)
	}
	if n := e.Calls("GetAuthorizationToken"); n != 1 {
		t.Errorf("GetAuthorizationToken calls = %d, want 1", n)
	}
	r, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/", nil)
	r.Host = host
	r.SetBasicAuth(tok.Username, tok.Password)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("registry refused the token: %s", resp.Status)
	}

	// A wrong secret is refused by the emulator's signature check.
	env["AWS_SECRET_ACCESS_KEY"] = "wrong"
	bad, _ := envtoken.For(host, tokencache.Identity{}, env)
	if _, err := bad.Fetch(context.Background(), time.Now); err == nil || !strings.Contains(err.Error(), "HTTP 4") {
		t.Errorf("wrong secret: %v", err)
	}
}

// canned serves one ECR-shaped answer and counts requests.
func canned(status int, body string, n *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" ||
			!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE000000001/") {
			http.Error(w, "unsigned", http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

const okBody = `{"authorizationData":[{"authorizationToken":"QVdTOnB3","expiresAt":4102444800.5,"proxyEndpoint":"https://x"}]}`

func TestFetchAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, body, err string
		status          int
	}{
		{name: "ok", status: 200, body: okBody},
		{name: "server error", status: 500, body: `{"__type":"ServerException"}`, err: "HTTP 500"},
		{name: "throttled", status: 400, body: `{"__type":"ThrottlingException"}`, err: "HTTP 400"},
		{name: "garbage", status: 200, body: `<html>`, err: "decode"},
		{name: "no data", status: 200, body: `{"authorizationData":[]}`, err: "no token"},
		{name: "no expiry", status: 200, body: `{"authorizationData":[{"authorizationToken":"QVdTOnB3"}]}`, err: "no token"},
		{name: "not base64", status: 200, body: `{"authorizationData":[{"authorizationToken":"!!","expiresAt":4102444800}]}`, err: "base64"},
		{name: "no password", status: 200, body: `{"authorizationData":[{"authorizationToken":"QVdT","expiresAt":4102444800}]}`, err: "user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(canned(tc.status, tc.body, &n))
			defer srv.Close()
			req, why := envtoken.For(host, tokencache.Identity{}, keys(t, "AWS_ENDPOINT_URL_ECR="+srv.URL))
			if req == nil {
				t.Fatal(why)
			}
			tok, err := req.Fetch(context.Background(), time.Now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := time.Unix(4102444800, 5e8)
			if tok.Username != "AWS" || tok.Password != "pw" || !tok.ExpiresAt.Equal(want) || n.Load() != 1 {
				t.Errorf("token %+v (expires %s), %d requests", tok, tok.ExpiresAt, n.Load())
			}
		})
	}
}

// AWS_CA_BUNDLE is the only set of roots trusted for an https endpoint,
// as in the SDK; without it the system roots do not know a local CA.
func TestFetchHTTPSUsesCABundle(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewTLSServer(canned(200, okBody, &n))
	defer srv.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(bundle, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	req, _ := envtoken.For(host, tokencache.Identity{}, keys(t, "AWS_ENDPOINT_URL_ECR="+srv.URL, "AWS_CA_BUNDLE="+bundle))
	if _, err := req.Fetch(context.Background(), time.Now); err != nil {
		t.Fatalf("with the bundle: %v", err)
	}
	req, _ = envtoken.For(host, tokencache.Identity{}, keys(t, "AWS_ENDPOINT_URL_ECR="+srv.URL))
	if _, err := req.Fetch(context.Background(), time.Now); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the bundle: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("nothing"), 0o600)
	req, _ = envtoken.For(host, tokencache.Identity{}, keys(t, "AWS_ENDPOINT_URL_ECR="+srv.URL, "AWS_CA_BUNDLE="+empty))
	if _, err := req.Fetch(context.Background(), time.Now); err == nil || !strings.Contains(err.Error(), "no certificates") {
		t.Errorf("empty bundle: %v", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests reached the server, want 1", n.Load())
	}
}

// HTTP(S)_PROXY is honoured as by the SDK's HTTP client. (The endpoint's
// .invalid host is never resolved: the proxy gets the whole URL.)
func TestFetchHonoursProxy(t *testing.T) {
	var n atomic.Int32
	var sawHost atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawHost.Store(r.URL.Host)
		canned(200, okBody, &n)(w, r)
	}))
	defer proxy.Close()
	req, _ := envtoken.For(host, tokencache.Identity{}, keys(t, "AWS_ENDPOINT_URL_ECR=http://ecr.invalid:8080", "HTTP_PROXY="+proxy.URL))
	if _, err := req.Fetch(context.Background(), time.Now); err != nil {
		t.Fatal(err)
	}
	if got, _ := sawHost.Load().(string); got != "ecr.invalid:8080" {
		t.Errorf("proxy saw host %q", got)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests reached the proxy, want 1", n.Load())
	}
}

func TestFetchGivesUpAtTheDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	req, _ := envtoken.For(host, tokencache.Identity{}, keys(t, "AWS_ENDPOINT_URL_ECR="+srv.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := req.Fetch(ctx, time.Now); err == nil {
		t.Fatal("a server that never answers gave a token")
	}
}
