package ecrfake_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// pushed is what imageFixture stored in team/app.
type pushed struct {
	one      v1.Image      // tags 1 and latest
	two      v1.Image      // tag 2
	index    v1.ImageIndex // tag multi, two untagged platform images
	children []v1.Hash
}

func imageFixture(t *testing.T, e *ecrfake.Emulator) (*regClient, pushed) {
	t.Helper()
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	rc := newRegClient(t, e)
	p := pushed{one: randomImage(t), two: randomImage(t)}
	for _, tag := range []string{"1", "latest"} {
		if err := rc.push(t, "team/app:"+tag, p.one); err != nil {
			t.Fatal(err)
		}
	}
	if err := rc.push(t, "team/app:2", p.two); err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	p.index = idx
	if err := remote.WriteIndex(rc.ref(t, "team/app:multi"), idx, remote.WithAuth(rc.auth), remote.WithTransport(rc.tr)); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		p.children = append(p.children, m.Digest)
	}
	return rc, p
}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func describeAll(t *testing.T, c *ecr.Client, in *ecr.DescribeImagesInput) []ecrtypes.ImageDetail {
	t.Helper()
	var all []ecrtypes.ImageDetail
	pages := 0
	for p := ecr.NewDescribeImagesPaginator(c, in); p.HasMorePages(); pages++ {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if in.MaxResults != nil && len(out.ImageDetails) > int(*in.MaxResults) {
			t.Fatalf("page of %d, maxResults %d", len(out.ImageDetails), *in.MaxResults)
		}
		all = append(all, out.ImageDetails...)
	}
	return all
}

func TestDescribeImages(t *testing.T) {
	start := time.Now().Add(-time.Second)
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	_, p := imageFixture(t, e)
	oneDigest := digestOf(t, p.one)

	all := describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app")})
	if len(all) != 5 {
		t.Fatalf("DescribeImages = %d images, want 5 (2 images, an index, its 2 platform images)", len(all))
	}
	var one *ecrtypes.ImageDetail
	for i := range all {
		if aws.ToString(all[i].ImageDigest) == oneDigest {
			one = &all[i]
		}
	}
	if one == nil {
		t.Fatalf("image %s not described: %+v", oneDigest, all)
	}
	m, err := p.one.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	if aws.ToString(one.RegistryId) != e.Account() || aws.ToString(one.RepositoryName) != "team/app" ||
		!slices.Equal(one.ImageTags, []string{"1", "latest"}) || aws.ToInt64(one.ImageSizeInBytes) != size ||
		aws.ToString(one.ImageManifestMediaType) != string(m.MediaType) ||
		aws.ToString(one.ArtifactMediaType) != string(m.Config.MediaType) {
		t.Fatalf("detail = %+v, want tags [1 latest], size %d, media types %s / %s", *one, size, m.MediaType, m.Config.MediaType)
	}
	if pa := aws.ToTime(one.ImagePushedAt); pa.Before(start) || pa.After(time.Now().Add(time.Second)) {
		t.Fatalf("imagePushedAt = %v, want about now", pa)
	}

	paged := describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app"), MaxResults: aws.Int32(2)})
	if len(paged) != 5 || !sameDigests(paged, all) {
		t.Fatalf("paged DescribeImages = %d images, want the same 5", len(paged))
	}
	tagged := describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app"),
		Filter: &ecrtypes.DescribeImagesFilter{TagStatus: ecrtypes.TagStatusTagged}})
	untagged := describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app"),
		Filter: &ecrtypes.DescribeImagesFilter{TagStatus: ecrtypes.TagStatusUntagged}})
	if len(tagged) != 3 || len(untagged) != 2 {
		t.Fatalf("TAGGED %d, UNTAGGED %d; want 3 and 2", len(tagged), len(untagged))
	}
	for _, d := range untagged {
		if len(d.ImageTags) != 0 || !slices.ContainsFunc(p.children, func(h v1.Hash) bool { return h.String() == aws.ToString(d.ImageDigest) }) {
			t.Fatalf("untagged image %+v is not a platform image of the index", d)
		}
	}

	out, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("latest")}, {ImageDigest: aws.String(oneDigest)}}})
	if err != nil || len(out.ImageDetails) != 1 || aws.ToString(out.ImageDetails[0].ImageDigest) != oneDigest {
		t.Fatalf("DescribeImages by id = %+v, %v", out, err)
	}
	_, err = c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("latest")}, {ImageTag: aws.String("nope")}}})
	wantCode(t, err, "ImageNotFoundException")
	_, err = c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/other")})
	wantCode(t, err, "RepositoryNotFoundException")
}

