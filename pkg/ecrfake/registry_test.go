package ecrfake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// registryPassword gets a registry password for the default user's account.
func registryPassword(t *testing.T, c *ecr.Client) string {
	t.Helper()
	out, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(string(raw), "AWS:")
}

type regClient struct {
	host string // registry host in image references
	auth authn.Authenticator
	tr   http.RoundTripper
}

func newRegClient(t *testing.T, e *ecrfake.Emulator) *regClient {
	return &regClient{host: e.Host(), auth: &authn.Basic{Username: "AWS", Password: registryPassword(t, ecrClient(e))}, tr: http.DefaultTransport}
}

func (rc *regClient) ref(t *testing.T, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(rc.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (rc *regClient) push(t *testing.T, repoTag string, img v1.Image) error {
	t.Helper()
	return remote.Write(rc.ref(t, repoTag), img, remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
}

func (rc *regClient) digest(t *testing.T, repoTag string) (v1.Hash, error) {
	t.Helper()
	d, err := remote.Head(rc.ref(t, repoTag), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
	if err != nil {
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func wantRegistryError(t *testing.T, err error, code, msg string) {
	t.Helper()
	te, ok := err.(*transport.Error)
	if !ok {
		t.Fatalf("error = %v (%T), want registry error %s", err, err, code)
	}
	for _, d := range te.Errors {
		if string(d.Code) == code && strings.Contains(d.Message, msg) {
			return
		}
	}
	t.Fatalf("error = %v, want %s with message containing %q", err, code, msg)
}

func createRepo(t *testing.T, e *ecrfake.Emulator, in *ecr.CreateRepositoryInput) {
	t.Helper()
	if _, err := ecrClient(e).CreateRepository(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func TestPushNeedsRepositoryThenRoundTrips(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rc := newRegClient(t, e)
	img := randomImage(t)

	err := rc.push(t, "team/app:1", img)
	wantRegistryError(t, err, "NAME_UNKNOWN", "The repository with name 'team/app' does not exist in the registry with id '123456789012'")
	if _, ok := e.Repository("", "team/app"); ok {
		t.Fatal("a push without a template created the repository")
	}

	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	if err := rc.push(t, "team/app:1", img); err != nil {
		t.Fatalf("push after CreateRepository: %v", err)
	}
	want, _ := img.Digest()
	got, err := rc.digest(t, "team/app:1")
	if err != nil || got != want {
		t.Fatalf("digest = %v, %v; want %v", got, err, want)
	}
	pulled, err := remote.Image(rc.ref(t, "team/app:1"), remote.WithAuth(rc.auth))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := pulled.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("pulled %d layers, %v", len(layers), err)
	}
	for _, l := range layers { // read every blob back
		rdr, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rdr); err != nil {
			t.Fatalf("read layer: %v", err)
		}
		rdr.Close()
	}
	imgs, err := ecrClient(e).ListImages(context.Background(), &ecr.ListImagesInput{RepositoryName: aws.String("team/app")})
	if err != nil || len(imgs.ImageIds) != 1 || aws.ToString(imgs.ImageIds[0].ImageTag) != "1" || aws.ToString(imgs.ImageIds[0].ImageDigest) != want.String() {
		t.Fatalf("ListImages = %+v, %v", imgs, err)
	}
}

func TestInvalidRepositoryNameOnRegistry(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rc := newRegClient(t, e)
	req, _ := http.NewRequest(http.MethodPost, e.URL()+"/v2/team__x-/app/blobs/uploads/", nil)
	req.SetBasicAuth("AWS", rc.auth.(*authn.Basic).Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "NAME_INVALID") || !strings.Contains(string(body), "team__x-") {
		t.Fatalf("bad name: %d %s", resp.StatusCode, body)
	}
}

func TestImmutableTags(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("imm/app"), ImageTagMutability: types.ImageTagMutabilityImmutable})
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("imm/excl"), ImageTagMutability: types.ImageTagMutabilityImmutableWithExclusion,
		ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{{FilterType: "WILDCARD", Filter: aws.String("latest")}, {FilterType: "WILDCARD", Filter: aws.String("dev-*")}}})
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("imm/mut"), ImageTagMutability: types.ImageTagMutabilityMutableWithExclusion,
		ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{{FilterType: "WILDCARD", Filter: aws.String("v*")}}})
	a, b := randomImage(t), randomImage(t)

	tests := []struct {
		repoTag   string
		immutable bool
	}{
		{"imm/app:1.0", true},
		{"imm/excl:1.0", true},
		{"imm/excl:latest", false},
		{"imm/excl:dev-42", false},
		{"imm/mut:v1", true},
		{"imm/mut:main", false},
	}
	for _, tt := range tests {
		t.Run(tt.repoTag, func(t *testing.T) {
			if err := rc.push(t, tt.repoTag, a); err != nil {
				t.Fatal(err)
			}
			if err := rc.push(t, tt.repoTag, a); err != nil {
				t.Fatalf("re-push of the same digest: %v", err)
			}
			err := rc.push(t, tt.repoTag, b)
			if tt.immutable {
				repo, tag, _ := strings.Cut(tt.repoTag, ":")
				wantRegistryError(t, err, "TAG_INVALID", fmt.Sprintf(
					"The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the tag is immutable.", tag, repo))
				if got, _ := rc.digest(t, tt.repoTag); got != mustDigest(t, a) {
					t.Errorf("tag moved to %v", got)
				}
			} else {
				if err != nil {
					t.Fatalf("overwrite of a mutable tag: %v", err)
				}
				if got, _ := rc.digest(t, tt.repoTag); got != mustDigest(t, b) {
					t.Errorf("tag not moved: %v", got)
				}
			}
		})
	}
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCreateOnPushTemplates(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	mk := func(prefix string, applied []types.RCTAppliedFor, mut types.ImageTagMutability, tags map[string]string) {
		in := &ecr.CreateRepositoryCreationTemplateInput{Prefix: aws.String(prefix), AppliedFor: applied, ImageTagMutability: mut,
			LifecyclePolicy: aws.String(lifecycle), RepositoryPolicy: aws.String(policy),
			EncryptionConfiguration: &types.EncryptionConfigurationForRepositoryCreationTemplate{EncryptionType: types.EncryptionTypeKms, KmsKey: aws.String("alias/team")}}
		for k, v := range tags {
			in.ResourceTags = append(in.ResourceTags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		if _, err := c.CreateRepositoryCreationTemplate(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	mk("auto", []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}, types.ImageTagMutabilityMutable, map[string]string{"from": "auto"})
	mk("auto/strict", []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}, types.ImageTagMutabilityImmutable, map[string]string{"from": "auto/strict"})
	mk("repl", []types.RCTAppliedFor{types.RCTAppliedForReplication}, types.ImageTagMutabilityMutable, nil)

	_, err := c.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{Prefix: aws.String("auto"), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}})
	wantCode(t, err, "TemplateAlreadyExistsException")
	_, err = c.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{Prefix: aws.String("Bad//prefix"), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}})
	wantCode(t, err, "InvalidParameterException")

	rc := newRegClient(t, e)
	img := randomImage(t)
	if err := rc.push(t, "auto/strict/svc:1", img); err != nil {
		t.Fatalf("push covered by a CREATE_ON_PUSH template: %v", err)
	}
	info, ok := e.Repository("", "auto/strict/svc")
	if !ok || info.CreatedBy != "create-on-push:auto/strict" || info.TagMutability != "IMMUTABLE" || info.Tags["from"] != "auto/strict" ||
		info.EncryptionType != "KMS" || info.KMSKey != "alias/team" || info.LifecyclePolicy != lifecycle || info.RepositoryPolicy != policy {
		t.Fatalf("created repository = %+v (ok=%v), want the longest template's settings", info, ok)
	}
	if err := rc.push(t, "auto/svc:1", img); err != nil {
		t.Fatal(err)
	}
	if info, _ := e.Repository("", "auto/svc"); info.CreatedBy != "create-on-push:auto" || info.TagMutability != "MUTABLE" {
		t.Errorf("auto/svc = %+v", info)
	}
	// "auto" covers auto/… only (implied trailing '/'), and a REPLICATION-only
	// template creates nothing on push.
	for _, repo := range []string{"autox/svc", "repl/svc"} {
		wantRegistryError(t, rc.push(t, repo+":1", img), "NAME_UNKNOWN", repo)
	}
	// A pull never creates.
	if _, err := rc.digest(t, "auto/pulled:1"); err == nil {
		t.Error("HEAD of a missing repository succeeded")
	}
	if _, ok := e.Repository("", "auto/pulled"); ok {
		t.Error("a pull created a repository")
	}

	d, err := c.DescribeRepositoryCreationTemplates(ctx, &ecr.DescribeRepositoryCreationTemplatesInput{})
	if err != nil || len(d.RepositoryCreationTemplates) != 3 || aws.ToString(d.RegistryId) != "123456789012" {
		t.Fatalf("DescribeRepositoryCreationTemplates = %+v, %v", d, err)
	}
	if _, err := c.DeleteRepositoryCreationTemplate(ctx, &ecr.DeleteRepositoryCreationTemplateInput{Prefix: aws.String("auto")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteRepositoryCreationTemplate(ctx, &ecr.DeleteRepositoryCreationTemplateInput{Prefix: aws.String("auto")})
	wantCode(t, err, "TemplateNotFoundException")
	wantRegistryError(t, rc.push(t, "auto/after-delete:1", img), "NAME_UNKNOWN", "auto/after-delete")

	// ROOT covers everything not covered by a longer prefix.
	mk("ROOT", []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush}, types.ImageTagMutabilityImmutable, map[string]string{"from": "ROOT"})
	if err := rc.push(t, "anything/else:1", img); err != nil {
		t.Fatal(err)
	}
	if info, _ := e.Repository("", "anything/else"); info.CreatedBy != "create-on-push:ROOT" {
		t.Errorf("anything/else = %+v", info)
	}
}

