package ecrfake_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// sdkConfig is an aws.Config for the emulator that never looks at the
// environment, the shared config files or instance metadata.
func sdkConfig(e *ecrfake.Emulator, key, secret string) aws.Config {
	return aws.Config{
		Region:       e.Region(),
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
		BaseEndpoint: aws.String(e.URL()),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 10 * time.Millisecond })
		},
	}
}

func ecrClient(e *ecrfake.Emulator) *ecr.Client {
	return ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey()))
}

// apiCode returns the AWS error code of err, or "" if err is not an API error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := apiCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

const lifecycle = `{"rules":[{"rulePriority":1,"description":"expire untagged images older than 14 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}`
const policy = `{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["ecr:BatchGetImage"]}]}`

func TestCreateAndDescribeRepository(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()

	out, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{
		RepositoryName:     aws.String("team/app"),
		ImageTagMutability: types.ImageTagMutabilityImmutableWithExclusion,
		ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{
			{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String("latest")}},
		ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: true},
		EncryptionConfiguration:    &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKms, KmsKey: aws.String("alias/ecr")},
		Tags:                       []types.Tag{{Key: aws.String("team"), Value: aws.String("platform")}},
	})
	if err != nil {
		t.Fatalf("CreateRepository: %v", err)
	}
	r := out.Repository
	if got, want := aws.ToString(r.RepositoryUri), "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app"; got != want {
		t.Errorf("repositoryUri = %q, want %q", got, want)
	}
	if got, want := aws.ToString(r.RepositoryArn), "arn:aws:ecr:us-east-1:123456789012:repository/team/app"; got != want {
		t.Errorf("repositoryArn = %q, want %q", got, want)
	}
	if r.ImageTagMutability != types.ImageTagMutabilityImmutableWithExclusion || len(r.ImageTagMutabilityExclusionFilters) != 1 ||
		!r.ImageScanningConfiguration.ScanOnPush || r.EncryptionConfiguration.EncryptionType != types.EncryptionTypeKms ||
		aws.ToString(r.EncryptionConfiguration.KmsKey) != "alias/ecr" || r.CreatedAt == nil || time.Since(*r.CreatedAt) > time.Minute {
		t.Errorf("repository settings not kept: %+v", r)
	}

	_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	wantCode(t, err, "RepositoryAlreadyExistsException")

	d, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/app"}})
	if err != nil || len(d.Repositories) != 1 || aws.ToString(d.Repositories[0].RepositoryName) != "team/app" {
		t.Fatalf("DescribeRepositories = %+v, %v", d, err)
	}
	_, err = c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/nope"}})
	wantCode(t, err, "RepositoryNotFoundException")
	if !strings.Contains(err.Error(), "The repository with name 'team/nope' does not exist in the registry with id '123456789012'") {
		t.Errorf("not-found message = %v", err)
	}

	tags, err := c.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: r.RepositoryArn})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" || aws.ToString(tags.Tags[0].Value) != "platform" {
		t.Fatalf("ListTagsForResource = %+v, %v", tags, err)
	}
	info, ok := e.Repository("", "team/app")
	if !ok || info.CreatedBy != "api" || !info.ScanOnPush || info.ExclusionFilters[0] != "latest" {
		t.Errorf("introspection = %+v, %v", info, ok)
	}
}

func TestCreateRepositoryValidation(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	manyTags := make([]types.Tag, 51)
	for i := range manyTags {
		manyTags[i] = types.Tag{Key: aws.String(fmt.Sprintf("k%d", i)), Value: aws.String("v")}
	}
	tests := []struct {
		name string
		in   ecr.CreateRepositoryInput
		code string
		msg  string
	}{
		{"upper case", ecr.CreateRepositoryInput{RepositoryName: aws.String("Team/App")}, "InvalidParameterException", "lower case"},
		{"empty component", ecr.CreateRepositoryInput{RepositoryName: aws.String("team//app")}, "InvalidParameterException", "empty path component"},
		{"too short", ecr.CreateRepositoryInput{RepositoryName: aws.String("a")}, "InvalidParameterException", "at least 2"},
		{"too long", ecr.CreateRepositoryInput{RepositoryName: aws.String(strings.Repeat("a", 257))}, "InvalidParameterException", "at most 256"},
		{"51 tags", ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/a"), Tags: manyTags}, "TooManyTagsException", "at most 50"},
		{"long key", ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/b"), Tags: []types.Tag{{Key: aws.String(strings.Repeat("k", 129)), Value: aws.String("v")}}}, "InvalidTagParameterException", "1 to 128"},
		{"long value", ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/c"), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String(strings.Repeat("v", 257))}}}, "InvalidTagParameterException", "at most 256"},
		{"aws: key", ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/d"), Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}}, "InvalidTagParameterException", "reserved"},
		{"filters without exclusion mode", ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/e"), ImageTagMutability: types.ImageTagMutabilityImmutable,
			ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{{FilterType: "WILDCARD", Filter: aws.String("x")}}}, "InvalidParameterException", "exclusion filters"},
		{"kms key with AES256", ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/f"), EncryptionConfiguration: &types.EncryptionConfiguration{EncryptionType: "AES256", KmsKey: aws.String("k")}}, "InvalidParameterException", "kmsKey"},
		{"bad mutability", ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/g"), ImageTagMutability: "SOMETIMES"}, "InvalidParameterException", "enum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateRepository(context.Background(), &tt.in)
			wantCode(t, err, tt.code)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not mention %q", err, tt.msg)
			}
		})
	}
	if n := len(e.Repositories("")); n != 0 {
		t.Errorf("%d repositories created by invalid requests", n)
	}
	// 50 tags at the limits are fine.
	tags := manyTags[:50]
	tags[0] = types.Tag{Key: aws.String(strings.Repeat("k", 128)), Value: aws.String(strings.Repeat("v", 256))}
	if _, err := c.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("ok/limits"), Tags: tags}); err != nil {
		t.Errorf("50 tags at the limits: %v", err)
	}
}

