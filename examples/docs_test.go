// Package examples_test checks the files a newcomer follows to set ecrgate
// up, against the code they drive: the systemd units, the launchd plist,
// the GitHub Actions workflow, and every ecrgate command line in the set-up
// READMEs. A flag renamed in pkg/cli, a socket name changed in pkg/server or
// a binary renamed in the Makefile fails here, not on a user's machine.
package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecrgate/ecrgate/pkg/cli"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/credhelper"
	"github.com/ecrgate/ecrgate/pkg/listen"
)

// root is the repository, seen from this package's directory.
const root = ".."

// TestMain doubles as "ecrgate serve" started by systemd: see
// TestSocketUnitsActivateServe.
func TestMain(m *testing.M) {
	if os.Getenv("ECRGATE_EXAMPLES_CHILD") == "serve" {
		os.Exit(childServe())
	}
	os.Exit(m.Run())
}

// childServe runs the ecrgate command line in ECRGATE_EXAMPLES_ARGS as the
// process systemd activated: LISTEN_PID names this process, as systemd sets
// it between fork and exec.
func childServe() int {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := cli.Execute(ctx, strings.Split(os.Getenv("ECRGATE_EXAMPLES_ARGS"), "\x1f"), os.Stdout, os.Stderr); err != nil {
		return 1
	}
	return 0
}

