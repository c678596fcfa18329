package credhelper

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

const testRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// poseAs makes the log check believe it runs as user id uid.
func poseAs(t *testing.T, uid int) {
	t.Helper()
	old := euid
	euid = func() int { return uid }
	t.Cleanup(func() { euid = old })
}

// helperEnv is the environment of a docker-credential-ecrgate whose misses
// the emulator answers in process (keys in the environment), logging at
// debug to logPath (if not "", else warnings to stderr); the fetcher
// program is missing, so a get that needs it fails.
func helperEnv(t *testing.T, e *ecrfake.Emulator, logPath string) []string {
	t.Helper()
	home := t.TempDir()
	env := append(e.Env(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"), "ECRGATE_FETCHER="+filepath.Join(home, "no-fetcher"))
	if logPath != "" {
		env = append(env, "ECRGATE_LOG="+logPath, "ECRGATE_LOG_LEVEL=debug")
	}
	return env
}

// helperGet runs one "get" of testRegistry as the binary does: FromEnv, Run,
// close the log.
func helperGet(t *testing.T, env []string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	h, closeLog, err := FromEnv(env, &errb)
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	code = Run(h, []string{"get"}, strings.NewReader(testRegistry), &out)
	closeLog()
	return code, out.String(), errb.String()
}

// victim writes a file the attacker wants the helper to append to.
func victim(t *testing.T, mode os.FileMode) (path, content string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), ".profile")
	content = "export PATH=$HOME/bin:$PATH\n"
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path, content
}

func unchanged(t *testing.T, path, content string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("%s was changed to %q", path, b)
	}
}

// refusedOnce checks that stderr says, once and in one line, want.
func refusedOnce(t *testing.T, stderr, want string) {
	t.Helper()
	line := "docker-credential-ecrgate: " + want + "\n"
	if strings.Count(stderr, line) != 1 {
		t.Errorf("stderr = %q; want the line %q once", stderr, line)
	}
}

// The log is written where the user asked, created 0600 in a 0700 directory.
func TestLogWritesAPrivateFile(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	logPath := filepath.Join(t.TempDir(), "state", "ecrgate", "helper.log")
	code, out, stderr := helperGet(t, helperEnv(t, e, logPath))
	if code != 0 || !strings.Contains(out, `"Secret"`) {
		t.Fatalf("get = %d, %q, stderr %q", code, out, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr = %q; want nothing (the log is a file)", stderr)
	}
	st, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %04o, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "token fetched") {
		t.Errorf("log = %q; want the debug line of the fetch", b)
	}
	// A second helper appends to the same file.
	if code, _, stderr := helperGet(t, helperEnv(t, e, logPath)); code != 0 || stderr != "" {
		t.Fatalf("second get = %d, stderr %q", code, stderr)
	}
	if b2, _ := os.ReadFile(logPath); !bytes.HasPrefix(b2, b) || len(b2) == len(b) {
		t.Errorf("second helper did not append: %q", b2)
	}
}

// A symbolic link planted at ECRGATE_LOG is not followed: the file it points
// to (here ~/.profile) is left alone, the get still succeeds, and stderr
// says once why nothing is logged and what to do.
func TestLogRefusesSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need a privilege on Windows")
	}
	e := ecrfake.Start(t, ecrfake.Options{})
	target, content := victim(t, 0o600)
	link := filepath.Join(t.TempDir(), "helper.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := helperGet(t, helperEnv(t, e, link))
	if code != 0 || !strings.Contains(out, `"Secret"`) {
		t.Fatalf("get = %d, %q, stderr %q; a bad log must not fail the get", code, out, stderr)
	}
	unchanged(t, target, content)
	refusedOnce(t, stderr, "ECRGATE_LOG "+link+" is a symbolic link: not logging there; remove it or point ECRGATE_LOG elsewhere")
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was moved or replaced: %v, %v", st, err)
	}
}

// A log that cannot be opened at all (here a directory) does not fail the
// get either: the helper logs nowhere and says why.
func TestLogUnusableDoesNotFailGet(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	dir := t.TempDir()
	code, out, stderr := helperGet(t, helperEnv(t, e, dir))
	if code != 0 || !strings.Contains(out, `"Secret"`) {
		t.Fatalf("get = %d, %q, stderr %q; a bad log must not fail the get", code, out, stderr)
	}
	refusedOnce(t, stderr, "ECRGATE_LOG "+dir+" is not a regular file: not logging there; point ECRGATE_LOG elsewhere")
}

// A file others may read or write that is already at ECRGATE_LOG (an
// attacker's 0666 file, or the user's own 0644 one) is not used as is.
func TestLogRefusesOpenFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes are not checked on Windows")
	}
	for _, mode := range []os.FileMode{0o666, 0o644, 0o620} {
		path, content := victim(t, mode)
		var stderr bytes.Buffer
		log, closeLog, err := OpenLog(Name, []string{"ECRGATE_LOG=" + path}, &stderr)
		if err != nil {
			t.Fatalf("OpenLog: %v; a bad log must not fail the helper", err)
		}
		log.Error("a line that must go nowhere")
		closeLog()
		unchanged(t, path, content)
		want := "ECRGATE_LOG " + path + " has mode " + fmt.Sprintf("%04o", mode) + `, so other users could read or change it: not logging there; run "chmod 600 ` + path + `" or point ECRGATE_LOG elsewhere`
		refusedOnce(t, stderr.String(), want)
		if st, _ := os.Stat(path); st.Mode().Perm() != mode {
			t.Errorf("mode changed to %04o: refuse, do not repair", st.Mode().Perm())
		}
	}
}

