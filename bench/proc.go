package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sample is one `get` of one helper process.
type sample struct {
	wall     time.Duration
	rssKiB   int64 // peak resident set size (getrusage ru_maxrss, KiB on Linux)
	ok       bool  // exit 0 and a well-formed {"Username":"AWS","Secret":…}
	timedOut bool
	out      string // stdout and stderr, for failures and the no-credentials notes
}

// spawner starts helper processes through the small launcher in
// bench/spawn, which measures them (see there why not from the bench).
type spawner struct {
	bin string
}

// buildSpawner builds bench/spawn into dir.
func buildSpawner(ctx context.Context, dir string) (*spawner, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("build the launcher: the go command is not on PATH: %w", err)
	}
	bin := filepath.Join(dir, "spawn")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/ecrgate/ecrgate/bench/spawn")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the launcher bench/spawn: %w\n%s", err, out)
	}
	return &spawner{bin: bin}, nil
}

// spawnReport mirrors bench/spawn's Report.
type spawnReport struct {
	BatchNS int64 `json:"batch_ns"`
	Results []struct {
		WallNS   int64  `json:"wall_ns"`
		MaxRSS   int64  `json:"maxrss_kib"`
		Exit     int    `json:"exit"`
		TimedOut bool   `json:"timed_out"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
		Err      string `json:"err"`
		StartErr string `json:"start_err"`
	} `json:"results"`
}

// run starts `<bin> <arg>` once per host, all at once, with exactly env,
// each capped at timeout, and returns the samples and the batch wall time.
func (s *spawner) run(ctx context.Context, bin, arg string, env []string, hosts []string, timeout time.Duration) ([]sample, time.Duration, error) {
	// The launcher's own cap is the real one; this one only guards against a stuck launcher.
	cctx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	args := append([]string{"-bin", bin, "-arg", arg, "-timeout", timeout.String(), "--"}, hosts...)
	cmd := exec.CommandContext(cctx, s.bin, args...)
	cmd.Env = env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("launcher: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var rep spawnReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, 0, fmt.Errorf("launcher output: %w", err)
	}
	if len(rep.Results) != len(hosts) {
		return nil, 0, fmt.Errorf("launcher reported %d processes, want %d", len(rep.Results), len(hosts))
	}
	samples := make([]sample, len(rep.Results))
	for i, r := range rep.Results {
		if r.StartErr != "" {
			return nil, 0, fmt.Errorf("start %s: %s", bin, r.StartErr)
		}
		s := sample{wall: time.Duration(r.WallNS), rssKiB: r.MaxRSS, timedOut: r.TimedOut,
			out: strings.TrimSpace(strings.TrimSpace(r.Stdout) + "\n" + strings.TrimSpace(r.Stderr))}
		if r.Exit == 0 && !r.TimedOut {
			var got struct{ ServerURL, Username, Secret string }
			s.ok = json.Unmarshal([]byte(r.Stdout), &got) == nil && got.Username == "AWS" && got.Secret != ""
		}
		samples[i] = s
	}
	return samples, time.Duration(rep.BatchNS), nil
}

// getOnce runs one `get` for host and measures it.
func (s *spawner) getOnce(ctx context.Context, bin string, env []string, host string, timeout time.Duration) (sample, error) {
	xs, _, err := s.run(ctx, bin, "get", env, []string{host}, timeout)
	if err != nil {
		return sample{}, err
	}
	return xs[0], nil
}

// floor is the peak RSS the launcher itself passes on to a trivial child:
// helper figures near it say little.
func (s *spawner) floor(ctx context.Context) (int64, error) {
	tr, err := exec.LookPath("true")
	if err != nil {
		return 0, err
	}
	xs, _, err := s.run(ctx, tr, "get", []string{"AWS_EC2_METADATA_DISABLED=true"}, []string{"-"}, 10*time.Second)
	if err != nil {
		return 0, err
	}
	return xs[0].rssKiB, nil
}

// blackhole is a loopback TCP listener that accepts connections and never
// answers: the instance-metadata endpoint of a machine without credentials
// whose metadata service hangs.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	n     int
}

func newBlackhole() (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &blackhole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.n++
			b.mu.Unlock()
		}
	}()
	return b, nil
}

func (b *blackhole) URL() string { return "http://" + b.ln.Addr().String() }

// Accepted is how many connections were accepted so far.
func (b *blackhole) Accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (b *blackhole) Close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

// checkLoopback refuses an environment that could make a helper reach
// anything but loopback: every AWS endpoint must be a 127.0.0.0/8 URL, and
// instance metadata must be disabled or pointed at loopback.
func checkLoopback(env []string) error {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	for k, v := range m {
		if !strings.HasPrefix(k, "AWS_ENDPOINT_URL") && k != "AWS_EC2_METADATA_SERVICE_ENDPOINT" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", k, v, err)
		}
		ip := net.ParseIP(u.Hostname())
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return fmt.Errorf("%s=%q is not a 127.0.0.0/8 address", k, v)
		}
	}
	if m["AWS_EC2_METADATA_DISABLED"] != "true" && m["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == "" {
		return errors.New("instance metadata is neither disabled nor pointed at loopback")
	}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		if m[k] != "" {
			return fmt.Errorf("%s must not be set", k)
		}
	}
	return nil
}
