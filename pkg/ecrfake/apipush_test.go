package ecrfake_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// apiUpload uploads data as one layer through the API in parts of partSize.
func apiUpload(t *testing.T, c *ecr.Client, repo string, data []byte, partSize int) string {
	t.Helper()
	ctx := context.Background()
	init, err := c.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(repo)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(init.PartSize) != 20971520 || aws.ToString(init.UploadId) == "" {
		t.Fatalf("InitiateLayerUpload = %+v", init)
	}
	for first := 0; first < len(data); first += partSize {
		last := min(first+partSize, len(data)) - 1
		out, err := c.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: init.UploadId,
			PartFirstByte: aws.Int64(int64(first)), PartLastByte: aws.Int64(int64(last)), LayerPartBlob: data[first : last+1]})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt64(out.LastByteReceived) != int64(last) {
			t.Fatalf("lastByteReceived = %d, want %d", aws.ToInt64(out.LastByteReceived), last)
		}
	}
	dg := digest.FromBytes(data).String()
	out, err := c.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo), UploadId: init.UploadId, LayerDigests: []string{dg}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.LayerDigest) != dg {
		t.Fatalf("layerDigest = %s, want %s", aws.ToString(out.LayerDigest), dg)
	}
	return dg
}

// imageParts returns the config, the layers and the manifest of img.
func imageParts(t *testing.T, img v1.Image) (config []byte, layers [][]byte, manifest []byte, mediaType string) {
	t.Helper()
	config, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, b)
	}
	manifest, err = img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return config, layers, manifest, string(mt)
}

