// Command image builds ecrgate's container image without a Docker daemon and
// writes it as an OCI image layout: a multi-arch index of scratch-based
// images, each holding one static ecrgate binary, the build machine's CA
// bundle and a non-root user (65532). It is a build tool, run by `make image`,
// and not shipped in releases.
//
// The same inputs give the same digests: every file time is
// SOURCE_DATE_EPOCH, tar entries are sorted and owned by fixed ids, gzip
// writes no name or time, and the config's created time is
// SOURCE_DATE_EPOCH too. The binaries must be built reproducibly
// (-trimpath, -buildid=), which the Makefile does.
//
//	go run ./tools/image -o build/image -version v1.2.3 -revision $(git rev-parse HEAD) \
//	    -binary linux/amd64=build/linux_amd64/ecrgate -binary linux/arm64=build/linux_arm64/ecrgate
//
// It prints the digest of the index.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// uid and gid of the user the image runs as (distroless's nonroot).
	nonrootID = 65532
	homeDir   = "/home/nonroot"
	caPath    = "etc/ssl/certs/ca-certificates.crt"
	// defaultCAFile is where Debian's ca-certificates package puts the bundle.
	defaultCAFile = "/etc/ssl/certs/ca-certificates.crt"
	defaultSource = "https://github.com/ecrgate/ecrgate"
)

// Options are the inputs of one image build.
type Options struct {
	// Binaries maps a platform ("linux/amd64") to the ecrgate binary for it.
	Binaries map[string]string
	// CAFile is the PEM bundle copied to /etc/ssl/certs/ca-certificates.crt.
	CAFile string
	// Epoch is SOURCE_DATE_EPOCH: every file time and the created time.
	Epoch time.Time
	// Version, Revision and Source become the OCI labels and annotations.
	Version, Revision, Source string
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var o Options
	o.Binaries = map[string]string{}
	out := fs.String("o", "build/image", "output directory (an OCI image layout; replaced if it is one)")
	fs.StringVar(&o.CAFile, "ca-file", defaultCAFile, "CA bundle to copy into the image")
	fs.StringVar(&o.Version, "version", "dev", "version label")
	fs.StringVar(&o.Revision, "revision", "", "source revision label (a git commit)")
	fs.StringVar(&o.Source, "source", defaultSource, "source repository label")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "file and created time, seconds since 1970 (default $SOURCE_DATE_EPOCH)")
	fs.Func("binary", "os/arch=path of an ecrgate binary (repeatable)", func(v string) error {
		platform, path, ok := strings.Cut(v, "=")
		if !ok || platform == "" || path == "" {
			return errors.New("want os/arch=path")
		}
		if _, err := v1.ParsePlatform(platform); err != nil {
			return err
		}
		o.Binaries[platform] = path
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(o.Binaries) == 0 {
		return errors.New("no -binary given; pass -binary linux/amd64=path/to/ecrgate")
	}
	if *epoch == "" {
		return errors.New("no source date: set SOURCE_DATE_EPOCH or -source-date-epoch (e.g. git log -1 --format=%ct)")
	}
	sec, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil || sec < 0 {
		return fmt.Errorf("source date epoch %q is not a non-negative number of seconds", *epoch)
	}
	o.Epoch = time.Unix(sec, 0).UTC()

	idx, err := Build(o)
	if err != nil {
		return err
	}
	if err := writeLayout(*out, idx, o.Version); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, d)
	return nil
}

// Build returns the multi-arch index of the image, one manifest per entry of
// o.Binaries, in platform order.
func Build(o Options) (v1.ImageIndex, error) {
	ca, err := readCA(o.CAFile)
	if err != nil {
		return nil, err
	}
	platforms := make([]string, 0, len(o.Binaries))
	for p := range o.Binaries {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	labels := map[string]string{
		"org.opencontainers.image.source":   o.Source,
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.created":  o.Epoch.Format(time.RFC3339),
		"org.opencontainers.image.title":    "ecrgate",
	}
	if o.Revision == "" {
		delete(labels, "org.opencontainers.image.revision")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		platform, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		bin, err := os.ReadFile(o.Binaries[p])
		if err != nil {
			return nil, fmt.Errorf("ecrgate binary for %s: %w", p, err)
		}
		img, err := image(*platform, bin, ca, o.Epoch, labels)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: platform},
		})
	}
	return withoutArtifactType(mutate.Annotations(idx, labels).(v1.ImageIndex))
}

