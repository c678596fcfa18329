package ecrauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

const reg = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// useEmulator points the process environment (which the AWS SDK reads) at e
// and at empty AWS config files, and returns that environment.
func useEmulator(t *testing.T, e *ecrfake.Emulator) []string {
	t.Helper()
	dir := t.TempDir()
	env := append(e.Env(),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return env
}

func checkWorks(t *testing.T, e *ecrfake.Emulator, tok ecrauth.Token) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/", nil)
	req.SetBasicAuth(tok.Username, tok.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tok.Username != "AWS" {
		t.Fatalf("token does not open the registry: %d (user %q)", resp.StatusCode, tok.Username)
	}
}

func TestTokenCachedInMemoryThenFile(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := useEmulator(t, e)
	dir := filepath.Join(t.TempDir(), "cache", "ecrgate")
	s := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env})
	ctx := context.Background()
	tok, err := s.Token(ctx, "https://"+reg+"/v2/")
	if err != nil {
		t.Fatal(err)
	}
	checkWorks(t, e, tok)
	if d := time.Until(tok.ExpiresAt); d < 11*time.Hour {
		t.Errorf("expires in %v", d)
	}
	if _, err := s.Token(ctx, reg); err != nil {
		t.Fatal(err)
	}
	// A new process: memory is empty, the file cache answers.
	s2 := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env})
	tok2, err := s2.Token(ctx, reg)
	if err != nil || tok2.Password != tok.Password {
		t.Fatalf("second source: %v, same token %v", err, tok2.Password == tok.Password)
	}
	if n := e.Calls("GetAuthorizationToken"); n != 1 {
		t.Errorf("GetAuthorizationToken calls = %d, want 1", n)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode = %v, %v", st.Mode().Perm(), err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files = %v", files)
	}
	st, _ = os.Stat(files[0])
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode = %v", st.Mode().Perm())
	}
	if got := s2.Cached(); len(got) != 1 || got[0].Registry != reg {
		t.Errorf("Cached() = %v", got)
	}
	// docker logout: Forget drops it everywhere.
	if err := s2.Forget(reg); err != nil {
		t.Fatal(err)
	}
	if got := s2.Cached(); len(got) != 0 {
		t.Errorf("Cached() after Forget = %v", got)
	}
	if _, err := s2.Token(ctx, reg); err != nil || e.Calls("GetAuthorizationToken") != 2 {
		t.Errorf("after Forget: %v, calls %d", err, e.Calls("GetAuthorizationToken"))
	}
}

func TestCorruptOrForeignCacheFileIsRewritten(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := useEmulator(t, e)
	dir := filepath.Join(t.TempDir(), "tokens") // t.TempDir is 0755; the token cache refuses that
	s := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env})
	if _, err := s.Token(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, junk := range [][]byte{[]byte("{not json"), []byte(`{"key":"someone else's","token":{"password":"x","expiresAt":"2999-01-01T00:00:00Z"}}`), bytes.Repeat([]byte("x"), 100<<10), nil} {
		if err := os.WriteFile(files[0], junk, 0o600); err != nil {
			t.Fatal(err)
		}
		before := e.Calls("GetAuthorizationToken")
		tok, err := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env}).Token(context.Background(), reg)
		if err != nil {
			t.Fatalf("with a corrupt cache file: %v", err)
		}
		checkWorks(t, e, tok)
		if e.Calls("GetAuthorizationToken") != before+1 {
			t.Errorf("corrupt file %q was trusted", junk[:min(len(junk), 20)])
		}
	}
}