func TestDescribeRepositoriesPagination(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 25 {
		n := fmt.Sprintf("page/r%02d", i)
		want[n] = true
		if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(n)}); err != nil {
			t.Fatal(err)
		}
	}
	p := ecr.NewDescribeRepositoriesPaginator(c, &ecr.DescribeRepositoriesInput{MaxResults: aws.Int32(10)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(out.Repositories) > 10 {
			t.Fatalf("page of %d > maxResults", len(out.Repositories))
		}
		for _, r := range out.Repositories {
			if !want[aws.ToString(r.RepositoryName)] {
				t.Errorf("unexpected or repeated %s", aws.ToString(r.RepositoryName))
			}
			delete(want, aws.ToString(r.RepositoryName))
		}
	}
	if pages != 3 || len(want) != 0 {
		t.Errorf("pages = %d, missing = %v", pages, want)
	}
	_, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{NextToken: aws.String("!!not-a-token")})
	wantCode(t, err, "InvalidParameterException")
}

func TestPoliciesAndTags(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	name := aws.String("pol/app")
	if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: name}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: name})
	wantCode(t, err, "LifecyclePolicyNotFoundException")
	_, err = c.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: name})
	wantCode(t, err, "RepositoryPolicyNotFoundException")

	_, err = c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: name, LifecyclePolicyText: aws.String(`{"rules":[]}`)})
	wantCode(t, err, "InvalidParameterException") // shorter than 100 characters
	_, err = c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: name, LifecyclePolicyText: aws.String(strings.Repeat(" ", 100) + "{not json")})
	wantCode(t, err, "InvalidParameterException")
	if _, err := c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: name, LifecyclePolicyText: aws.String(lifecycle)}); err != nil {
		t.Fatal(err)
	}
	lp, err := c.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: name})
	if err != nil || aws.ToString(lp.LifecyclePolicyText) != lifecycle {
		t.Fatalf("GetLifecyclePolicy = %v, %v", lp, err)
	}

	_, err = c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: name, PolicyText: aws.String(`{"Version":"2012-10-17"}`)})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: name, PolicyText: aws.String(strings.Repeat("x", 10241))})
	wantCode(t, err, "InvalidParameterException")
	if _, err := c.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: name, PolicyText: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	rp, err := c.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: name})
	if err != nil || aws.ToString(rp.PolicyText) != policy {
		t.Fatalf("GetRepositoryPolicy = %v, %v", rp, err)
	}
	_, err = c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: aws.String("pol/missing"), LifecyclePolicyText: aws.String(lifecycle)})
	wantCode(t, err, "RepositoryNotFoundException")

	// Delete returns what it deleted; then the policy is gone.
	dl, err := c.DeleteLifecyclePolicy(ctx, &ecr.DeleteLifecyclePolicyInput{RepositoryName: name})
	if err != nil || aws.ToString(dl.LifecyclePolicyText) != lifecycle {
		t.Fatalf("DeleteLifecyclePolicy = %v, %v", dl, err)
	}
	_, err = c.DeleteLifecyclePolicy(ctx, &ecr.DeleteLifecyclePolicyInput{RepositoryName: name})
	wantCode(t, err, "LifecyclePolicyNotFoundException")
	dp, err := c.DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: name})
	if err != nil || aws.ToString(dp.PolicyText) != policy {
		t.Fatalf("DeleteRepositoryPolicy = %v, %v", dp, err)
	}
	_, err = c.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: name})
	wantCode(t, err, "RepositoryPolicyNotFoundException")

	arn := aws.String("arn:aws:ecr:us-east-1:123456789012:repository/pol/app")
	if _, err := c.TagResource(ctx, &ecr.TagResourceInput{ResourceArn: arn, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("2")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &ecr.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	lt, err := c.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: arn})
	if err != nil || len(lt.Tags) != 1 || aws.ToString(lt.Tags[0].Key) != "b" {
		t.Fatalf("tags after untag = %+v, %v", lt, err)
	}
	_, err = c.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:s3:::bucket")})
	wantCode(t, err, "InvalidParameterException")
}

