package ecrauth_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// ssoProfile writes an sso_session profile "dev" and its token cache, as
// `aws sso login --profile dev` leaves them, with the token expiring at exp.
func ssoProfile(t *testing.T, e *ecrfake.Emulator, exp time.Time) []string {
	t.Helper()
	home := t.TempDir()
	cfg := `[profile dev]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = Developer
region = us-east-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1
sso_registration_scopes = sso:account:access
`
	if err := os.WriteFile(filepath.Join(home, "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte("corp"))
	cache := filepath.Join(home, ".aws", "sso", "cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	tok := `{"accessToken":"sso-access-token","expiresAt":"` + exp.UTC().Format(time.RFC3339) + `","region":"us-east-1","startUrl":"https://corp.awsapps.com/start",` +
		`"clientId":"cid","clientSecret":"csecret","registrationExpiresAt":"` + time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339) + `","refreshToken":"rt"}`
	if err := os.WriteFile(filepath.Join(cache, hex.EncodeToString(sum[:])+".json"), []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"HOME=" + home, "AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_PROFILE=dev", "AWS_ENDPOINT_URL_ECR=" + e.URL(), "AWS_ENDPOINT_URL_SSO=" + e.URL(), "AWS_ENDPOINT_URL_SSO_OIDC=" + e.URL(),
		"AWS_ENDPOINT_URL_STS=" + e.URL(), "AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1",
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return env
}

func TestSSOSessionProfile(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{SSOTokens: []string{"sso-access-token"}})
	env := ssoProfile(t, e, time.Now().Add(8*time.Hour))
	dir := filepath.Join(t.TempDir(), "tokens") // t.TempDir is 0755; the token cache refuses that
	tok, err := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env}).Token(context.Background(), reg)
	if err != nil {
		t.Fatalf("sso_session profile: %v", err)
	}
	checkWorks(t, e, tok)
	if e.Calls(ecrfake.OpGetRoleCreds) != 1 || e.Calls("GetAuthorizationToken") != 1 {
		t.Fatalf("calls: %v", e.CallCounts())
	}
	// A later process gets new temporary SSO keys, but the same cache entry:
	// no call at all.
	e.ResetCalls()
	if _, err := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env}).Token(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	if n := len(e.CallCounts()); n != 0 {
		t.Errorf("warm get with an SSO profile made calls: %v", e.CallCounts())
	}
}

func TestExpiredSSOSession(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{SSOTokens: []string{"sso-access-token"}})
	env := ssoProfile(t, e, time.Now().Add(-time.Hour))
	_, err := ecrauth.New(ecrauth.Options{Env: env, NoCache: true}).Token(context.Background(), reg)
	var ae *ecrauth.Error
	if !errors.As(err, &ae) || ae.Kind() != "sso-expired" || !strings.Contains(err.Error(), "aws sso login --profile dev") {
		t.Fatalf("expired SSO session: %v (kind %v)", err, ae)
	}
	if e.Calls("GetAuthorizationToken") != 0 {
		t.Error("ECR was called without credentials")
	}
}