func checkLayers(t *testing.T, c *ecr.Client, repo string, dgs ...string) *ecr.BatchCheckLayerAvailabilityOutput {
	t.Helper()
	out, err := c.BatchCheckLayerAvailability(context.Background(), &ecr.BatchCheckLayerAvailabilityInput{RepositoryName: aws.String(repo), LayerDigests: dgs})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAPIPushThenPullThroughRegistry(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("api/app")})
	img := randomImage(t)
	config, layers, manifest, mt := imageParts(t, img)
	all := [][]byte{config}
	all = append(all, layers...)
	var dgs []string
	for _, b := range all {
		dgs = append(dgs, digest.FromBytes(b).String())
	}

	before := checkLayers(t, c, "api/app", dgs...)
	if len(before.Layers) != 0 || len(before.Failures) != len(dgs) {
		t.Fatalf("before the upload: %+v", before)
	}
	for _, f := range before.Failures {
		if f.FailureCode != ecrtypes.LayerFailureCodeMissingLayerDigest {
			t.Errorf("failure %+v, want MissingLayerDigest", f)
		}
	}
	out, err := c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("api/app"), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String("1")})
	wantCode(t, err, "LayersNotFoundException")
	if out != nil {
		t.Fatal("PutImage answered without the layers")
	}

	for _, b := range all {
		apiUpload(t, c, "api/app", b, 300) // several parts each
	}
	after := checkLayers(t, c, "api/app", dgs...)
	if len(after.Failures) != 0 || len(after.Layers) != len(dgs) {
		t.Fatalf("after the upload: %+v", after)
	}
	for i, l := range after.Layers {
		if aws.ToString(l.LayerDigest) != dgs[i] || l.LayerAvailability != ecrtypes.LayerAvailabilityAvailable || aws.ToInt64(l.LayerSize) != int64(len(all[i])) {
			t.Errorf("layer %d = %+v", i, l)
		}
	}

	out, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("api/app"), ImageManifest: aws.String(string(manifest)),
		ImageManifestMediaType: aws.String(mt), ImageTag: aws.String("1")})
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, img)
	if got := aws.ToString(out.Image.ImageId.ImageDigest); got != want || aws.ToString(out.Image.ImageId.ImageTag) != "1" ||
		aws.ToString(out.Image.ImageManifest) != string(manifest) || aws.ToString(out.Image.ImageManifestMediaType) != mt ||
		aws.ToString(out.Image.RepositoryName) != "api/app" || aws.ToString(out.Image.RegistryId) != e.Account() {
		t.Fatalf("PutImage = %+v, want digest %s", out.Image, want)
	}
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("api/app"), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String("1")})
	wantCode(t, err, "ImageAlreadyExistsException")
	// A new tag for the same manifest is not a repeat.
	if _, err := c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("api/app"), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String("2")}); err != nil {
		t.Fatal(err)
	}

	// An index of the image, pushed with PutImage too.
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}`, mt, want, len(manifest))
	if _, err := c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("api/app"), ImageManifest: aws.String(idx), ImageTag: aws.String("multi")}); err != nil {
		t.Fatal(err)
	}

	rc := newRegClient(t, e)
	pulledIdx, err := remote.Index(rc.ref(t, "api/app:multi"), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digestOf(t, pulledIdx), digest.FromString(idx).String(); got != want {
		t.Fatalf("pulled index %s, want %s", got, want)
	}
	for _, tag := range []string{"1", "2"} {
		pulled, err := remote.Image(rc.ref(t, "api/app:"+tag), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
		if err != nil {
			t.Fatal(err)
		}
		if got := digestOf(t, pulled); got != want {
			t.Fatalf("pulled %s, want %s", got, want)
		}
		_, pl, _, _ := imageParts(t, pulled)
		if !bytes.Equal(pl[0], layers[0]) {
			t.Fatal("pulled layer differs from the uploaded one")
		}
	}
}

func TestRegistryPushVisibleToLayerAPI(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("reg/app")})
	img := randomImage(t)
	if err := rc.push(t, "reg/app:1", img); err != nil {
		t.Fatal(err)
	}
	_, layers, _, _ := imageParts(t, img)
	dg := digest.FromBytes(layers[0]).String()
	out := checkLayers(t, c, "reg/app", dg, "sha256:0000000000000000000000000000000000000000000000000000000000000000", "not-a-digest")
	if len(out.Layers) != 1 || aws.ToString(out.Layers[0].LayerDigest) != dg || out.Layers[0].LayerAvailability != ecrtypes.LayerAvailabilityAvailable {
		t.Fatalf("layers = %+v", out.Layers)
	}
	if len(out.Failures) != 2 || out.Failures[0].FailureCode != ecrtypes.LayerFailureCodeMissingLayerDigest || out.Failures[1].FailureCode != ecrtypes.LayerFailureCodeInvalidLayerDigest {
		t.Fatalf("failures = %+v", out.Failures)
	}
	// Layers are per repository, as in ECR.
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("reg/other")})
	if out := checkLayers(t, c, "reg/other", dg); len(out.Layers) != 0 || len(out.Failures) != 1 {
		t.Fatalf("other repository: %+v", out)
	}
	_, err := c.BatchCheckLayerAvailability(context.Background(), &ecr.BatchCheckLayerAvailabilityInput{RepositoryName: aws.String("reg/missing"), LayerDigests: []string{dg}})
	wantCode(t, err, "RepositoryNotFoundException")
	// An uploaded layer already there.
	_, err = apiUploadErr(c, "reg/app", layers[0])
	wantCode(t, err, "LayerAlreadyExistsException")
}

// apiUploadErr uploads data in one part and returns CompleteLayerUpload's error.
func apiUploadErr(c *ecr.Client, repo string, data []byte) (*ecr.CompleteLayerUploadOutput, error) {
	ctx := context.Background()
	init, err := c.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String(repo)})
	if err != nil {
		return nil, err
	}
	if _, err := c.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: aws.String(repo), UploadId: init.UploadId,
		PartFirstByte: aws.Int64(0), PartLastByte: aws.Int64(int64(len(data) - 1)), LayerPartBlob: data}); err != nil {
		return nil, err
	}
	return c.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String(repo), UploadId: init.UploadId, LayerDigests: []string{digest.FromBytes(data).String()}})
}

func TestLayerUploadErrors(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("up/app")})
	repo := aws.String("up/app")

	_, err := c.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: aws.String("up/missing")})
	wantCode(t, err, "RepositoryNotFoundException")
	_, err = c.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: repo, UploadId: aws.String("nope"),
		PartFirstByte: aws.Int64(0), PartLastByte: aws.Int64(0), LayerPartBlob: []byte("x")})
	wantCode(t, err, "UploadNotFoundException")
	_, err = c.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: repo, UploadId: aws.String("nope"), LayerDigests: []string{digest.FromString("x").String()}})
	wantCode(t, err, "UploadNotFoundException")

	init, err := c.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: repo})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: repo, UploadId: init.UploadId, LayerDigests: []string{digest.FromString("").String()}})
	wantCode(t, err, "EmptyUploadException")
	part := func(first, last int64, b []byte) error {
		_, err := c.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: repo, UploadId: init.UploadId, PartFirstByte: aws.Int64(first), PartLastByte: aws.Int64(last), LayerPartBlob: b})
		return err
	}
	wantCode(t, part(5, 7, []byte("abc")), "InvalidLayerPartException") // does not start at 0
	wantCode(t, part(0, 5, []byte("abc")), "InvalidLayerPartException") // range longer than the part
	if err := part(0, 2, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	wantCode(t, part(0, 2, []byte("abc")), "InvalidLayerPartException") // repeated
	if err := part(3, 5, []byte("def")); err != nil {
		t.Fatal(err)
	}
	// The upload belongs to its repository.
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("up/other")})
	_, err = c.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: aws.String("up/other"), UploadId: init.UploadId, LayerDigests: []string{digest.FromString("abcdef").String()}})
	wantCode(t, err, "UploadNotFoundException")
	_, err = c.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: repo, UploadId: init.UploadId, LayerDigests: []string{digest.FromString("abc").String()}})
	wantCode(t, err, "InvalidLayerException")
	if _, err := c.CompleteLayerUpload(ctx, &ecr.CompleteLayerUploadInput{RepositoryName: repo, UploadId: init.UploadId, LayerDigests: []string{digest.FromString("abcdef").String()}}); err != nil {
		t.Fatal(err)
	}
	if out := checkLayers(t, c, "up/app", digest.FromString("abcdef").String()); len(out.Layers) != 1 {
		t.Fatalf("completed layer not available: %+v", out)
	}

	// Deleting the repository ends its uploads.
	init, err = c.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: repo})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: repo, Force: true}); err != nil {
		t.Fatal(err)
	}
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: repo})
	wantCode(t, part(0, 2, []byte("abc")), "UploadNotFoundException")

	// A part above the 1 MiB the other operations accept, and one above ECR's limit.
	big := make([]byte, 3<<20)
	_, _ = rand.Read(big)
	apiUpload(t, c, "up/app", big, len(big))
	init, err = c.InitiateLayerUpload(ctx, &ecr.InitiateLayerUploadInput{RepositoryName: repo})
	if err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, 20971521)
	_, err = c.UploadLayerPart(ctx, &ecr.UploadLayerPartInput{RepositoryName: repo, UploadId: init.UploadId, PartFirstByte: aws.Int64(0), PartLastByte: aws.Int64(int64(len(huge) - 1)), LayerPartBlob: huge})
	wantCode(t, err, "InvalidParameterException")
}

func TestPutImageErrors(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("put/imm"), ImageTagMutability: ecrtypes.ImageTagMutabilityImmutableWithExclusion,
		ImageTagMutabilityExclusionFilters: []ecrtypes.ImageTagMutabilityExclusionFilter{{FilterType: "WILDCARD", Filter: aws.String("dev-*")}}})
	repo := aws.String("put/imm")
	put := func(img v1.Image, tag string) (*ecr.PutImageOutput, error) {
		t.Helper()
		config, layers, manifest, _ := imageParts(t, img)
		for _, b := range append([][]byte{config}, layers...) {
			if out := checkLayers(t, c, "put/imm", digest.FromBytes(b).String()); len(out.Layers) == 0 {
				apiUpload(t, c, "put/imm", b, 1<<20)
			}
		}
		return c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(string(manifest)), ImageTag: aws.String(tag)})
	}
	a, b := randomImage(t), randomImage(t)
	for _, tag := range []string{"1.0", "dev-1"} {
		if _, err := put(a, tag); err != nil {
			t.Fatal(err)
		}
	}
	_, err := put(b, "1.0")
	wantCode(t, err, "ImageTagAlreadyExistsException")
	if _, err := put(b, "dev-1"); err != nil {
		t.Fatalf("excluded tag: %v", err)
	}
	_, err = put(a, "1.0")
	wantCode(t, err, "ImageAlreadyExistsException")

	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String("{not json"), ImageTag: aws.String("x")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:zz","size":2},"layers":[]}`), ImageTag: aws.String("x")})
	wantCode(t, err, "InvalidParameterException")
	_, _, manifest, _ := imageParts(t, a)
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(string(manifest)), ImageTag: aws.String("bad tag")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(string(manifest)), ImageDigest: aws.String(digest.FromString("x").String())})
	wantCode(t, err, "ImageDigestDoesNotMatchException")
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("put/missing"), ImageManifest: aws.String(string(manifest))})
	wantCode(t, err, "RepositoryNotFoundException")
	// Manifests above the 1 MiB other requests may have, up to ECR's 4 MiB.
	padded := func(n int) string {
		var m map[string]any
		if err := json.Unmarshal(manifest, &m); err != nil {
			t.Fatal(err)
		}
		m["annotations"] = map[string]string{"pad": strings.Repeat("x", n)}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if _, err := c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(padded(2 << 20)), ImageTag: aws.String("dev-big")}); err != nil {
		t.Fatalf("2 MiB manifest: %v", err)
	}
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(padded(4 << 20)), ImageTag: aws.String("dev-huge")})
	wantCode(t, err, "InvalidParameterException")
	// An index whose platform image is missing.
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":10}]}`, digest.FromString("missing"))
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(idx), ImageTag: aws.String("dev-idx")})
	wantCode(t, err, "ReferencedImagesNotFoundException")
	// By digest only: an untagged image that is then pullable by digest.
	_, _, mb, _ := imageParts(t, b)
	_, err = c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: repo, ImageManifest: aws.String(string(mb)), ImageDigest: aws.String(digestOf(t, b))})
	wantCode(t, err, "ImageAlreadyExistsException") // pushed above as dev-1
}

