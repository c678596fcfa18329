//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// The OCI distribution-spec conformance suite: a main package, pinned.
const (
	conformanceModule  = "github.com/opencontainers/distribution-spec/conformance"
	conformanceVersion = "v0.0.0-20260831232431-97274622c111"
	// conformanceRegistry is the ECR registry the proxy forwards to (the
	// emulator's default account and region).
	conformanceRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	// conformanceRepo1 and conformanceRepo2 are OCI_REPO1 and OCI_REPO2
	// (the second is the source of the cross-repository mount tests).
	conformanceRepo1 = "conformance/one"
	conformanceRepo2 = "conformance/two"
	// conformanceInstallTimeout bounds `go install` of the suite.
	conformanceInstallTimeout = 5 * time.Minute
	// conformanceRunTimeout bounds one run of the suite.
	conformanceRunTimeout = 8 * time.Minute
)

// TestOCIConformance runs the OCI distribution-spec conformance suite twice:
// (1) directly against the emulator, with the repositories created first and
// Basic auth from GetAuthorizationToken, as ECR requires; (2) through
// `ecrgate serve` in process, with no credentials and no repositories, which
// the proxy must supply (token injection, create on first push). Every test
// that passes directly must pass through the proxy. Failures of the emulator
// itself are logged, not failed: some are ECR's documented behaviour.
//
// E2E_CONFORMANCE_KEEP=<dir> keeps both runs' results (junit.xml,
// results.yaml, report.html with every request and response) under <dir>.
func TestOCIConformance(t *testing.T) {
	began := time.Now()
	// Before anything changes HOME: the binary is cached under the user's
	// cache directory.
	bin := conformanceBinary(t)

	// (1) Directly against the emulator.
	// Both emulators mount blobs across repositories: the suite's mount
	// tests need BLOB_MOUNTING, which ECR leaves disabled until it is set.
	direct := ecrfake.Start(t, ecrfake.Options{})
	if err := direct.SetAccountSetting("", "BLOB_MOUNTING", "ENABLED"); err != nil {
		t.Fatal(err)
	}
	password := conformanceEmulatorSetup(t, direct)
	directRes := runConformance(t, bin, "direct", direct.Host(), "AWS", password)

	// (2) Through the proxy, against a fresh emulator. OCI_REPO1 exists
	// beforehand: the suite's "empty" checks read it before anything is
	// pushed, expecting an existing empty repository (a missing one is
	// NAME_UNKNOWN in ECR, through the proxy or not). OCI_REPO2 does not:
	// the proxy creates it on the first push.
	upstream := ecrfake.Start(t, ecrfake.Options{})
	if err := upstream.SetAccountSetting("", "BLOB_MOUNTING", "ENABLED"); err != nil {
		t.Fatal(err)
	}
	upstreamAPI := ecr.NewFromConfig(aws.Config{Region: upstream.Region(), BaseEndpoint: aws.String(upstream.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(upstream.AccessKey(), upstream.SecretKey(), "")})
	if _, err := upstreamAPI.CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String(conformanceRepo1)}); err != nil {
		t.Fatal(err)
	}
	proxyAddr, proxyLog := conformanceStartProxy(t, upstream)
	proxyRes := runConformance(t, bin, "proxy", proxyAddr, "", "")

	for _, run := range []struct {
		name string
		res  conformanceResults
	}{{"directly against the emulator", directRes}, {"through the proxy", proxyRes}} {
		p, f, s := run.res.counts()
		t.Logf("conformance %s: %d passed, %d failed, %d skipped (%d test cases under %d names)",
			run.name, p, f, s, p+f+s, len(run.res))
	}
	if sum := directRes.summary(conformanceIsFailure); sum != "" {
		t.Logf("tests failing directly against the emulator ([status failed/cases] first line of the first failure):\n%s", sum)
	}
	if sum := directRes.summary(conformanceIsSkip); sum != "" {
		t.Logf("tests skipped directly against the emulator:\n%s", sum)
	}
	if sum := proxyRes.summary(conformanceIsFailure); sum != "" {
		t.Logf("tests failing through the proxy:\n%s", sum)
	}

	if p, _, _ := directRes.counts(); p == 0 {
		t.Fatalf("no conformance test passed directly against the emulator: the suite could not run (%d names)", len(directRes))
	}

	// Every test that passes directly passes through the proxy. A name can
	// occur several times (once per blob or manifest of a data set), so the
	// proxy must pass it at least as often.
	var regressions []string
	var paths []string // request paths of the failing cases, to pick proxy log lines
	for _, name := range directRes.names() {
		want, got := directRes.passes(name), proxyRes.passes(name)
		if want == 0 || got >= want {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: passes %d× directly, %d× through the proxy", name, want, got)
		first := true
		for _, c := range proxyRes[name] {
			if c.Status == conformancePassed {
				continue
			}
			fmt.Fprintf(&b, "\n    [%s] %s", c.Status, strings.ReplaceAll(strings.TrimSpace(c.Message), "\n", "\n      "))
			if first {
				fmt.Fprintf(&b, "\n    request/response transcript through the proxy:\n%s", confIndent(confTruncate(c.Output, 6000), "      "))
				first = false
			}
			for _, m := range conformanceURLRE.FindAllStringSubmatch(c.Output, -1) {
				paths = append(paths, m[1])
			}
		}
		regressions = append(regressions, b.String())
	}
	if len(regressions) > 0 {
		t.Errorf("%d conformance tests pass against the emulator but not through the proxy:\n%s\nproxy log lines for those requests:\n%s",
			len(regressions), strings.Join(regressions, "\n"), proxyLog.matching(paths, 60))
	}

	// The proxy created OCI_REPO2, once; OCI_REPO1 was created above.
	if info, ok := upstream.Repository("", conformanceRepo2); !ok || info.CreatedBy != "api" {
		t.Errorf("the proxy run did not create repository %s in the emulator (%+v)", conformanceRepo2, info)
	}
	if n := upstream.Calls("CreateRepository"); n != 2 {
		t.Errorf("CreateRepository calls = %d, want 2 (%s by the test, %s by the proxy)", n, conformanceRepo1, conformanceRepo2)
	}
	t.Logf("TestOCIConformance took %s", time.Since(began).Round(time.Millisecond))
}