func sameDigests(a, b []ecrtypes.ImageDetail) bool {
	set := func(ds []ecrtypes.ImageDetail) []string {
		var s []string
		for _, d := range ds {
			s = append(s, aws.ToString(d.ImageDigest))
		}
		slices.Sort(s)
		return s
	}
	return slices.Equal(set(a), set(b))
}

func TestListImagesListsIndexChildren(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	_, p := imageFixture(t, e)
	var ids []ecrtypes.ImageIdentifier
	for pg := ecr.NewListImagesPaginator(c, &ecr.ListImagesInput{RepositoryName: aws.String("team/app"), MaxResults: aws.Int32(2)}); pg.HasMorePages(); {
		out, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(out.ImageIds) > 2 {
			t.Fatalf("page of %d ids, maxResults 2", len(out.ImageIds))
		}
		ids = append(ids, out.ImageIds...)
	}
	want := map[string]bool{
		digestOf(t, p.one) + " 1": true, digestOf(t, p.one) + " latest": true,
		digestOf(t, p.two) + " 2": true, digestOf(t, p.index) + " multi": true,
		p.children[0].String() + " ": true, p.children[1].String() + " ": true,
	}
	got := map[string]bool{}
	for _, id := range ids {
		got[aws.ToString(id.ImageDigest)+" "+aws.ToString(id.ImageTag)] = true
	}
	if len(ids) != len(want) || len(got) != len(want) {
		t.Fatalf("ListImages = %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("ListImages = %v, missing %q", got, k)
		}
	}
	out, err := c.ListImages(context.Background(), &ecr.ListImagesInput{RepositoryName: aws.String("team/app"),
		Filter: &ecrtypes.ListImagesFilter{TagStatus: ecrtypes.TagStatusUntagged}})
	if err != nil || len(out.ImageIds) != 2 || out.ImageIds[0].ImageTag != nil {
		t.Fatalf("ListImages UNTAGGED = %+v, %v", out, err)
	}
}