func TestGetDownloadUrlForLayer(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{BlobRedirect: true})
	c := ecrClient(e)
	ctx := context.Background()
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("dl/app")})
	data := []byte("layer bytes for a presigned download")
	dg := apiUpload(t, c, "dl/app", data, 10)
	out, err := c.GetDownloadUrlForLayer(ctx, &ecr.GetDownloadUrlForLayerInput{RepositoryName: aws.String("dl/app"), LayerDigest: aws.String(dg)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.LayerDigest) != dg {
		t.Fatalf("layerDigest = %s", aws.ToString(out.LayerDigest))
	}
	resp, err := http.Get(aws.ToString(out.DownloadUrl))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET %s = %d %q, %v", aws.ToString(out.DownloadUrl), resp.StatusCode, got, err)
	}
	if total, withAuth := e.S3Requests(); total != 1 || withAuth != 0 {
		t.Fatalf("S3 requests %d, with Authorization %d", total, withAuth)
	}
	_, err = c.GetDownloadUrlForLayer(ctx, &ecr.GetDownloadUrlForLayerInput{RepositoryName: aws.String("dl/app"), LayerDigest: aws.String(digest.FromString("missing").String())})
	wantCode(t, err, "LayersNotFoundException")
	_, err = c.GetDownloadUrlForLayer(ctx, &ecr.GetDownloadUrlForLayerInput{RepositoryName: aws.String("dl/missing"), LayerDigest: aws.String(dg)})
	wantCode(t, err, "RepositoryNotFoundException")
}

func TestGetDownloadUrlForLayerWithoutS3(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("dl/app")})
	dg := apiUpload(t, c, "dl/app", []byte("layer"), 10)
	_, err := c.GetDownloadUrlForLayer(context.Background(), &ecr.GetDownloadUrlForLayerInput{RepositoryName: aws.String("dl/app"), LayerDigest: aws.String(dg)})
	wantCode(t, err, "LayerInaccessibleException")
}