// conformanceEmulatorSetup creates OCI_REPO1 and OCI_REPO2 in e (ECR refuses
// pushes to repositories that do not exist) and returns a registry password
// for user AWS.
func conformanceEmulatorSetup(t *testing.T, e *ecrfake.Emulator) string {
	t.Helper()
	ctx := context.Background()
	c := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	for _, repo := range []string{conformanceRepo1, conformanceRepo2} {
		if _, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)}); err != nil {
			t.Fatalf("create repository %s: %v", repo, err)
		}
	}
	out, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		t.Fatal("GetAuthorizationToken returned no authorization data")
	}
	raw, err := base64.StdEncoding.DecodeString(*out.AuthorizationData[0].AuthorizationToken)
	if err != nil {
		t.Fatalf("decode authorization token: %v", err)
	}
	pass, ok := strings.CutPrefix(string(raw), "AWS:")
	if !ok {
		t.Fatal("authorization token is not AWS:<password>")
	}
	return pass
}

// conformanceLog is a goroutine-safe log buffer.
type conformanceLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *conformanceLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *conformanceLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// matching returns up to n log lines that mention one of paths, skipping
// the per-request token-cache lines.
func (l *conformanceLog) matching(paths []string, n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		for _, p := range paths {
			if strings.Contains(line, "path="+p+" ") || strings.Contains(line, "path="+p+"\"") {
				out = append(out, line)
				break
			}
		}
	}
	if len(out) > n {
		out = append(out[:n], fmt.Sprintf("… (%d more)", len(out)-n))
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, "\n")
}

