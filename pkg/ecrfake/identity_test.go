package ecrfake_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/sso"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

func TestAssumeRoleThenECR(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"111111111111", "222222222222"}})
	base := sdkConfig(e, e.AccessKey(), e.SecretKey())
	stsc := sts.NewFromConfig(base)
	id, err := stsc.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(id.Arn) != "arn:aws:iam::111111111111:user/ecrfake" || aws.ToString(id.Account) != "111111111111" {
		t.Fatalf("GetCallerIdentity = %+v, %v", id, err)
	}

	roled := base.Copy()
	roled.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsc, "arn:aws:iam::222222222222:role/pusher"))
	c := ecr.NewFromConfig(roled)
	tok, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("ECR with assumed-role credentials: %v", err)
	}
	if got := aws.ToString(tok.AuthorizationData[0].ProxyEndpoint); got != "https://222222222222.dkr.ecr.us-east-1.amazonaws.com" {
		t.Errorf("assumed role's registry = %s, want account 222222222222", got)
	}
	rid, err := sts.NewFromConfig(roled).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil || !strings.HasPrefix(aws.ToString(rid.Arn), "arn:aws:sts::222222222222:assumed-role/pusher/") {
		t.Fatalf("assumed identity = %+v, %v", rid, err)
	}

	// A role whose trust policy refuses us, and an account the emulator does not have.
	e.DenyAction("arn:aws:iam::222222222222:role/locked", "trust")
	for _, role := range []string{"arn:aws:iam::222222222222:role/locked", "arn:aws:iam::999999999999:role/x"} {
		_, err = stsc.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("s")})
		wantCode(t, err, "AccessDenied")
	}
	// Wrong secret on STS gets STS's own code.
	_, err = sts.NewFromConfig(sdkConfig(e, e.AccessKey(), "bad")).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	wantCode(t, err, "SignatureDoesNotMatch")
}

type tokenFile string

func (f tokenFile) GetIdentityToken() ([]byte, error) { return []byte(f), nil }

func TestWebIdentityAndExpiry(t *testing.T) {
	var now time.Time
	e := ecrfake.Start(t, ecrfake.Options{CredentialLifetime: 15 * time.Minute, Now: func() time.Time {
		if now.IsZero() {
			return time.Now()
		}
		return now
	}})
	cfg := sdkConfig(e, "unused", "unused")
	p := stscreds.NewWebIdentityRoleProvider(sts.NewFromConfig(cfg), "arn:aws:iam::123456789012:role/gha", tokenFile("eyJhbGciOi.fake.jwt"))
	creds, err := p.Retrieve(context.Background())
	if err != nil || creds.SessionToken == "" || !creds.CanExpire {
		t.Fatalf("web identity: %+v, %v", creds, err)
	}
	cfg.Credentials = aws.NewCredentialsCache(p)
	if _, err := ecr.NewFromConfig(cfg).DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{}); err != nil {
		t.Fatalf("ECR with web-identity credentials: %v", err)
	}
	_, err = stscreds.NewWebIdentityRoleProvider(sts.NewFromConfig(cfg), "arn:aws:iam::123456789012:role/gha", tokenFile(" ")).Retrieve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "InvalidIdentityToken") {
		t.Errorf("empty web identity token: %v", err)
	}
	// Once the temporary credentials expire, ECR says so.
	now = time.Now().Add(16 * time.Minute)
	static := sdkConfig(e, creds.AccessKeyID, creds.SecretAccessKey)
	static.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })
	_, err = ecr.NewFromConfig(static, func(o *ecr.Options) { o.Retryer = aws.NopRetryer{} }).DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{})
	if code := apiCode(err); code != "ExpiredTokenException" && code != "InvalidSignatureException" {
		t.Errorf("expired credentials: %v", err)
	}
}

func TestSSOGetRoleCredentials(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{SSOTokens: []string{"good-token"}})
	c := sso.NewFromConfig(sdkConfig(e, "unused", "unused"))
	out, err := c.GetRoleCredentials(context.Background(), &sso.GetRoleCredentialsInput{
		AccessToken: aws.String("good-token"), AccountId: aws.String("123456789012"), RoleName: aws.String("Developer")})
	if err != nil {
		t.Fatal(err)
	}
	rc := out.RoleCredentials
	if rc.Expiration == 0 || time.UnixMilli(rc.Expiration).Before(time.Now()) {
		t.Errorf("expiration = %d", rc.Expiration)
	}
	id, err := sts.NewFromConfig(sdkConfig(e, aws.ToString(rc.AccessKeyId), aws.ToString(rc.SecretAccessKey)), func(o *sts.Options) {
		o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: aws.ToString(rc.AccessKeyId), SecretAccessKey: aws.ToString(rc.SecretAccessKey), SessionToken: aws.ToString(rc.SessionToken)}, nil
		})
	}).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil || !strings.Contains(aws.ToString(id.Arn), "assumed-role/AWSReservedSSO_Developer/") {
		t.Fatalf("SSO identity = %+v, %v", id, err)
	}
	_, err = c.GetRoleCredentials(context.Background(), &sso.GetRoleCredentialsInput{
		AccessToken: aws.String("stale-token"), AccountId: aws.String("123456789012"), RoleName: aws.String("Developer")})
	wantCode(t, err, "UnauthorizedException")
}

