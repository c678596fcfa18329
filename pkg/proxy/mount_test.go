package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ecrgate/ecrgate/pkg/blobindex"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// mountFixture: the emulator, an ensurer and a registry-mode proxy with
// mounting, serving on a loopback port.
type mountFixture struct {
	*emulated
	index   *blobindex.Index
	metrics *Metrics
	tr      *http.Transport // every connection to the emulator
	addr    string
	base    []v1.Layer // three base layers, pushed to base/img directly
}

const layerSize = 256 << 10

func startMount(t *testing.T, yaml string, facts func(*repocreate.Ensurer) MountFacts) *mountFixture {
	t.Helper()
	m := startEmulated(t, yaml)
	// Idle connections to the emulator closed before it stops, which
	// would otherwise wait for them.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	f := &mountFixture{emulated: m, index: blobindex.Open(blobindex.Options{}), metrics: NewMetrics(), tr: tr}
	var mf MountFacts = m.ens
	if facts != nil {
		mf = facts(m.ens)
	}
	p, err := New(Options{
		Resolve: func(_, name string) (Target, error) {
			return Target{Registry: chainRegistry, Repository: name, Upstream: m.upstream}, nil
		},
		AnswerPing: true, Ensurer: m.ens, Tokens: &emulatorTokens{api: m.api}, Logger: discard, Metrics: f.metrics, Transport: tr,
		Mounts: mf, Blobs: f.index,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	f.addr = strings.TrimPrefix(srv.URL, "http://")

	f.create(t, "base/img", nil)
	for range 3 {
		l, err := random.Layer(layerSize, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		if err != nil {
			t.Fatal(err)
		}
		f.base = append(f.base, l)
	}
	img, err := mutate.AppendLayers(empty.Image, f.base...)
	if err != nil {
		t.Fatal(err)
	}
	f.pushDirect(t, "base/img:1", img)
	return f
}

func (f *mountFixture) create(t *testing.T, repo string, enc *types.EncryptionConfiguration) {
	t.Helper()
	if _, err := f.api.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo), EncryptionConfiguration: enc}); err != nil {
		t.Fatal(err)
	}
}

