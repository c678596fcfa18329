package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// errNoNginx is the proxy table's reason to skip the nginx rows.
var errNoNginx = errors.New("nginx not installed: apt-get install -y nginx")

// server is a long-running child process of the proxy table (ecrgate serve
// or nginx), listening on addr. Its peak RSS comes from /proc/<pid>/status
// (VmHWM), not from getrusage: see bench/spawn for why a child started from
// the bench inherits the bench's ru_maxrss.
type server struct {
	name    string
	cmd     *exec.Cmd
	addr    string // host:port of the registry (or pass-through) listener
	log     string // file receiving the process's output or error log
	exited  chan struct{}
	waitErr error
	stopSig os.Signal
	caCert  string // ecrgate serve in intercept mode: its CA certificate (PEM)
}

func (s *server) start() error {
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	s.exited = make(chan struct{})
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	return nil
}

// waitReady polls url until it answers with want, the process exits, or 30 s pass.
func (s *server) waitReady(ctx context.Context, url string, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited:
			return fmt.Errorf("%s exited (%v): %s", s.name, s.waitErr, s.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer %s with %d within 30 s: %s", s.name, url, want, s.tail())
}

// tail is the end of the process's log, for errors.
func (s *server) tail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(no log)"
	}
	t := strings.TrimSpace(string(b))
	if len(t) > 2000 {
		t = "…" + t[len(t)-2000:]
	}
	return t
}

// stop signals the process and waits for it (killing it after 20 s).
func (s *server) stop() {
	if s.exited == nil {
		return
	}
	_ = s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// alive reports an error if the process has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s exited (%v): %s", s.name, s.waitErr, s.tail())
	default:
		return nil
	}
}

// statusKiB reads a "Field:   N kB" line of /proc/<pid>/status (VmHWM, VmRSS).
func statusKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startEcrgate runs `ecrgate serve` with a config that sends the default
// registry to the emulator, and an environment holding nothing of the
// bench's own but PATH: the emulator's keys and endpoints, a temporary
// home, no instance metadata.
//
// With intercept, it first creates a local CA (`ecrgate ca init`) in
// <dir>/data/ecrgate/ca, the CA directory serve finds through
// XDG_DATA_HOME=<dir>/data, and adds an intercept listener to the config;
// the server's addr is then that listener (an HTTP proxy taking CONNECT)
// and caCert the CA certificate the client must trust.
func startEcrgate(ctx context.Context, bin, dir string, e *ecrfake.Emulator, extraEnv []string, intercept bool) (*server, error) {
	return startEcrgateWith(ctx, bin, dir, e, extraEnv, intercept, "")
}

// startEcrgateWith is startEcrgate with extraYAML appended to the config.
func startEcrgateWith(ctx context.Context, bin, dir string, e *ecrfake.Emulator, extraEnv []string, intercept bool, extraYAML string) (*server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	registry := registryHost(e.Account())
	cfg := fmt.Sprintf(`listen: %s
admin_listen: %s
log_level: warn
default_registry: %s
registries:
  - host: %s
    endpoint: %s
    api_endpoint: %s
`, listen, admin, registry, registry, e.URL(), e.URL()) + extraYAML
	var data, caCert, ilisten string
	if intercept {
		data = filepath.Join(dir, "data")
		caDir := filepath.Join(data, "ecrgate", "ca")
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		caInit := exec.CommandContext(ictx, bin, "ca", "init", "--dir", caDir)
		caInit.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + data, "AWS_EC2_METADATA_DISABLED=true"}
		out, err := caInit.CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ecrgate ca init --dir %s: %w\n%s", caDir, err, out)
		}
		caCert = filepath.Join(caDir, "ca.crt")
		if ilisten, err = freeAddr(); err != nil {
			return nil, err
		}
		cfg += fmt.Sprintf("intercept:\n  listen: %s\n", ilisten)
	}
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_CACHE_HOME=" + filepath.Join(dir, ".cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"),
		"XDG_STATE_HOME=" + filepath.Join(dir, ".local", "state"),
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "aws-credentials"),
	}
	if intercept {
		env = append(env, "XDG_DATA_HOME="+data)
	}
	env = append(env, e.Env()...)
	env = append(env, extraEnv...)
	if err := checkLoopback(env); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "ecrgate.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	s := &server{name: "ecrgate serve", cmd: cmd, addr: listen, log: logPath, stopSig: syscall.SIGTERM}
	if intercept {
		s.name, s.addr, s.caCert = "ecrgate serve (intercept)", ilisten, caCert
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, "http://"+admin+"/healthz", http.StatusOK); err != nil {
		s.stop()
		return nil, err
	}
	if intercept {
		// A plain GET is not a proxy request: the listener answers 400.
		if err := s.waitReady(ctx, "http://"+ilisten+"/", http.StatusBadRequest); err != nil {
			s.stop()
			return nil, fmt.Errorf("intercept listener: %w", err)
		}
	}
	return s, nil
}

