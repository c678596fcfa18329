package ecrfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

const (
	sbomType = "application/vnd.example.sbom.v1+json"
	sigType  = "application/vnd.example.signature.v1+json"
)

// do sends an authenticated registry request and returns status, header and body.
func (rc *regClient) do(t *testing.T, e *ecrfake.Emulator, method, path, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth("AWS", passwordOf(rc))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// listReferrers GETs the referrers API (query may be "") and decodes the index.
func (rc *regClient) listReferrers(t *testing.T, e *ecrfake.Emulator, repo, subject, query string) (ocispec.Index, http.Header) {
	t.Helper()
	path := "/v2/" + repo + "/referrers/" + subject
	if query != "" {
		path += "?" + query
	}
	code, h, body := rc.do(t, e, http.MethodGet, path, "", nil)
	if code != http.StatusOK || h.Get("Content-Type") != ocispec.MediaTypeImageIndex {
		t.Fatalf("GET %s: %d %s %s", path, code, h.Get("Content-Type"), body)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || idx.Manifests == nil {
		t.Fatalf("GET %s: not an OCI index with a manifests list: %s", path, body)
	}
	return idx, h
}

// ociArtifact is a small OCI image manifest whose config has media type
// configType, referring to subject.
func ociArtifact(t *testing.T, configType string, subject v1.Descriptor, anns map[string]string) v1.Image {
	t.Helper()
	img := mutate.MediaType(randomImage(t), types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.MediaType(configType))
	img = mutate.Annotations(img, anns).(v1.Image)
	return mutate.Subject(img, subject).(v1.Image)
}

func TestReferrers(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rc := newRegClient(t, e)
	opts := []remote.Option{remote.WithAuth(rc.auth), remote.WithReferrersTagFallback(false)}
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("ref/app")})

	img := mutate.MediaType(randomImage(t), types.OCIManifestSchema1)
	if err := rc.push(t, "ref/app:1", img); err != nil {
		t.Fatal(err)
	}
	subject, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	subjectRef, err := name.NewDigest(rc.host+"/ref/app@"+subject.Digest.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}

	// Artifact 1, an SBOM pushed by go-containerregistry: its artifactType is
	// its config's media type. With the tag fallback off, the push fails
	// unless the registry has the referrers API.
	sbom := ociArtifact(t, sbomType, *subject, map[string]string{"org.example.kind": "sbom"})
	sbomDigest := mustDigest(t, sbom)
	if err := remote.Write(subjectRef.Context().Digest(sbomDigest.String()), sbom, opts...); err != nil {
		t.Fatalf("push SBOM referrer: %v", err)
	}

	// Artifact 2, a signature with an explicit artifactType and the empty
	// config, PUT by hand to see OCI-Subject.
	empty := static.NewLayer([]byte("{}"), ocispec.MediaTypeEmptyJSON)
	if err := remote.WriteLayer(subjectRef.Context(), empty, opts...); err != nil {
		t.Fatal(err)
	}
	sigManifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"artifactType":  sigType,
		"config":        ocispec.DescriptorEmptyJSON,
		"layers":        []ocispec.Descriptor{ocispec.DescriptorEmptyJSON},
		"subject":       map[string]any{"mediaType": string(subject.MediaType), "digest": subject.Digest.String(), "size": subject.Size},
		"annotations":   map[string]string{"org.example.kind": "signature"},
	})
	sigDigest, _, err := v1.SHA256(bytes.NewReader(sigManifest))
	if err != nil {
		t.Fatal(err)
	}
	code, h, body := rc.do(t, e, http.MethodPut, "/v2/ref/app/manifests/"+sigDigest.String(), ocispec.MediaTypeImageManifest, sigManifest)
	if code != http.StatusCreated || h.Get("OCI-Subject") != subject.Digest.String() {
		t.Fatalf("PUT signature: %d, OCI-Subject %q, want 201 and %s: %s", code, h.Get("OCI-Subject"), subject.Digest, body)
	}
	// A manifest without a subject gets no OCI-Subject.
	plain := mutate.MediaType(randomImage(t), types.OCIManifestSchema1)
	if err := rc.push(t, "ref/app:plain", plain); err != nil {
		t.Fatal(err)
	}
	plainRaw, _ := plain.RawManifest()
	if code, h, body := rc.do(t, e, http.MethodPut, "/v2/ref/app/manifests/plain", ocispec.MediaTypeImageManifest, plainRaw); code != http.StatusCreated || h.Get("OCI-Subject") != "" {
		t.Fatalf("PUT without subject: %d, OCI-Subject %q: %s", code, h.Get("OCI-Subject"), body)
	}

	sbomRaw, _ := sbom.RawManifest()
	wantSBOM := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: toDigest(sbomDigest), Size: int64(len(sbomRaw)),
		ArtifactType: sbomType, Annotations: map[string]string{"org.example.kind": "sbom"}}
	wantSig := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: toDigest(sigDigest), Size: int64(len(sigManifest)),
		ArtifactType: sigType, Annotations: map[string]string{"org.example.kind": "signature"}}
	want := []ocispec.Descriptor{wantSBOM, wantSig}
	if want[0].Digest > want[1].Digest {
		want[0], want[1] = want[1], want[0]
	}

	// Both are listed, in digest order; go-containerregistry reads the same.
	idx, h := rc.listReferrers(t, e, "ref/app", subject.Digest.String(), "")
	if !sameDescriptors(idx.Manifests, want) || h.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("referrers = %+v (filters %q), want %+v", idx.Manifests, h.Get("OCI-Filters-Applied"), want)
	}
	ggcrIdx, err := remote.Referrers(subjectRef, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if im, err := ggcrIdx.IndexManifest(); err != nil || len(im.Manifests) != 2 {
		t.Fatalf("remote.Referrers = %+v, %v", im, err)
	}

	// The artifactType filter, announced by OCI-Filters-Applied.
	for _, tt := range []struct {
		at   string
		want []ocispec.Descriptor
	}{{sbomType, []ocispec.Descriptor{wantSBOM}}, {sigType, []ocispec.Descriptor{wantSig}}, {"application/vnd.example.none", nil}} {
		idx, h := rc.listReferrers(t, e, "ref/app", subject.Digest.String(), url.Values{"artifactType": {tt.at}}.Encode())
		if !sameDescriptors(idx.Manifests, tt.want) || h.Get("OCI-Filters-Applied") != "artifactType" {
			t.Errorf("referrers with artifactType=%s: %+v (filters %q), want %+v", tt.at, idx.Manifests, h.Get("OCI-Filters-Applied"), tt.want)
		}
	}

	// The registry keeps the list: no referrers fallback tag was pushed.
	tags, err := remote.List(subjectRef.Context(), remote.WithAuth(rc.auth))
	if err != nil || strings.Join(tags, ",") != "1,plain" {
		t.Errorf("tags = %v, %v; want 1,plain", tags, err)
	}

	// Deleting a referrer by digest removes it from the list.
	if err := remote.Delete(subjectRef.Context().Digest(sbomDigest.String()), opts...); err != nil {
		t.Fatal(err)
	}
	if idx, _ := rc.listReferrers(t, e, "ref/app", subject.Digest.String(), ""); !sameDescriptors(idx.Manifests, []ocispec.Descriptor{wantSig}) {
		t.Fatalf("after deleting the SBOM: %+v, want only the signature", idx.Manifests)
	}

	// An unknown subject has an empty list.
	other := "sha256:" + strings.Repeat("ab", 32)
	if idx, _ := rc.listReferrers(t, e, "ref/app", other, ""); len(idx.Manifests) != 0 {
		t.Errorf("referrers of an unknown digest = %+v", idx.Manifests)
	}
	code, _, body = rc.do(t, e, http.MethodGet, "/v2/ref/app/referrers/"+other, "", nil)
	if !bytes.Contains(body, []byte(`"manifests":[]`)) {
		t.Errorf("empty referrers list is not an empty array: %d %s", code, body)
	}
	// An unknown repository is NAME_UNKNOWN, an invalid digest DIGEST_INVALID.
	code, _, body = rc.do(t, e, http.MethodGet, "/v2/ref/missing/referrers/"+subject.Digest.String(), "", nil)
	if code != http.StatusNotFound || !strings.Contains(string(body), "NAME_UNKNOWN") ||
		!strings.Contains(string(body), "The repository with name 'ref/missing' does not exist in the registry with id '123456789012'") {
		t.Errorf("referrers in a missing repository: %d %s", code, body)
	}
	for _, bad := range []string{"sha256:xyz", "latest", "sha512:" + strings.Repeat("a", 128)} {
		code, _, body = rc.do(t, e, http.MethodGet, "/v2/ref/app/referrers/"+bad, "", nil)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "DIGEST_INVALID") {
			t.Errorf("referrers of %q: %d %s", bad, code, body)
		}
	}
	// Without credentials: the Basic challenge, before anything else.
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/v2/ref/missing/referrers/"+other, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous referrers request: %d, want 401", resp.StatusCode)
	}

	// A re-created repository starts with no referrers.
	if _, err := ecrClient(e).DeleteRepository(context.Background(), &ecr.DeleteRepositoryInput{RepositoryName: aws.String("ref/app"), Force: true}); err != nil {
		t.Fatal(err)
	}
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("ref/app")})
	if idx, _ := rc.listReferrers(t, e, "ref/app", subject.Digest.String(), ""); len(idx.Manifests) != 0 {
		t.Errorf("referrers after DeleteRepository = %+v", idx.Manifests)
	}
}