func TestManifestLimits(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("big/app")})
	put := func(ref string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, e.URL()+"/v2/big/app/manifests/"+ref, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		req.SetBasicAuth("AWS", rc.auth.(*authn.Basic).Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := put("big", bytes.Repeat([]byte(" "), ecrfake.MaxManifestSize+1)); code != http.StatusBadRequest || !strings.Contains(body, "MANIFEST_INVALID") || !strings.Contains(body, "limit") {
		t.Errorf("4 MiB + 1 manifest: %d %s", code, body)
	}
	if code, body := put(strings.Repeat("t", 301), []byte("{}")); code != http.StatusBadRequest || !strings.Contains(body, "TAG_INVALID") {
		t.Errorf("301-character tag: %d %s", code, body)
	}
}

// TestHostSelectsAccount pushes through ECR host names of two accounts, all
// dialled to the emulator: the Host header picks the registry.
func TestHostSelectsAccount(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"111111111111", "222222222222"},
		Users: []ecrfake.User{{Name: "two", Account: "222222222222", AccessKey: "AKIATWO0000000000000", SecretKey: "two-secret"}}})
	dial := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, e.Host())
	}}
	c2 := ecr.NewFromConfig(sdkConfig(e, "AKIATWO0000000000000", "two-secret"))
	for _, c := range []*ecr.Client{ecrClient(e), c2} {
		if _, err := c.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("acct/app")}); err != nil {
			t.Fatal(err)
		}
	}
	one := &regClient{host: "111111111111.dkr.ecr.us-east-1.amazonaws.com", tr: dial,
		auth: &authn.Basic{Username: "AWS", Password: registryPassword(t, ecrClient(e))}}
	two := &regClient{host: "222222222222.dkr.ecr.us-east-1.amazonaws.com", tr: dial,
		auth: &authn.Basic{Username: "AWS", Password: registryPassword(t, c2)}}
	a, b := randomImage(t), randomImage(t)
	if err := one.push(t, "acct/app:x", a); err != nil {
		t.Fatal(err)
	}
	if err := two.push(t, "acct/app:x", b); err != nil {
		t.Fatal(err)
	}
	if got, _ := one.digest(t, "acct/app:x"); got != mustDigest(t, a) {
		t.Errorf("account 1 has %v", got)
	}
	if got, _ := two.digest(t, "acct/app:x"); got != mustDigest(t, b) {
		t.Errorf("account 2 has %v", got)
	}
	// A token of account 1 does not open account 2.
	req, _ := http.NewRequest(http.MethodPost, "http://"+two.host+"/v2/acct/app/blobs/uploads/", nil)
	req.SetBasicAuth("AWS", one.auth.(*authn.Basic).Password)
	resp, err := (&http.Client{Transport: dial}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "DENIED") ||
		!strings.Contains(string(body), "is not authorized to perform: ecr:InitiateLayerUpload on resource: arn:aws:ecr:us-east-1:222222222222:repository/acct/app") {
		t.Errorf("cross-account push: %d %s", resp.StatusCode, body)
	}
}

