//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// TestInterceptModeDockerPush: dockerd's HTTPS_PROXY points at ecrgate's
// intercept listener, ecrgate's CA is trusted through
// /etc/docker/certs.d/<host>/ca.crt, the docker CLI gets tokens from
// docker-credential-ecrgate, and an unchanged
// `docker push <acct>.dkr.ecr.<region>.amazonaws.com/brand-new/app:1` to a
// repository that does not exist succeeds on the first attempt; the ECR
// host never has to resolve. It runs against Debian's dockerd 20.10 and
// against Engines 28.5.2 and 29 (built from their modules, with the docker
// CLI 29) in the classic and the containerd image store.
func TestInterceptModeDockerPush(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin)
	// Before HOME changes: the tools are cached under the user's cache dir.
	b := startBuilds(t, dockerCLI29Tool, dockerd28Tool, dockerd29Tool)
	cli29, d28, d29 := b[0], b[1], b[2]
	bin := binDir(t)
	const host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	e := ecrfake.Start(t, ecrfake.Options{})

	data := t.TempDir()
	caDir := filepath.Join(data, "ecrgate", "ca")
	out := mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "init", "--dir", caDir)
	t.Logf("ecrgate ca init:\n%s", out)
	certFile := filepath.Join("/etc/docker/certs.d", host, "ca.crt")
	if _, err := os.Stat(certFile); err == nil {
		t.Fatalf("%s exists already; refusing to touch a real installation", certFile)
	}
	out = mustRun(t, nil, filepath.Join(bin, "ecrgate"), "ca", "install", "--dir", caDir, "--registry", host)
	t.Logf("ecrgate ca install:\n%s", out)
	t.Cleanup(func() {
		out, err := runCmd(t, nil, filepath.Join(bin, "ecrgate"), "ca", "uninstall", "--dir", caDir)
		if err != nil {
			t.Errorf("ecrgate ca uninstall: %v\n%s", err, out)
		}
		if _, err := os.Stat(certFile); err == nil {
			t.Errorf("%s left behind", certFile)
			os.Remove(certFile)
		}
		os.Remove(filepath.Dir(certFile))
	})

	ilisten := freePort(t)
	startServe(t, e, "intercept:\n  listen: "+ilisten+"\ntemplates:\n  - prefix: brand-new\n    image_tag_mutability: IMMUTABLE\n    tags: {via: intercept}\n",
		"XDG_DATA_HOME="+data)

	for _, eng := range []struct {
		name, store string
		dockerd     *toolBuild // nil: Debian's dockerd and docker CLI
	}{
		{"20.10", storeClassic, nil},
		{"28", storeClassic, d28}, {"28", storeContainerd, d28},
		{"29", storeClassic, d29}, {"29", storeContainerd, d29},
	} {
		t.Run("engine-"+eng.name+"-"+eng.store, func(t *testing.T) {
			o := DockerdOptions{Store: eng.store,
				Env: []string{"HTTPS_PROXY=http://" + ilisten, "https_proxy=http://" + ilisten, "NO_PROXY=", "no_proxy="}}
			suffix := ""
			if eng.dockerd != nil {
				o.Dockerd, o.CLI = mustBuilt(t, eng.dockerd), mustBuilt(t, cli29)
				suffix = "-e" + eng.name + "-" + eng.store
			}
			interceptDockerPush(t, e, startDockerdWith(t, o), bin, host, suffix)
		})
	}
}

// interceptDockerPush pushes brand-new/app<suffix> through intercept mode
// with d, pulls it back, and checks that a push without credentials is
// refused and creates nothing.
func interceptDockerPush(t *testing.T, e *ecrfake.Emulator, d *Dockerd, bin, host, suffix string) {
	defer d.Stop()
	cfg, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{host: "ecrgate"}})
	if err := os.WriteFile(filepath.Join(d.ConfigDir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	// The docker CLI runs docker-credential-ecrgate with its own environment.
	env := append(d.Env(), e.Env()...)
	cache := t.TempDir()
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "XDG_CACHE_HOME="+cache)

	repo := "brand-new/app" + suffix
	ref := host + "/" + repo + ":1"
	importImage(t, d, ref)
	out, err := runCmd(t, env, d.CLI, "push", ref)
	if err != nil {
		t.Fatalf("docker push %s through intercept mode: %v\n%s", ref, err, out)
	}
	t.Logf("docker push %s (repository did not exist):\n%s", ref, out)
	pushed, err := pushDigest(out)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := e.Repository("", repo)
	if !ok || info.TagMutability != "IMMUTABLE" || info.Tags["via"] != "intercept" {
		t.Fatalf("repository = %+v (%v)", info, ok)
	}
	mustRun(t, env, d.CLI, "rmi", ref)
	mustRun(t, env, d.CLI, "pull", ref)
	got := strings.TrimSpace(mustRun(t, env, d.CLI, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref))
	if got != host+"/"+repo+"@"+pushed {
		t.Fatalf("pulled %s, pushed %s", got, pushed)
	}
	t.Logf("docker pull %s: %s", ref, got)

	// The push and the pull carried the helper's token (ecrgate lends its
	// own to nobody in intercept mode), cached once in a private file.
	files, _ := filepath.Glob(filepath.Join(cache, "ecrgate", "tokens", "*.json"))
	if len(files) != 1 {
		t.Errorf("the helper's token cache files = %v; want one: did dockerd use docker-credential-ecrgate?", files)
	} else if st, _ := os.Stat(files[0]); st.Mode().Perm() != 0o600 {
		t.Errorf("token cache file mode %v", st.Mode().Perm())
	}

	// Without the helper, the same push is refused and creates nothing.
	noHelper := t.TempDir()
	ref2 := host + "/brand-new/anonymous" + suffix + ":1"
	mustRun(t, env, d.CLI, "tag", ref, ref2)
	out, err = runCmd(t, append(env, "DOCKER_CONFIG="+noHelper), d.CLI, "push", ref2)
	if err == nil {
		t.Fatalf("push without credentials through intercept mode succeeded:\n%s", out)
	}
	t.Logf("docker push without a credential helper:\n%s", out)
	if _, ok := e.Repository("", "brand-new/anonymous"+suffix); ok {
		t.Errorf("a push without credentials created brand-new/anonymous%s", suffix)
	}
}
