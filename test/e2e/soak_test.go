//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

const (
	// soakDefaultPushes is the soak's size unless ECRGATE_SOAK_PUSHES says otherwise.
	soakDefaultPushes = 500
	// soakWarmup pushes come before the reference measurements.
	soakWarmup  = 50
	soakRepos   = 20
	soakPushers = 16
	// soakRSSGrowth is how much the serve process's RSS may grow from the end
	// of the warm-up to the end of the soak.
	soakRSSGrowth = 0.10
	// soakGoroutineSlack is how many more goroutines the serve process may
	// run at the end than after the warm-up, both measured once every client
	// connection is closed. Its upstream pool (Go's default, two idle
	// connections per host) and the AWS SDK's keep a few connections open
	// either way; a leak per push or per request would be hundreds.
	soakGoroutineSlack = 8
)

// soakServe is a running `bin/ecrgate serve`.
type soakServe struct {
	listen, admin string
	pid           int
	logPath       string
}

// startSoakServe runs bin/ecrgate serve (the built binary, not under the
// race detector) against e, logging at info, and stops it with SIGTERM at
// cleanup; it must exit 0.
func startSoakServe(t *testing.T, e *ecrfake.Emulator) *soakServe {
	t.Helper()
	bin := binDir(t)
	dir := t.TempDir()
	s := &soakServe{listen: freePort(t), admin: freePort(t), logPath: filepath.Join(dir, "serve.log")}
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	cfg := fmt.Sprintf("listen: %s\nadmin_listen: %s\nlog_level: info\naudit_log: %s\ndefault_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		s.listen, s.admin, filepath.Join(dir, "audit.jsonl"), registry, registry, e.URL())
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "ecrgate"), "serve", "--config", cfgPath)
	cmd.Env = append(baseEnv(t), e.Env()...)
	cmd.Env = append(cmd.Env, "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ecrgate serve exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("ecrgate serve did not stop within 30s of SIGTERM")
		}
		logf.Close()
		b, _ := os.ReadFile(s.logPath)
		if strings.Contains(string(b), "Basic ") {
			t.Errorf("a credential reached ecrgate's log")
		}
		if t.Failed() {
			t.Logf("ecrgate serve log (last 8 KiB):\n%s", tail(b, 8<<10))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err := s.goroutines(ctx); err == nil {
			return s
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(s.logPath)
			t.Fatalf("ecrgate serve did not answer on its admin listener:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// adminClient scrapes the admin listener without keeping a connection
// (and so a goroutine of the serve process) open between scrapes.
var adminClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// goroutines reads go_goroutines from the serve process's /metrics.
func (s *soakServe) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("go_goroutines %q: %w", v, err)
			}
			return int(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/metrics has no go_goroutines")
}

// rssKiB reads VmRSS of the serve process from /proc.
func (s *soakServe) rssKiB() (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// soakSample is the serve process at rest.
type soakSample struct {
	goroutines int
	rssKiB     int // the largest of a few samples
}

// settle waits, once the clients have closed their connections, until the
// serve process's goroutine count has not changed for a second (at most
// 15 s), then samples RSS a few times and keeps the largest. Nothing is
// forced in the process: no GC, no freeing of memory.
func (s *soakServe) settle(t *testing.T) soakSample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	last, stableSince := -1, time.Now()
wait:
	for {
		n, err := s.goroutines(ctx)
		if err != nil {
			t.Fatalf("read the serve process's goroutines: %v", err)
		}
		if n != last {
			last, stableSince = n, time.Now()
		} else if time.Since(stableSince) >= time.Second {
			break
		}
		select {
		case <-ctx.Done():
			t.Logf("goroutine count still moving after 15s; last %d", last)
			break wait
		case <-time.After(200 * time.Millisecond):
		}
	}
	out := soakSample{goroutines: last}
	for range 5 {
		kib, err := s.rssKiB()
		if err != nil {
			t.Fatalf("read the serve process's RSS: %v", err)
		}
		out.rssKiB = max(out.rssKiB, kib)
		time.Sleep(200 * time.Millisecond)
	}
	return out
}

func soakPushes(t *testing.T) int {
	t.Helper()
	v := os.Getenv("ECRGATE_SOAK_PUSHES")
	if v == "" {
		return soakDefaultPushes
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < soakWarmup+soakRepos {
		t.Fatalf("ECRGATE_SOAK_PUSHES=%q: want a number of at least %d", v, soakWarmup+soakRepos)
	}
	return n
}

// emulatorPassword gets a registry password for e's default account
// straight from its GetAuthorizationToken.
func emulatorPassword(t *testing.T, e *ecrfake.Emulator) string {
	t.Helper()
	c := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	out, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
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

// soakRef is the i-th push's reference on host: repositories soak/r00 to
// soak/r19 in turn, so the warm-up touches (and creates) every one.
func soakRef(host string, i int) string {
	return fmt.Sprintf("%s/soak/r%02d:p%04d", host, i%soakRepos, i)
}

// runParallel runs f(i) for i in [from, to) on n workers and returns the
// errors (nil where f succeeded).
func runParallel(from, to, n int, f func(i int) error) []error {
	errs := make([]error, to-from)
	next := atomic.Int64{}
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				errs[i-from] = f(i)
			}
		})
	}
	wg.Wait()
	return errs
}