func TestDeleteRepository(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	rc := newRegClient(t, e)
	for _, n := range []string{"del", "del/child"} {
		createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String(n)})
		if err := rc.push(t, n+":1", randomImage(t)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("del")})
	wantCode(t, err, "RepositoryNotEmptyException")
	if _, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("del"), Force: true}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String("del"), Force: true})
	wantCode(t, err, "RepositoryNotFoundException")
	if _, err := rc.digest(t, "del/child:1"); err != nil {
		t.Errorf("deleting del took del/child's image: %v", err)
	}
	// Re-created, the repository is empty: the old image is gone.
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("del")})
	if _, err := rc.digest(t, "del:1"); err == nil {
		t.Error("image survived DeleteRepository")
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	opts := ecrfake.Options{StorageDir: dir}
	e1, err := ecrfake.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv1 := startServer(t, e1)
	rc := newRegClient(t, e1)
	createRepo(t, e1, &ecr.CreateRepositoryInput{RepositoryName: aws.String("keep/app"), ImageTagMutability: types.ImageTagMutabilityImmutable})
	img := randomImage(t)
	if err := rc.push(t, "keep/app:1", img); err != nil {
		t.Fatal(err)
	}
	srv1()

	e2 := ecrfake.Start(t, opts)
	rc.host = e2.Host()
	info, ok := e2.Repository("", "keep/app")
	if !ok || info.TagMutability != "IMMUTABLE" {
		t.Fatalf("repository lost on restart: %+v %v", info, ok)
	}
	if got, err := rc.digest(t, "keep/app:1"); err != nil || got != mustDigest(t, img) {
		t.Fatalf("image lost on restart (token kept too): %v %v", got, err)
	}
}