func TestRefreshInsideMarginAndNeverExpired(t *testing.T) {
	// Tokens live 30 minutes (the emulator stamps expiry with the real
	// clock); the source refreshes inside 20 minutes of expiry, and its own
	// clock is moved forward.
	e := ecrfake.Start(t, ecrfake.Options{TokenLifetime: 30 * time.Minute})
	env := useEmulator(t, e)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	dir := filepath.Join(t.TempDir(), "tokens") // t.TempDir is 0755; the token cache refuses that
	newSource := func() *ecrauth.Source {
		return ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env, Now: now, Margin: 20 * time.Minute})
	}
	s := newSource()
	ctx := context.Background()
	first, err := s.Token(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(5 * time.Minute)) // 25 minutes left: no refresh
	if tok, _ := s.Token(ctx, reg); tok.Password != first.Password || e.Calls("GetAuthorizationToken") != 1 {
		t.Fatalf("refreshed with 25 minutes left")
	}
	offset.Store(int64(15 * time.Minute)) // 15 minutes left: inside the margin
	second, err := s.Token(ctx, reg)
	if err != nil || second.Password == first.Password || e.Calls("GetAuthorizationToken") != 2 {
		t.Fatalf("no refresh inside the margin: %v, calls %d", err, e.Calls("GetAuthorizationToken"))
	}
	// Inside the margin with AWS failing: the still-valid token is used.
	e.FailNext("GetAuthorizationToken", 3, ecrfake.FaultThrottle)
	tok, err := newSource().Token(ctx, reg)
	if err != nil || tok.Password != second.Password {
		t.Fatalf("refresh failure with a valid token cached: %v", err)
	}
	// Expired with AWS failing: an error, never the expired token.
	offset.Store(int64(31 * time.Minute))
	e.FailNext("GetAuthorizationToken", 3, ecrfake.FaultThrottle)
	tok, err = newSource().Token(ctx, reg)
	if err == nil {
		t.Fatalf("handed out %v after it expired", tok)
	}
	var ae *ecrauth.Error
	if !errors.As(err, &ae) || ae.Kind() != "throttled" {
		t.Errorf("error = %v (kind %v)", err, ae)
	}
}

// Fifty sources (as fifty helper processes would) share one file cache and
// start at once: the file lock lets exactly one of them call the API.
func TestConcurrentSourcesMakeOneCall(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Latency: 50 * time.Millisecond})
	env := useEmulator(t, e)
	dir := filepath.Join(t.TempDir(), "tokens") // t.TempDir is 0755; the token cache refuses that
	var wg sync.WaitGroup
	passwords := make([]string, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env}).Token(context.Background(), reg)
			passwords[i], errs[i] = tok.Password, err
		}()
	}
	wg.Wait()
	for i := range 50 {
		if errs[i] != nil || passwords[i] != passwords[0] {
			t.Fatalf("source %d: %v (same token %v)", i, errs[i], passwords[i] == passwords[0])
		}
	}
	if n := e.Calls("GetAuthorizationToken"); n != 1 {
		t.Errorf("GetAuthorizationToken calls = %d, want 1", n)
	}
}

