package credhelper_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/ecrgate/ecrgate/pkg/credhelper"
)

// shell returns the path of a shell, skipping the test when it is missing,
// except in CI (.ci/run installs it).
func shell(t *testing.T, name string) string {
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

// script writes the helper's completion script for sh to a file.
func script(t *testing.T, sh string) string {
	t.Helper()
	var out bytes.Buffer
	if code, ok := credhelper.Info([]string{"completion", sh}, &out); !ok || code != 0 {
		t.Fatalf("completion %s: handled=%v code=%d\n%s", sh, ok, code, out.String())
	}
	p := filepath.Join(t.TempDir(), "completion."+sh)
	if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runShell(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func wantWords(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s: no %q in\n%s", what, w, got)
		}
	}
}

var actions = []string{"get", "store", "erase", "list", "version", "help", "completion"}

func TestBashCompletion(t *testing.T) {
	bash := shell(t, "bash")
	s := script(t, "bash")
	complete := func(words string, cword int) string {
		return runShell(t, bash, "--norc", "--noprofile", "-c", `source "$1"
COMP_WORDS=($2); COMP_CWORD=$3
[ "$3" -ge "${#COMP_WORDS[@]}" ] && COMP_WORDS+=("")
_docker_credential_ecrgate
printf '%s\n' "${COMPREPLY[@]}"
complete -p docker-credential-ecrgate`, "bash", s, words, string(rune('0'+cword)))
	}
	got := complete("docker-credential-ecrgate", 1)
	wantWords(t, "actions", got, append(actions, "complete -F _docker_credential_ecrgate docker-credential-ecrgate")...)
	if got := complete("docker-credential-ecrgate e", 1); strings.TrimSpace(strings.Split(got, "\n")[0]) != "erase" {
		t.Errorf(`"e" completes to %q, want erase`, got)
	}
	wantWords(t, "shells", complete("docker-credential-ecrgate completion", 2), credhelper.Shells...)
	if got := complete("docker-credential-ecrgate get", 2); strings.Contains(got, "bash") {
		t.Errorf("after get, completion offers shells:\n%s", got)
	}
}

func TestZshCompletion(t *testing.T) {
	zsh := shell(t, "zsh")
	s := script(t, "zsh")
	// Outside a completion widget: stand-ins for compdef, _describe and
	// _values that print what they were given.
	got := runShell(t, zsh, "-f", "-c", `compdef() { print -r -- "compdef $*" }
_describe() { print -rl -- ${(P)${@[-1]}} }
_values() { shift; print -r -- "values $*" }
source "$1"
words=(docker-credential-ecrgate ''); CURRENT=2; _docker-credential-ecrgate
words=(docker-credential-ecrgate completion ''); CURRENT=3; _docker-credential-ecrgate`, "zsh", s)
	wantWords(t, "zsh", got, "compdef _docker-credential-ecrgate docker-credential-ecrgate", "get:print the credentials",
		"erase:", "list:", "completion:", "values bash zsh fish")
}

func TestFishCompletion(t *testing.T) {
	fish := shell(t, "fish")
	s := script(t, "fish")
	got := runShell(t, fish, "--no-config", "-c", `source $argv[1]; complete -C"docker-credential-ecrgate "`, s)
	wantWords(t, "actions", got, "get\tPrint the credentials", "store\t", "erase\t", "list\t", "version\t", "completion\t")
	if strings.Contains(got, "bash") {
		t.Errorf("fish offers shells before the completion action:\n%s", got)
	}
	got = runShell(t, fish, "--no-config", "-c", `source $argv[1]; complete -C"docker-credential-ecrgate completion "`, s)
	wantWords(t, "shells", got, credhelper.Shells...)
	if strings.Contains(got, "erase") {
		t.Errorf("after completion, fish offers actions:\n%s", got)
	}
}

func TestInfoActions(t *testing.T) {
	// As cmd/credhelper sets them.
	oldName, oldPkg := credentials.Name, credentials.Package
	credentials.Name, credentials.Package = "docker-credential-ecrgate", "github.com/ecrgate/ecrgate"
	t.Cleanup(func() { credentials.Name, credentials.Package = oldName, oldPkg })
	for _, tc := range []struct {
		args    []string
		handled bool
		code    int
		want    string
	}{
		{[]string{"version"}, true, 0, "docker-credential-ecrgate"},
		{[]string{"help"}, true, 0, "Examples:"},
		{[]string{"--help"}, true, 0, "docker-credential-ecrgate completion bash"},
		{[]string{"completion", "bash"}, true, 0, "complete -F"},
		{[]string{"completion"}, true, 1, "Usage: docker-credential-ecrgate completion bash|zsh|fish"},
		{[]string{"completion", "tcsh"}, true, 1, "Usage:"},
		{[]string{"get"}, false, 0, ""},
		{nil, false, 0, ""},
	} {
		var out bytes.Buffer
		code, handled := credhelper.Info(tc.args, &out)
		if handled != tc.handled || code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("Info(%q) = %d, %v, %q; want %d, %v, containing %q", tc.args, code, handled, out.String(), tc.code, tc.handled, tc.want)
		}
	}
	// Run answers them too, and unknown actions name the valid ones.
	var out bytes.Buffer
	if code := credhelper.Run(&credhelper.Helper{}, []string{"completion", "zsh"}, nil, &out); code != 0 || !strings.Contains(out.String(), "#compdef docker-credential-ecrgate") {
		t.Errorf("Run completion zsh: %d\n%s", code, out.String())
	}
	out.Reset()
	if code := credhelper.Run(&credhelper.Helper{}, []string{"lst"}, nil, &out); code != 1 || !strings.Contains(out.String(), "completion") {
		t.Errorf("Run lst: %d %q", code, out.String())
	}
}