func (f *mountFixture) pushDirect(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(f.e.Host()+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := &authn.Basic{Username: "AWS", Password: password(f.auth(t))}
	if err := remote.Write(r, img, remote.WithAuth(auth), remote.WithTransport(f.tr)); err != nil {
		t.Fatal(err)
	}
}

// image is the base layers plus one of its own.
func (f *mountFixture) image(t *testing.T) v1.Image {
	t.Helper()
	own, err := random.Layer(layerSize, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, append(append([]v1.Layer{}, f.base...), own)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push pushes img through the proxy and returns the bytes the emulator's
// upload handlers read meanwhile.
func (f *mountFixture) push(t *testing.T, ref string, img v1.Image) (int64, error) {
	t.Helper()
	r, err := name.ParseReference(f.addr+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	before := f.e.UploadBytes()
	err = remote.Write(r, img)
	return f.e.UploadBytes() - before, err
}

// pulled checks that every layer of img can be read back from the emulator.
func (f *mountFixture) pulled(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(f.e.Host()+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := &authn.Basic{Username: "AWS", Password: password(f.auth(t))}
	got, err := remote.Image(r, remote.WithAuth(auth), remote.WithTransport(f.tr))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer of %s: %v", ref, err)
		}
		rc.Close()
	}
}

func (f *mountFixture) setting(t *testing.T, value string) {
	t.Helper()
	if err := f.e.SetAccountSetting("", "BLOB_MOUNTING", value); err != nil {
		t.Fatal(err)
	}
}

// A push to a new repository whose base layers live in a repository the
// template's mount_from names uploads only its own layer and config: the
// base layers are promised to its HEADs and mounted once the repository
// exists.
func TestMountFromTemplateIntoNewRepository(t *testing.T) {
	f := startMount(t, "templates:\n  - prefix: team\n    mount_from: [base/img]\n", nil)
	f.setting(t, "ENABLED")
	img := f.image(t)
	up, err := f.push(t, "team/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	if up >= 2*layerSize {
		t.Errorf("the emulator's upload handlers read %d bytes, want under %d (the own layer and config only)", up, 2*layerSize)
	}
	if n := counter(f.metrics.Mounts, "mount"); n != 3 {
		t.Errorf("ecrgate_blobs_mounted_total{how=mount} = %v, want 3", n)
	}
	if n := counter(f.metrics.MountedBytes, "mount"); n < 3*layerSize {
		t.Errorf("ecrgate_blob_bytes_mounted_total{how=mount} = %v, want at least %d", n, 3*layerSize)
	}
	f.pulled(t, "team/app:1", img)

	// At once, to a repository whose template names nothing: the index
	// knows team/app holds the layers now (it was missing a moment ago).
	img2 := f.image(t)
	if up, err = f.push(t, "other/app:1", img2); err != nil || up >= 2*layerSize {
		t.Errorf("push to other/app uploaded %d bytes (err %v), want under %d: mounted from team/app", up, err, 2*layerSize)
	}
	f.pulled(t, "other/app:1", img2)
}

// Without mount_from, the index learns from a push through ecrgate, and
// the next push of the same base to another new repository mounts it;
// into an existing repository, the HEAD itself mounts.
func TestMountFromIndex(t *testing.T) {
	f := startMount(t, "", nil)
	f.setting(t, "ENABLED")
	img := f.image(t)
	if up, err := f.push(t, "team/first:1", img); err != nil || up < 3*layerSize {
		t.Fatalf("first push: %d bytes uploaded, err %v; want every layer uploaded (nothing known yet)", up, err)
	}
	up, err := f.push(t, "team/second:1", f.image(t))
	if err != nil {
		t.Fatal(err)
	}
	if up >= 2*layerSize {
		t.Errorf("second push uploaded %d bytes, want under %d", up, 2*layerSize)
	}
	f.create(t, "team/existing", nil)
	img3 := f.image(t)
	if up, err = f.push(t, "team/existing:1", img3); err != nil || up >= 2*layerSize {
		t.Errorf("push to an existing repository uploaded %d bytes (err %v), want under %d", up, err, 2*layerSize)
	}
	f.pulled(t, "team/existing:1", img3)
}

// With BLOB_MOUNTING disabled nothing is promised: every layer is uploaded.
func TestMountDisabledRegistry(t *testing.T) {
	f := startMount(t, "templates:\n  - prefix: ROOT\n    mount_from: [base/img]\n", nil)
	f.setting(t, "DISABLED")
	img := f.image(t)
	up, err := f.push(t, "team/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	if up < 4*layerSize {
		t.Errorf("uploaded %d bytes with BLOB_MOUNTING disabled, want every layer (%d)", up, 4*layerSize)
	}
	if n := counter(f.metrics.Mounts, "mount") + counter(f.metrics.Mounts, "copy"); n != 0 {
		t.Errorf("%v layers mounted with BLOB_MOUNTING disabled", n)
	}
	f.pulled(t, "team/app:1", img)
}

// mount_shared_layers: false: nothing is asked, every layer uploaded.
func TestMountSwitchedOff(t *testing.T) {
	f := startMount(t, "mount_shared_layers: false\ntemplates:\n  - prefix: ROOT\n    mount_from: [base/img]\n", nil)
	f.setting(t, "ENABLED")
	up, err := f.push(t, "team/app:1", f.image(t))
	if err != nil {
		t.Fatal(err)
	}
	if up < 4*layerSize {
		t.Errorf("uploaded %d bytes with mount_shared_layers: false, want every layer", up)
	}
}

// sameEncryption lies that every repository is encrypted alike, so ecrgate
// promises layers the emulator then refuses to mount.
type sameEncryption struct{ *repocreate.Ensurer }

func (s sameEncryption) Encryption(ctx context.Context, registry, repository string) (repocreate.RepoEncryption, error) {
	enc, err := s.Ensurer.Encryption(ctx, registry, repository)
	enc.Type, enc.KMSKey = "AES256", ""
	return enc, err
}

// Where the registry refuses the mount it was promised (202), ecrgate
// cancels that session and copies the layer from the source itself.
func TestMountRefusedCopies(t *testing.T) {
	f := startMount(t, "templates:\n  - prefix: ROOT\n    mount_from: [base/kms]\n",
		func(e *repocreate.Ensurer) MountFacts { return sameEncryption{e} })
	f.setting(t, "ENABLED")
	f.create(t, "base/kms", &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeKms})
	img, err := mutate.AppendLayers(empty.Image, f.base...)
	if err != nil {
		t.Fatal(err)
	}
	f.pushDirect(t, "base/kms:1", img)
	full := f.image(t)
	cancels := f.e.Calls("Registry.UploadCancel")
	// One copy's download fails once: the write that was to keep the
	// promise fails (UNAVAILABLE), and the client's retry keeps it.
	f.e.FailNext("Registry.BlobGet", 1, ecrfake.FaultServerError)
	if _, err := f.push(t, "team/app:1", full); err != nil {
		t.Fatal(err)
	}
	// Each base layer was promised and copied, unless its HEAD came after
	// the push's first write created the repository: then ecrgate tried
	// the mount at once and, refused, let the client upload it.
	copies := counter(f.metrics.Mounts, "copy")
	if copies < 1 || copies > 3 {
		t.Errorf("ecrgate_blobs_mounted_total{how=copy} = %v, want 1 to 3", copies)
	}
	if n := f.e.Calls("Registry.UploadCancel") - cancels; n < int(copies) {
		t.Errorf("%d upload sessions cancelled, want one per refused mount (at least %v)", n, copies)
	}
	f.pulled(t, "team/app:1", full)
}

// A source deleted between the HEAD that was promised a layer and the
// push's first write fails that write with an error that says so; the
// index forgets the source, and a retry uploads.
func TestMountSourceDeleted(t *testing.T) {
	f := startMount(t, "", nil)
	f.setting(t, "ENABLED")
	f.create(t, "base/gone", nil)
	img, err := mutate.AppendLayers(empty.Image, f.base...)
	if err != nil {
		t.Fatal(err)
	}
	// Pulled through ecrgate: the index learns base/gone holds the layers.
	r, _ := name.ParseReference(f.addr+"/base/gone:1", name.Insecure)
	f.pushDirect(t, "base/gone:1", img)
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	dg := mustDigest(t, f.base[0])
	if repos, _, _ := f.index.Lookup(chainRegistry, dg); len(repos) != 1 || repos[0] != "base/gone" {
		t.Fatalf("index for %s = %q, want [base/gone]", dg, repos)
	}
	head, err := http.NewRequest(http.MethodHead, "http://"+f.addr+"/v2/team/app/blobs/"+dg, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(head)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	size, _ := f.base[0].Size()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != dg || resp.ContentLength != size {
		t.Fatalf("HEAD = %d, digest %q, length %d; want 200, %s, %d (promised)", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), resp.ContentLength, dg, size)
	}
	f.deleteRepository(t, "base/gone")
	full := f.image(t)
	_, err = f.push(t, "team/app:1", full)
	if err == nil || !strings.Contains(err.Error(), "is gone from there") || !strings.Contains(err.Error(), "base/gone") {
		t.Fatalf("push after the source was deleted: err = %v, want one saying the layer is gone from base/gone", err)
	}
	if repos, _, ok := f.index.Lookup(chainRegistry, dg); ok {
		t.Errorf("index still names %q for %s", repos, dg)
	}
	if _, err := f.push(t, "team/app:1", full); err != nil {
		t.Fatalf("retry: %v", err)
	}
	f.pulled(t, "team/app:1", full)
}

func mustDigest(t *testing.T, l v1.Layer) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func counter(c *prometheus.CounterVec, label string) float64 {
	var m dto.Metric
	if err := c.WithLabelValues(label).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// A source the pusher's credentials may not read is never promised from:
// the HEAD there carries the same credentials as the pusher's request.
func TestMountSourceNotReadable(t *testing.T) {
	f := startMount(t, "templates:\n  - prefix: ROOT\n    mount_from: [base/img]\n", nil)
	f.setting(t, "ENABLED")
	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"no","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::` + f.e.Account() +
		`:user/ecrfake"},"Action":["ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer"]}]}`
	if _, err := f.api.SetRepositoryPolicy(context.Background(), &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String("base/img"), PolicyText: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	img := f.image(t)
	up, err := f.push(t, "team/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	if up < 4*layerSize {
		t.Errorf("uploaded %d bytes, want every layer: the source is not readable with the pusher's credentials", up)
	}
	if n := counter(f.metrics.Mounts, "mount") + counter(f.metrics.Mounts, "copy"); n != 0 {
		t.Errorf("%v layers mounted from a source the pusher may not read", n)
	}
}

// A blob a client deletes from a repository is not mounted back into it
// by the next HEAD there, though another repository holds it.
func TestMountNotAfterDelete(t *testing.T) {
	f := startMount(t, "templates:\n  - prefix: ROOT\n    mount_from: [base/img]\n", nil)
	f.setting(t, "ENABLED")
	f.create(t, "team/app", nil)
	dg := mustDigest(t, f.base[0])
	head := func() int {
		req, err := http.NewRequest(http.MethodHead, "http://"+f.addr+"/v2/team/app/blobs/"+dg, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := head(); code != http.StatusOK {
		t.Fatalf("HEAD in an existing repository = %d, want 200 (mounted from base/img)", code)
	}
	req, err := http.NewRequest(http.MethodDelete, "http://"+f.addr+"/v2/team/app/blobs/"+dg, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE = %d", resp.StatusCode)
	}
	if code := head(); code != http.StatusNotFound {
		t.Errorf("HEAD after DELETE = %d, want 404", code)
	}
}
