//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// TestHarnessSmoke proves the harness against go-containerregistry's
// in-memory registry: docker push/pull round trip, skopeo copy from an OCI
// layout and from the docker daemon, each checked against the registry.
func TestHarnessSmoke(t *testing.T) {
	requireTools(t, dockerdBin, dockerCLI, skopeoBin)

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host // 127.0.0.1:PORT; docker and skopeo use plain HTTP for it

	d := startDockerd(t)

	t.Run("docker push and pull", func(t *testing.T) {
		id := importImage(t, d, "smoke/local:1")
		remote := host + "/smoke/app:1"
		d.MustDocker(t, "tag", "smoke/local:1", remote)
		dgst, err := pushDigest(d.MustDocker(t, "push", remote))
		if err != nil {
			t.Fatal(err)
		}
		if got := manifestDigest(t, host, "smoke/app", "1"); got != dgst {
			t.Fatalf("registry serves smoke/app:1 as %s, docker push reported %s", got, dgst)
		}

		d.MustDocker(t, "rmi", remote, "smoke/local:1")
		if out, err := d.Docker(t, "image", "inspect", id); err == nil {
			t.Fatalf("image %s still present after docker rmi:\n%s", id, out)
		}

		d.MustDocker(t, "pull", remote)
		repoDigest := strings.TrimSpace(d.MustDocker(t, "inspect", "--format", "{{index .RepoDigests 0}}", remote))
		if want := host + "/smoke/app@" + dgst; repoDigest != want {
			t.Errorf("RepoDigests[0] after pull = %q, want %q", repoDigest, want)
		}
		if gotID := strings.TrimSpace(d.MustDocker(t, "inspect", "--format", "{{.Id}}", remote)); gotID != id {
			t.Errorf("pulled image ID = %s, imported %s", gotID, id)
		}
	})

	t.Run("skopeo copy from OCI layout", func(t *testing.T) {
		img := writeOCIImage(t, "v1")
		ref := "docker://" + host + "/smoke/skopeo:1"
		dgst := mustSkopeoCopy(t, img.Ref, ref, skopeoOpts{})
		if dgst != img.Digest {
			t.Errorf("skopeo copy wrote manifest %s, source manifest is %s", dgst, img.Digest)
		}
		info, err := skopeoInspect(t, ref, "")
		if err != nil {
			t.Fatal(err)
		}
		if info.Digest != img.Digest {
			t.Errorf("skopeo inspect digest = %s, want %s", info.Digest, img.Digest)
		}
		if info.Os != "linux" || len(info.Layers) != 1 {
			t.Errorf("skopeo inspect: os %q, %d layers; want linux, 1 layer", info.Os, len(info.Layers))
		}
		if got := manifestDigest(t, host, "smoke/skopeo", "1"); got != img.Digest {
			t.Errorf("registry serves smoke/skopeo:1 as %s, want %s", got, img.Digest)
		}
	})

	t.Run("skopeo copy from docker daemon", func(t *testing.T) {
		id := importImage(t, d, "smoke/daemon:1")
		ref := "docker://" + host + "/smoke/daemon:1"
		dgst := mustSkopeoCopy(t, "docker-daemon:smoke/daemon:1", ref, skopeoOpts{SrcDaemonHost: d.Host})
		raw, err := skopeoInspectRaw(t, ref, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Digest(raw); got != dgst {
			t.Errorf("served manifest hashes to %s, skopeo reported %s", got, dgst)
		}
		var m struct {
			Config struct{ Digest string }
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("decode manifest: %v\n%s", err, raw)
		}
		if m.Config.Digest != id {
			t.Errorf("pushed config %s, want the daemon's image ID %s", m.Config.Digest, id)
		}
		if got := manifestDigest(t, host, "smoke/daemon", "1"); got != dgst {
			t.Errorf("registry serves smoke/daemon:1 as %s, skopeo reported %s", got, dgst)
		}
	})
}

// manifestDigest asks the registry directly (HEAD, anonymous) for the digest
// of repo:ref.
func manifestDigest(t *testing.T, host, repo, ref string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, "http://"+host+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("HEAD manifest %s:%s: %v", repo, ref, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD manifest %s:%s: %s", repo, ref, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}