func (l *conformanceLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// conformanceStartProxy runs `ecrgate serve` (server.Run) in process, its
// default registry served by e, its AWS SDK pointed at e through the
// environment, and returns the registry listener's address and its debug
// log. It changes the process environment (t.Setenv): the test cannot run
// in parallel.
func conformanceStartProxy(t *testing.T, e *ecrfake.Emulator) (string, *conformanceLog) {
	t.Helper()
	dir := t.TempDir()
	env := append(e.Env(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	yaml := fmt.Sprintf("default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		conformanceRegistry, filepath.Join(dir, "audit.jsonl"), conformanceRegistry, e.URL())
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "ecrgate.yaml"), env)
	if err != nil {
		t.Fatalf("proxy config: %v", err)
	}
	regLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		regLn.Close()
		t.Fatal(err)
	}
	logs := &conformanceLog{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Env: env, Logger: log, ShutdownTimeout: 10 * time.Second,
			Listeners: map[string]net.Listener{"registry": regLn, "admin": adminLn},
			Ready:     func(_, _ net.Addr) { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server.Run did not return within 30s of cancellation")
		}
		if s := logs.String(); strings.Contains(s, "Basic ") || strings.Contains(s, "Authorization:") {
			t.Errorf("a credential reached the proxy's log")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server.Run returned before it was ready: %v\nlog:\n%s", err, logs.tail(40))
	case <-time.After(30 * time.Second):
		t.Fatalf("server.Run not ready after 30s\nlog:\n%s", logs.tail(40))
	}
	return regLn.Addr().String(), logs
}

// conformanceBinary returns the path of the suite's binary, building it with
// `go install <module>@<version>` into a temporary GOBIN (outside this
// module, so go.mod is neither read nor changed) on first use and caching
// it under os.UserCacheDir()/ecrgate-e2e. If the module cannot be fetched
// (no route to the module proxy) the test is skipped, or fails with CI=true.
func conformanceBinary(t *testing.T) string {
	t.Helper()
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		cacheRoot = os.TempDir()
	}
	cacheDir := filepath.Join(cacheRoot, "ecrgate-e2e")
	cached := filepath.Join(cacheDir, "oci-conformance-"+conformanceVersion)
	if st, err := os.Stat(cached); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o100 != 0 {
		t.Logf("conformance suite: cached %s", cached)
		return cached
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to install the conformance suite: %v", err)
	}
	gobin := t.TempDir()
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), conformanceInstallTimeout)
	defer cancel()
	target := conformanceModule + "@" + conformanceVersion
	cmd := exec.CommandContext(ctx, goTool, "install", target)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local",
		"CGO_ENABLED=0", "AWS_EC2_METADATA_DISABLED=true")
	cmd.WaitDelay = 5 * time.Second
	t.Logf("$ (cd %s && GOBIN=%s GOFLAGS=-mod=mod go install %s)", work, gobin, target)
	installStart := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", conformanceInstallTimeout, err)
	}
	if err != nil {
		msg := fmt.Sprintf("go install %s: %v\n%s", target, err, out)
		if conformanceFetchFailed(string(out)) || ctx.Err() != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("cannot fetch the OCI conformance suite (CI=true, so this is a failure, not a skip): %s", msg)
			}
			t.Skipf("cannot fetch the OCI conformance suite (module proxy unreachable?); set CI=true to make this fatal: %s", msg)
		}
		t.Fatal(msg)
	}
	built := filepath.Join(gobin, "conformance")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Logf("cache dir %s: %v; using the uncached binary", cacheDir, err)
		return built
	}
	if err := confCopyExecutable(built, cached); err != nil {
		t.Logf("cache the conformance binary: %v; using the uncached one", err)
		return built
	}
	t.Logf("conformance suite installed in %s and cached as %s", time.Since(installStart).Round(time.Millisecond), cached)
	return cached
}

// conformanceFetchFailed tells a download failure (no network, proxy down)
// from a build failure in go install's output.
var conformanceFetchRE = regexp.MustCompile(`(?i)dial tcp|no such host|connection refused|network is unreachable|i/o timeout|` +
	`TLS handshake timeout|proxyconnect|unrecognized import path|reading https?://|Get "https?://|module lookup disabled|GOPROXY=off`)