func TestBatchGetImage(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	_, p := imageFixture(t, e)
	raw, err := p.one.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := p.one.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.BatchGetImage(context.Background(), &ecr.BatchGetImageInput{RepositoryName: aws.String("team/app"),
		ImageIds: []ecrtypes.ImageIdentifier{
			{ImageTag: aws.String("latest")},
			{ImageTag: aws.String("nope")},
			{ImageTag: aws.String("1"), ImageDigest: aws.String(digestOf(t, p.two))},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Images) != 1 || aws.ToString(out.Images[0].ImageManifest) != string(raw) ||
		aws.ToString(out.Images[0].ImageManifestMediaType) != string(mt) ||
		aws.ToString(out.Images[0].ImageId.ImageDigest) != digestOf(t, p.one) || aws.ToString(out.Images[0].ImageId.ImageTag) != "latest" ||
		aws.ToString(out.Images[0].RegistryId) != e.Account() || aws.ToString(out.Images[0].RepositoryName) != "team/app" {
		t.Fatalf("images = %+v", out.Images)
	}
	if len(out.Failures) != 2 || out.Failures[0].FailureCode != ecrtypes.ImageFailureCodeImageNotFound ||
		aws.ToString(out.Failures[0].ImageId.ImageTag) != "nope" || aws.ToString(out.Failures[0].FailureReason) == "" ||
		out.Failures[1].FailureCode != ecrtypes.ImageFailureCodeImageTagDoesNotMatchDigest {
		t.Fatalf("failures = %+v", out.Failures)
	}
	idxRaw, err := p.index.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	out, err = c.BatchGetImage(context.Background(), &ecr.BatchGetImageInput{RepositoryName: aws.String("team/app"),
		ImageIds:           []ecrtypes.ImageIdentifier{{ImageDigest: aws.String(digestOf(t, p.index))}, {ImageTag: aws.String("2")}},
		AcceptedMediaTypes: []string{"application/vnd.oci.image.index.v1+json"}})
	if err != nil || len(out.Images) != 1 || aws.ToString(out.Images[0].ImageManifest) != string(idxRaw) || len(out.Failures) != 1 {
		t.Fatalf("BatchGetImage with acceptedMediaTypes = %+v, %v", out, err)
	}
	_, err = c.BatchGetImage(context.Background(), &ecr.BatchGetImageInput{RepositoryName: aws.String("team/none"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("1")}}})
	wantCode(t, err, "RepositoryNotFoundException")
}

func TestBatchDeleteImage(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	rc, p := imageFixture(t, e)
	ctx := context.Background()
	del := func(ids ...ecrtypes.ImageIdentifier) *ecr.BatchDeleteImageOutput {
		t.Helper()
		out, err := c.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{RepositoryName: aws.String("team/app"), ImageIds: ids})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	oneDigest, twoDigest := digestOf(t, p.one), digestOf(t, p.two)

	// One of two tags: only the tag goes.
	out := del(ecrtypes.ImageIdentifier{ImageTag: aws.String("latest")}, ecrtypes.ImageIdentifier{ImageTag: aws.String("nope")})
	if len(out.ImageIds) != 1 || aws.ToString(out.ImageIds[0].ImageTag) != "latest" || aws.ToString(out.ImageIds[0].ImageDigest) != oneDigest ||
		len(out.Failures) != 1 || out.Failures[0].FailureCode != ecrtypes.ImageFailureCodeImageNotFound {
		t.Fatalf("delete latest = %+v", out)
	}
	if _, err := rc.digest(t, "team/app:latest"); err == nil {
		t.Fatal("tag latest still in the registry")
	}
	if d, err := rc.digest(t, "team/app:1"); err != nil || d.String() != oneDigest {
		t.Fatalf("tag 1 = %v, %v; want it kept", d, err)
	}
	// The last tag: the image goes.
	del(ecrtypes.ImageIdentifier{ImageTag: aws.String("1")})
	_, err := remote.Get(rc.ref(t, "team/app@"+oneDigest), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
	wantRegistryError(t, err, "MANIFEST_UNKNOWN", "")
	// By digest: the image and its tags go.
	out = del(ecrtypes.ImageIdentifier{ImageDigest: aws.String(twoDigest)})
	if len(out.ImageIds) != 1 || aws.ToString(out.ImageIds[0].ImageTag) != "2" || len(out.Failures) != 0 {
		t.Fatalf("delete by digest = %+v", out)
	}
	_, err = remote.Get(rc.ref(t, "team/app@"+twoDigest), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
	wantRegistryError(t, err, "MANIFEST_UNKNOWN", "")
	_, err = remote.Get(rc.ref(t, "team/app:2"), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr))
	wantRegistryError(t, err, "MANIFEST_UNKNOWN", "")

	d, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app")})
	if err != nil || len(d.ImageDetails) != 3 {
		t.Fatalf("after deletes DescribeImages = %+v, %v; want the index and its 2 platform images", d, err)
	}
	// A platform image goes only after the index listing it.
	child := ecrtypes.ImageIdentifier{ImageDigest: aws.String(p.children[0].String())}
	out = del(child)
	if len(out.ImageIds) != 0 || len(out.Failures) != 1 || out.Failures[0].FailureCode != ecrtypes.ImageFailureCodeImageReferencedByManifestList {
		t.Fatalf("delete of a platform image = %+v", out)
	}
	out = del(ecrtypes.ImageIdentifier{ImageTag: aws.String("multi")}, child)
	if len(out.ImageIds) != 2 || len(out.Failures) != 0 || aws.ToString(out.ImageIds[1].ImageDigest) != p.children[0].String() {
		t.Fatalf("delete of the index, then a platform image = %+v", out)
	}
	l, err := c.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String("team/app")})
	if err != nil || len(l.ImageIds) != 1 || aws.ToString(l.ImageIds[0].ImageDigest) != p.children[1].String() {
		t.Fatalf("ListImages after deletes = %+v, %v; want the other platform image only", l, err)
	}
	_, err = c.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{RepositoryName: aws.String("team/none"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("1")}}})
	wantCode(t, err, "RepositoryNotFoundException")
}