// A referrer may be pushed before its subject, and an index may refer too;
// referrers pushed before a restart (StorageDir) are still listed after it.
func TestReferrersBeforeSubjectAndAfterRestart(t *testing.T) {
	dir := t.TempDir()
	opts := ecrfake.Options{StorageDir: dir}
	e1, err := ecrfake.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := startServer(t, e1)
	rc := newRegClient(t, e1)
	createRepo(t, e1, &ecr.CreateRepositoryInput{RepositoryName: aws.String("keep/ref")})
	img := mutate.MediaType(randomImage(t), types.OCIManifestSchema1)
	subject, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	art := ociArtifact(t, sbomType, *subject, nil)
	if err := rc.push(t, "keep/ref:sbom", art); err != nil { // the subject is not there yet
		t.Fatal(err)
	}
	if err := rc.push(t, "keep/ref:1", img); err != nil {
		t.Fatal(err)
	}
	// An index referring to the same subject (artifactType only if set).
	idxManifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageIndex,
		"manifests":     []any{map[string]any{"mediaType": ocispec.MediaTypeImageManifest, "digest": mustDigest(t, art).String(), "size": mustSize(t, art)}},
		"subject":       map[string]any{"mediaType": ocispec.MediaTypeImageManifest, "digest": subject.Digest.String(), "size": subject.Size},
	})
	code, h, body := rc.do(t, e1, http.MethodPut, "/v2/keep/ref/manifests/idx", ocispec.MediaTypeImageIndex, idxManifest)
	if code != http.StatusCreated || h.Get("OCI-Subject") != subject.Digest.String() {
		t.Fatalf("PUT index with subject: %d %q %s", code, h.Get("OCI-Subject"), body)
	}
	check := func(e *ecrfake.Emulator) {
		t.Helper()
		idx, _ := rc.listReferrers(t, e, "keep/ref", subject.Digest.String(), "")
		if len(idx.Manifests) != 2 {
			t.Fatalf("referrers = %+v, want the SBOM and the index", idx.Manifests)
		}
		got := map[string]string{}
		for _, d := range idx.Manifests {
			got[d.MediaType] = d.ArtifactType
		}
		if at, ok := got[ocispec.MediaTypeImageManifest]; !ok || at != sbomType {
			t.Errorf("SBOM listed as %+v", idx.Manifests)
		}
		if at, ok := got[ocispec.MediaTypeImageIndex]; !ok || at != "" {
			t.Errorf("index listed as %+v", idx.Manifests)
		}
	}
	check(e1)
	stop()

	e2 := ecrfake.Start(t, opts)
	rc.host = e2.Host()
	check(e2)
}

func mustSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	n, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func toDigest(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }

// sameDescriptors compares descriptor lists in order, on the fields the
// referrers API fills.
func sameDescriptors(got, want []ocispec.Descriptor) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.MediaType != w.MediaType || g.Digest != w.Digest || g.Size != w.Size || g.ArtifactType != w.ArtifactType || len(g.Annotations) != len(w.Annotations) {
			return false
		}
		for k, v := range w.Annotations {
			if g.Annotations[k] != v {
				return false
			}
		}
	}
	return true
}