// A 0600 file of another user at ECRGATE_LOG is not appended to, even by
// root (sudo keeps ECRGATE_LOG): it would put root's lines in a file that
// user chose.
func TestLogRefusesOtherOwner(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("owners are not checked on Windows")
	}
	path, content := victim(t, 0o600)
	owner, me := os.Geteuid(), os.Geteuid()+1 // pose as the next user
	if os.Geteuid() == 0 {
		owner, me = 4242, 0 // root, and the file becomes another user's
		if err := os.Chown(path, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	poseAs(t, me)
	var stderr bytes.Buffer
	log, closeLog, err := OpenLog(Name, []string{"ECRGATE_LOG=" + path}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log.Error("a line that must go nowhere")
	closeLog()
	unchanged(t, path, content)
	refusedOnce(t, stderr.String(), "ECRGATE_LOG "+path+" belongs to user id "+strconv.Itoa(owner)+", not to you (user id "+strconv.Itoa(me)+"): not logging there; remove it or point ECRGATE_LOG elsewhere")
}

// A hard link planted at ECRGATE_LOG would make the helper append to the
// user's own 0600 file of the same inode (~/.ssh/authorized_keys): a file
// with more than one name is not used.
func TestLogRefusesHardLink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("link counts are not checked on Windows")
	}
	target, content := victim(t, 0o600)
	link := filepath.Join(filepath.Dir(target), "helper.log")
	if err := os.Link(target, link); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	log, closeLog, err := OpenLog(Name, []string{"ECRGATE_LOG=" + link}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log.Error("a line that must go nowhere")
	closeLog()
	unchanged(t, target, content)
	refusedOnce(t, stderr.String(), "ECRGATE_LOG "+link+" has other names (hard links), so writing there would change another file: not logging there; remove it or point ECRGATE_LOG elsewhere")
}

// Rotation renames the log itself, never what a symbolic link at the log
// path points to, and a link planted at <path>.1 is replaced, not written
// through.
func TestLogRotationMovesOnlyTheLog(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need a privilege on Windows")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "helper.log")
	big := bytes.Repeat([]byte("x"), MaxLogSize+1)
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	target, content := victim(t, 0o600)
	if err := os.Symlink(target, path+".1"); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	log, closeLog, err := OpenLog(Name, []string{"ECRGATE_LOG=" + path}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log.Error("after rotation")
	closeLog()
	unchanged(t, target, content)
	if st, err := os.Lstat(path + ".1"); err != nil || !st.Mode().IsRegular() || st.Size() != int64(len(big)) {
		t.Errorf("%s.1 = %v, %v; want the rotated log", path, st, err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "after rotation") || len(b) > 1000 {
		t.Errorf("new log = %d bytes; want a fresh file with the line", len(b))
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q", stderr.String())
	}

	// A big file behind a symbolic link at the log path is neither used
	// nor moved.
	link := filepath.Join(dir, "other.log")
	bigVictim := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(bigVictim, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bigVictim, link); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if _, closeLog, err := OpenLog(Name, []string{"ECRGATE_LOG=" + link}, &stderr); err != nil {
		t.Fatal(err)
	} else {
		closeLog()
	}
	if _, err := os.Lstat(link + ".1"); err == nil {
		t.Error("the symbolic link at the log path was rotated")
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced: %v, %v", st, err)
	}
	refusedOnce(t, stderr.String(), "ECRGATE_LOG "+link+" is a symbolic link: not logging there; remove it or point ECRGATE_LOG elsewhere")
}

// docker-credential-ecrgate keeps working over a config file others can
// write (a umask of 002), but says so once on stderr and ignores the file's
// api_endpoint: the token request goes to the endpoint the user's own
// environment names, never to one another user wrote into the file.
func TestHelperWarnsAboutConfigOthersCanWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes are not checked on Windows")
	}
	e := ecrfake.Start(t, ecrfake.Options{})
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(thief.Close)
	dir := filepath.Join(t.TempDir(), "ecrgate")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	body := "registries:\n  - host: " + testRegistry + "\n    api_endpoint: " + thief.URL + "\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfgPath, 0o664); err != nil {
		t.Fatal(err)
	}
	env := append(helperEnv(t, e, ""), "ECRGATE_CONFIG="+cfgPath)
	code, out, stderr := helperGet(t, env)
	if code != 0 || !strings.Contains(out, `"Secret"`) {
		t.Fatalf("get = %d, %q, stderr %q; want a token despite the config's mode", code, out, stderr)
	}
	if n := stolen.Load(); n != 0 || e.Calls("GetAuthorizationToken") != 1 {
		t.Errorf("the file's api_endpoint got %d requests, the emulator %d; want 0 and 1", n, e.Calls("GetAuthorizationToken"))
	}
	want := "docker-credential-ecrgate: warning: " + cfgPath + ": other users can change this file (mode 0664) and make ecrgate send your registry tokens where they choose, so its registries[0].api_endpoint is ignored: run \"chmod go-w " + cfgPath + "\"\n"
	if strings.Count(stderr, want) != 1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr = %q\nwant once %q", stderr, want)
	}

	// Fixed, the file is read in full again: its api_endpoint is used.
	if err := os.Chmod(cfgPath, 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(helperEnv(t, e, ""), "ECRGATE_CONFIG="+cfgPath)
	if code, _, stderr := helperGet(t, env); code == 0 || strings.Contains(stderr, "warning") || stolen.Load() == 0 {
		t.Errorf("after chmod: get = %d, stderr %q, %d requests to the file's api_endpoint; want the file obeyed", code, stderr, stolen.Load())
	}
}