func TestImagesEmptyRepositoryAndBadInput(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/empty")})
	d, err := c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/empty")})
	if err != nil || len(d.ImageDetails) != 0 || d.NextToken != nil {
		t.Fatalf("DescribeImages of an empty repository = %+v, %v", d, err)
	}
	l, err := c.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String("team/empty")})
	if err != nil || len(l.ImageIds) != 0 {
		t.Fatalf("ListImages of an empty repository = %+v, %v", l, err)
	}
	_, err = c.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/empty"),
		Filter: &ecrtypes.DescribeImagesFilter{TagStatus: "SOME"}})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String("team/empty"), NextToken: aws.String("!!")})
	wantCode(t, err, "InvalidParameterException")
	g, err := c.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String("team/empty"), ImageIds: []ecrtypes.ImageIdentifier{{}}})
	if err != nil || len(g.Failures) != 1 || g.Failures[0].FailureCode != ecrtypes.ImageFailureCodeMissingDigestAndTag {
		t.Fatalf("BatchGetImage of an empty id = %+v, %v", g, err)
	}
}

func TestImagePushedAtIsStable(t *testing.T) {
	for name, opts := range map[string]ecrfake.Options{"memory": {}, "disk": {StorageDir: t.TempDir()}} {
		t.Run(name, func(t *testing.T) {
			e := ecrfake.Start(t, opts)
			c := ecrClient(e)
			createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
			if err := newRegClient(t, e).push(t, "team/app:1", randomImage(t)); err != nil {
				t.Fatal(err)
			}
			var seen []time.Time
			for range 2 {
				d, err := c.DescribeImages(context.Background(), &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app")})
				if err != nil || len(d.ImageDetails) != 1 {
					t.Fatalf("DescribeImages = %+v, %v", d, err)
				}
				seen = append(seen, aws.ToTime(d.ImageDetails[0].ImagePushedAt))
				time.Sleep(20 * time.Millisecond)
			}
			if !seen[0].Equal(seen[1]) {
				t.Fatalf("imagePushedAt moved from %v to %v", seen[0], seen[1])
			}
		})
	}
}

func TestBatchDeleteImageRemovesReferrer(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("ref/app")})
	img := randomImage(t)
	if err := rc.push(t, "ref/app:1", img); err != nil {
		t.Fatal(err)
	}
	subject, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	sbom := ociArtifact(t, sbomType, *subject, nil)
	sbomDigest := digestOf(t, sbom)
	if err := remote.Write(rc.ref(t, "ref/app@"+sbomDigest), sbom, remote.WithAuth(rc.auth), remote.WithReferrersTagFallback(false)); err != nil {
		t.Fatal(err)
	}
	if idx, _ := rc.listReferrers(t, e, "ref/app", subject.Digest.String(), ""); len(idx.Manifests) != 1 {
		t.Fatalf("referrers before delete = %+v", idx.Manifests)
	}
	d, err := c.DescribeImages(context.Background(), &ecr.DescribeImagesInput{RepositoryName: aws.String("ref/app"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageDigest: aws.String(sbomDigest)}}})
	if err != nil || len(d.ImageDetails) != 1 || aws.ToString(d.ImageDetails[0].ArtifactMediaType) != sbomType {
		t.Fatalf("DescribeImages of the SBOM = %+v, %v; want artifactMediaType %s", d, err, sbomType)
	}
	out, err := c.BatchDeleteImage(context.Background(), &ecr.BatchDeleteImageInput{RepositoryName: aws.String("ref/app"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageDigest: aws.String(sbomDigest)}}})
	if err != nil || len(out.ImageIds) != 1 || len(out.Failures) != 0 {
		t.Fatalf("BatchDeleteImage = %+v, %v", out, err)
	}
	if idx, _ := rc.listReferrers(t, e, "ref/app", subject.Digest.String(), ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers after delete = %+v", idx.Manifests)
	}
}