// TestEnvWithDefaultConfig resolves everything the way a real user's tools do:
// config.LoadDefaultConfig reading the variables Env returns.
func TestEnvWithDefaultConfig(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	for _, kv := range e.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ecr.NewFromConfig(cfg).CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("env/app")}); err != nil {
		t.Fatalf("CreateRepository through AWS_ENDPOINT_URL_ECR: %v", err)
	}
	if _, ok := e.Repository("", "env/app"); !ok {
		t.Fatal("repository not created in the emulator")
	}
	pub, err := ecrpublic.NewFromConfig(cfg).GetAuthorizationToken(context.Background(), &ecrpublic.GetAuthorizationTokenInput{})
	if err != nil || aws.ToString(pub.AuthorizationData.AuthorizationToken) == "" {
		t.Fatalf("ECR Public GetAuthorizationToken: %+v, %v", pub, err)
	}
	if e.Calls(ecrfake.OpPublicGetAuthTok) != 1 {
		t.Errorf("ECR Public calls = %d", e.Calls(ecrfake.OpPublicGetAuthTok))
	}
}

func TestFaultInjection(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e) // standard retryer: 3 attempts
	ctx := context.Background()

	e.FailNext("CreateRepository", 2, ecrfake.FaultThrottle)
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("f/a")}); err != nil {
		t.Fatalf("two throttles then success: %v", err)
	}
	if n := e.Calls("CreateRepository"); n != 3 {
		t.Errorf("CreateRepository calls = %d, want 3", n)
	}
	noRetry := ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey()), func(o *ecr.Options) { o.Retryer = aws.NopRetryer{} })
	e.FailNext("CreateRepository", 1, ecrfake.FaultServerError)
	_, err := noRetry.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("f/b")})
	wantCode(t, err, "ServerException")
	e.FailNext("DescribeRepositories", 1, ecrfake.FaultDrop)
	_, err = noRetry.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
	if err == nil || apiCode(err) != "" {
		t.Errorf("dropped connection gave %v", err)
	}

	// Registry operations fail the same way.
	rc := newRegClient(t, e)
	e.FailNext(ecrfake.OpUploadStart, 1, ecrfake.FaultDrop)
	req, _ := http.NewRequest(http.MethodPost, e.URL()+"/v2/f/a/blobs/uploads/", strings.NewReader("layer bytes"))
	req.SetBasicAuth("AWS", passwordOf(rc))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("dropped upload answered %d", resp.StatusCode)
	}
	e.FailNext(ecrfake.OpRegistryBase, 1, ecrfake.FaultThrottle)
	req, _ = http.NewRequest(http.MethodGet, e.URL()+"/v2/", nil)
	req.SetBasicAuth("AWS", passwordOf(rc))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "TOOMANYREQUESTS") {
		t.Errorf("throttled registry: %d %s", resp.StatusCode, body)
	}

	e.SetLatency(150 * time.Millisecond)
	start := time.Now()
	if _, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("call took %v with 150ms latency", d)
	}
	e.SetLatency(0)
}

func passwordOf(rc *regClient) string {
	b, _ := rc.auth.Authorization()
	return b.Password
}

func TestAdminEndpoint(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	post := func(path string) int {
		resp, err := http.Post(e.URL()+"/_ecrfake/"+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("fail?op=CreateRepository&n=1&fault=throttle"); code != http.StatusNoContent {
		t.Fatalf("fail: %d", code)
	}
	noRetry := ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey()), func(o *ecr.Options) { o.Retryer = aws.NopRetryer{} })
	_, err := noRetry.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("adm/a")})
	wantCode(t, err, "ThrottlingException")
	for _, bad := range []string{"fail?op=X&n=0&fault=500", "fail?op=X&n=1&fault=explode", "latency?d=soon"} {
		if code := post(bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	resp, err := http.Get(e.URL() + "/_ecrfake/calls")
	if err != nil {
		t.Fatal(err)
	}
	var counts map[string]int
	err = json.NewDecoder(resp.Body).Decode(&counts)
	resp.Body.Close()
	if err != nil || counts["CreateRepository"] != 1 {
		t.Errorf("calls = %v, %v", counts, err)
	}
	tok := registryPassword(t, ecrClient(e))
	if code := post("expire-tokens"); code != http.StatusNoContent {
		t.Fatal(code)
	}
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/", nil)
	req.SetBasicAuth("AWS", tok)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden {
		t.Errorf("token after expire-tokens: %d", r2.StatusCode)
	}
}

func TestStartFailsOnBadOptions(t *testing.T) {
	for _, o := range []ecrfake.Options{{Accounts: []string{"12345"}}, {Region: "us-eas-1"}, {AccessKey: "only-key"}} {
		if _, err := ecrfake.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	_, err := ecrfake.New(ecrfake.Options{Region: "us-eas-1"})
	if err == nil || !strings.Contains(err.Error(), "us-east-1") {
		t.Errorf("region typo error = %v, want a suggestion", err)
	}
}
