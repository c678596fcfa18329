package server_test

import (
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

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// Two registries the emulator serves and the config names; the route sends
// other/… to the second one.
const (
	nsRegistryA = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	nsRegistryB = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
)

// upstreamLog records every request the proxy sends upstream.
type upstreamLog struct {
	mu    sync.Mutex
	inner http.RoundTripper
	reqs  []string // "<Host> <path>?<query>"
}

func (u *upstreamLog) RoundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Host+" "+r.URL.RequestURI())
	u.mu.Unlock()
	return u.inner.RoundTrip(r)
}

func (u *upstreamLog) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reqs
	u.reqs = nil
	return r
}

// addNS adds ?ns=<registry> to every request, as containerd does for a
// hosts.toml host that is not the image's registry.
type addNS struct {
	ns    string
	inner http.RoundTripper
}

func (a addNS) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Add("ns", a.ns)
	r.URL.RawQuery = q.Encode()
	return a.inner.RoundTrip(r)
}

// startNS runs the emulator with accounts A and B and `ecrgate serve` in
// process with both registries configured (default A, route other/ → B).
func startNS(t *testing.T) (e *ecrfake.Emulator, proxyAddr string, up *upstreamLog) {
	t.Helper()
	e = ecrfake.Start(t, ecrfake.Options{Accounts: []string{"123456789012", "222222222222"}})
	dir := t.TempDir()
	env := append(e.Env(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	yaml := fmt.Sprintf("default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n  - host: %s\n    endpoint: %s\nroutes:\n  - prefix: other/\n    registry: %s\n",
		nsRegistryA, filepath.Join(dir, "audit.jsonl"), nsRegistryA, e.URL(), nsRegistryB, e.URL(), nsRegistryB)
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "ecrgate.yaml"), env)
	if err != nil {
		t.Fatal(err)
	}
	regLn, _ := net.Listen("tcp", "127.0.0.1:0")
	adminLn, _ := net.Listen("tcp", "127.0.0.1:0")
	up = &upstreamLog{inner: http.DefaultTransport.(*http.Transport).Clone()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Env: env, Logger: slog.New(slog.DiscardHandler),
			ShutdownTimeout: 60 * time.Second, Transport: up,
			Listeners: map[string]net.Listener{"registry": regLn, "admin": adminLn}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	return e, regLn.Addr().String(), up
}

// TestNSRoutesToTheNamedRegistry: containerd's ?ns=<registry> picks the
// registry (over default_registry and routes) when the config names it, and
// never reaches the upstream.
func TestNSRoutesToTheNamedRegistry(t *testing.T) {
	e, proxyAddr, up := startNS(t)
	tests := []struct {
		name     string
		ns       string // "" = no ns parameter
		repo     string // as the client writes it
		account  string // where the repository must appear
		wantRepo string
		wantHost string // the Host every upstream request carries
	}{
		{"no ns: default registry", "", "plain/app", "123456789012", "plain/app", nsRegistryA},
		{"no ns: route by prefix", "", "other/app", "222222222222", "app", nsRegistryB},
		{"ns names B", nsRegistryB, "team/app", "222222222222", "team/app", nsRegistryB},
		{"ns names A, beats the route", nsRegistryA, "other/kept", "123456789012", "other/kept", nsRegistryA},
		{"ns in upper case with the default port", strings.ToUpper(nsRegistryB) + ":443", "upper/app", "222222222222", "upper/app", nsRegistryB},
		{"ns names the proxy itself", "localhost:5000", "self/app", "123456789012", "self/app", nsRegistryA},
		// Names qualified with a configured registry (a containerd hosts.toml
		// host with override_path: /v2/<registry>/<repo>/…).
		{"no ns: qualified with B", "", nsRegistryB + "/qual/app", "222222222222", "qual/app", nsRegistryB},
		{"no ns: qualified with A beats the route", "", nsRegistryA + "/other/q", "123456789012", "other/q", nsRegistryA},
		{"ns names B, qualified with B", nsRegistryB, nsRegistryB + "/qual2/app", "222222222222", "qual2/app", nsRegistryB},
		{"qualified with an unconfigured host: a plain name", "", "999999999999.dkr.ecr.us-east-1.amazonaws.com/x", "123456789012",
			"999999999999.dkr.ecr.us-east-1.amazonaws.com/x", nsRegistryA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr http.RoundTripper = http.DefaultTransport
			if tt.ns != "" {
				tr = addNS{ns: tt.ns, inner: tr}
			}
			ref, err := name.ParseReference(proxyAddr+"/"+tt.repo+":1", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img := randomImage(t, 1024, 1)
			if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
				t.Fatalf("push with ns=%q: %v", tt.ns, err)
			}
			if _, ok := e.Repository(tt.account, tt.wantRepo); !ok {
				t.Fatalf("repository %s not created in account %s (%v)", tt.wantRepo, tt.account, e.Repositories(tt.account))
			}
			got, err := remote.Head(ref, remote.WithTransport(tr))
			if err != nil || got.Digest != digestOf(t, img) {
				t.Fatalf("head after push = %v, %v; want %s", got, err, digestOf(t, img))
			}
			reqs := up.take()
			if len(reqs) == 0 {
				t.Fatal("no request reached the upstream")
			}
			for _, r := range reqs {
				host, uri, _ := strings.Cut(r, " ")
				if host != tt.wantHost {
					t.Errorf("upstream request %s went to %s, want %s", uri, host, tt.wantHost)
				}
				if strings.Contains(uri, "ns=") {
					t.Errorf("the ns parameter reached the upstream: %s", uri)
				}
				if strings.HasPrefix(uri, "/v2/") && uri != "/v2/" && !strings.HasPrefix(uri, "/v2/"+tt.wantRepo+"/") {
					t.Errorf("upstream request %s is not for repository %s", uri, tt.wantRepo)
				}
			}
		})
	}
}