// needTool returns the path of a program, skipping the test when it is
// missing, except in CI, where .ci/run installs it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: .ci/run installs it", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// defaults is the configuration ecrgate runs with when there is no file.
func defaults(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Load("", []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkEcrgateArgs fails unless args (without the program name) is an
// ecrgate command line: with --help appended, cobra resolves the
// subcommand and parses every flag, but runs nothing.
func checkEcrgateArgs(t *testing.T, where string, args []string) {
	t.Helper()
	var stderr bytes.Buffer
	if err := cli.Execute(context.Background(), append(slices.Clone(args), "--help"), io.Discard, &stderr); err != nil {
		t.Errorf("%s: \"ecrgate %s\" is not an ecrgate command line: %v", where, strings.Join(args, " "), err)
	}
}

// ---------------------------------------------------------------------------
// Shell scripts: the ecrgate commands in READMEs and workflow steps.

var (
	redirect = regexp.MustCompile(`\s\d*(>>?|<<?-?)&?\s*('[^']*'|"[^"]*"|\S+)`)
	heredoc  = regexp.MustCompile(`<<-?\s*['"]?(\w+)['"]?`)
)

// command is one simple command of a script: its words, quotes removed,
// variables not expanded; heredoc is the body fed to it, if any.
type command struct {
	words   []string
	heredoc string
	raw     string // the whole line
	line    int
}

// name returns the base name of the program a command runs, after sudo,
// nohup, env and VAR=value prefixes, and the index of its first argument.
func (c command) name() (string, int) {
	for i, w := range c.words {
		if w == "sudo" || w == "nohup" || w == "env" || w == "exec" || strings.Contains(w, "=") && !strings.HasPrefix(w, "-") {
			continue
		}
		return path.Base(w), i + 1
	}
	return "", len(c.words)
}

// commands splits a shell script into simple commands. It knows comments,
// line continuations, pipes, lists, redirections, heredocs and $(…)/<(…);
// enough for the scripts in this repository, not a shell.
func commands(script string) []command {
	var out []command
	lines := strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if j := strings.Index(line, " #"); j >= 0 {
			line = line[:j]
		}
		raw := line
		var body string
		if m := heredoc.FindStringSubmatch(line); m != nil {
			var b strings.Builder
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != m[1]; i++ {
				b.WriteString(lines[i] + "\n")
			}
			body = b.String()
		}
		line = strings.NewReplacer("$(", ";", "<(", ";", ")", ";").Replace(" " + line)
		line = redirect.ReplaceAllString(line, " ")
		for _, seg := range splitList(line) {
			if w := shellWords(seg); len(w) > 0 {
				out = append(out, command{words: w, heredoc: body, raw: raw, line: i + 1})
			}
		}
	}
	return out
}

// splitList splits a command line at unquoted |, & and ;.
func splitList(s string) []string {
	var segs []string
	in, start := rune(0), 0
	for i, r := range s {
		switch {
		case in != 0:
			if r == in {
				in = 0
			}
		case r == '\'' || r == '"':
			in = r
		case r == '|' || r == '&' || r == ';':
			segs = append(segs, s[start:i])
			start = i + 1
		}
	}
	return append(segs, s[start:])
}

// shellWords splits s at unquoted blanks and removes the quotes.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, started := rune(0), false
	for _, r := range s {
		switch {
		case in != 0 && r == in:
			in = 0
		case in != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			in, started = r, true
		case r == ' ' || r == '\t':
			if started {
				words = append(words, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if started {
		words = append(words, cur.String())
	}
	return words
}

func TestCommands(t *testing.T) {
	got := commands(`# a comment
sudo ecrgate ca install --dir ~/x   # why
ECRGATE_CONFIG=./e.yaml ecrgate config check && nohup ecrgate serve > "$T/log" 2>&1 &
source <(ecrgate completion bash)
ecrgate setup docker \
  --dry-run
cat > ~/.config/ecrgate/config.yaml <<'YAML'
default_registry: x
ecrgate inside a heredoc is data
YAML
echo 1.2.3.4 | docker-credential-ecrgate get
sed "s|a|b|g" x && grep -E 'a|b' y`)
	var lines []string
	for _, c := range got {
		lines = append(lines, strings.Join(c.words, " "))
	}
	want := []string{"sudo ecrgate ca install --dir ~/x", "ECRGATE_CONFIG=./e.yaml ecrgate config check", "nohup ecrgate serve",
		"source", "ecrgate completion bash", "ecrgate setup docker --dry-run", "cat", "echo 1.2.3.4", "docker-credential-ecrgate get",
		"sed s|a|b|g x", "grep -E a|b y"}
	if !slices.Equal(lines, want) {
		t.Errorf("commands:\n got %q\nwant %q", lines, want)
	}
	if got[6].heredoc != "default_registry: x\necrgate inside a heredoc is data\n" {
		t.Errorf("heredoc: %q", got[6].heredoc)
	}
	if n, i := got[2].name(); n != "ecrgate" || i != 2 {
		t.Errorf("name of %q: %q %d", got[2].words, n, i)
	}
}

// binaries maps each cmd/ directory to the binary name `make build` gives
// it (go install would name it after the directory).
func binaries(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	re := regexp.MustCompile(`-o bin/(\S+) \./cmd/(\S+)`)
	for _, s := range re.FindAllStringSubmatch(readFile(t, "Makefile"), -1) {
		m[s[2]] = s[1]
	}
	if m["proxy"] != "ecrgate" || m["credhelper"] != "docker-credential-ecrgate" {
		t.Fatalf("Makefile builds %v", m)
	}
	return m
}

func modulePath(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, "go.mod"), "\n") {
		if m, ok := strings.CutPrefix(line, "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// scriptCheck checks the ecrgate-related commands of one script.
type scriptCheck struct {
	t       *testing.T
	where   string
	env     map[string]string // for heredoc bodies and docker push targets
	ecrgate [][]string        // every ecrgate command line seen
	configs int               // config files written by heredocs
	pushes  []string          // docker push targets, variables expanded
}

func (s *scriptCheck) expand(v string) string {
	return os.Expand(v, func(k string) string {
		if val, ok := s.env[k]; ok {
			return val
		}
		return "$" + k
	})
}

func (s *scriptCheck) run(script string) {
	t := s.t
	t.Helper()
	bins := binaries(t)
	mod := modulePath(t)
	cmds := commands(script)
	for i, c := range cmds {
		where := fmt.Sprintf("%s, line %d", s.where, c.line)
		name, first := c.name()
		args := c.words[first:]
		switch {
		case name == "ecrgate":
			checkEcrgateArgs(t, where, args)
			s.ecrgate = append(s.ecrgate, args)
		case name == "docker-credential-ecrgate":
			code, info := credhelper.Info(args, io.Discard)
			protocol := len(args) == 1 && slices.Contains([]string{"get", "store", "erase", "list"}, args[0])
			if !protocol && (!info || code != 0) {
				t.Errorf("%s: docker-credential-ecrgate has no action %q", where, strings.Join(args, " "))
			}
		case name == "go" && len(args) > 0 && args[0] == "install":
			for _, a := range args[1:] {
				pkg, _, ok := strings.Cut(a, "@")
				dir, mine := strings.CutPrefix(pkg, mod+"/cmd/")
				if !ok || !mine {
					continue
				}
				want := bins[dir]
				if want == "" {
					t.Errorf("%s: go install %s: the Makefile builds no binary from ./cmd/%s", where, a, dir)
					continue
				}
				if !renamed(cmds[i+1:], dir, want) {
					t.Errorf("%s: go install %s installs %q, but the script never renames it to %q", where, a, dir, want)
				}
			}
		case name == "docker" && len(args) > 1 && args[0] == "push":
			s.pushes = append(s.pushes, s.expand(args[len(args)-1]))
		case name == "cat" && strings.Contains(c.raw, "config.yaml") && c.heredoc != "":
			s.configs++
			s.config(where, s.expand(c.heredoc))
		}
	}
}

// renamed reports whether one of cmds moves a file named from to one named to.
func renamed(cmds []command, from, to string) bool {
	for _, c := range cmds {
		if n, i := c.name(); n == "mv" && len(c.words) == i+2 &&
			path.Base(c.words[i]) == from && path.Base(c.words[i+1]) == to {
			return true
		}
	}
	return false
}

// config checks a config file written by a heredoc.
func (s *scriptCheck) config(where, body string) {
	t := s.t
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(p, []string{"HOME=" + dir}); err != nil {
		t.Errorf("%s: the config it writes is invalid: %v\n%s", where, err, body)
	}
}

// shellBlocks returns the ```sh blocks of a markdown file with the line
// each starts on.
func shellBlocks(md string) (blocks []string, lines []int) {
	sc := bufio.NewScanner(strings.NewReader(md))
	var cur *strings.Builder
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case cur == nil && (l == "```sh" || l == "```bash"):
			cur = &strings.Builder{}
			lines = append(lines, n+1)
		case cur != nil && l == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	return blocks, lines
}

// TestReadmeCommands checks every ecrgate and docker-credential-ecrgate
// command in the set-up documentation, and the configs they write.
func TestReadmeCommands(t *testing.T) {
	total, configs := 0, 0
	for _, f := range []string{"README.md", "systemd/README.md", "launchd/README.md"} {
		blocks, lines := shellBlocks(readFile(t, f))
		if len(blocks) == 0 {
			t.Errorf("%s: no sh blocks", f)
		}
		for i, b := range blocks {
			s := &scriptCheck{t: t, where: fmt.Sprintf("%s:%d (block)", f, lines[i])}
			s.run(b)
			total += len(s.ecrgate)
			configs += s.configs
		}
	}
	if total < 25 {
		t.Errorf("found only %d ecrgate command lines in the READMEs; the scanner lost some", total)
	}
	if configs < 2 {
		t.Errorf("checked %d configs written by the READMEs, want at least 2", configs)
	}
}

// ---------------------------------------------------------------------------
// systemd

// unit is a parsed systemd unit file: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, rel string) unit {
	t.Helper()
	u := unit{}
	section := ""
	for i, line := range strings.Split(readFile(t, rel), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: %q outside a section", rel, i+1, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: %q is not key=value", rel, i+1, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %d values %q, want one", section, key, len(v), v)
	}
	return v[0]
}

// makeInstallPath is where `make install` puts name with the default PREFIX.
func makeInstallPath(t *testing.T, name string) string {
	t.Helper()
	mk := readFile(t, "Makefile")
	m := regexp.MustCompile(`(?m)^PREFIX\s*\?=\s*(\S+)`).FindStringSubmatch(mk)
	if m == nil || !strings.Contains(mk, "$(DESTDIR)$(BINDIR)/"+name+"\n") || !strings.Contains(mk, "BINDIR   ?= $(PREFIX)/bin") {
		t.Fatalf("cannot tell from the Makefile where make install puts %s", name)
	}
	return m[1] + "/bin/" + name
}

var socketUnits = []string{"ecrgate.socket", "ecrgate-admin.socket"}

func TestSystemdUnits(t *testing.T) {
	cfg := defaults(t)
	svc := parseUnit(t, "systemd/ecrgate.service")
	exec := strings.Fields(svc.one(t, "Service", "ExecStart"))
	if want := makeInstallPath(t, "ecrgate"); exec[0] != want {
		t.Errorf("ExecStart runs %s, but make install puts ecrgate at %s", exec[0], want)
	}
	checkEcrgateArgs(t, "ecrgate.service ExecStart", exec[1:])
	if exec[1] != "serve" {
		t.Errorf("ExecStart runs ecrgate %s, want serve", exec[1])
	}
	// ecrgate serve tells systemd when it is ready (pkg/sdnotify).
	if typ := svc.one(t, "Service", "Type"); typ != "notify" {
		t.Errorf("Type=%s, want notify", typ)
	}

	want := map[string]string{"registry": cfg.Listen, "admin": cfg.AdminListen}
	got := map[string]string{}
	for _, f := range socketUnits {
		s := parseUnit(t, "systemd/"+f)
		name := s.one(t, "Socket", "FileDescriptorName")
		addr := s.one(t, "Socket", "ListenStream")
		got[name] = addr
		if err := listen.CheckLoopback(addr); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if svc := s.one(t, "Socket", "Service"); svc != "ecrgate.service" {
			t.Errorf("%s: Service=%s", f, svc)
		}
	}
	// The addresses the sockets hold are ecrgate's defaults, so the docs
	// (localhost:5000, /healthz on 5002) hold with and without activation.
	if !maps(got, want) {
		t.Errorf("socket units listen on %v; ecrgate's defaults are %v", got, want)
	}

	// dockerd's proxy is ecrgate's default intercept listener, and loopback
	// (the registry-mode listener, the emulator) is not proxied.
	drop := parseUnit(t, "systemd/docker.service.d/ecrgate-proxy.conf")
	env := map[string]string{}
	for _, e := range drop["Service"]["Environment"] {
		k, v, _ := strings.Cut(strings.Trim(e, `"`), "=")
		env[k] = v
	}
	u, err := url.Parse(env["HTTPS_PROXY"])
	if err != nil || u.Scheme != "http" || u.Host != cfg.Intercept.Listen {
		t.Errorf("HTTPS_PROXY=%q; ecrgate's intercept listener is http://%s", env["HTTPS_PROXY"], cfg.Intercept.Listen)
	}
	for _, h := range []string{"localhost", "127.0.0.0/8"} {
		if !slices.Contains(strings.Split(env["NO_PROXY"], ","), h) {
			t.Errorf("NO_PROXY=%q lacks %s", env["NO_PROXY"], h)
		}
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSocketUnitsActivateServe hands sockets named as in the .socket units
// to a real `ecrgate serve` process the way systemd does (descriptors 3, 4,
// LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID) and checks it serves on them. The
// config asks for other ports, so ecrgate answering there proves it took
// the sockets by their names.
func TestSocketUnitsActivateServe(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no socket activation on Windows")
	}
	svc := parseUnit(t, "systemd/ecrgate.service")
	args := strings.Fields(svc.one(t, "Service", "ExecStart"))[1:]

	var names []string
	var files []*os.File
	addrs := map[string]string{}
	for _, f := range socketUnits {
		name := parseUnit(t, "systemd/"+f).one(t, "Socket", "FileDescriptorName")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		file, err := ln.(*net.TCPListener).File()
		ln.Close() // the duplicate in file keeps the socket listening
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		names = append(names, name)
		files = append(files, file)
		addrs[name] = ln.Addr().String()
	}

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	cfgText := fmt.Sprintf("default_registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com\nlisten: %s\nadmin_listen: %s\n", freeAddr(t), freeAddr(t))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "LISTEN_") || strings.HasPrefix(k, "ECRGATE_") || strings.HasPrefix(k, "XDG_") || k == "NOTIFY_SOCKET" || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"ECRGATE_EXAMPLES_CHILD=serve", "ECRGATE_EXAMPLES_ARGS="+strings.Join(args, "\x1f"), "ECRGATE_CONFIG="+cfgPath,
		"HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_STATE_HOME="+filepath.Join(dir, "state"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"), "AWS_ENDPOINT_URL=http://127.0.0.1:1",
		"LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = env
	cmd.ExtraFiles = files
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	client := &http.Client{Timeout: 10 * time.Second}
	get := func(name, p string) (int, string, error) {
		resp, err := client.Get("http://" + addrs[name] + p)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return resp.StatusCode, string(b), nil
	}
	// Generous: the machine may be busy. The sockets already listen, so a
	// request waits in the backlog until ecrgate accepts it, or times out
	// if ecrgate never takes the socket.
	deadline := time.Now().Add(60 * time.Second)
	var code int
	var body string
	var err error
	for {
		if code, body, err = get("admin", "/healthz"); err == nil || time.Now().After(deadline) {
			break
		}
		select {
		case werr := <-exited:
			stopped = true
			t.Fatalf("ecrgate serve exited before serving: %v\n%s", werr, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil || code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz on the socket named %q: %d %q %v\n%s", "admin", code, body, err, out.String())
	}
	if code, body, err := get("registry", "/v2/"); err != nil || code != http.StatusOK || body != "{}" {
		t.Errorf("GET /v2/ on the socket named %q: %d %q %v", "registry", code, body, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("ecrgate serve after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("ecrgate serve did not stop within 60s of SIGTERM\n%s", out.String())
	}
	for _, want := range []string{addrs["registry"], addrs["admin"]} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ecrgate's log does not name %s:\n%s", want, out.String())
		}
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSystemdAnalyzeVerify runs systemd's own checker over the units. It
// needs no running systemd: only a runtime directory for the user manager.
// ExecStart= points at an existing program, as verify checks it exists.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa := needTool(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range append([]string{"ecrgate.service"}, socketUnits...) {
		text := readFile(t, "systemd/"+f)
		if f == "ecrgate.service" {
			text = strings.Replace(text, "ExecStart="+makeInstallPath(t, "ecrgate")+" ", "ExecStart="+self+" ", 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runtimeDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	verify := func(files ...string) (string, error) {
		cmd := exec.Command(sa, append([]string{"--user", "--man=no", "verify"}, files...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtimeDir, "SYSTEMD_LOG_COLOR=0")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var units []string
	for _, f := range append([]string{"ecrgate.service"}, socketUnits...) {
		units = append(units, filepath.Join(dir, f))
	}
	out, err := verify(units...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze --user verify: %v\n%s", err, out)
	}
	// verify must be able to fail here: an unknown key is a warning.
	bad := filepath.Join(dir, "bad.socket")
	if err := os.WriteFile(bad, []byte("[Socket]\nListenStream=127.0.0.1:5000\nNoSuchKey=1\nService=ecrgate.service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := verify(bad); !strings.Contains(out, "NoSuchKey") {
		t.Errorf("systemd-analyze verify did not report an unknown key; the check above proves nothing:\n%s", out)
	}
}

// ---------------------------------------------------------------------------
// launchd

// plistValue decodes one property-list value starting at start.
func plistValue(d *xml.Decoder, start xml.StartElement) (any, error) {
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			tok, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if end, ok := tok.(xml.EndElement); ok && end.Name.Local == "dict" {
				return m, nil
			}
			key, ok := tok.(xml.StartElement)
			if !ok || key.Name.Local != "key" {
				return nil, fmt.Errorf("dict: want <key>, got %v", tok)
			}
			var k string
			if err := d.DecodeElement(&k, &key); err != nil {
				return nil, err
			}
			tok, err = nextElement(d)
			if err != nil {
				return nil, err
			}
			vs, ok := tok.(xml.StartElement)
			if !ok {
				return nil, fmt.Errorf("dict: key %q has no value", k)
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("dict: key %q twice", k)
			}
			if m[k], err = plistValue(d, vs); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
	case "array":
		var a []any
		for {
			tok, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if end, ok := tok.(xml.EndElement); ok && end.Name.Local == "array" {
				return a, nil
			}
			s, ok := tok.(xml.StartElement)
			if !ok {
				return nil, fmt.Errorf("array: unexpected %v", tok)
			}
			v, err := plistValue(d, s)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "string", "integer", "real", "date", "data":
		var s string
		if err := d.DecodeElement(&s, &start); err != nil {
			return nil, err
		}
		if start.Name.Local == "integer" {
			return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		}
		return s, nil
	case "true", "false":
		if err := d.Skip(); err != nil {
			return nil, err
		}
		return start.Name.Local == "true", nil
	}
	return nil, fmt.Errorf("<%s> is not a property-list element", start.Name.Local)
}

// nextElement returns the next start or end element, skipping blanks and
// comments; other character data is an error.
func nextElement(d *xml.Decoder) (xml.Token, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tk := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return tk, nil
		case xml.CharData:
			if strings.TrimSpace(string(tk)) != "" {
				return nil, fmt.Errorf("stray text %q", tk)
			}
		}
	}
}

func parsePlist(data []byte) (map[string]any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	tok, err := nextElement(d)
	if err != nil {
		return nil, err
	}
	p, ok := tok.(xml.StartElement)
	if !ok || p.Name.Local != "plist" {
		return nil, errors.New("the root element is not <plist>")
	}
	tok, err = nextElement(d)
	if err != nil {
		return nil, err
	}
	s, ok := tok.(xml.StartElement)
	if !ok || s.Name.Local != "dict" {
		return nil, errors.New("<plist> does not hold a <dict>")
	}
	v, err := plistValue(d, s)
	if err != nil {
		return nil, err
	}
	if tok, err := nextElement(d); err != nil || tok.(xml.EndElement).Name.Local != "plist" {
		return nil, fmt.Errorf("more than one value in <plist>: %v %v", tok, err)
	}
	return v.(map[string]any), nil
}

func TestLaunchdPlist(t *testing.T) {
	const file = "launchd/com.ecrgate.serve.plist"
	raw := readFile(t, file)
	if !strings.Contains(raw, `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`) {
		t.Error("no plist DOCTYPE")
	}
	home := "/Users/newcomer"
	// As launchd/README.md installs it.
	p, err := parsePlist([]byte(strings.ReplaceAll(raw, "__HOME__", home)))
	if err != nil {
		t.Fatalf("%s is not a valid property list: %v", file, err)
	}
	if _, err := parsePlist([]byte(strings.Replace(raw, "<true/>", "<yes/>", 1))); err == nil {
		t.Error("the plist parser accepts <yes/>: it proves nothing")
	}

	if p["Label"] != strings.TrimSuffix(path.Base(file), ".plist") {
		t.Errorf("Label %q does not match the file name (launchctl bootout gui/UID/<Label>)", p["Label"])
	}
	argv, _ := p["ProgramArguments"].([]any)
	var args []string
	for _, a := range argv {
		s, ok := a.(string)
		if !ok {
			t.Fatalf("ProgramArguments holds %T", a)
		}
		args = append(args, s)
	}
	if len(args) < 2 || args[0] != makeInstallPath(t, "ecrgate") || args[1] != "serve" {
		t.Errorf("ProgramArguments %q, want %s serve", args, makeInstallPath(t, "ecrgate"))
	} else {
		checkEcrgateArgs(t, file, args[1:])
	}
	if p["RunAtLoad"] != true {
		t.Error("RunAtLoad is not true")
	}
	if ka, ok := p["KeepAlive"].(map[string]any); !ok || ka["SuccessfulExit"] != false {
		t.Errorf("KeepAlive %v: want SuccessfulExit false (restart after failures only)", p["KeepAlive"])
	}
	// ecrgate drains for up to server.DefaultShutdownTimeout (5 minutes).
	if n, _ := p["ExitTimeOut"].(int64); n < 300 {
		t.Errorf("ExitTimeOut %v: launchd would kill ecrgate before in-flight pushes finish (5 minutes)", p["ExitTimeOut"])
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath"} {
		if p[k] != home+"/Library/Logs/ecrgate.log" {
			t.Errorf("%s %q, want ~/Library/Logs/ecrgate.log", k, p[k])
		}
	}
	env, _ := p["EnvironmentVariables"].(map[string]any)
	pathVar, _ := env["PATH"].(string)
	for _, dir := range []string{"/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin"} {
		if !slices.Contains(strings.Split(pathVar, ":"), dir) {
			t.Errorf("EnvironmentVariables PATH %q lacks %s", pathVar, dir)
		}
	}
	if data := regexp.MustCompile(`(?s)<!--.*?-->`).ReplaceAllString(raw, ""); strings.Contains(data, "~") || strings.Contains(data, "$") {
		t.Error("the plist uses ~ or $HOME, which launchd does not expand")
	}
	// On a Mac, Apple's own checker too.
	if plutil, err := exec.LookPath("plutil"); err == nil {
		if out, err := exec.Command(plutil, "-lint", filepath.Join(root, file)).CombinedOutput(); err != nil {
			t.Errorf("plutil -lint: %v\n%s", err, out)
		}
	}
}

// ---------------------------------------------------------------------------
// GitHub Actions

type workflow struct {
	Name        string            `yaml:"name"`
	On          yaml.Node         `yaml:"on"`
	Permissions map[string]string `yaml:"permissions"`
	Env         map[string]string `yaml:"env"`
	Jobs        map[string]struct {
		RunsOn string `yaml:"runs-on"`
		Steps  []struct {
			Name string            `yaml:"name"`
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			If   string            `yaml:"if"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

var expression = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)

func TestGitHubActionsWorkflow(t *testing.T) {
	const file = "examples/github-actions/push.yml"
	var w workflow
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, file)))
	dec.KnownFields(true)
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if w.Permissions["id-token"] != "write" {
		t.Errorf("permissions: id-token is %q; OIDC needs write", w.Permissions["id-token"])
	}
	if len(w.Jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(w.Jobs))
	}
	// ${{ … }} as GitHub would fill it in, for a sample account.
	sample := map[string]string{"vars.AWS_ACCOUNT_ID": "123456789012", "vars.AWS_REGION": "us-east-1",
		"vars.AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/github-push", "github.sha": "0123456789abcdef0123456789abcdef01234567"}
	fill := func(s string) string {
		return expression.ReplaceAllStringFunc(s, func(m string) string {
			k := expression.FindStringSubmatch(m)[1]
			v, ok := sample[k]
			if !ok {
				t.Errorf("%s: unknown expression %s", file, m)
			}
			return v
		})
	}
	env := map[string]string{}
	for k, v := range w.Env {
		env[k] = fill(v)
	}
	registry := env["ECR_REGISTRY"]
	if registry != "123456789012.dkr.ecr.us-east-1.amazonaws.com" {
		t.Errorf("ECR_REGISTRY is %q", registry)
	}

	cfg := defaults(t)
	configs := 0
	order := map[string]int{}
	var pushes []string
	for _, job := range w.Jobs {
		if !strings.HasPrefix(job.RunsOn, "ubuntu-") {
			t.Errorf("runs-on %q: the example relies on a GitHub-hosted Ubuntu runner's dockerd", job.RunsOn)
		}
		for i, st := range job.Steps {
			if strings.HasPrefix(st.Uses, "aws-actions/configure-aws-credentials@") {
				order["credentials"] = i + 1
				if st.With["role-to-assume"] == "" || st.With["aws-region"] == "" {
					t.Errorf("configure-aws-credentials needs role-to-assume and aws-region: %v", st.With)
				}
			}
			if st.Run == "" {
				continue
			}
			s := &scriptCheck{t: t, where: fmt.Sprintf("%s step %d (%s)", file, i+1, st.Name), env: env}
			s.run(fill(st.Run))
			configs += s.configs
			for _, args := range s.ecrgate {
				if len(args) > 0 && args[0] == "serve" {
					order["serve"] = i + 1
				}
			}
			if strings.Contains(st.Run, "go install") {
				order["install"] = i + 1
			}
			if strings.Contains(st.Run, "/healthz") {
				order["ready"] = i + 1
				if !strings.Contains(st.Run, "http://"+cfg.AdminListen+"/healthz") {
					t.Errorf("the readiness check does not ask ecrgate's admin listener %s", cfg.AdminListen)
				}
			}
			if len(s.pushes) > 0 {
				order["push"] = i + 1
				pushes = append(pushes, s.pushes...)
			}
		}
	}
	for _, c := range []struct {
		a, b     string
		sameStep bool // may be in the same step
	}{{"install", "serve", false}, {"credentials", "serve", false}, {"serve", "ready", true}, {"ready", "push", false}} {
		x, y := order[c.a], order[c.b]
		if x == 0 || y == 0 || x > y || x == y && !c.sameStep {
			t.Errorf("steps: %s (step %d) must come before %s (step %d)", c.a, x, c.b, y)
		}
	}
	// Registry mode: plain docker push to the local listener, which a
	// GitHub-hosted runner's dockerd allows over plain HTTP (127.0.0.0/8).
	_, port, _ := net.SplitHostPort(cfg.Listen)
	for _, p := range pushes {
		if !strings.HasPrefix(p, "localhost:"+port+"/") {
			t.Errorf("docker push %s: want localhost:%s/<name>", p, port)
		}
	}
	if len(pushes) == 0 {
		t.Error("the workflow pushes nothing")
	}
	if configs != 1 {
		t.Errorf("the workflow writes %d ecrgate configs, want 1", configs)
	}
}

// TestIAMPolicies checks that the example role may do everything ecrgate
// and a push do, and that it trusts the audience configure-aws-credentials
// asks for.
func TestIAMPolicies(t *testing.T) {
	type statement struct {
		Sid       string
		Effect    string
		Action    any
		Resource  any
		Principal map[string]string
		Condition map[string]map[string]any
	}
	var push, trust struct {
		Version   string
		Statement []statement
	}
	for f, v := range map[string]any{"examples/github-actions/push-policy.json": &push, "examples/github-actions/trust-policy.json": &trust} {
		dec := json.NewDecoder(strings.NewReader(readFile(t, f)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	allowed := map[string]bool{}
	for _, st := range push.Statement {
		if st.Effect != "Allow" {
			continue
		}
		acts, _ := st.Action.([]any)
		for _, a := range acts {
			allowed[a.(string)] = true
		}
	}
	// Every ECR call the ensurer makes (pkg/repocreate's ECR interface)…
	src := readFile(t, "pkg/repocreate/clients.go")
	iface := regexp.MustCompile(`(?s)type ECR interface \{(.*?)\n\}`).FindStringSubmatch(src)
	if iface == nil {
		t.Fatal("no ECR interface in pkg/repocreate/clients.go")
	}
	var need []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(\w+)\(ctx`).FindAllStringSubmatch(iface[1], -1) {
		need = append(need, "ecr:"+m[1])
	}
	if len(need) < 3 {
		t.Fatalf("found only %q in the ECR interface", need)
	}
	// …the token, tags given at creation, and docker push itself.
	need = append(need, "ecr:GetAuthorizationToken", "ecr:TagResource", "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
		"ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage")
	for _, a := range need {
		if !allowed[a] {
			t.Errorf("push-policy.json does not allow %s", a)
		}
	}
	if len(trust.Statement) != 1 {
		t.Fatalf("trust policy: %d statements", len(trust.Statement))
	}
	st := trust.Statement[0]
	if st.Action != "sts:AssumeRoleWithWebIdentity" || !strings.HasSuffix(st.Principal["Federated"], ":oidc-provider/token.actions.githubusercontent.com") {
		t.Errorf("trust policy: %v %v", st.Action, st.Principal)
	}
	if st.Condition["StringEquals"]["token.actions.githubusercontent.com:aud"] != "sts.amazonaws.com" {
		t.Errorf("trust policy: audience %v, want sts.amazonaws.com (configure-aws-credentials' default)", st.Condition["StringEquals"])
	}
	if st.Condition["StringLike"]["token.actions.githubusercontent.com:sub"] == nil {
		t.Error("trust policy: no condition on the subject: any repository on GitHub could assume the role")
	}
}

// TestMarkdownLinks checks that the relative links of the set-up
// documentation lead to files that exist and headings that exist.
func TestMarkdownLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]*)\)`)
	anchors := func(md string) map[string]bool {
		m := map[string]bool{}
		for _, line := range strings.Split(md, "\n") {
			if h, ok := strings.CutPrefix(line, "#"); ok {
				h = strings.ToLower(strings.TrimSpace(strings.TrimLeft(h, "#")))
				h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
				m[strings.ReplaceAll(h, " ", "-")] = true
			}
		}
		return m
	}
	checked := 0
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	files := []string{"README.md", "SECURITY.md", "systemd/README.md", "launchd/README.md"}
	for _, d := range docs {
		files = append(files, filepath.Join("docs", filepath.Base(d)))
	}
	for _, f := range files {
		md := readFile(t, f)
		for _, m := range link.FindAllStringSubmatch(md, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			doc := md
			if file != "" {
				p := filepath.Join(filepath.Dir(f), file)
				if st, err := os.Stat(filepath.Join(root, p)); err == nil && st.IsDir() && frag == "" {
					checked++ // a directory: GitHub lists it
					continue
				}
				b, err := os.ReadFile(filepath.Join(root, p))
				if err != nil {
					t.Errorf("%s: link %s: %v", f, target, err)
					continue
				}
				doc = string(b)
			}
			if frag != "" && !anchors(doc)[frag] {
				t.Errorf("%s: link %s: no such heading", f, target)
			}
			checked++
		}
	}
	if checked < 5 {
		t.Errorf("checked only %d links", checked)
	}
}