func TestSignatureVerification(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	ctx := context.Background()
	in := &ecr.DescribeRepositoriesInput{}

	_, err := ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), "wrong-secret")).DescribeRepositories(ctx, in)
	wantCode(t, err, "InvalidSignatureException")
	_, err = ecr.NewFromConfig(sdkConfig(e, "AKIAUNKNOWN000000000", "whatever")).DescribeRepositories(ctx, in)
	wantCode(t, err, "UnrecognizedClientException")
	_, err = ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey())).DescribeRepositories(ctx, in)
	if err != nil {
		t.Fatalf("correctly signed request failed: %v", err)
	}

	// Unsigned request.
	req, _ := http.NewRequest(http.MethodPost, e.URL()+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "MissingAuthenticationTokenException") {
		t.Errorf("unsigned: %d %s", resp.StatusCode, body)
	}
}

func TestClockSkewRejected(t *testing.T) {
	now := time.Now()
	e := ecrfake.Start(t, ecrfake.Options{Now: func() time.Time { return now.Add(20 * time.Minute) }})
	_, err := ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey()), func(o *ecr.Options) {
		o.Retryer = aws.NopRetryer{}
	}).DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{})
	// The SDK corrects its clock from the Date header of a skew error and
	// retries; without retries the first answer must be the signature error.
	wantCode(t, err, "InvalidSignatureException")
	if !strings.Contains(err.Error(), "Signature expired") {
		t.Errorf("message = %v", err)
	}
}

func TestGetAuthorizationToken(t *testing.T) {
	// The emulator's clock runs offset from the real one, which the SDK signs with.
	var offset atomic.Int64
	e := ecrfake.Start(t, ecrfake.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	now := time.Now()
	out, err := ecrClient(e).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	ad := out.AuthorizationData[0]
	if got := ad.ExpiresAt.Sub(now); got < 12*time.Hour-time.Second || got > 12*time.Hour+5*time.Second {
		t.Errorf("token lifetime = %v, want 12h", got)
	}
	if aws.ToString(ad.ProxyEndpoint) != "https://123456789012.dkr.ecr.us-east-1.amazonaws.com" {
		t.Errorf("proxyEndpoint = %q", aws.ToString(ad.ProxyEndpoint))
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(ad.AuthorizationToken))
	if err != nil || !strings.HasPrefix(string(raw), "AWS:") {
		t.Fatalf("token is not base64 AWS:<password>: %v", err)
	}
	pass := strings.TrimPrefix(string(raw), "AWS:")

	get := func(auth string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := get("")
	if resp.StatusCode != http.StatusUnauthorized || body != "Not Authorized\n" ||
		resp.Header.Get("WWW-Authenticate") != `Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"` {
		t.Errorf("anonymous /v2/: %d %q %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := get("Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:not-a-token"))); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %d", resp.StatusCode)
	}
	// The base64 token itself is a valid Basic credential.
	if resp, body := get("Basic " + aws.ToString(ad.AuthorizationToken)); resp.StatusCode != http.StatusOK {
		t.Errorf("with token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get("Basic " + base64.StdEncoding.EncodeToString([]byte("bob:"+pass))); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("user other than AWS: %d", resp.StatusCode)
	}
	offset.Store(int64(12*time.Hour + 10*time.Second))
	resp, body = get("Basic " + aws.ToString(ad.AuthorizationToken))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Your authorization token has expired. Reauthenticate and try again.") {
		t.Errorf("expired token: %d %s", resp.StatusCode, body)
	}
	offset.Store(0)
	if resp, _ := get("Basic " + aws.ToString(ad.AuthorizationToken)); resp.StatusCode != http.StatusOK {
		t.Errorf("token not valid again with the clock back: %d", resp.StatusCode)
	}
	e.ExpireTokens()
	if resp, _ := get("Basic " + aws.ToString(ad.AuthorizationToken)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("after ExpireTokens: %d", resp.StatusCode)
	}
}

func TestDenyAction(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Users: []ecrfake.User{{Name: "ci", AccessKey: "AKIACI00000000000000", SecretKey: "ci-secret"}}})
	e.DenyAction("arn:aws:iam::123456789012:user/ci", "ecr:GetAuthorizationToken")
	_, err := ecr.NewFromConfig(sdkConfig(e, "AKIACI00000000000000", "ci-secret")).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(err.Error(), "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ecr:GetAuthorizationToken") {
		t.Errorf("message = %v", err)
	}
	if _, err := ecrClient(e).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{}); err != nil {
		t.Errorf("default user was denied too: %v", err)
	}
}

func TestLimitExceeded(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{MaxRepositories: 2})
	c := ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey()), func(o *ecr.Options) { o.Retryer = aws.NopRetryer{} })
	for _, n := range []string{"l/a", "l/b"} {
		if _, err := c.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String(n)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("l/c")})
	wantCode(t, err, "LimitExceededException")
}
