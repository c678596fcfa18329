package ecrfake_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// signedCall sends op with body as the emulator's default user, bypassing
// the SDK's client-side validation, and returns the HTTP status and the
// exception name ("" on success).
func signedCall(t *testing.T, e *ecrfake.Emulator, op, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.URL()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921."+op)
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: e.AccessKey(), SecretAccessKey: e.SecretKey()}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ecr", e.Region(), time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Type string `json:"__type"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Type
}

func TestAccountSettings(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"123456789012", "222222222222"},
		Users: []ecrfake.User{{Name: "two", Account: "222222222222", AccessKey: "AKIATWO0000000000000", SecretKey: "two-secret"}}})
	c := ecrClient(e)
	ctx := context.Background()

	get := func(c *ecr.Client, name string) string {
		t.Helper()
		out, err := c.GetAccountSetting(ctx, &ecr.GetAccountSettingInput{Name: aws.String(name)})
		if err != nil {
			t.Fatalf("GetAccountSetting %s: %v", name, err)
		}
		if aws.ToString(out.Name) != name {
			t.Errorf("GetAccountSetting %s answered name %q", name, aws.ToString(out.Name))
		}
		return aws.ToString(out.Value)
	}
	// ECR's defaults for a new registry.
	for name, want := range map[string]string{"BLOB_MOUNTING": "DISABLED", "REGISTRY_POLICY_SCOPE": "V2", "BASIC_SCAN_TYPE_VERSION": "AWS_NATIVE"} {
		if got := get(c, name); got != want {
			t.Errorf("default %s = %q, want %q", name, got, want)
		}
	}

	for _, s := range []struct{ name, value string }{
		{"BLOB_MOUNTING", "ENABLED"}, {"BLOB_MOUNTING", "DISABLED"}, {"BLOB_MOUNTING", "ENABLED"},
		{"REGISTRY_POLICY_SCOPE", "V1"}, {"BASIC_SCAN_TYPE_VERSION", "CLAIR"},
	} {
		out, err := c.PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String(s.name), Value: aws.String(s.value)})
		if err != nil {
			t.Fatalf("PutAccountSetting %s=%s: %v", s.name, s.value, err)
		}
		if aws.ToString(out.Name) != s.name || aws.ToString(out.Value) != s.value {
			t.Errorf("PutAccountSetting answered %q=%q, want %s=%s", aws.ToString(out.Name), aws.ToString(out.Value), s.name, s.value)
		}
		if got := get(c, s.name); got != s.value {
			t.Errorf("after PutAccountSetting %s=%s, GetAccountSetting = %q", s.name, s.value, got)
		}
	}
	// A setting belongs to the caller's registry only.
	two := ecr.NewFromConfig(sdkConfig(e, "AKIATWO0000000000000", "two-secret"))
	if got := get(two, "BLOB_MOUNTING"); got != "DISABLED" {
		t.Errorf("account 222222222222 sees BLOB_MOUNTING %q set by another account", got)
	}

	_, err := c.PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String("BLOB_MOUNTING"), Value: aws.String("enabled")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String("REGISTRY_POLICY_SCOPE"), Value: aws.String("V3")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String("TAG_MUTABILITY"), Value: aws.String("ENABLED")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.GetAccountSetting(ctx, &ecr.GetAccountSettingInput{Name: aws.String("TAG_MUTABILITY")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.GetAccountSetting(ctx, &ecr.GetAccountSettingInput{Name: aws.String(strings.Repeat("N", 65))})
	wantCode(t, err, "ValidationException")
	if got := get(c, "BLOB_MOUNTING"); got != "ENABLED" {
		t.Errorf("a refused PutAccountSetting changed BLOB_MOUNTING to %q", got)
	}

	// What the SDK refuses before sending, as the service refuses it.
	for _, tc := range []struct{ op, body, want string }{
		{"GetAccountSetting", `{}`, "ValidationException"},
		{"GetAccountSetting", `{"name":""}`, "ValidationException"},
		{"PutAccountSetting", `{"name":"BLOB_MOUNTING"}`, "ValidationException"},
		{"PutAccountSetting", `{"value":"ENABLED"}`, "ValidationException"},
		{"PutAccountSetting", `{"name":"BLOB_MOUNTING","value":"ENABLED"`, "SerializationException"},
	} {
		if code, typ := signedCall(t, e, tc.op, tc.body); code != http.StatusBadRequest || typ != tc.want {
			t.Errorf("%s %s: %d %s, want 400 %s", tc.op, tc.body, code, typ, tc.want)
		}
	}
}

func TestAccountSettingsSurviveRestart(t *testing.T) {
	opts := ecrfake.Options{StorageDir: t.TempDir()}
	e1, err := ecrfake.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := startServer(t, e1)
	ctx := context.Background()
	if _, err := ecrClient(e1).PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String("BLOB_MOUNTING"), Value: aws.String("ENABLED")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ecrClient(e1).PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(registryPolicy)}); err != nil {
		t.Fatal(err)
	}
	stop()
	e2 := ecrfake.Start(t, opts)
	out, err := ecrClient(e2).GetAccountSetting(ctx, &ecr.GetAccountSettingInput{Name: aws.String("BLOB_MOUNTING")})
	if err != nil || aws.ToString(out.Value) != "ENABLED" {
		t.Errorf("BLOB_MOUNTING after restart: %v %v", aws.ToString(out.Value), err)
	}
	pol, err := ecrClient(e2).GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
	if err != nil || aws.ToString(pol.PolicyText) != registryPolicy {
		t.Errorf("registry policy after restart: %v", err)
	}
}