// conformanceURLRE finds the request paths in a transcript ("URL: http://host/v2/…?…").
var conformanceURLRE = regexp.MustCompile(`(?m)^URL: https?://[^/\s]+(/[^?\s]*)`)

func conformanceFetchFailed(out string) bool { return conformanceFetchRE.MatchString(out) }

// confCopyExecutable copies src to dst through a temporary file in dst's
// directory and a rename, so a concurrent run never sees half a binary.
func confCopyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// JUnit status values the suite writes (its junit.go).
const (
	conformancePassed  = "passed"
	conformanceSkipped = "skipped"
	conformanceFailure = "failure"
	conformanceError   = "error"
)

// conformanceCase is one test case of junit.xml.
type conformanceCase struct {
	Status  string // passed, skipped, failure or error
	Message string // the test's errors (the suite puts them in system-out)
	Output  string // the redacted request/response transcript (system-err)
}

// conformanceResults maps a test name to its cases in the order the suite
// ran them: a name repeats when a step runs once per blob or manifest.
type conformanceResults map[string][]conformanceCase

func conformanceIsFailure(c conformanceCase) bool {
	return c.Status != conformancePassed && c.Status != conformanceSkipped
}

func conformanceIsSkip(c conformanceCase) bool { return c.Status == conformanceSkipped }

func (r conformanceResults) counts() (passed, failed, skipped int) {
	for _, cs := range r {
		for _, c := range cs {
			switch {
			case c.Status == conformancePassed:
				passed++
			case conformanceIsSkip(c):
				skipped++
			default:
				failed++
			}
		}
	}
	return passed, failed, skipped
}