func TestNoCacheCallsEveryTime(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := useEmulator(t, e)
	s := ecrauth.New(ecrauth.Options{CacheDir: t.TempDir(), Env: env, NoCache: true})
	for range 3 {
		if _, err := s.Token(context.Background(), reg); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Calls("GetAuthorizationToken"); n != 3 {
		t.Errorf("calls = %d, want 3", n)
	}
}

func TestCacheKey(t *testing.T) {
	base := []string{"AWS_ACCESS_KEY_ID=AKIAFIRST", "AWS_SECRET_ACCESS_KEY=s3cr3t-value"}
	tests := []struct {
		name      string
		id        ecrauth.Identity
		env       []string
		sameAs    string
		different string
	}{
		{name: "env keys", env: base},
		{name: "configured profile beats env keys", id: ecrauth.Identity{Profile: "dev"}, env: base},
		{name: "rotating SSO keys under one profile", id: ecrauth.Identity{Profile: "dev"}, env: []string{"AWS_ACCESS_KEY_ID=ASIAOTHER", "AWS_SECRET_ACCESS_KEY=x"}, sameAs: "configured profile beats env keys"},
		{name: "AWS_PROFILE", env: []string{"AWS_PROFILE=ci"}},
		{name: "default", env: nil},
		{name: "web identity", env: []string{"AWS_WEB_IDENTITY_TOKEN_FILE=/t", "AWS_ROLE_ARN=arn:aws:iam::1:role/r"}},
		{name: "emulator endpoint", env: append([]string{"AWS_ENDPOINT_URL_ECR=http://127.0.0.1:1"}, base...), different: "env keys"},
		{name: "role on top", id: ecrauth.Identity{Profile: "dev", RoleARN: "arn:aws:iam::1:role/pusher"}, env: base, different: "configured profile beats env keys"},
	}
	keys := map[string]string{}
	for _, tt := range tests {
		k := ecrauth.CacheKey(reg, tt.id, tt.env)
		keys[tt.name] = k
		if strings.Contains(k, "s3cr3t") || strings.Contains(k, "AKIAFIRST") {
			t.Errorf("%s: key %q leaks a credential", tt.name, k)
		}
		if tt.sameAs != "" && keys[tt.sameAs] != k {
			t.Errorf("%s: key %q differs from %q", tt.name, k, keys[tt.sameAs])
		}
		if tt.different != "" && keys[tt.different] == k {
			t.Errorf("%s: key equals %q's", tt.name, tt.different)
		}
	}
	if keys["env keys"] == ecrauth.CacheKey(reg, ecrauth.Identity{}, []string{"AWS_ACCESS_KEY_ID=AKIASECOND", "AWS_SECRET_ACCESS_KEY=x"}) {
		t.Error("two access keys share a cache key")
	}
}

func TestActionableErrors(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Users: []ecrfake.User{{Name: "ci", AccessKey: "AKIACI00000000000000", SecretKey: "ci-secret"}}})
	e.DenyAction("arn:aws:iam::123456789012:user/ci", "ecr:GetAuthorizationToken")
	env := useEmulator(t, e)
	tests := []struct {
		name  string
		env   map[string]string
		id    ecrauth.Identity
		kind  string
		words []string
	}{
		{"access denied", map[string]string{"AWS_ACCESS_KEY_ID": "AKIACI00000000000000", "AWS_SECRET_ACCESS_KEY": "ci-secret"}, ecrauth.Identity{}, "access-denied",
			[]string{"arn:aws:iam::123456789012:user/ci", "ecr:GetAuthorizationToken"}},
		{"wrong secret", map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong"}, ecrauth.Identity{}, "bad-secret", []string{"secret access key"}},
		{"unknown key", map[string]string{"AWS_ACCESS_KEY_ID": "AKIANOBODY0000000000"}, ecrauth.Identity{}, "bad-key", []string{"access key"}},
		{"no credentials", map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, ecrauth.Identity{}, "no-credentials", []string{"aws configure", "aws sso login"}},
		{"missing profile", nil, ecrauth.Identity{Profile: "nope"}, "profile-missing", []string{`"nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			s := ecrauth.New(ecrauth.Options{Env: env, NoCache: true, Identities: func(string) ecrauth.Identity { return tt.id }})
			start := time.Now()
			_, err := s.Token(context.Background(), reg)
			var ae *ecrauth.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error = %v (%T)", err, err)
			}
			if ae.Kind() != tt.kind {
				t.Errorf("kind = %s, want %s (%v)", ae.Kind(), tt.kind, err)
			}
			msg := err.Error()
			for _, w := range tt.words {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if strings.Count(strings.TrimSuffix(msg, "."), ". ") > 0 || strings.Contains(msg, "\n") {
				t.Errorf("message is not one sentence: %q", msg)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// A region typo never reaches AWS.
	_, err := ecrauth.New(ecrauth.Options{Env: env}).Token(context.Background(), "123456789012.dkr.ecr.us-eas-1.amazonaws.com")
	if err == nil || !strings.Contains(err.Error(), "did you mean us-east-1?") {
		t.Errorf("region typo: %v", err)
	}
}

// recorder answers every AWS call with an error and remembers the hosts asked.
type recorder struct {
	mu    sync.Mutex
	hosts []string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	r.mu.Unlock()
	return nil, fmt.Errorf("recorder: no network in tests")
}

func TestAPIEndpointFollowsHost(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// AWS_CA_BUNDLE (exported on CI machines) would make the SDK wrap the
	// recording client's transport, which it cannot.
	for _, k := range []string{"AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR_PUBLIC", "AWS_PROFILE", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	tests := []struct{ host, want string }{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", "api.ecr.us-east-1.amazonaws.com"},
		{"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "api.ecr-fips.us-east-1.amazonaws.com"}, // the SDK's rule-based resolver
		{"123456789012.dkr-ecr.eu-west-1.on.aws", "ecr.eu-west-1.api.aws"},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "api.ecr.cn-north-1.amazonaws.com.cn"},
		{"public.ecr.aws", "api.ecr-public.us-east-1.amazonaws.com"},
	}
	for _, tt := range tests {
		rec := &recorder{}
		f := &ecrauth.SDKFetcher{HTTPClient: rec, MaxAttempts: 1}
		s := ecrauth.New(ecrauth.Options{Fetcher: f, NoCache: true})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.Token(ctx, tt.host)
		cancel()
		if err == nil {
			t.Fatalf("%s: no error from the recorder", tt.host)
		}
		if len(rec.hosts) == 0 || !strings.HasPrefix(rec.hosts[0], tt.want) {
			t.Errorf("%s: API called at %v, want %s (error %v)", tt.host, rec.hosts, tt.want, err)
		}
	}
}

func TestECRPublicAndAssumedRole(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"123456789012", "222222222222"}})
	env := useEmulator(t, e)
	s := ecrauth.New(ecrauth.Options{Env: env, CacheDir: filepath.Join(t.TempDir(), "tokens"), Identities: func(host string) ecrauth.Identity {
		if strings.HasPrefix(host, "222222222222.") {
			return ecrauth.Identity{RoleARN: "arn:aws:iam::222222222222:role/pusher"}
		}
		return ecrauth.Identity{}
	}})
	pub, err := s.Token(context.Background(), "public.ecr.aws")
	if err != nil || pub.Username != "AWS" || e.Calls(ecrfake.OpPublicGetAuthTok) != 1 {
		t.Fatalf("ECR Public: %v %v", pub, err)
	}
	tok, err := s.Token(context.Background(), "222222222222.dkr.ecr.us-east-1.amazonaws.com")
	if err != nil || e.Calls(ecrfake.OpAssumeRole) != 1 {
		t.Fatalf("assumed role: %v, AssumeRole calls %d", err, e.Calls(ecrfake.OpAssumeRole))
	}
	// The token opens account 2's registry, reached by its ECR host name.
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/", nil)
	req.Host = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
	req.SetBasicAuth(tok.Username, tok.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("account 2 registry: %d", resp.StatusCode)
	}
}

func TestTokenNeverLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tok := ecrauth.Token{Registry: reg, Username: "AWS", Password: "super-secret-password", ExpiresAt: time.Now()}
	log.Info("got", "token", tok)
	s := fmt.Sprintf("%v %s %+v", tok, tok, tok)
	if strings.Contains(buf.String(), "super-secret") || strings.Contains(s, "super-secret") {
		t.Errorf("password leaked: %s / %s", buf.String(), s)
	}
}

// A machine without credentials whose metadata address swallows requests
// (accepts, never answers) must get the no-credentials error quickly, not
// after the SDK's retries. The exact time is in make bench; this only
// catches a hang.
func TestNoCredentialsWithSilentMetadataService(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	dir := t.TempDir()
	env := []string{"HOME=" + dir, "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_ECR=http://127.0.0.1:1",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://" + ln.Addr().String(),
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials")}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_EC2_METADATA_DISABLED",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	start := time.Now()
	_, err = ecrauth.New(ecrauth.Options{Env: env, NoCache: true}).Token(context.Background(), reg)
	var ae *ecrauth.Error
	if !errors.As(err, &ae) || ae.Kind() != "no-credentials" {
		t.Fatalf("error = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v: the metadata probe is not bounded", d)
	}
	mu.Lock()
	n := len(held)
	mu.Unlock()
	if n == 0 {
		t.Error("the metadata endpoint was never asked: the test does not test what it says")
	}
}
