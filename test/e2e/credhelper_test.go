//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// binDir is where `make build` puts our binaries (make e2e builds first).
func binDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"ecrgate", "docker-credential-ecrgate", "ecrgate-fetch-token"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s not built (run make build or make e2e): %v", b, err)
		}
	}
	return dir
}

// TestDockerPushWithCredentialHelper: with credHelpers naming ecrgate (set
// up by `ecrgate setup docker`), the real docker CLI and dockerd push to and
// pull from the emulator with no docker login; without the helper the same
// push is refused for lack of credentials.
func TestDockerPushWithCredentialHelper(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin)
	bin := binDir(t)
	e := ecrfake.Start(t, ecrfake.Options{})
	host := e.Host()
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

	c := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	if _, err := c.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("e2e/helper")}); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	cfgFile := filepath.Join(work, "ecrgate.yaml")
	if err := os.WriteFile(cfgFile, []byte("local_hosts:\n  \""+host+"\": "+registry+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(work, "cache")
	d := startDockerd(t)
	// The docker CLI runs docker-credential-ecrgate with its own environment.
	env := append(d.Env(), e.Env()...)
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "ECRGATE_CONFIG="+cfgFile, "XDG_CACHE_HOME="+cache)

	out := mustRun(t, env, filepath.Join(bin, "ecrgate"), "setup", "docker", "--registry", host)
	t.Logf("ecrgate setup docker:\n%s", out)
	b, err := os.ReadFile(filepath.Join(d.ConfigDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dc struct{ CredHelpers map[string]string }
	if err := json.Unmarshal(b, &dc); err != nil || dc.CredHelpers[host] != "ecrgate" {
		t.Fatalf("config.json = %s (%v)", b, err)
	}

	ref := host + "/e2e/helper:1"
	importImage(t, d, ref)
	out, err = runCmd(t, env, dockerCLI, "push", ref)
	if err != nil {
		t.Fatalf("push with the credential helper: %v\n%s", err, out)
	}
	pushed, err := pushDigest(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("push with credHelpers → ecrgate, no docker login:\n%s", out)
	mustRun(t, env, dockerCLI, "rmi", ref)
	mustRun(t, env, dockerCLI, "pull", ref)
	got := strings.TrimSpace(mustRun(t, env, dockerCLI, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref))
	if got != host+"/e2e/helper@"+pushed {
		t.Fatalf("pulled %s, pushed %s", got, pushed)
	}
	if n := e.Calls("GetAuthorizationToken"); n != 1 {
		t.Errorf("GetAuthorizationToken calls = %d for a push and a pull, want 1 (the cache)", n)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "ecrgate", "tokens", "*.json"))
	if len(files) != 1 {
		t.Errorf("token cache files = %v", files)
	} else if st, _ := os.Stat(files[0]); st.Mode().Perm() != 0o600 {
		t.Errorf("token cache file mode %v", st.Mode().Perm())
	}

	// The same push without the helper: no credentials, refused.
	noHelper := t.TempDir()
	envNo := append(env, "DOCKER_CONFIG="+noHelper)
	out, err = runCmd(t, envNo, dockerCLI, "push", ref)
	if err == nil || !strings.Contains(out, "no basic auth credentials") {
		t.Fatalf("push without the helper: err=%v\n%s", err, out)
	}
	t.Logf("push without the helper:\n%s", out)
}
