//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// Shared layers mounted instead of uploaded (#16), with real clients: the
// base layers of the images pushed live in another repository of the
// registry (base/runtime); the emulator's upload handlers must see only
// what is new.

const (
	mountBaseRepo  = "base/runtime"
	mountLayerSize = 2 << 20
	// mountAccount is TestMountBuildKit's registry; no other test installs
	// a CA for it in /etc/docker/certs.d.
	mountAccount  = "246802468024"
	mountRegistry = mountAccount + ".dkr.ecr.us-east-1.amazonaws.com"
)

// mountBase returns three random layers of mountLayerSize as a linux/amd64
// image.
func mountBase(t *testing.T) v1.Image {
	t.Helper()
	img := empty.Image
	for range 3 {
		l, err := random.Layer(mountLayerSize, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// mountSeed creates repository base/runtime in account's registry and
// pushes base to it directly, and enables BLOB_MOUNTING there.
func mountSeed(t *testing.T, e *ecrfake.Emulator, account string, base v1.Image) {
	t.Helper()
	api := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	in := &ecr.CreateRepositoryInput{RepositoryName: aws.String(mountBaseRepo)}
	if account != e.Account() {
		in.RegistryId = aws.String(account)
	}
	if _, err := api.CreateRepository(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 registryIds is deprecated but still names the registry whose token the emulator hands out, as the credential helper asks
	out, err := api.GetAuthorizationToken(t.Context(), &ecr.GetAuthorizationTokenInput{RegistryIds: []string{account}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimPrefix(string(raw), "AWS:")
	// The emulator picks the registry by Host: the account's ECR name,
	// every connection dialled to the emulator.
	ref, err := name.ParseReference(account+".dkr.ecr."+e.Region()+".amazonaws.com/"+mountBaseRepo+":1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.Host())
	}
	defer tr.CloseIdleConnections()
	if err := remote.Write(ref, base, remote.WithAuth(&authn.Basic{Username: "AWS", Password: pw}), remote.WithTransport(tr)); err != nil {
		t.Fatalf("push %s directly: %v", mountBaseRepo, err)
	}
	// GetAccountSetting answers for the caller's own registry, and
	// ecrgate asks as the emulator's default user: enabled there too.
	for _, a := range []string{account, e.Account()} {
		if err := e.SetAccountSetting(a, "BLOB_MOUNTING", "ENABLED"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMountCrane: crane (go-containerregistry) with no local state pushes,
// through `ecrgate serve` in registry mode, an image whose base layers
// live in base/runtime to a new repository: first one the template's
// mount_from sends ecrgate to look in, then another whose template names
// nothing, which ecrgate's index of blobs (it mounted them into the first)
// serves. Only the new layer and the config reach the upload handlers.
func TestMountCrane(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	base := mountBase(t)
	mountSeed(t, e, e.Account(), base)
	listen := startServe(t, e, "templates:\n  - prefix: svc\n    mount_from: ["+mountBaseRepo+"]\n")

	for _, repo := range []string{"svc/app", "other/app"} {
		own, err := random.Layer(mountLayerSize, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(base, own)
		if err != nil {
			t.Fatal(err)
		}
		before := e.UploadBytes()
		ref := listen + "/" + repo + ":1"
		if err := crane.Push(img, ref, crane.Insecure); err != nil {
			t.Fatalf("crane push %s: %v", ref, err)
		}
		up := e.UploadBytes() - before
		t.Logf("crane push %s: the emulator's upload handlers read %d bytes (base layers %d, own layer %d)", repo, up, 3*mountLayerSize, mountLayerSize)
		if up >= 2*mountLayerSize {
			t.Errorf("crane push %s uploaded %d bytes, want under %d: the base layers should have been mounted", repo, up, 2*mountLayerSize)
		}
		got, err := crane.Digest(ref, crane.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := img.Digest()
		if got != want.String() {
			t.Errorf("%s is %s through ecrgate, pushed %s", ref, got, want)
		}
		// Every layer is readable from the new repository.
		pulled, err := crane.Pull(ref, crane.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := crane.Export(pulled, io.Discard); err != nil {
			t.Fatalf("read back %s: %v", ref, err)
		}
	}
}

// TestMountSkopeo: skopeo copies an image whose base layers live in
// base/runtime from another registry (a plain local one) to a new
// repository through `ecrgate serve`: it asks (HEAD) before each upload,
// and the base layers are mounted.
func TestMountSkopeo(t *testing.T) {
	requireTools(t, skopeoBin)
	e := ecrfake.Start(t, ecrfake.Options{})
	base := mountBase(t)
	mountSeed(t, e, e.Account(), base)
	listen := startServe(t, e, "templates:\n  - prefix: svc\n    mount_from: ["+mountBaseRepo+"]\n")
	local := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(local.Close)
	localHost := strings.TrimPrefix(local.URL, "http://")
	own, err := random.Layer(mountLayerSize, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, own)
	if err != nil {
		t.Fatal(err)
	}
	if err := crane.Push(img, localHost+"/app:1", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	before := e.UploadBytes()
	if _, out, err := skopeoCopy(t, "docker://"+localHost+"/app:1", "docker://"+listen+"/svc/skopeo:1", skopeoOpts{}); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	up := e.UploadBytes() - before
	t.Logf("skopeo copy: the emulator's upload handlers read %d bytes (base layers %d, own layer %d)", up, 3*mountLayerSize, mountLayerSize)
	if up >= 2*mountLayerSize {
		t.Errorf("skopeo copy uploaded %d bytes, want under %d: the base layers should have been mounted", up, 2*mountLayerSize)
	}
}

// TestMountBuildKit: `docker build --push` (BuildKit, buildx plugin) of
// an image FROM a base that BuildKit pulls from another registry (a plain
// local one, so BuildKit knows no source repository in the target
// registry to mount from), to a new repository of an ECR registry reached
// through intercept mode, whose base layers live in base/runtime there.
// BuildKit HEADs each layer before uploading: ecrgate answers from the
// template's mount_from, and only the COPY layer and the config reach the
// upload handlers.
func TestMountBuildKit(t *testing.T) {
	requireTools(t, containerdBin)
	b := startBuilds(t, buildxTool, dockerCLI29Tool, dockerd29Tool)
	buildx, cli, d29 := b[0], b[1], b[2]
	bin := binDir(t)
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{ecrfake.DefaultAccount, mountAccount}})
	base := mountBase(t)
	mountSeed(t, e, mountAccount, base)

	// The other registry BuildKit pulls the base from.
	local := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(local.Close)
	localHost := strings.TrimPrefix(local.URL, "http://")
	if err := crane.Push(base, localHost+"/base:1", crane.Insecure); err != nil {
		t.Fatal(err)
	}

	data := t.TempDir()
	caDir := filepath.Join(data, "ecrgate", "ca")
	mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "init", "--dir", caDir)
	certFile := filepath.Join("/etc/docker/certs.d", mountRegistry, "ca.crt")
	if _, err := os.Stat(certFile); err == nil {
		t.Fatalf("%s exists already; refusing to touch a real installation", certFile)
	}
	mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "install", "--dir", caDir, "--registry", mountRegistry)
	t.Cleanup(func() {
		if out, err := runCmd(t, nil, filepath.Join(bin, "ecrgate"), "ca", "uninstall", "--dir", caDir); err != nil {
			t.Errorf("ecrgate ca uninstall: %v\n%s", err, out)
		}
		os.Remove(certFile)
		os.Remove(filepath.Dir(certFile))
	})
	ilisten := freePort(t)
	startServe(t, e, fmt.Sprintf("  - host: %s\n    endpoint: %s\nintercept:\n  listen: %s\ntemplates:\n  - prefix: svc\n    mount_from: [%s]\n",
		mountRegistry, e.URL(), ilisten, mountBaseRepo), "XDG_DATA_HOME="+data)
	helperEnv := append(e.Env(), "XDG_CACHE_HOME="+t.TempDir(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH")+string(os.PathListSeparator)+"/usr/sbin:/usr/bin:/sbin:/bin")

	for _, store := range []string{storeContainerd, storeClassic} {
		t.Run(store, func(t *testing.T) {
			d := startDockerdWith(t, DockerdOptions{Dockerd: mustBuilt(t, d29), CLI: mustBuilt(t, cli), Store: store,
				Env: []string{"HTTPS_PROXY=http://" + ilisten, "https_proxy=http://" + ilisten}})
			defer d.Stop()
			pluginDir := filepath.Join(d.ConfigDir, "cli-plugins")
			if err := os.MkdirAll(pluginDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := confCopyExecutable(mustBuilt(t, buildx), filepath.Join(pluginDir, "docker-buildx")); err != nil {
				t.Fatal(err)
			}
			cfg, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{mountRegistry: "ecrgate"}})
			if err := os.WriteFile(filepath.Join(d.ConfigDir, "config.json"), cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			env := append(append([]string{"BUILDX_NO_DEFAULT_ATTESTATIONS=1"}, helperEnv...), d.Env()...)

			// First, on the fresh daemon, the base loaded from a file
			// (docker load: no distribution metadata, as on a runner that
			// never pulled it) and pushed: the containerd store HEADs each
			// layer and gets it mounted; the classic store starts an
			// upload (POST) without asking, so it uploads them all.
			tarPath := filepath.Join(t.TempDir(), "base.tar")
			loadRef, _ := name.ParseReference("loaded/base:1")
			if err := tarball.WriteToFile(tarPath, loadRef, base); err != nil {
				t.Fatal(err)
			}
			d.MustDocker(t, "load", "-i", tarPath)
			loaded := mountRegistry + "/svc/load-" + store + ":1"
			d.MustDocker(t, "tag", "loaded/base:1", loaded)
			before := e.UploadBytes()
			if out, err := runCmd(t, env, d.CLI, "push", loaded); err != nil {
				t.Fatalf("docker push: %v\n%s", err, out)
			}
			up := e.UploadBytes() - before
			t.Logf("docker push of a loaded image (%s store): the emulator's upload handlers read %d bytes (base layers %d)", store, up, 3*mountLayerSize)
			switch {
			case store == storeContainerd && up >= mountLayerSize:
				t.Errorf("docker push of a loaded image (containerd store) uploaded %d bytes, want under %d: the base layers should have been mounted", up, mountLayerSize)
			case store == storeClassic && up < 3*mountLayerSize:
				// The README says the classic store uploads such layers
				// without a HEAD first (a POST straight away): no longer so.
				t.Errorf("docker push of a loaded image (classic store) uploaded only %d bytes: it HEADs layers it has no registry record of now; update the README", up)
			}

			ctxDir := t.TempDir()
			for n, b := range map[string]string{
				"Dockerfile": "FROM " + localHost + "/base:1\nCOPY hello.txt /hello.txt\n",
				"hello.txt":  "built on a shared base, store " + store + "\n",
			} {
				if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			repo := "svc/buildkit-" + store
			image := mountRegistry + "/" + repo + ":1"
			before = e.UploadBytes()
			out, err := runCmd(t, env, d.CLI, "build", "--tag", image, "--platform", "linux/amd64", "--push", ctxDir)
			if err != nil {
				t.Fatalf("docker build --push: %v\n%s", err, out)
			}
			up = e.UploadBytes() - before
			t.Logf("docker build --push (%s store): the emulator's upload handlers read %d bytes (base layers %d)", store, up, 3*mountLayerSize)
			if _, ok := e.Repository(mountAccount, repo); !ok {
				t.Fatalf("docker build --push did not create %s", repo)
			}
			if up >= mountLayerSize {
				// The serve log (debug: one line per request BuildKit sent)
				// is printed when the test fails.
				t.Errorf("docker build --push (%s store) uploaded %d bytes, want under %d: the base layers should have been mounted", store, up, mountLayerSize)
			}

			// docker push of the base itself, pulled from the other
			// registry and tagged: both stores HEAD each layer first (the
			// classic one because the pull left it the layers'
			// distribution metadata) and get it mounted.
			d.MustDocker(t, "pull", localHost+"/base:1")
			pushed := mountRegistry + "/svc/push-" + store + ":1"
			d.MustDocker(t, "tag", localHost+"/base:1", pushed)
			before = e.UploadBytes()
			if out, err := runCmd(t, env, d.CLI, "push", pushed); err != nil {
				t.Fatalf("docker push: %v\n%s", err, out)
			}
			up = e.UploadBytes() - before
			t.Logf("docker push (%s store): the emulator's upload handlers read %d bytes (base layers %d)", store, up, 3*mountLayerSize)
			if up >= mountLayerSize {
				t.Errorf("docker push (%s store) uploaded %d bytes, want under %d: the base layers should have been mounted", store, up, mountLayerSize)
			}

		})
	}
}
