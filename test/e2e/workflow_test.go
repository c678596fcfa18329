//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"go.yaml.in/yaml/v3"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// workflowFile is the GitHub Actions example TestGitHubActionsWorkflow runs.
const workflowFile = "../../examples/github-actions/push.yml"

// workflowSHA stands in for ${{ github.sha }}.
const workflowSHA = "0123456789abcdef0123456789abcdef01234567"

// workflowStepTimeout bounds one run step (a docker build and push on a
// loaded machine, or the workflow's own 30-retry healthz wait).
const workflowStepTimeout = 3 * time.Minute

// The ports the workflow's ecrgate serve uses: the defaults, since its config
// names neither listen nor admin_listen.
var workflowPorts = []string{"127.0.0.1:5000", "127.0.0.1:5002"}

// ghWorkflow is the part of a workflow file the test reads.
type ghWorkflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		Env      map[string]string `yaml:"env"`
		Defaults yaml.Node         `yaml:"defaults"`
		Steps    []ghStep          `yaml:"steps"`
	} `yaml:"jobs"`
}

type ghStep struct {
	Name             string            `yaml:"name"`
	Uses             string            `yaml:"uses"`
	Run              string            `yaml:"run"`
	Shell            string            `yaml:"shell"`
	Env              map[string]string `yaml:"env"`
	WorkingDirectory string            `yaml:"working-directory"`
}

