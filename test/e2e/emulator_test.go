//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// awsEnv is what the AWS CLI needs to talk to e and nothing else.
func awsEnv(e *ecrfake.Emulator) []string {
	return append(e.Env(), "AWS_DEFAULT_REGION="+e.Region(), "AWS_PAGER=")
}

func awsCLIRun(t *testing.T, e *ecrfake.Emulator, args ...string) (string, error) {
	t.Helper()
	return runCmdStdout(t, awsEnv(e), awsCLI, append([]string{"--endpoint-url", e.URL(), "--output", "json"}, args...)...)
}

// TestEmulatorWithRealClients checks the emulator with clients nobody here
// wrote: the AWS CLI v2 on the control plane, docker + dockerd and skopeo on
// the registry.
func TestEmulatorWithRealClients(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin, skopeoBin, awsCLI)
	e := ecrfake.Start(t, ecrfake.Options{})
	host := e.Host()

	var password string
	t.Run("aws cli control plane", func(t *testing.T) {
		out, err := awsCLIRun(t, e, "ecr", "create-repository", "--repository-name", "e2e/app", "--image-scanning-configuration", "scanOnPush=true")
		if err != nil {
			t.Fatalf("first create-repository: %v\n%s", err, out)
		}
		var created struct {
			Repository struct{ RepositoryURI, RepositoryName string }
		}
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Repository.RepositoryName != "e2e/app" ||
			created.Repository.RepositoryURI != "123456789012.dkr.ecr.us-east-1.amazonaws.com/e2e/app" {
			t.Fatalf("create-repository output %q (%v)", out, err)
		}
		t.Logf("first create-repository:\n%s", out)
		out, err = awsCLIRun(t, e, "ecr", "create-repository", "--repository-name", "e2e/app")
		if err == nil || !strings.Contains(err.Error()+out, "RepositoryAlreadyExistsException") {
			t.Fatalf("second create-repository: err=%v out=%s", err, out)
		}
		t.Logf("second create-repository: %v", err)
		out, err = awsCLIRun(t, e, "ecr", "create-repository", "--repository-name", "E2E/Bad")
		if err == nil || !strings.Contains(err.Error()+out, "InvalidParameterException") {
			t.Fatalf("bad name: err=%v out=%s", err, out)
		}
		out, err = awsCLIRun(t, e, "ecr", "describe-repositories", "--repository-names", "e2e/app")
		if err != nil || !strings.Contains(out, `"scanOnPush": true`) {
			t.Fatalf("describe-repositories: %v\n%s", err, out)
		}
		out, err = awsCLIRun(t, e, "ecr", "describe-repositories", "--repository-names", "e2e/none")
		if err == nil || !strings.Contains(err.Error()+out, "RepositoryNotFoundException") {
			t.Fatalf("describe missing: err=%v out=%s", err, out)
		}
		out, err = runCmdStdout(t, awsEnv(e), awsCLI, "--endpoint-url", e.URL(), "ecr", "get-login-password")
		if err != nil || len(strings.TrimSpace(out)) < 100 {
			t.Fatalf("get-login-password: %v (%d bytes)", err, len(out))
		}
		password = strings.TrimSpace(out)
		// The wrong secret is refused like AWS refuses it.
		out, err = runCmdStdout(t, append(awsEnv(e), "AWS_SECRET_ACCESS_KEY=wrong"), awsCLI, "--endpoint-url", e.URL(), "ecr", "describe-repositories")
		if err == nil || !strings.Contains(err.Error()+out, "InvalidSignatureException") {
			t.Fatalf("wrong secret: err=%v out=%s", err, out)
		}
	})
	if password == "" {
		t.Fatal("no registry password; cannot continue")
	}

	d := startDockerd(t)
	if out, err := d.DockerIn(t, strings.NewReader(password), "login", "--username", "AWS", "--password-stdin", host); err != nil {
		t.Fatalf("docker login: %v\n%s", err, out)
	}

	t.Run("docker push needs the repository, then round-trips", func(t *testing.T) {
		ref := host + "/e2e/pushed:1"
		importImage(t, d, ref)
		out, err := d.Docker(t, "push", ref)
		want := "name unknown: The repository with name 'e2e/pushed' does not exist in the registry with id '123456789012'"
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("push to a missing repository: err=%v, output:\n%s\nwant it to contain %q", err, out, want)
		}
		t.Logf("push before create-repository:\n%s", out)
		if out, err := awsCLIRun(t, e, "ecr", "create-repository", "--repository-name", "e2e/pushed"); err != nil {
			t.Fatalf("create-repository: %v\n%s", err, out)
		}
		out = d.MustDocker(t, "push", ref)
		pushed, err := pushDigest(out)
		if err != nil {
			t.Fatalf("push after create-repository: %v\n%s", err, out)
		}
		t.Logf("push after create-repository:\n%s", out)
		d.MustDocker(t, "rmi", ref)
		d.MustDocker(t, "pull", ref)
		got := strings.TrimSpace(d.MustDocker(t, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref))
		if got != host+"/e2e/pushed@"+pushed {
			t.Fatalf("pulled %s, pushed %s", got, pushed)
		}
		t.Logf("pulled back: %s", got)
		out, err = awsCLIRun(t, e, "ecr", "list-images", "--repository-name", "e2e/pushed")
		if err != nil || !strings.Contains(out, pushed) {
			t.Fatalf("list-images: %v\n%s", err, out)
		}
	})

	t.Run("docker push to an immutable tag", func(t *testing.T) {
		if out, err := awsCLIRun(t, e, "ecr", "create-repository", "--repository-name", "e2e/frozen", "--image-tag-mutability", "IMMUTABLE"); err != nil {
			t.Fatalf("create-repository: %v\n%s", err, out)
		}
		ref := host + "/e2e/frozen:1.0"
		importImage(t, d, ref)
		d.MustDocker(t, "push", ref)
		importImage(t, d, ref) // a different image under the same tag
		out, err := d.Docker(t, "push", ref)
		want := "The image tag '1.0' already exists in the 'e2e/frozen' repository and cannot be overwritten because the tag is immutable."
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("overwrite of an immutable tag: err=%v\n%s", err, out)
		}
	})

	t.Run("docker push creates through a CREATE_ON_PUSH template", func(t *testing.T) {
		c := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
			Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
		_, err := c.CreateRepositoryCreationTemplate(context.Background(), &ecr.CreateRepositoryCreationTemplateInput{
			Prefix: aws.String("auto"), AppliedFor: []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush},
			ImageTagMutability: types.ImageTagMutabilityImmutable,
			ResourceTags:       []types.Tag{{Key: aws.String("created-by"), Value: aws.String("template")}}})
		if err != nil {
			t.Fatal(err)
		}
		ref := host + "/auto/svc:1"
		importImage(t, d, ref)
		if out, err := d.Docker(t, "push", ref); err != nil {
			t.Fatalf("push covered by a CREATE_ON_PUSH template: %v\n%s", err, out)
		}
		info, ok := e.Repository("", "auto/svc")
		if !ok || info.CreatedBy != "create-on-push:auto" || info.TagMutability != "IMMUTABLE" || info.Tags["created-by"] != "template" {
			t.Fatalf("repository = %+v (%v)", info, ok)
		}
	})

	t.Run("skopeo copy with AWS:token", func(t *testing.T) {
		img := writeOCIImage(t, "v1")
		dst := "docker://" + host + "/e2e/skopeo:v1"
		_, out, err := skopeoCopy(t, img.Ref, dst, skopeoOpts{DestCreds: "AWS:" + password})
		if err == nil || !strings.Contains(out, "does not exist in the registry with id '123456789012'") {
			t.Fatalf("skopeo copy to a missing repository: err=%v\n%s", err, out)
		}
		if out, err := awsCLIRun(t, e, "ecr", "create-repository", "--repository-name", "e2e/skopeo"); err != nil {
			t.Fatalf("create-repository: %v\n%s", err, out)
		}
		got := mustSkopeoCopy(t, img.Ref, dst, skopeoOpts{DestCreds: "AWS:" + password})
		if got != img.Digest {
			t.Fatalf("skopeo wrote %s, layout has %s", got, img.Digest)
		}
		info, err := skopeoInspect(t, dst, "AWS:"+password)
		if err != nil || info.Digest != img.Digest {
			t.Fatalf("skopeo inspect: %+v, %v", info, err)
		}
		if _, err := skopeoInspect(t, dst, "AWS:not-the-token"); err == nil {
			t.Fatal("skopeo inspect with a wrong token succeeded")
		}
	})
}
