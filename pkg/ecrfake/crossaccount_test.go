package ecrfake_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

const (
	acctA = "111111111111" // pushes and owns the image
	acctB = "222222222222" // allowed to pull by A's policy
	acctC = "333333333333" // allowed nothing
	hostA = acctA + ".dkr.ecr.us-east-1.amazonaws.com"
)

// crossAccount starts an emulator with one user per account, creates
// flyte/app in A and pushes an image there with A's token.
type crossAccount struct {
	e       *ecrfake.Emulator
	api     map[string]*ecr.Client // by account
	dial    http.RoundTripper
	pushed  string // digest
	imgRepo string
}

func newCrossAccount(t *testing.T) *crossAccount {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{acctA, acctB, acctC}, Users: []ecrfake.User{
		{Name: "b", Account: acctB, AccessKey: "AKIABBBBBBBBBBBBBBBB", SecretKey: "b-secret"},
		{Name: "c", Account: acctC, AccessKey: "AKIACCCCCCCCCCCCCCCC", SecretKey: "c-secret"},
	}})
	x := &crossAccount{e: e, imgRepo: "flyte/app", api: map[string]*ecr.Client{
		acctA: ecrClient(e), // the default user belongs to the first account
		acctB: ecr.NewFromConfig(sdkConfig(e, "AKIABBBBBBBBBBBBBBBB", "b-secret")),
		acctC: ecr.NewFromConfig(sdkConfig(e, "AKIACCCCCCCCCCCCCCCC", "c-secret")),
	}}
	x.dial = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, e.Host())
	}}
	if _, err := x.api[acctA].CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String(x.imgRepo)}); err != nil {
		t.Fatal(err)
	}
	img := randomImage(t)
	if err := x.client(t, acctA).push(t, x.imgRepo+":v1", img); err != nil {
		t.Fatalf("A pushes to its own registry: %v", err)
	}
	x.pushed = mustDigest(t, img).String()
	return x
}

// client is a registry client on A's registry host with a token that
// account's user got from GetAuthorizationToken (no registryIds).
func (x *crossAccount) client(t *testing.T, account string) *regClient {
	t.Helper()
	return &regClient{host: hostA, tr: x.dial, auth: &authn.Basic{Username: "AWS", Password: registryPassword(t, x.api[account])}}
}

// pull reads the whole image: manifest and every layer.
func (x *crossAccount) pull(t *testing.T, rc *regClient) error {
	t.Helper()
	img, err := remote.Image(rc.ref(t, x.imgRepo+":v1"), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		r, err := l.Compressed()
		if err != nil {
			return err
		}
		r.Close()
	}
	return nil
}

func (x *crossAccount) setRepoPolicy(t *testing.T, text string) {
	t.Helper()
	if _, err := x.api[acctA].SetRepositoryPolicy(context.Background(), &ecr.SetRepositoryPolicyInput{
		RepositoryName: aws.String(x.imgRepo), PolicyText: aws.String(text)}); err != nil {
		t.Fatal(err)
	}
}