// findNginx returns the nginx binary: the flag's, else nginx on PATH or in
// the usual sbin directories (often not on a user's PATH).
func findNginx(given string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("%w (-nginx %s: %v)", errNoNginx, given, err)
		}
		return given, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errNoNginx
}

func nginxVersion(ctx context.Context, bin string) string {
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(vctx, bin, "-v").CombinedOutput() // "nginx version: nginx/1.22.1" on stderr
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version:"))
	if v == "" {
		return "(version unknown)"
	}
	return v
}

// nginxConf is a plain pass-through reverse proxy to the emulator: request
// and response bodies streamed (no buffering, no size limit), HTTP/1.1 with
// kept-alive upstream connections, and the client's Host passed on so the
// upload URLs the emulator hands out point back at nginx.
const nginxConf = `# ecrgate bench: nginx as a plain pass-through proxy in front of the ECR emulator
worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
%[4]s
events { worker_connections 1024; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream emulator {
		server %[3]s;
		keepalive 32;
	}
	server {
		listen %[2]s;
		client_max_body_size 0;
		location / {
			proxy_pass http://emulator;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $http_host;
			proxy_request_buffering off;
			proxy_buffering off;
			proxy_read_timeout 600s;
			proxy_send_timeout 600s;
		}
	}
}
`

// startNginx runs nginx in the foreground with its own prefix, config and
// logs under dir, listening on a free loopback port, in front of upstream.
func startNginx(ctx context.Context, bin, dir, upstream string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx's workers would switch to a user that cannot
		// write the temporary directories; stay root (loopback only).
		user = "user root;"
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, listen, upstream, user)), 0o644); err != nil {
		return nil, err
	}
	errLog := filepath.Join(dir, "error.log")
	// -e: the error log before the config is read (else /var/log/nginx).
	cmd := exec.Command(bin, "-p", dir+"/", "-c", conf, "-e", errLog)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Dir = dir
	outPath := filepath.Join(dir, "stderr.log")
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	s := &server{name: "nginx", cmd: cmd, addr: listen, log: errLog, stopSig: syscall.SIGQUIT}
	if err := s.start(); err != nil {
		return nil, err
	}
	// The emulator answers an anonymous /v2/ with 401: nginx is passing through.
	if err := s.waitReady(ctx, "http://"+listen+"/v2/", http.StatusUnauthorized); err != nil {
		s.stop()
		b, _ := os.ReadFile(outPath)
		return nil, fmt.Errorf("%w (stderr: %s)", err, strings.TrimSpace(string(b)))
	}
	return s, nil
}

// ecrgateVersion is what `ecrgate --version` says ("ecrgate version <v>").
func ecrgateVersion(ctx context.Context, bin string) string {
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(vctx, bin, "--version")
	cmd.Env = []string{"HOME=" + os.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}
	out, err := cmd.Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) == 0 {
		return "(version unknown)"
	}
	return f[len(f)-1]
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// cpuTime is the user+system CPU time of process pid, all its threads.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ')' are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// children are the pids whose parent is pid (nginx's workers).
func children(pid int) []int {
	des, _ := os.ReadDir("/proc")
	var out []int
	for _, de := range des {
		c, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + de.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if f := strings.Fields(string(b[i+1:])); i > 0 && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// cpu is the CPU time the server's processes (nginx: master and workers) used so far.
func (s *server) cpu() (time.Duration, error) {
	pids := append([]int{s.cmd.Process.Pid}, children(s.cmd.Process.Pid)...)
	var sum time.Duration
	for _, p := range pids {
		d, err := cpuTime(p)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// startPassthrough builds bench/passthrough into dir and runs it in front
// of upstream (host:port).
func startPassthrough(ctx context.Context, dir, upstream string, extraEnv []string) (*server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("build bench/passthrough: the go command is not on PATH: %w", err)
	}
	bin := filepath.Join(dir, "passthrough")
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/ecrgate/ecrgate/bench/passthrough")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build bench/passthrough: %w\n%s", err, out)
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "passthrough.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-listen", listen, "-upstream", "http://"+upstream)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, extraEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	s := &server{name: "passthrough", cmd: cmd, addr: listen, log: logPath, stopSig: syscall.SIGTERM}
	if err := s.start(); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, "http://"+listen+"/v2/", http.StatusUnauthorized); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}
