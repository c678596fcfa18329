// Command demo is what `make demo` runs: the ecrgate binaries against the
// embedded ECR emulator, with no AWS account, no Docker and no network.
//
// It starts `ecrgate emulator` and `ecrgate serve` as separate processes, as
// a user would, pushes a multi-layer image to localhost:<port>/demo/app:1
// through the proxy (go-containerregistry plays docker push), shows that
// demo/app was created with the template's settings, pulls it back and
// stops everything.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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

	step("without ecrgate: pushing %s straight to ECR, whose repository does not exist yet", ref)
	if err := push(); err == nil {
		return errors.New("the push to a missing repository succeeded; the emulator is not behaving like ECR")
	} else {
		fmt.Printf("    ECR refuses it, as it always has:\n    %v\n", err)
	}

	registry := "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	listen := freeAddr("127.0.0.1:5000")
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	cfgText := fmt.Sprintf(`listen: %s
admin_listen: %s
log_level: info
audit_log: %s
default_registry: %s
registries:
  - host: %s
    endpoint: %s        # the emulator plays ECR
    api_endpoint: %s
allow: ["demo/**"]
templates:
  - prefix: demo
    image_tag_mutability: IMMUTABLE_WITH_EXCLUSION
    image_tag_mutability_exclusion_filters: [{filter: latest}]
    scan_on_push: true
    encryption: {type: KMS, kms_key: alias/demo}
    tags: {team: demo, created-by: ecrgate}
    lifecycle_policy: '{"rules":[{"rulePriority":1,"description":"keep the last 10 images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}'
`, listen, freeAddr("127.0.0.1:5002"), filepath.Join(dir, "audit.jsonl"), registry, registry, endpoint, endpoint)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	step("starting the proxy: %s serve --config %s\n%s", filepath.Join(bin, "ecrgate"), cfgPath, indent(cfgText))
	srv := exec.CommandContext(ctx, filepath.Join(bin, "ecrgate"), "serve", "--config", cfgPath)
	srv.Env = append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"),
		"AWS_ACCESS_KEY_ID="+env["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY="+env["AWS_SECRET_ACCESS_KEY"],
		"AWS_REGION="+env["AWS_REGION"], "AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=",
		// Every AWS service the proxy calls (ECR, and STS for its identity) is the emulator.
		"AWS_ENDPOINT_URL_STS="+env["AWS_ENDPOINT_URL_STS"], "AWS_ENDPOINT_URL_ECR="+env["AWS_ENDPOINT_URL_ECR"])
	srv.Stdout, srv.Stderr = os.Stdout, os.Stderr
	srv.Cancel = func() error { return srv.Process.Signal(os.Interrupt) }
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start ecrgate serve: %w", err)
	}
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	}()
	if err := waitHealthy(ctx, "http://"+strings.Replace(cfgValue(cfgText, "admin_listen"), "0.0.0.0", "127.0.0.1", 1)+"/healthz"); err != nil {
		return err
	}

	local := strings.Replace(listen, "127.0.0.1", "localhost", 1)
	proxied, err := name.ParseReference(local+"/demo/app:1", name.Insecure)
	if err != nil {
		return err
	}
	step("with ecrgate: docker push %s (here with go-containerregistry; no credentials, no repository)", proxied)
	if err := remote.Write(proxied, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push through ecrgate: %w", err)
	}
	want, _ := img.Digest()
	fmt.Printf("    pushed %s (3 layers)\n", want)

	step("ECR now has demo/app, with the template's settings")
	d, err := api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"demo/app"}})
	if err != nil {
		return fmt.Errorf("the repository was not created: %w", err)
	}
	r := d.Repositories[0]
	fmt.Printf("    %s\n    tag mutability %s (except %s), scan on push %v, encryption %s %s\n", aws.ToString(r.RepositoryUri),
		r.ImageTagMutability, aws.ToString(r.ImageTagMutabilityExclusionFilters[0].Filter), r.ImageScanningConfiguration.ScanOnPush,
		r.EncryptionConfiguration.EncryptionType, aws.ToString(r.EncryptionConfiguration.KmsKey))
	tags, err := api.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: r.RepositoryArn})
	if err != nil {
		return err
	}
	for _, t := range tags.Tags {
		fmt.Printf("    tag %s=%s\n", aws.ToString(t.Key), aws.ToString(t.Value))
	}
	lp, err := api.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: aws.String("demo/app")})
	if err != nil {
		return err
	}
	fmt.Printf("    lifecycle policy %s\n", aws.ToString(lp.LifecyclePolicyText))
	if r.ImageTagMutability != types.ImageTagMutabilityImmutableWithExclusion || !r.ImageScanningConfiguration.ScanOnPush {
		return errors.New("the repository does not carry the template's settings")
	}

	step("pulling %s back through ecrgate", proxied)
	desc, err := remote.Get(proxied, remote.WithContext(ctx))
	if err != nil {
		return err
	}
	pulled, err := desc.Image()
	if err != nil {
		return err
	}
	layers, _ := pulled.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			return err
		}
		rc.Close()
	}
	fmt.Printf("    got %s, %d layers\n", desc.Digest, len(layers))
	if desc.Digest != want {
		return fmt.Errorf("digest mismatch: pushed %s, pulled %s", want, desc.Digest)
	}

	step("the audit log (%s)", filepath.Join(dir, "audit.jsonl"))
	audit, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		return err
	}
	fmt.Print(indent(string(audit)))
	fmt.Println("\ndemo finished: the first push to a new repository succeeded; stopping the proxy and the emulator.")
	return nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// freeAddr returns want if it can be listened on, else a free loopback port.
func freeAddr(want string) string {
	for _, a := range []string{want, "127.0.0.1:0"} {
		ln, err := net.Listen("tcp", a)
		if err == nil {
			addr := ln.Addr().String()
			ln.Close()
			return addr
		}
	}
	return want
}

func cfgValue(cfg, key string) string {
	for _, line := range strings.Split(cfg, "\n") {
		if v, ok := strings.CutPrefix(line, key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("ecrgate serve did not become healthy at %s within 30s", url)
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