func (r conformanceResults) names() []string {
	names := make([]string, 0, len(r))
	for name := range r {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func (r conformanceResults) passes(name string) int {
	n := 0
	for _, c := range r[name] {
		if c.Status == conformancePassed {
			n++
		}
	}
	return n
}

// summary has one line per test name with cases that match: their status,
// how many of the name's cases match, and the first line of the first
// match's message.
func (r conformanceResults) summary(match func(conformanceCase) bool) string {
	var b strings.Builder
	for _, name := range r.names() {
		cs := r[name]
		var hit []conformanceCase
		for _, c := range cs {
			if match(c) {
				hit = append(hit, c)
			}
		}
		if len(hit) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s [%s %d/%d]: %s\n", name, hit[0].Status, len(hit), len(cs), confFirstLine(hit[0].Message))
	}
	return strings.TrimRight(b.String(), "\n")
}

// The part of the suite's junit.xml read here.
type conformanceJUnit struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name      string                `xml:"name,attr"`
			Status    string                `xml:"status,attr"`
			Skipped   *conformanceJUnitNote `xml:"skipped"`
			Failure   *conformanceJUnitNote `xml:"failure"`
			Error     *conformanceJUnitNote `xml:"error"`
			SystemOut string                `xml:"system-out"`
			SystemErr string                `xml:"system-err"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type conformanceJUnitNote struct {
	Message string `xml:"message,attr"`
	Data    string `xml:",chardata"`
}

// parseConformanceJUnit reads junit.xml into name → cases.
func parseConformanceJUnit(b []byte) (conformanceResults, error) {
	var doc conformanceJUnit
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse junit.xml: %w", err)
	}
	res := conformanceResults{}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			status := c.Status
			msg := strings.TrimSpace(c.SystemOut)
			for _, n := range []struct {
				note   *conformanceJUnitNote
				status string
			}{{c.Error, conformanceError}, {c.Failure, conformanceFailure}, {c.Skipped, conformanceSkipped}} {
				if n.note == nil {
					continue
				}
				if status == "" {
					status = n.status
				}
				if msg == "" {
					msg = strings.TrimSpace(n.note.Message + "\n" + n.note.Data)
				}
			}
			if status == "" {
				status = conformancePassed // JUnit: a test case with no child element passed
			}
			res[c.Name] = append(res[c.Name], conformanceCase{Status: status, Message: msg, Output: c.SystemErr})
		}
	}
	if len(res) == 0 {
		return nil, errors.New("junit.xml holds no test cases")
	}
	return res, nil
}

// runConformance runs the suite against registry (host:port, plain HTTP)
// with the given credentials (empty: anonymous) and returns junit.xml's
// results. The suite's exit status is ignored (it exits 1 on any failure);
// no junit.xml is fatal.
func runConformance(t *testing.T, bin, label, registry, user, pass string) conformanceResults {
	t.Helper()
	work := t.TempDir()
	results := filepath.Join(work, "results")
	if keep := os.Getenv("E2E_CONFORMANCE_KEEP"); keep != "" {
		results = filepath.Join(keep, label)
		if err := os.RemoveAll(results); err != nil {
			t.Fatal(err)
		}
	}
	env := append(baseEnv(t),
		"OCI_CONFIGURATION=", // no oci-conformance.yaml: the environment is the whole configuration
		"OCI_VERSION=1.1",
		"OCI_REGISTRY="+registry,
		"OCI_TLS=disabled",
		"OCI_REPO1="+conformanceRepo1,
		"OCI_REPO2="+conformanceRepo2,
		"OCI_USERNAME="+user,
		"OCI_PASSWORD="+pass,
		"OCI_RESULTS_DIR="+results,
		"OCI_LOG=warn",
		// Every API, as the emulator (distribution with delete enabled)
		// serves them all. ECR deletes manifests and tags; where a registry
		// answers a delete or an anonymous mount with one of the spec's
		// "unsupported" responses, the suite records a missing feature,
		// not a failure.
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
	)
	ctx, cancel := context.WithTimeout(context.Background(), conformanceRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = work
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	t.Logf("$ OCI_REGISTRY=%s OCI_TLS=disabled OCI_REPO1=%s OCI_REPO2=%s OCI_USERNAME=%s OCI_PASSWORD=%s OCI_RESULTS_DIR=%s %s",
		registry, conformanceRepo1, conformanceRepo2, user, confRedactNonEmpty(pass), results, bin)
	began := time.Now()
	err := cmd.Run()
	elapsed := time.Since(began).Round(time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("conformance (%s) timed out after %s\nstdout:\n%s\nstderr:\n%s", label, conformanceRunTimeout, confTailLines(stdout.String(), 60), confTailLines(stderr.String(), 40))
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("conformance (%s): %v\nstderr:\n%s", label, err, stderr.String())
	}
	t.Logf("conformance (%s) ran in %s (%v)", label, elapsed, confExitStatus(err))
	b, rerr := os.ReadFile(filepath.Join(results, "junit.xml"))
	if rerr != nil {
		t.Fatalf("conformance (%s) wrote no junit.xml (%v)\nstdout:\n%s\nstderr:\n%s", label, rerr, confTailLines(stdout.String(), 60), confTailLines(stderr.String(), 40))
	}
	res, perr := parseConformanceJUnit(b)
	if perr != nil {
		t.Fatalf("conformance (%s): %v", label, perr)
	}
	// The suite's own summary (stdout) and its warning per failed test
	// (stderr) repeat what junit.xml holds; kept only on request.
	if keep := os.Getenv("E2E_CONFORMANCE_KEEP"); keep != "" {
		_ = os.WriteFile(filepath.Join(results, "stdout.txt"), stdout.Bytes(), 0o644)
		_ = os.WriteFile(filepath.Join(results, "stderr.txt"), stderr.Bytes(), 0o644)
	}
	return res
}

func confExitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func confRedactNonEmpty(s string) string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// confFirstLine is the first line of s, at most 240 bytes.
func confFirstLine(s string) string {
	s = strings.TrimSpace(s)
	more := false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s, more = s[:i], true
	}
	if len(s) > 240 {
		s, more = s[:240], true
	}
	if more {
		s += " …"
	}
	return s
}

func confTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n… (%d more bytes)", len(s)-n)
}

func confIndent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

func confTailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
