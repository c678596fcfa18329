package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const fakeCA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

// fixture writes a tiny fake binary per platform and a CA bundle.
func fixture(t *testing.T) Options {
	t.Helper()
	dir := t.TempDir()
	o := Options{
		Binaries: map[string]string{},
		CAFile:   filepath.Join(dir, "ca.crt"),
		Epoch:    time.Unix(1700000000, 0).UTC(),
		Version:  "v0.0.0-test",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Source:   defaultSource,
	}
	if err := os.WriteFile(o.CAFile, []byte(fakeCA), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"linux/arm64", "linux/amd64"} {
		path := filepath.Join(dir, strings.ReplaceAll(p, "/", "_"))
		if err := os.WriteFile(path, []byte("#!fake ecrgate for "+p+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		o.Binaries[p] = path
	}
	return o
}

func digest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestBuildIsReproducible: two builds of the same inputs, and two layouts
// written through run, have the same index digest.
func TestBuildIsReproducible(t *testing.T) {
	o := fixture(t)
	a, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Fatalf("two builds: %s != %s", da, db)
	}

	var printed []string
	for range 2 {
		out := filepath.Join(t.TempDir(), "image")
		var stdout bytes.Buffer
		args := []string{"-o", out, "-ca-file", o.CAFile, "-version", o.Version, "-revision", o.Revision,
			"-source-date-epoch", "1700000000",
			"-binary", "linux/amd64=" + o.Binaries["linux/amd64"], "-binary", "linux/arm64=" + o.Binaries["linux/arm64"]}
		if err := run(args, &stdout); err != nil {
			t.Fatal(err)
		}
		p, err := layout.FromPath(out)
		if err != nil {
			t.Fatal(err)
		}
		root, err := p.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		m, err := root.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Manifests) != 1 || m.Manifests[0].MediaType != types.OCIImageIndex {
			t.Fatalf("layout index.json = %+v, want one OCI index", m.Manifests)
		}
		printed = append(printed, strings.TrimSpace(stdout.String()))
		if got := m.Manifests[0].Digest.String(); got != printed[len(printed)-1] {
			t.Fatalf("printed %s, layout holds %s", printed[len(printed)-1], got)
		}
	}
	if printed[0] != printed[1] || printed[0] != digest(t, a).String() {
		t.Fatalf("digests differ: run %v, Build %s", printed, digest(t, a))
	}
}

// TestBuildContent: each platform's image has the platform, the user, the
// entrypoint, the labels, and a layer with the binary, the CA bundle and
// the passwd and group entries at fixed times and owners.
func TestBuildContent(t *testing.T) {
	o := fixture(t)
	idx, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex || len(m.Manifests) != 2 {
		t.Fatalf("index = %s with %d manifests, want an OCI index with 2", m.MediaType, len(m.Manifests))
	}
	for i, want := range []string{"linux/amd64", "linux/arm64"} {
		desc := m.Manifests[i]
		if desc.Platform == nil || desc.Platform.String() != want {
			t.Fatalf("manifest %d platform = %v, want %s", i, desc.Platform, want)
		}
		if desc.ArtifactType != "" {
			t.Errorf("manifest %d has artifactType %q; images have none", i, desc.ArtifactType)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Errorf("%s manifest media type = %s", want, mt)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != want {
			t.Errorf("config platform = %s/%s, want %s", cf.OS, cf.Architecture, want)
		}
		c := cf.Config
		if c.User != "65532:65532" {
			t.Errorf("user = %q", c.User)
		}
		if !slices.Equal(c.Entrypoint, []string{"/ecrgate"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
			t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
		}
		if !slices.Contains(c.Env, "HOME=/home/nonroot") {
			t.Errorf("env = %q, want HOME=/home/nonroot", c.Env)
		}
		if !cf.Created.Time.Equal(o.Epoch) {
			t.Errorf("created = %s, want %s", cf.Created.Time, o.Epoch)
		}
		for k, v := range map[string]string{
			"org.opencontainers.image.source":   o.Source,
			"org.opencontainers.image.version":  o.Version,
			"org.opencontainers.image.revision": o.Revision,
		} {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}

		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers = %d (%v), want 1", len(layers), err)
		}
		files := readLayer(t, layers[0], o.Epoch)
		bin, _ := os.ReadFile(o.Binaries[want])
		checks := []struct {
			name     string
			uid      int
			mode     int64
			contains string
		}{
			{"ecrgate", 0, 0o755, string(bin)},
			{"etc/ssl/certs/ca-certificates.crt", 0, 0o644, fakeCA},
			{"etc/passwd", 0, 0o644, "nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n"},
			{"etc/group", 0, 0o644, "nonroot:x:65532:\n"},
			{"home/nonroot/", 65532, 0o700, ""},
		}
		for _, ck := range checks {
			f, ok := files[ck.name]
			if !ok {
				t.Errorf("%s: layer has no %s", want, ck.name)
				continue
			}
			if f.hdr.Uid != ck.uid || f.hdr.Gid != ck.uid || f.hdr.Mode != ck.mode {
				t.Errorf("%s: %d:%d %o, want %d:%d %o", ck.name, f.hdr.Uid, f.hdr.Gid, f.hdr.Mode, ck.uid, ck.uid, ck.mode)
			}
			if !strings.Contains(f.body, ck.contains) {
				t.Errorf("%s = %q, want it to hold %q", ck.name, f.body, ck.contains)
			}
		}
	}
}

type file struct {
	hdr  *tar.Header
	body string
}

// readLayer returns the layer's files by name, failing on unsorted names or
// a time other than epoch.
func readLayer(t *testing.T, l v1.Layer, epoch time.Time) map[string]file {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]file{}
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name <= prev {
			t.Errorf("tar entry %s after %s: not sorted", h.Name, prev)
		}
		prev = h.Name
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s mtime = %s, want %s", h.Name, h.ModTime, epoch)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = file{hdr: h, body: string(b)}
	}
	return files
}

// TestBuildRefusesBadInput: a missing CA bundle, a bundle without a
// certificate, no binary, no source date, and an output directory that is
// not an OCI layout are errors that say what to do.
func TestBuildRefusesBadInput(t *testing.T) {
	o := fixture(t)
	notPEM := filepath.Join(t.TempDir(), "empty.crt")
	if err := os.WriteFile(notPEM, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "keep.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := "linux/amd64=" + o.Binaries["linux/amd64"]
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing CA", []string{"-ca-file", "/nonexistent/ca.crt", "-source-date-epoch", "1", "-binary", bin, "-o", t.TempDir()}, "install the ca-certificates package"},
		{"CA without certificate", []string{"-ca-file", notPEM, "-source-date-epoch", "1", "-binary", bin, "-o", t.TempDir()}, "holds no PEM certificate"},
		{"no binary", []string{"-ca-file", o.CAFile, "-source-date-epoch", "1"}, "no -binary given"},
		{"bad binary flag", []string{"-binary", "linux/amd64"}, "want os/arch=path"},
		{"no source date", []string{"-ca-file", o.CAFile, "-source-date-epoch", "", "-binary", bin}, "SOURCE_DATE_EPOCH"},
		{"bad source date", []string{"-ca-file", o.CAFile, "-source-date-epoch", "yesterday", "-binary", bin}, "not a non-negative number"},
		{"foreign output dir", []string{"-ca-file", o.CAFile, "-source-date-epoch", "1", "-binary", bin, "-o", other}, "neither empty nor an OCI layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(other, "keep.txt")); err != nil {
		t.Fatalf("a foreign output directory was touched: %v", err)
	}
}