const registryPolicy = `{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"arn:aws:ecr:us-east-1:123456789012:repository/*"}]}`

func TestRegistryPolicy(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()

	_, err := c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
	wantCode(t, err, "RegistryPolicyNotFoundException")
	if !strings.Contains(err.Error(), "Registry policy does not exist in the registry with id '123456789012'") {
		t.Errorf("message: %v", err)
	}
	_, err = c.DeleteRegistryPolicy(ctx, &ecr.DeleteRegistryPolicyInput{})
	wantCode(t, err, "RegistryPolicyNotFoundException")

	for _, bad := range []string{
		"not json",
		`{"Version":"2012-10-17"}`,
		`{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"someone","Action":"ecr:*"}]}`,
		`{"Statement":{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::333333333333:root"]},"Action":"ecr:*","Resource":"*"},"x":"` + strings.Repeat("x", 10240) + `"}`,
	} {
		_, err := c.PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(bad)})
		wantCode(t, err, "InvalidParameterException")
	}
	_, err = c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
	wantCode(t, err, "RegistryPolicyNotFoundException")

	put, err := c.PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(registryPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(put.RegistryId) != "123456789012" || aws.ToString(put.PolicyText) != registryPolicy {
		t.Errorf("PutRegistryPolicy answered %q %q", aws.ToString(put.RegistryId), aws.ToString(put.PolicyText))
	}
	got, err := c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
	if err != nil || aws.ToString(got.RegistryId) != "123456789012" || aws.ToString(got.PolicyText) != registryPolicy {
		t.Fatalf("GetRegistryPolicy: %v %+v", err, got)
	}
	// A single statement object is a policy too; Put replaces.
	single := `{"Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}}`
	if _, err := c.PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(single)}); err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteRegistryPolicy(ctx, &ecr.DeleteRegistryPolicyInput{})
	if err != nil || aws.ToString(del.PolicyText) != single || aws.ToString(del.RegistryId) != "123456789012" {
		t.Fatalf("DeleteRegistryPolicy: %v %+v", err, del)
	}
	_, err = c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
	wantCode(t, err, "RegistryPolicyNotFoundException")

	if code, typ := signedCall(t, e, "PutRegistryPolicy", `{}`); code != http.StatusBadRequest || typ != "InvalidParameterException" {
		t.Errorf("PutRegistryPolicy without policyText: %d %s", code, typ)
	}
}

// TestAccountOperationsGoThroughTheControlPlane: DenyAction, fault
// injection and call counting apply to the new operations as to every other.
func TestAccountOperationsGoThroughTheControlPlane(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey()), func(o *ecr.Options) { o.Retryer = aws.NopRetryer{} })
	ctx := context.Background()

	e.DenyAction("arn:aws:iam::123456789012:user/ecrfake", "ecr:PutAccountSetting")
	_, err := c.PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String("BLOB_MOUNTING"), Value: aws.String("ENABLED")})
	wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(err.Error(), "is not authorized to perform: ecr:PutAccountSetting") {
		t.Errorf("message: %v", err)
	}
	out, err := c.GetAccountSetting(ctx, &ecr.GetAccountSettingInput{Name: aws.String("BLOB_MOUNTING")})
	if err != nil || aws.ToString(out.Value) != "DISABLED" {
		t.Errorf("a denied PutAccountSetting took effect: %v %v", aws.ToString(out.Value), err)
	}

	e.FailNext("GetRegistryPolicy", 1, ecrfake.FaultServerError)
	_, err = c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
	wantCode(t, err, "ServerException")
	_, err = c.GetRegistryPolicy(ctx, &ecr.GetRegistryPolicyInput{})
	wantCode(t, err, "RegistryPolicyNotFoundException")
	if n := e.Calls("GetRegistryPolicy"); n != 2 {
		t.Errorf("GetRegistryPolicy calls = %d, want 2", n)
	}
}
