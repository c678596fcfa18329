package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkConfig runs "config check" with args on a command built here, since
// Execute registers commands in cli.go.
func checkConfig(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newConfigCmd()
	cmd.SetArgs(append([]string{"check"}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigCheck(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("ECRGATE_CONFIG", "")
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, tc := range []struct {
		name       string
		file       string // body; "" with args to use as given
		args       []string
		wantErr    string
		wantOut    []string
		wantStderr []string
	}{
		{
			name: "good",
			file: `listen: 127.0.0.1:5000
default_registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com
routes:
  - prefix: prod/
    registry: 222222222222.dkr.ecr.eu-west-1.amazonaws.com
registries:
  - host: 123456789012.dkr.ecr.us-east-1.amazonaws.com
    profile: dev
allow: ["team/*", "tools/*"]
deny: ["*/tmp*"]
templates:
  - prefix: ROOT
  - prefix: team
    image_tag_mutability: IMMUTABLE
`,
			wantOut: []string{
				"config.yaml: OK\n",
				"default registry  123456789012.dkr.ecr.us-east-1.amazonaws.com\n",
				"routes            1\n",
				"registries        1\n",
				"templates         2 (ROOT, team)\n",
				"allow / deny      2 globs / 1 glob\n",
				"listen            127.0.0.1:5000 (admin 127.0.0.1:5002, intercept 127.0.0.1:5001)\n",
			},
		},
		{
			name:    "empty file is all defaults",
			file:    "# nothing yet\n",
			wantOut: []string{"config.yaml: OK\n", "default registry  none", "templates         0", "allow / deny      every name / 0 globs\n"},
		},
		{
			name: "three problems",
			file: `listen: 127.0.0.1:5000
tempaltes: []
default_registry: 123456789012.dkr.ecr.us-eas-1.amazonaws.com
templates:
  - prefix: team
    image_tag_mutability: SOMETIMES
`,
			wantErr: "3 problems in ",
			wantStderr: []string{
				`config.yaml:2: unknown key "tempaltes" (did you mean "templates"?)` + "\n",
				"config.yaml:3: default_registry: ",
				"config.yaml:6: templates[0].image_tag_mutability: ",
			},
		},
		{
			name:       "one problem",
			file:       "log_level: loud\n",
			wantErr:    "1 problem in ",
			wantStderr: []string{"config.yaml:1: log_level: "},
		},
		{
			name:    "missing explicit file",
			args:    []string{"--config", missing},
			wantErr: missing + ": the configuration file given does not exist",
		},
		{
			name:    "missing default file",
			wantOut: []string{filepath.Join(".config", "ecrgate", "config.yaml") + ": not found, so the defaults apply\n", "default registry  none"},
		},
		{
			name:    "arguments refused",
			args:    []string{"config.yaml"},
			wantErr: "unknown command",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = []string{"--config", writeConfig(t, tc.file)}
			}
			out, errOut, err := checkConfig(t, args...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q\nstdout:\n%s\nstderr:\n%s", err, tc.wantErr, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if lines := strings.Count(errOut, "\n"); lines != len(tc.wantStderr) {
				t.Errorf("stderr has %d lines, want %d (one per problem):\n%s", lines, len(tc.wantStderr), errOut)
			}
			if tc.wantErr != "" && out != "" {
				t.Errorf("stdout on failure = %q, want nothing", out)
			}
		})
	}
}
