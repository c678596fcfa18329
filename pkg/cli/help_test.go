package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// walk calls fn for root and every command below it that a user sees.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	if c.Hidden {
		return
	}
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

func TestEveryCommandHasLongAndExample(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	seen := map[string]bool{}
	walk(root, func(c *cobra.Command) {
		path := c.CommandPath()
		seen[path] = true
		if strings.TrimSpace(c.Long) == "" {
			t.Errorf("%q has no Long help text", path)
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", path)
		} else if !strings.Contains(c.Example, path) {
			t.Errorf("%q: no example runs it:\n%s", path, c.Example)
		}
	})
	// The walk must reach the commands added at execution time too.
	for _, want := range []string{"ecrgate serve", "ecrgate ca install", "ecrgate completion", "ecrgate completion zsh", "ecrgate help"} {
		if !seen[want] {
			t.Errorf("command tree has no %q (saw %d commands)", want, len(seen))
		}
	}
}

// exampleArgs returns the ecrgate arguments of every example line that runs
// ecrgate: comments, sudo, VAR=value prefixes, redirections, pipes and
// background markers removed.
func exampleArgs(example string) [][]string {
	var out [][]string
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimPrefix(line, "source <(")
		if i := strings.IndexAny(line, "|>&;)"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		for len(f) > 0 && (f[0] == "sudo" || strings.Contains(f[0], "=")) {
			f = f[1:]
		}
		if len(f) > 0 && f[0] == "ecrgate" {
			out = append(out, f[1:])
		}
	}
	return out
}

// TestExamplesParse runs every example with --help appended: cobra then
// resolves the subcommand and parses every flag (an unknown command or flag
// fails) but runs nothing.
func TestExamplesParse(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	n := 0
	walk(root, func(c *cobra.Command) {
		for _, args := range exampleArgs(c.Example) {
			n++
			var stderr bytes.Buffer
			err := Execute(context.Background(), append(args, "--help"), io.Discard, &stderr)
			if err != nil {
				t.Errorf("%q: example \"ecrgate %s\" does not parse: %v", c.CommandPath(), strings.Join(args, " "), err)
			}
		}
	})
	if n < 20 {
		t.Errorf("checked only %d example lines; the parser above lost some", n)
	}
	// The check itself must be able to fail.
	if err := Execute(context.Background(), []string{"serve", "--no-such-flag", "--help"}, io.Discard, io.Discard); err == nil {
		t.Error("an unknown flag with --help passed: the example check proves nothing")
	}
}

func TestExampleArgs(t *testing.T) {
	got := exampleArgs(`  sudo ecrgate ca install --dir ~/x   # comment
  ECRGATE_CONFIG=./e.yaml ecrgate config check
  source <(ecrgate completion bash)
  ecrgate serve &
  ecrgate completion zsh > "${fpath[1]}/_ecrgate"
  docker push localhost:5000/a:1`)
	want := [][]string{{"ca", "install", "--dir", "~/x"}, {"config", "check"}, {"completion", "bash"}, {"serve"}, {"completion", "zsh"}}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

// TestBashCompletionLoads sources the generated bash script and checks that
// it registers a completion for ecrgate.
func TestBashCompletionLoads(t *testing.T) {
	var out bytes.Buffer
	if err := Execute(context.Background(), []string{"completion", "bash"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "__start_ecrgate") {
		t.Fatalf("ecrgate completion bash printed no ecrgate completion function:\n%.300s", out.String())
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("bash is missing")
		}
		t.Skip("bash is not installed")
	}
	script := filepath.Join(t.TempDir(), "ecrgate.bash")
	if err := os.WriteFile(script, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(bash, "--norc", "--noprofile", "-c", `source "$1" && complete -p ecrgate`, "bash", script).CombinedOutput()
	if err != nil || !strings.Contains(string(got), "__start_ecrgate") {
		t.Fatalf("sourcing the bash completion: %v\n%s", err, got)
	}
}