// TestNSRefusesUnconfiguredRegistries: an ns naming a host the config does
// not name is a DENIED registry error, and nothing is sent anywhere.
func TestNSRefusesUnconfiguredRegistries(t *testing.T) {
	e, proxyAddr, up := startNS(t)
	const notServed = "add it under registries in"
	for _, tt := range []struct{ ns, wantMsg string }{
		{"999999999999.dkr.ecr.us-east-1.amazonaws.com", notServed}, // ECR, but not configured
		{"docker.io", notServed},
		{"evil.example.com:443", notServed},
		{"127.0.0.2.nip.io", notServed},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example.com", notServed},
		{nsRegistryA + "&ns=docker.io", "names several registries"},
	} {
		ns := tt.ns
		t.Run(ns, func(t *testing.T) {
			for _, path := range []string{"/v2/", "/v2/team/app/blobs/uploads/", "/v2/team/app/manifests/1"} {
				method := http.MethodGet
				if strings.HasSuffix(path, "/uploads/") {
					method = http.MethodPost
				}
				q := "ns=" + ns
				if !strings.Contains(ns, "&") {
					q = "ns=" + strings.ReplaceAll(ns, ":", "%3A")
				}
				req, _ := http.NewRequest(method, "http://"+proxyAddr+path+"?"+q, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				var errs struct {
					Errors []struct{ Code, Message string }
				}
				_ = json.Unmarshal(body, &errs)
				if resp.StatusCode != http.StatusForbidden || len(errs.Errors) != 1 || errs.Errors[0].Code != "DENIED" ||
					!strings.Contains(errs.Errors[0].Message, tt.wantMsg) {
					t.Errorf("%s %s?%s = %d %s, want 403 DENIED saying %q", method, path, q, resp.StatusCode, body, tt.wantMsg)
				}
			}
			if reqs := up.take(); len(reqs) != 0 {
				t.Errorf("a refused ns reached an upstream: %v", reqs)
			}
		})
	}
	if n := e.Calls("CreateRepository"); n != 0 {
		t.Errorf("CreateRepository calls = %d, want 0", n)
	}
}

// TestNSConflictsWithQualifiedName: ns and a registry-qualified path that
// name different registries are refused before anything is sent.
func TestNSConflictsWithQualifiedName(t *testing.T) {
	e, proxyAddr, up := startNS(t)
	req, _ := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/v2/"+nsRegistryB+"/team/app/blobs/uploads/?ns="+nsRegistryA, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"DENIED"`) || !strings.Contains(string(body), "name one") {
		t.Errorf("POST with ns=A and a path qualified with B = %d %s, want 403 DENIED", resp.StatusCode, body)
	}
	if reqs := up.take(); len(reqs) != 0 {
		t.Errorf("a conflicting request reached an upstream: %v", reqs)
	}
	if n := e.Calls("CreateRepository"); n != 0 {
		t.Errorf("CreateRepository calls = %d, want 0", n)
	}
}