// TestCrossAccountPull is the Flyte guides' set-up: A's repository policy
// lets account B pull; B's own token then pulls from A's registry.
func TestCrossAccountPull(t *testing.T) {
	x := newCrossAccount(t)
	b, c := x.client(t, acctB), x.client(t, acctC)

	// No policy yet: a token of another account opens nothing.
	err := x.pull(t, b)
	wantRegistryError(t, err, "DENIED", "User: arn:aws:iam::222222222222:user/b is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:111111111111:repository/flyte/app")

	x.setRepoPolicy(t, `{"Version":"2012-10-17","Statement":[{"Sid":"AllowPull","Effect":"Allow",
		"Principal":{"AWS":"arn:aws:iam::222222222222:root"},
		"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`)
	if err := x.pull(t, b); err != nil {
		t.Fatalf("B pulls with the policy: %v", err)
	}
	if got, err := b.digest(t, x.imgRepo+":v1"); err != nil || got.String() != x.pushed {
		t.Errorf("B sees %v (%v), want %s", got, err, x.pushed)
	}
	err = x.pull(t, c)
	wantRegistryError(t, err, "DENIED", "User: arn:aws:iam::333333333333:user/c is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:111111111111:repository/flyte/app")

	// Pull rights are not push rights.
	err = b.push(t, x.imgRepo+":from-b", randomImage(t))
	if te, ok := err.(*transport.Error); !ok || te.StatusCode != http.StatusForbidden {
		t.Errorf("B pushes to A: %v, want 403", err)
	}
	for _, tc := range []struct{ method, path, action string }{
		{http.MethodPost, "/v2/flyte/app/blobs/uploads/", "ecr:InitiateLayerUpload"},
		{http.MethodPut, "/v2/flyte/app/manifests/from-b", "ecr:PutImage"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+hostA+tc.path, strings.NewReader("{}"))
		req.SetBasicAuth("AWS", b.auth.(*authn.Basic).Password)
		resp, err := (&http.Client{Transport: x.dial}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "User: arn:aws:iam::222222222222:user/b is not authorized to perform: " + tc.action + " on resource: arn:aws:ecr:us-east-1:111111111111:repository/flyte/app"
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"DENIED"`) || !strings.Contains(string(body), want) {
			t.Errorf("B %s %s in A: %d %s, want 403 DENIED %q", tc.method, tc.path, resp.StatusCode, body, want)
		}
	}
	if _, err := b.digest(t, x.imgRepo+":from-b"); err == nil {
		t.Error("B's refused push left a tag in A")
	}

	// An explicit Deny wins over the Allow.
	x.setRepoPolicy(t, `{"Statement":[
		{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:root"]},"Action":"ecr:*"},
		{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::222222222222:user/b"},"Action":"ecr:GetDownloadUrlForLayer"}]}`)
	err = x.pull(t, b)
	wantRegistryError(t, err, "DENIED", "is not authorized to perform: ecr:GetDownloadUrlForLayer")
	// ... also for the registry's own account.
	x.setRepoPolicy(t, `{"Statement":{"Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage"}}`)
	err = x.pull(t, x.client(t, acctA))
	wantRegistryError(t, err, "DENIED", "User: arn:aws:iam::111111111111:user/ecrfake is not authorized to perform: ecr:BatchGetImage")
}

// TestCrossAccountRegistryPolicy: the registry policy grants like a
// repository policy, for the repositories its Resource names, while the
// registry policy scope is V2 (the default); V1 limits it to replication
// and pull-through-cache actions.
func TestCrossAccountRegistryPolicy(t *testing.T) {
	x := newCrossAccount(t)
	c := x.client(t, acctC)
	ctx := context.Background()
	put := func(text string) {
		t.Helper()
		if _, err := x.api[acctA].PutRegistryPolicy(ctx, &ecr.PutRegistryPolicyInput{PolicyText: aws.String(text)}); err != nil {
			t.Fatal(err)
		}
	}
	put(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"333333333333"},"Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:111111111111:repository/other/*"}]}`)
	wantRegistryError(t, x.pull(t, c), "DENIED", "is not authorized to perform: ecr:BatchGetImage")

	put(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":["ecr:BatchGet*","ecr:GetDownloadUrlFor?ayer","ecr:BatchCheckLayerAvailability","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage"],"Resource":"arn:aws:ecr:us-east-1:111111111111:repository/flyte/*"}]}`)
	if err := x.pull(t, c); err != nil {
		t.Fatalf("C pulls under the registry policy: %v", err)
	}
	if err := c.push(t, x.imgRepo+":from-c", randomImage(t)); err != nil {
		t.Fatalf("C pushes under the registry policy: %v", err)
	}
	// B is not named.
	wantRegistryError(t, x.pull(t, x.client(t, acctB)), "DENIED", "arn:aws:iam::222222222222:user/b is not authorized")

	if _, err := x.api[acctA].PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String("REGISTRY_POLICY_SCOPE"), Value: aws.String("V1")}); err != nil {
		t.Fatal(err)
	}
	wantRegistryError(t, x.pull(t, c), "DENIED", "is not authorized to perform: ecr:BatchGetImage")

	if _, err := x.api[acctA].PutAccountSetting(ctx, &ecr.PutAccountSettingInput{Name: aws.String("REGISTRY_POLICY_SCOPE"), Value: aws.String("V2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.api[acctA].DeleteRegistryPolicy(ctx, &ecr.DeleteRegistryPolicyInput{}); err != nil {
		t.Fatal(err)
	}
	wantRegistryError(t, x.pull(t, c), "DENIED", "is not authorized to perform: ecr:BatchGetImage")
}
