// Command demo is what `make demo` runs: the ecrgate binaries against the
// embedded ECR emulator, with no AWS account, no Docker and no network.
//
// It starts `ecrgate emulator` as a separate process, as a user would, and
// speaks to it only through the environment the emulator prints, using the
// AWS SDK and go-containerregistry as the clients.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the built ecrgate binaries")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *bin)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(ctx context.Context, bin string) error {
	dir, err := os.MkdirTemp("", "ecrgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	envFile := filepath.Join(dir, "ecr.env")

	step("starting the ECR emulator: %s emulator --listen 127.0.0.1:0", filepath.Join(bin, "ecrgate"))
	emu := exec.CommandContext(ctx, filepath.Join(bin, "ecrgate"), "emulator", "--listen", "127.0.0.1:0", "--env-file", envFile, "--log-level", "warn")
	emu.Stdout, emu.Stderr = os.Stdout, os.Stderr
	emu.Cancel = func() error { return emu.Process.Signal(os.Interrupt) }
	if err := emu.Start(); err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	defer func() {
		_ = emu.Process.Signal(os.Interrupt)
		_ = emu.Wait()
	}()
	env, err := waitForEnv(ctx, envFile)
	if err != nil {
		return err
	}
	endpoint := env["AWS_ENDPOINT_URL_ECR"]
	cfg := aws.Config{Region: env["AWS_REGION"], BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], "")}
	api := ecr.NewFromConfig(cfg)

	step("logging in: GetAuthorizationToken (a 12-hour token, like ECR's)")
	tok, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return err
	}
	raw, _ := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	auth := &authn.Basic{Username: "AWS", Password: strings.TrimPrefix(string(raw), "AWS:")}
	fmt.Printf("    token for %s expires %s\n", aws.ToString(tok.AuthorizationData[0].ProxyEndpoint), tok.AuthorizationData[0].ExpiresAt.Format(time.RFC3339))

	host := strings.TrimPrefix(endpoint, "http://")
	ref, err := name.ParseReference(host+"/team/new-app:1.0", name.Insecure)
	if err != nil {
		return err
	}
	img, err := random.Image(2<<20, 3)
	if err != nil {
		return err
	}
	push := func() error { return remote.Write(ref, img, remote.WithAuth(auth), remote.WithContext(ctx)) }

	step("pushing %s to a repository that does not exist yet", ref)
	err = push()
	if err == nil {
		return errors.New("the push to a missing repository succeeded; the emulator is not behaving like ECR")
	}
	fmt.Printf("    ECR refuses it, as it always has: %v\n", err)

	step("the wall ecrgate removes: create the repository first (ecrgate serve will do this for you)")
	if _, err := api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/new-app"),
		ImageTagMutability: types.ImageTagMutabilityImmutable}); err != nil {
		return err
	}
	fmt.Println("    created team/new-app (IMMUTABLE tags)")

	step("pushing again")
	if err := push(); err != nil {
		return fmt.Errorf("push after CreateRepository: %w", err)
	}
	want, _ := img.Digest()
	desc, err := remote.Head(ref, remote.WithAuth(auth), remote.WithContext(ctx))
	if err != nil {
		return err
	}
	fmt.Printf("    pushed %s\n    registry has %s\n", want, desc.Digest)
	if desc.Digest != want {
		return fmt.Errorf("digest mismatch: pushed %s, registry has %s", want, desc.Digest)
	}

	step("re-pushing a different image under the immutable tag 1.0")
	other, _ := random.Image(1024, 1)
	if err := remote.Write(ref, other, remote.WithAuth(auth), remote.WithContext(ctx)); err != nil {
		fmt.Printf("    refused, like ECR: %v\n", err)
	} else {
		return errors.New("an immutable tag was overwritten")
	}
	fmt.Println("\ndemo finished: the emulator behaves like ECR. Next: `ecrgate serve` creates repositories on push.")
	return nil
}

// waitForEnv waits for the emulator's --env-file and parses its export lines.
func waitForEnv(ctx context.Context, path string) (map[string]string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.Open(path)
		if err == nil {
			env := map[string]string{}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
				if ok {
					env[k] = strings.Trim(v, "'")
				}
			}
			f.Close()
			return env, sc.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the emulator did not start within 30s (no %s)", path)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