// readBlobs reads img's config and layers; go-containerregistry checks
// each against its digest as it reads.
func readBlobs(img v1.Image) error {
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
	}
	return nil
}

func countFailures(t *testing.T, what string, errs []error) int {
	t.Helper()
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
			if n <= 5 {
				t.Errorf("%s: %v", what, err)
			}
		}
	}
	return n
}

// TestSoakPushThroughServe pushes ECRGATE_SOAK_PUSHES (default 500) small
// distinct images, 16 at a time, over 20 repositories that do not exist
// yet, through the real `ecrgate serve`. Every push must succeed, each
// repository must be created exactly once, the serve process's RSS at the
// end must be within 10% of its RSS after the warm-up and its goroutine
// count back where it was, and every image pulled back (through the proxy
// and straight from the emulator) must have the digest that was pushed.
func TestSoakPushThroughServe(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	total := soakPushes(t)
	e := ecrfake.Start(t, ecrfake.Options{})
	s := startSoakServe(t, e)
	start := s.settle(t)

	// One client transport, so connections are reused as a pusher would;
	// closing its idle connections lets the serve process's side end.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = soakPushers
	t.Cleanup(tr.CloseIdleConnections)
	opts := []remote.Option{remote.WithTransport(tr)}

	digests := make([]v1.Hash, total)
	push := func(i int) error {
		img, err := random.Image(3<<10, 2)
		if err != nil {
			return err
		}
		if digests[i], err = img.Digest(); err != nil {
			return err
		}
		ref, err := name.ParseReference(soakRef(s.listen, i), name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		return nil
	}

	began := time.Now()
	failures := countFailures(t, "warm-up", runParallel(0, soakWarmup, soakPushers, push))
	warmWall := time.Since(began)
	tr.CloseIdleConnections()
	warm := s.settle(t)

	began = time.Now()
	failures += countFailures(t, "soak", runParallel(soakWarmup, total, soakPushers, push))
	wall := warmWall + time.Since(began)
	tr.CloseIdleConnections()
	end := s.settle(t)

	growth := float64(end.rssKiB-warm.rssKiB) / float64(warm.rssKiB)
	t.Logf("soak: pushes=%d repositories=%d concurrency=%d failures=%d wall=%s pushes/s=%.1f rss_after_warmup=%dKiB rss_end=%dKiB (%+.1f%%) goroutines start=%d after_warmup=%d end=%d CreateRepository=%d",
		total, soakRepos, soakPushers, failures, wall.Round(time.Millisecond), float64(total)/wall.Seconds(),
		warm.rssKiB, end.rssKiB, 100*growth, start.goroutines, warm.goroutines, end.goroutines, e.Calls("CreateRepository"))

	if failures != 0 {
		t.Errorf("%d of %d pushes failed", failures, total)
	}
	if n := e.Calls("CreateRepository"); n != soakRepos {
		t.Errorf("CreateRepository calls = %d, want %d (one per new repository)", n, soakRepos)
	}
	for r := range soakRepos {
		if _, ok := e.Repository("", fmt.Sprintf("soak/r%02d", r)); !ok {
			t.Errorf("repository soak/r%02d was not created", r)
		}
	}
	if growth > soakRSSGrowth {
		t.Errorf("serve RSS grew %.1f%% from %d KiB after the warm-up to %d KiB at the end, want at most %.0f%%",
			100*growth, warm.rssKiB, end.rssKiB, 100*soakRSSGrowth)
	}
	if end.goroutines > warm.goroutines+soakGoroutineSlack {
		t.Errorf("serve goroutines %d at the end, %d after the warm-up (slack %d): a leak",
			end.goroutines, warm.goroutines, soakGoroutineSlack)
	}
	if failures != 0 {
		return // the pulls would only repeat the failures
	}

	// Every image back, by tag: in full through the proxy (manifest, config
	// and layers checked against their digests), and its manifest straight
	// from the emulator.
	direct := []remote.Option{remote.WithTransport(tr),
		remote.WithAuth(&authn.Basic{Username: "AWS", Password: emulatorPassword(t, e)})}
	pull := func(i int) error {
		ref, err := name.ParseReference(soakRef(s.listen, i), name.Insecure)
		if err != nil {
			return err
		}
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			return fmt.Errorf("pull %s through the proxy: %w", ref, err)
		}
		if desc.Digest != digests[i] {
			return fmt.Errorf("pull %s through the proxy: digest %s, pushed %s", ref, desc.Digest, digests[i])
		}
		img, err := desc.Image()
		if err != nil {
			return fmt.Errorf("pull %s through the proxy: %w", ref, err)
		}
		if err := readBlobs(img); err != nil {
			return fmt.Errorf("pull %s through the proxy: %w", ref, err)
		}
		up, err := name.ParseReference(soakRef(e.Host(), i), name.Insecure)
		if err != nil {
			return err
		}
		desc, err = remote.Get(up, direct...)
		if err != nil {
			return fmt.Errorf("pull %s from the emulator: %w", up, err)
		}
		if desc.Digest != digests[i] {
			return fmt.Errorf("pull %s from the emulator: digest %s, pushed %s", up, desc.Digest, digests[i])
		}
		return nil
	}
	began = time.Now()
	pullFailures := countFailures(t, "pull", runParallel(0, total, soakPushers, pull))
	t.Logf("soak: pulled %d images back through the proxy and from the emulator in %s: %d failures",
		total, time.Since(began).Round(time.Millisecond), pullFailures)
}