// TestGitHubActionsWorkflow runs the shell steps of
// examples/github-actions/push.yml — "Start ecrgate" and "Build and push",
// unchanged but for one injected config entry (see below) — against the
// emulator and a private dockerd, with the test standing in for the runner
// and for the actions the steps depend on, then checks at the emulator that
// the image arrived in a repository ecrgate created from the workflow's
// template.
func TestGitHubActionsWorkflow(t *testing.T) {
	requireTools(t, dockerCLI, dockerdBin, "bash", "curl")
	bin := binDir(t)
	t.Setenv("AWS_CA_BUNDLE", "")
	os.Unsetenv("AWS_CA_BUNDLE")

	// The workflow's ecrgate serve listens on the default ports; another
	// ecrgate (a developer's, or a parallel CI rehearsal) may hold them.
	for _, addr := range workflowPorts {
		if err := portFree(addr); err != nil {
			msg := fmt.Sprintf("the workflow's ecrgate serve needs %s, which is in use: %v", addr, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg + " (CI=true, so this is a failure, not a skip)")
			}
			t.Skip(msg + " (free the port and rerun; with CI=true this fails)")
		}
	}

	e := ecrfake.Start(t, ecrfake.Options{})
	registry := e.Account() + ".dkr.ecr." + e.Region() + ".amazonaws.com"
	subst := func(s string) string {
		s = regexp.MustCompile(`\$\{\{\s*vars\.AWS_ACCOUNT_ID\s*\}\}`).ReplaceAllLiteralString(s, e.Account())
		s = regexp.MustCompile(`\$\{\{\s*vars\.AWS_REGION\s*\}\}`).ReplaceAllLiteralString(s, e.Region())
		s = regexp.MustCompile(`\$\{\{\s*github\.sha\s*\}\}`).ReplaceAllLiteralString(s, workflowSHA)
		return s
	}
	noExpr := func(what, s string) {
		t.Helper()
		if strings.Contains(s, "${{") {
			t.Fatalf("%s still holds a GitHub expression the test does not substitute:\n%s", what, s)
		}
	}

	// The workflow, read the way the runner reads it.
	raw, err := os.ReadFile(workflowFile)
	if err != nil {
		t.Fatal(err)
	}
	var wf ghWorkflow
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("parse %s: %v", workflowFile, err)
	}
	job, ok := wf.Jobs["push"]
	if !ok || len(wf.Jobs) != 1 {
		t.Fatalf("%s: want exactly one job named push, have %d jobs", workflowFile, len(wf.Jobs))
	}
	if !job.Defaults.IsZero() {
		t.Fatalf("%s: job defaults (e.g. defaults.run.shell) are set; the test runs steps with GitHub's default shell only", workflowFile)
	}
	// Find the steps by name (or action), in order: renaming or reordering
	// one must fail this test, not silently skip a step.
	index := map[string]int{}
	for i, s := range job.Steps {
		key := s.Name
		if key == "" {
			key, _, _ = strings.Cut(s.Uses, "@")
		}
		index[key] = i
	}
	order := []string{"Install ecrgate", "aws-actions/configure-aws-credentials", "Start ecrgate", "Build and push"}
	for i, key := range order {
		at, ok := index[key]
		if !ok {
			t.Fatalf("%s: no step %q (renamed? update this test)", workflowFile, key)
		}
		if i > 0 && at < index[order[i-1]] {
			t.Fatalf("%s: step %q comes before %q", workflowFile, key, order[i-1])
		}
	}
	runSteps := []string{"Start ecrgate", "Build and push"}
	scripts := map[string]string{}
	for _, name := range runSteps {
		s := job.Steps[index[name]]
		if strings.TrimSpace(s.Run) == "" {
			t.Fatalf("%s: step %q has no run: block", workflowFile, name)
		}
		if s.Shell != "" || len(s.Env) > 0 || s.WorkingDirectory != "" {
			t.Fatalf("%s: step %q sets shell, env or working-directory; teach the test to honour it", workflowFile, name)
		}
		scripts[name] = subst(s.Run)
		noExpr("step "+strconv.Quote(name), scripts[name])
	}

	// The data plane. The heredoc names only default_registry, whose host is
	// real AWS; the test must add a registries entry sending it to the
	// emulator. pkg/config reads $ECRGATE_CONFIG, else
	// $XDG_CONFIG_HOME/ecrgate/config.yaml, else ~/.config/ecrgate/config.yaml:
	// pointing ECRGATE_CONFIG at a file of the test's own would check a config
	// the workflow never wrote (its templates, its heredoc quoting, its path).
	// So the step runs as written and the file it writes (read by both
	// `ecrgate config check` and `ecrgate serve`) gets three lines more,
	// injected into the heredoc right after its default_registry line.
	// (The control plane needs nothing in the file: AWS_ENDPOINT_URL_ECR
	// below, as a user of a VPC endpoint or LocalStack would set it.)
	drLine := regexp.MustCompile(`(?m)^default_registry: \$\{ECR_REGISTRY\}\n`)
	if n := len(drLine.FindAllStringIndex(scripts["Start ecrgate"], -1)); n != 1 {
		t.Fatalf("step \"Start ecrgate\": want exactly one line \"default_registry: ${ECR_REGISTRY}\" in its heredoc, found %d:\n%s", n, scripts["Start ecrgate"])
	}
	scripts["Start ecrgate"] = drLine.ReplaceAllLiteralString(scripts["Start ecrgate"],
		"default_registry: ${ECR_REGISTRY}\nregistries:\n  - host: ${ECR_REGISTRY}\n    endpoint: "+e.URL()+"\n")

	// The runner. Its files and directories, in a temporary directory.
	root := t.TempDir()
	runnerTemp := filepath.Join(root, "runner-temp")
	workspace := filepath.Join(root, "workspace")
	shim := filepath.Join(root, "shim")
	for _, dir := range []string{runnerTemp, workspace, shim} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	githubPath := filepath.Join(runnerTemp, "github_path")
	stepSummary := filepath.Join(runnerTemp, "step_summary.md")
	for _, f := range []string{githubPath, stepSummary} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What actions/checkout leaves: a build context that needs no pull.
	files := map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /\n",
		"hello.txt":  "hello from the ecrgate GitHub Actions example, " + workflowSHA + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(workspace, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The docker CLI the harness pins (Debian's, the daemon's release) must
	// be the `docker` the steps find first.
	if err := os.Symlink(mustLookPath(t, dockerCLI), filepath.Join(shim, "docker")); err != nil {
		t.Fatal(err)
	}

	d := startDockerd(t)

	env := []string{
		"CI=true", "GITHUB_ACTIONS=true", "GITHUB_SHA=" + workflowSHA,
		"GITHUB_WORKSPACE=" + workspace, "RUNNER_TEMP=" + runnerTemp,
		"GITHUB_PATH=" + githubPath, "GITHUB_STEP_SUMMARY=" + stepSummary,
		// GitHub's Ubuntu images set XDG_CONFIG_HOME to ~/.config, where
		// the step writes ecrgate's config file.
		"XDG_CONFIG_HOME=" + filepath.Join(testHome(t), ".config"),
		// No DOCKER_CONFIG: the CLI uses ~/.docker of the temporary HOME,
		// as on a runner.
		"DOCKER_HOST=" + d.Host,
		// What aws-actions/configure-aws-credentials exports (static keys
		// here, so no AWS_SESSION_TOKEN), and the endpoints a user pointing
		// the SDK elsewhere also sets.
		"AWS_ACCESS_KEY_ID=" + e.AccessKey(), "AWS_SECRET_ACCESS_KEY=" + e.SecretKey(),
		"AWS_REGION=" + e.Region(), "AWS_DEFAULT_REGION=" + e.Region(),
		"AWS_ENDPOINT_URL_ECR=" + e.URL(), "AWS_ENDPOINT_URL_STS=" + e.URL(),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	wfEnv := map[string]string{}
	for k, v := range wf.Env {
		wfEnv[k] = v
	}
	for k, v := range job.Env {
		wfEnv[k] = v
	}
	for _, k := range []string{"ECR_REGISTRY", "IMAGE"} {
		v, ok := wfEnv[k]
		if !ok {
			t.Fatalf("%s: no %s in the workflow's env", workflowFile, k)
		}
		wfEnv[k] = subst(v)
		noExpr("env "+k, wfEnv[k])
	}
	for k, v := range wfEnv {
		env = append(env, k+"="+v)
	}
	if wfEnv["ECR_REGISTRY"] != registry {
		t.Fatalf("ECR_REGISTRY = %q, want %q", wfEnv["ECR_REGISTRY"], registry)
	}
	// The "Install ecrgate" step is skipped: it is `go install …@latest`,
	// which needs the published module, not this tree. It only puts an
	// ecrgate binary on PATH (through GITHUB_PATH); bin/ecrgate from
	// `make build` stands in for it.
	basePath := ""
	for _, kv := range baseEnv(t) {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			basePath = v
		}
	}

	// Whatever the steps leave running (the nohup'ed ecrgate serve) is
	// in the process group of the step's bash; it is stopped at the end, and
	// the ports must be free afterwards. Registered after the emulator and
	// dockerd, so it runs before their cleanups.
	var groups []int
	t.Cleanup(func() {
		for _, pgid := range groups {
			stopProcessGroup(t, pgid)
		}
		for _, addr := range workflowPorts {
			if err := waitPortFree(addr, 30*time.Second); err != nil {
				t.Errorf("after the test, %s is still in use: %v", addr, err)
			}
		}
	})

	logPath := filepath.Join(runnerTemp, "ecrgate.log")
	for _, name := range runSteps {
		// GITHUB_PATH entries written by earlier steps come first, last
		// written first, as the runner prepends them.
		path := []string{shim}
		if b, err := os.ReadFile(githubPath); err == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			for i := len(lines) - 1; i >= 0; i-- {
				if l := strings.TrimSpace(lines[i]); l != "" {
					path = append(path, l)
				}
			}
		}
		path = append(path, bin, basePath)
		stepEnv := append(append([]string{}, env...), "PATH="+strings.Join(path, string(os.PathListSeparator)))
		out, pgid, err := runWorkflowStep(t, name, scripts[name], workspace, runnerTemp, stepEnv)
		if pgid > 0 {
			groups = append(groups, pgid)
		}
		t.Logf("step %q output:\n%s", name, out)
		if err != nil {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("step %q: %v\necrgate log:\n%s", name, err, b)
		}
	}

	// At the emulator: team/app, created once, by ecrgate, from the template.
	const repo = "team/app"
	info, ok := e.Repository("", repo)
	if !ok {
		t.Fatalf("repository %s was not created (have %v)", repo, e.Repositories(""))
	}
	if info.CreatedBy != "api" {
		t.Errorf("repository %s was created by %q, want ecrgate through the API", repo, info.CreatedBy)
	}
	if !info.ScanOnPush {
		t.Errorf("repository %s: scan_on_push is false; the workflow's ROOT template sets it: %+v", repo, info)
	}
	if n := e.Calls("CreateRepository"); n != 1 {
		t.Errorf("CreateRepository calls = %d, want 1", n)
	}
	api := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	listed, err := api.ListImages(context.Background(), &ecr.ListImagesInput{
		RepositoryName: aws.String(repo), Filter: &types.ListImagesFilter{TagStatus: types.TagStatusTagged}})
	if err != nil {
		t.Fatalf("ListImages %s: %v", repo, err)
	}
	var atEmulator string
	for _, id := range listed.ImageIds {
		if aws.ToString(id.ImageTag) == workflowSHA {
			atEmulator = aws.ToString(id.ImageDigest)
		}
	}
	if atEmulator == "" {
		t.Fatalf("tag %s is not in %s at the emulator: %+v", workflowSHA, repo, listed.ImageIds)
	}
	ref := wfEnv["IMAGE"] + ":" + workflowSHA
	repoDigest := strings.TrimSpace(d.MustDocker(t, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref))
	if want := wfEnv["IMAGE"] + "@" + atEmulator; repoDigest != want {
		t.Errorf("dockerd has %s for %s, the emulator has %s", repoDigest, ref, want)
	}
	t.Logf("%s/%s:%s = %s at the emulator", registry, repo, workflowSHA, atEmulator)

	summary, err := os.ReadFile(stepSummary)
	if err != nil {
		t.Fatal(err)
	}
	if want := "pushed " + registry + "/" + repo + ":" + workflowSHA + "\n"; !strings.Contains(string(summary), want) {
		t.Errorf("step summary %q does not contain %q", summary, want)
	}
	logText, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("the workflow's ecrgate log: %v", err)
	}
	t.Logf("ecrgate log (%s):\n%s", logPath, logText)
	if !strings.Contains(string(logText), "created repository") {
		t.Errorf("the ecrgate log has no \"created repository\" line")
	}
	if strings.Contains(string(logText), "Basic ") {
		t.Errorf("a credential reached ecrgate's log")
	}
}

