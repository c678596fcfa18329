package server_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repopolicy"
)

// Issue 16, item 3: a template's pull_accounts lets another account pull
// from the repositories ecrgate creates. ecrgate creates flyte/app in
// 123456789012 on the first push; then a token of 222222222222 pulls the
// image straight from 123456789012's registry, while 333333333333's token,
// and 222222222222's for a repository of a template without
// pull_accounts, are refused.
func TestPullAccountsLetAnotherAccountPull(t *testing.T) {
	users := []ecrfake.User{
		{Name: "data-plane", Account: "222222222222", AccessKey: "AKIADATAPLANE0000001", SecretKey: "dp-secret"},
		{Name: "stranger", Account: "333333333333", AccessKey: "AKIASTRANGER00000001", SecretKey: "st-secret"},
	}
	f := startWith(t, ecrfake.Options{Accounts: []string{"123456789012", "222222222222", "333333333333"}, Users: users}, `templates:
  - prefix: flyte
    pull_accounts: ["222222222222"]
    repository_policy: '{"Version":"2012-10-17","Statement":[{"Sid":"ci","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::555555555555:role/ci"},"Action":"ecr:*"}]}'
  - prefix: private
`)
	img := randomImage(t, 64<<10, 2)
	for _, repo := range []string{"flyte/app", "private/app"} {
		if err := remote.Write(f.ref(t, repo+":v1"), img); err != nil {
			t.Fatalf("push %s through ecrgate: %v", repo, err)
		}
	}
	info, ok := f.e.Repository("", "flyte/app")
	if !ok || info.CreatedBy != "api" || !strings.Contains(info.RepositoryPolicy, `"Sid":"`+repopolicy.PullSid+`"`) ||
		!strings.Contains(info.RepositoryPolicy, `"arn:aws:iam::222222222222:root"`) || !strings.Contains(info.RepositoryPolicy, `"Sid":"ci"`) {
		t.Fatalf("flyte/app = %+v (%v); want ecrgate's creation with the ci statement and the pull statement for 222222222222", info, ok)
	}

	password := func(key, secret string) string {
		api := ecr.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(f.e.URL()),
			Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
		out, err := api.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(string(raw), "AWS:")
	}
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	// get asks 123456789012's registry, by its own host name, for path.
	get := func(pass, path string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, f.e.URL()+path, nil)
		req.Host = registry
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
		req.SetBasicAuth("AWS", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	dataPlane, stranger := password(users[0].AccessKey, users[0].SecretKey), password(users[1].AccessKey, users[1].SecretKey)
	for _, c := range []struct {
		who, pass, path string
		want            int
	}{
		{"222222222222: manifest", dataPlane, "/v2/flyte/app/manifests/v1", http.StatusOK},
		{"222222222222: layer", dataPlane, "/v2/flyte/app/blobs/" + layer.String(), http.StatusOK},
		{"333333333333: manifest", stranger, "/v2/flyte/app/manifests/v1", http.StatusForbidden},
		{"222222222222: a repository without pull_accounts", dataPlane, "/v2/private/app/manifests/v1", http.StatusForbidden},
	} {
		if got := get(c.pass, c.path); got != c.want {
			t.Errorf("%s: GET %s = %d, want %d", c.who, c.path, got, c.want)
		}
	}
}