// startServer serves e on a loopback port until the returned stop is called.
func startServer(t *testing.T, e *ecrfake.Emulator) (stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()
	for e.URL() == "" {
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// A tag named like one of distribution's own storage directories ("index")
// is listed like any other.
func TestTagNamedIndexIsListed(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("tags/app")})
	for _, tag := range []string{"index", "current", "v1"} {
		if err := rc.push(t, "tags/app:"+tag, randomImage(t)); err != nil {
			t.Fatal(err)
		}
	}
	repo, _ := name.NewRepository(rc.host+"/tags/app", name.Insecure)
	tags, err := remote.List(repo, remote.WithAuth(rc.auth))
	if err != nil || strings.Join(tags, ",") != "current,index,v1" {
		t.Fatalf("tags = %v, %v", tags, err)
	}
}

func TestOnlySHA256Digests(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("dg/app")})
	req, _ := http.NewRequest(http.MethodPost, e.URL()+"/v2/dg/app/blobs/uploads/?digest=sha512:"+strings.Repeat("a", 128), strings.NewReader("x"))
	req.SetBasicAuth("AWS", rc.auth.(*authn.Basic).Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "DIGEST_INVALID") {
		t.Errorf("sha512 upload: %d %s", resp.StatusCode, body)
	}
}

func TestBlobRedirectToS3(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{BlobRedirect: true})
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("s3/app")})
	img := randomImage(t)
	if err := rc.push(t, "s3/app:1", img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	dg, _ := layers[0].Digest()
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/s3/app/blobs/"+dg.String(), nil)
	req.SetBasicAuth("AWS", rc.auth.(*authn.Basic).Password)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, "/prod-us-east-1-starport-layer-bucket/123456789012/") {
		t.Fatalf("blob GET: %d %q", resp.StatusCode, loc)
	}
	// The presigned URL works without credentials, and only as signed.
	for _, tt := range []struct {
		url  string
		want int
	}{{loc, http.StatusOK}, {strings.Replace(loc, "X-Amz-Signature=", "X-Amz-Signature=0", 1), http.StatusForbidden}} {
		r, err := http.Get(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != tt.want {
			t.Errorf("GET %s: %d", tt.url, r.StatusCode)
		}
		if tt.want == http.StatusOK {
			if got := digest.FromBytes(body).String(); got != dg.String() {
				t.Errorf("S3 served %s, want %s", got, dg)
			}
		}
	}
	// go-containerregistry follows the redirect on a pull.
	pulled, err := remote.Image(rc.ref(t, "s3/app:1"), remote.WithAuth(rc.auth))
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := pulled.Layers()
	r0, err := pl[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r0); err != nil {
		t.Fatal(err)
	}
	r0.Close()
	if total, withAuth := e.S3Requests(); total < 2 || withAuth != 0 {
		t.Errorf("S3 requests %d, with Authorization %d", total, withAuth)
	}
}