// runWorkflowStep runs a run: block as the runner does with no shell: set,
// `bash -e {0}` on a script file (GitHub's default shell, which has no
// pipefail; that needs an explicit `shell: bash`), in dir, in its own
// process group, whose id it returns so background processes the step
// starts can be stopped. The output is returned even on error.
func runWorkflowStep(t *testing.T, name, script, dir, runnerTemp string, env []string) (string, int, error) {
	t.Helper()
	f, err := os.CreateTemp(runnerTemp, "step-*.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(script); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("$ bash -e %s   # step %q", f.Name(), name)
	ctx, cancel := context.WithTimeout(context.Background(), workflowStepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", f.Name())
	cmd.Dir = dir
	cmd.Env = append(baseEnv(t), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return "", 0, fmt.Errorf("start bash: %w", err)
	}
	pgid := cmd.Process.Pid
	err = cmd.Wait()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", workflowStepTimeout, err)
	}
	return out.String(), pgid, err
}

// stopProcessGroup sends SIGTERM to what is left of process group pgid,
// waits for it to go (up to 30s), then SIGKILLs the rest.
func stopProcessGroup(t *testing.T, pgid int) {
	t.Helper()
	members := groupMembers(pgid)
	if len(members) == 0 {
		return
	}
	t.Logf("stopping what the workflow left running (process group %d: %v)", pgid, members)
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if len(groupMembers(pgid)) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("process group %d (%v) still running 30s after SIGTERM; sending SIGKILL", pgid, groupMembers(pgid))
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if len(groupMembers(pgid)) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("process group %d (%v) still running after SIGKILL", pgid, groupMembers(pgid))
}

// groupMembers lists the live (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// portFree reports whether addr can be listened on.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// waitPortFree waits up to d for addr to become free.
func waitPortFree(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := portFree(addr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = filepath.Abs(p); err != nil {
		t.Fatal(err)
	}
	return p
}
