//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// cliModelEnv is the environment TestAWSCLISettings runs the AWS CLI with:
// AWS_DATA_PATH to a copy of its ECR model that knows the operations newer
// than it (ecrModelCLIEnv). The test sets it and clears it when done.
var cliModelEnv []string

// awsRun runs cli against e with JSON output.
func awsRun(t *testing.T, e *ecrfake.Emulator, cli string, args ...string) (string, error) {
	t.Helper()
	return runCmdStdout(t, append(awsEnv(e), cliModelEnv...), cli, append([]string{"--endpoint-url", e.URL(), "--output", "json"}, args...)...)
}

// awsJSON runs cli and decodes its output, failing the test on error.
func awsJSON(t *testing.T, e *ecrfake.Emulator, cli string, args ...string) map[string]any {
	t.Helper()
	out, err := awsRun(t, e, cli, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return m
}

// awsFails runs cli and wants it to fail with exception code.
func awsFails(t *testing.T, e *ecrfake.Emulator, cli, code string, args ...string) {
	t.Helper()
	out, err := awsRun(t, e, cli, args...)
	if err == nil || !strings.Contains(err.Error(), "("+code+")") {
		t.Errorf("aws %s: err=%v out=%s, want %s", strings.Join(args, " "), err, out, code)
	}
}

// jsonField walks a decoded JSON value along a dotted path ("a.0.b") and
// renders the leaf with %v ("" when the path does not exist).
func jsonField(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	switch x := v.(type) {
	case nil:
		return ""
	case map[string]any:
		return fmt.Sprintf("map[%d]", len(x))
	case []any:
		return fmt.Sprintf("list[%d]", len(x))
	}
	return fmt.Sprint(v)
}

// TestAWSCLISettings drives the emulator's settings, scanning and
// pull-through-cache operations with the AWS CLI, and the registry with
// skopeo.
func TestAWSCLISettings(t *testing.T) {
	requireTools(t, skopeoBin, awsCLI)
	e := ecrfake.Start(t, ecrfake.Options{})
	cliModelEnv = ecrModelCLIEnv(t)
	t.Cleanup(func() { cliModelEnv = nil })
	const repo = "e2e/settings"
	awsJSON(t, e, awsCLI, "ecr", "create-repository", "--repository-name", repo)
	password, err := awsRun(t, e, awsCLI, "ecr", "get-login-password")
	if err != nil {
		t.Fatal(err)
	}
	creds := "AWS:" + strings.TrimSpace(password)
	push := func(tag string) (string, string, error) {
		img := writeOCIImage(t, "v")
		return skopeoCopy(t, img.Ref, "docker://"+e.Host()+"/"+repo+":"+tag, skopeoOpts{DestCreds: creds})
	}
	v1, out, err := push("v1")
	if err != nil {
		t.Fatalf("push v1: %v\n%s", err, out)
	}

	t.Run("put-image-tag-mutability", func(t *testing.T) {
		m := awsJSON(t, e, awsCLI, "ecr", "put-image-tag-mutability", "--repository-name", repo, "--image-tag-mutability", "IMMUTABLE")
		if jsonField(m, "imageTagMutability") != "IMMUTABLE" || jsonField(m, "repositoryName") != repo || jsonField(m, "registryId") != e.Account() {
			t.Errorf("answer = %v", m)
		}
		_, out, err := push("v1")
		if err == nil || !strings.Contains(out+err.Error(), "cannot be overwritten because the tag is immutable") {
			t.Errorf("re-push of an immutable tag: err=%v\n%s", err, out)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "describe-repositories", "--repository-names", repo)
		if jsonField(m, "repositories.0.imageTagMutability") != "IMMUTABLE" {
			t.Errorf("describe-repositories = %v", m)
		}
		awsFails(t, e, awsCLI, "RepositoryNotFoundException", "ecr", "put-image-tag-mutability", "--repository-name", "e2e/none", "--image-tag-mutability", "IMMUTABLE")
	})

	t.Run("put-image-scanning-configuration", func(t *testing.T) {
		m := awsJSON(t, e, awsCLI, "ecr", "put-image-scanning-configuration", "--repository-name", repo, "--image-scanning-configuration", "scanOnPush=true")
		if jsonField(m, "imageScanningConfiguration.scanOnPush") != "true" || jsonField(m, "repositoryName") != repo {
			t.Errorf("answer = %v", m)
		}
		if _, out, err := push("v2"); err != nil { // scanned on push
			t.Fatalf("push v2: %v\n%s", err, out)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "describe-image-scan-findings", "--repository-name", repo, "--image-id", "imageTag=v2")
		if jsonField(m, "imageScanStatus.status") != "COMPLETE" {
			t.Errorf("scan on push: %v", m)
		}
	})

	t.Run("start-image-scan", func(t *testing.T) {
		awsFails(t, e, awsCLI, "ScanNotFoundException", "ecr", "describe-image-scan-findings", "--repository-name", repo, "--image-id", "imageTag=v1")
		m := awsJSON(t, e, awsCLI, "ecr", "start-image-scan", "--repository-name", repo, "--image-id", "imageTag=v1")
		if jsonField(m, "imageId.imageDigest") != v1 || jsonField(m, "imageScanStatus.status") != "IN_PROGRESS" {
			t.Errorf("start-image-scan = %v", m)
		}
		if out, err := awsRun(t, e, awsCLI, "ecr", "wait", "image-scan-complete", "--repository-name", repo, "--image-id", "imageDigest="+v1); err != nil {
			t.Fatalf("wait image-scan-complete: %v\n%s", err, out)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "describe-image-scan-findings", "--repository-name", repo, "--image-id", "imageTag=v1")
		if jsonField(m, "imageScanStatus.status") != "COMPLETE" || jsonField(m, "imageScanStatus.description") != "The scan was completed successfully." ||
			jsonField(m, "imageScanFindings.findingSeverityCounts") != "map[0]" || jsonField(m, "imageScanFindings.findings") != "list[0]" ||
			jsonField(m, "imageId.imageDigest") != v1 {
			t.Errorf("describe-image-scan-findings = %v", m)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "describe-images", "--repository-name", repo, "--image-ids", "imageDigest="+v1)
		if jsonField(m, "imageDetails.0.imageScanStatus.status") != "COMPLETE" || jsonField(m, "imageDetails.0.imageScanFindingsSummary.findingSeverityCounts") != "map[0]" {
			t.Errorf("describe-images = %v", m)
		}
		awsFails(t, e, awsCLI, "ImageNotFoundException", "ecr", "start-image-scan", "--repository-name", repo, "--image-id", "imageTag=nope")
	})

	t.Run("replication", func(t *testing.T) {
		m := awsJSON(t, e, awsCLI, "ecr", "describe-registry")
		if jsonField(m, "registryId") != e.Account() || jsonField(m, "replicationConfiguration.rules") != "list[0]" {
			t.Errorf("describe-registry = %v", m)
		}
		cfg := `{"rules":[{"destinations":[{"region":"eu-west-1","registryId":"` + e.Account() + `"}],"repositoryFilters":[{"filter":"e2e","filterType":"PREFIX_MATCH"}]}]}`
		m = awsJSON(t, e, awsCLI, "ecr", "put-replication-configuration", "--replication-configuration", cfg)
		if jsonField(m, "replicationConfiguration.rules.0.destinations.0.region") != "eu-west-1" {
			t.Errorf("put-replication-configuration = %v", m)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "describe-registry")
		if jsonField(m, "replicationConfiguration.rules.0.repositoryFilters.0.filter") != "e2e" {
			t.Errorf("describe-registry = %v", m)
		}
		rules := strings.TrimSuffix(strings.Repeat(`{"destinations":[{"region":"eu-west-1","registryId":"222222222222"}]},`, 11), ",")
		awsFails(t, e, awsCLI, "InvalidParameterException", "ecr", "put-replication-configuration", "--replication-configuration", `{"rules":[`+rules+`]}`)
	})

	t.Run("registry-scanning", func(t *testing.T) {
		m := awsJSON(t, e, awsCLI, "ecr", "get-registry-scanning-configuration")
		if jsonField(m, "scanningConfiguration.scanType") != "BASIC" || jsonField(m, "scanningConfiguration.rules") != "list[0]" {
			t.Errorf("default = %v", m)
		}
		rules := `[{"scanFrequency":"CONTINUOUS_SCAN","repositoryFilters":[{"filter":"e2e/*","filterType":"WILDCARD"}]}]`
		m = awsJSON(t, e, awsCLI, "ecr", "put-registry-scanning-configuration", "--scan-type", "ENHANCED", "--rules", rules)
		if jsonField(m, "registryScanningConfiguration.scanType") != "ENHANCED" {
			t.Errorf("put-registry-scanning-configuration = %v", m)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "get-registry-scanning-configuration")
		if jsonField(m, "scanningConfiguration.rules.0.scanFrequency") != "CONTINUOUS_SCAN" {
			t.Errorf("get-registry-scanning-configuration = %v", m)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "batch-get-repository-scanning-configuration", "--repository-names", repo, "e2e/none")
		if jsonField(m, "scanningConfigurations.0.scanFrequency") != "CONTINUOUS_SCAN" || jsonField(m, "scanningConfigurations.0.scanOnPush") != "true" ||
			jsonField(m, "scanningConfigurations.0.appliedScanFilters.0.filter") != "e2e/*" ||
			jsonField(m, "failures.0.repositoryName") != "e2e/none" || jsonField(m, "failures.0.failureCode") != "REPOSITORY_NOT_FOUND" {
			t.Errorf("batch-get-repository-scanning-configuration = %v", m)
		}
		awsFails(t, e, awsCLI, "InvalidParameterException", "ecr", "put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules", rules)
	})

	t.Run("update-repository-creation-template", func(t *testing.T) {
		awsJSON(t, e, awsCLI, "ecr", "create-repository-creation-template", "--prefix", "e2e", "--applied-for", "CREATE_ON_PUSH", "--description", "first")
		m := awsJSON(t, e, awsCLI, "ecr", "update-repository-creation-template", "--prefix", "e2e", "--image-tag-mutability", "IMMUTABLE")
		if jsonField(m, "repositoryCreationTemplate.imageTagMutability") != "IMMUTABLE" || jsonField(m, "repositoryCreationTemplate.description") != "first" {
			t.Errorf("update-repository-creation-template = %v", m)
		}
		m = awsJSON(t, e, awsCLI, "ecr", "describe-repository-creation-templates", "--prefixes", "e2e")
		if jsonField(m, "repositoryCreationTemplates.0.imageTagMutability") != "IMMUTABLE" {
			t.Errorf("describe-repository-creation-templates = %v", m)
		}
		awsFails(t, e, awsCLI, "TemplateNotFoundException", "ecr", "update-repository-creation-template", "--prefix", "other", "--description", "x")
		awsFails(t, e, awsCLI, "InvalidParameterException", "ecr", "update-repository-creation-template", "--prefix", "e2e", "--applied-for", "EVERYTHING")
	})

	t.Run("pull-through-cache-rules", func(t *testing.T) {
		m := awsJSON(t, e, awsCLI, "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "quay", "--upstream-registry-url", "quay.io")
		if jsonField(m, "ecrRepositoryPrefix") != "quay" || jsonField(m, "upstreamRegistryUrl") != "quay.io" || jsonField(m, "registryId") != e.Account() {
			t.Errorf("create-pull-through-cache-rule = %v", m)
		}
		awsFails(t, e, awsCLI, "PullThroughCacheRuleAlreadyExistsException", "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "quay", "--upstream-registry-url", "quay.io")
		awsFails(t, e, awsCLI, "InvalidParameterException", "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "hub", "--upstream-registry-url", "registry-1.docker.io")
		awsFails(t, e, awsCLI, "UnsupportedUpstreamRegistryException", "ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", "mine", "--upstream-registry-url", "registry.example.com")
		m = awsJSON(t, e, awsCLI, "ecr", "describe-pull-through-cache-rules")
		if jsonField(m, "pullThroughCacheRules") != "list[1]" || jsonField(m, "pullThroughCacheRules.0.upstreamRegistryUrl") != "quay.io" {
			t.Errorf("describe-pull-through-cache-rules = %v", m)
		}
		awsFails(t, e, awsCLI, "PullThroughCacheRuleNotFoundException", "ecr", "describe-pull-through-cache-rules", "--ecr-repository-prefixes", "nope")
		t.Run("update and validate", func(t *testing.T) {
			secret := "arn:aws:secretsmanager:" + e.Region() + ":" + e.Account() + ":secret:ecr-pullthroughcache/quay-AbCdEf"
			m := awsJSON(t, e, awsCLI, "ecr", "update-pull-through-cache-rule", "--ecr-repository-prefix", "quay", "--credential-arn", secret)
			if jsonField(m, "credentialArn") != secret || jsonField(m, "updatedAt") == "" {
				t.Errorf("update-pull-through-cache-rule = %v", m)
			}
			m = awsJSON(t, e, awsCLI, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "quay")
			if jsonField(m, "isValid") != "true" || jsonField(m, "credentialArn") != secret {
				t.Errorf("validate-pull-through-cache-rule = %v", m)
			}
			awsFails(t, e, awsCLI, "PullThroughCacheRuleNotFoundException", "ecr", "update-pull-through-cache-rule", "--ecr-repository-prefix", "nope", "--credential-arn", secret)
		})
		m = awsJSON(t, e, awsCLI, "ecr", "delete-pull-through-cache-rule", "--ecr-repository-prefix", "quay")
		if jsonField(m, "ecrRepositoryPrefix") != "quay" {
			t.Errorf("delete-pull-through-cache-rule = %v", m)
		}
		awsFails(t, e, awsCLI, "PullThroughCacheRuleNotFoundException", "ecr", "delete-pull-through-cache-rule", "--ecr-repository-prefix", "quay")
	})
}