// plainIndex is an index whose descriptors carry no artifactType.
// go-containerregistry sets it to the config's media type on every image
// descriptor; that is for artifacts, not images, and tools that do not know
// the field (skopeo 1.9) must re-encode the index, changing its digest.
type plainIndex struct {
	inner    v1.ImageIndex // its children and media type
	manifest *v1.IndexManifest
	raw      []byte
}

var _ v1.ImageIndex = (*plainIndex)(nil)

func withoutArtifactType(idx v1.ImageIndex) (v1.ImageIndex, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	for i := range m.Manifests {
		m.Manifests[i].ArtifactType = ""
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &plainIndex{inner: idx, manifest: m, raw: raw}, nil
}

func (p *plainIndex) MediaType() (types.MediaType, error)         { return p.inner.MediaType() }
func (p *plainIndex) Image(h v1.Hash) (v1.Image, error)           { return p.inner.Image(h) }
func (p *plainIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return p.inner.ImageIndex(h) }
func (p *plainIndex) IndexManifest() (*v1.IndexManifest, error)   { return p.manifest.DeepCopy(), nil }
func (p *plainIndex) RawManifest() ([]byte, error)                { return p.raw, nil }
func (p *plainIndex) Size() (int64, error)                        { return int64(len(p.raw)), nil }
func (p *plainIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(p.raw))
	return h, err
}

// readCA reads the CA bundle and fails, saying what to install, when it is
// missing or holds no certificate.
func readCA(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("CA bundle %s does not exist: install the ca-certificates package or pass -ca-file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	if !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate: pass -ca-file with the system's bundle", path)
	}
	return b, nil
}

// image is one platform's image: scratch, one layer, the config.
func image(platform v1.Platform, bin, ca []byte, epoch time.Time, labels map[string]string) (v1.Image, error) {
	layer, err := rootfsLayer(bin, ca, epoch)
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "ecrgate tools/image",
			Comment:   "ecrgate, CA certificates, nonroot user",
		},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = platform.Architecture
	cf.OS = platform.OS
	cf.Variant = platform.Variant
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		User:       strconv.Itoa(nonrootID) + ":" + strconv.Itoa(nonrootID),
		Entrypoint: []string{"/ecrgate"},
		Cmd:        []string{"serve"},
		WorkingDir: homeDir,
		Env: []string{
			"PATH=/",
			"HOME=" + homeDir,
			"SSL_CERT_FILE=/" + caPath,
		},
		Labels: labels,
	}
	return mutate.ConfigFile(img, cf)
}

// entry is one file or directory of the layer.
type entry struct {
	name     string // relative, no leading slash; directories end in /
	mode     int64
	uid, gid int
	body     []byte
}

// rootfsLayer is the image's only layer, a gzipped tar written the same way
// for the same input: sorted entries, fixed owners, modes and times, and a
// gzip header without name or time.
func rootfsLayer(bin, ca []byte, epoch time.Time) (v1.Layer, error) {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnonroot:x:65532:\n"
	entries := []entry{
		{name: "ecrgate", mode: 0o755, body: bin},
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: caPath, mode: 0o644, body: ca},
		{name: "home/", mode: 0o755},
		{name: strings.TrimPrefix(homeDir, "/") + "/", mode: 0o700, uid: nonrootID, gid: nonrootID},
		{name: "tmp/", mode: 0o1777},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gz := buf.Bytes()
	// The bytes are already gzipped, so the layer uses them as they are.
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// writeLayout writes idx as the only entry of a fresh OCI image layout at
// dir. An existing dir is replaced only if it is empty or an OCI layout, so
// a mistyped -o cannot delete anything else.
func writeLayout(dir string, idx v1.ImageIndex, version string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("output directory: %w", err)
	case len(ents) > 0:
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("output directory %s is neither empty nor an OCI layout; remove it or choose another -o", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("replace %s: %w", dir, err)
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": version,
	}))
}
