package dockerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	hostA = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
	hostB = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
	hostC = "333333333333.dkr.ecr.ap-south-1.amazonaws.com"
)

// richConfig is laid out exactly as the docker CLI writes it (tab indent, no
// final newline), with keys Docker knows and keys it does not.
const richConfig = `{
	"auths": {
		"https://index.docker.io/v1/": {
			"auth": "dXNlcjpzM2NyZXQ="
		},
		"ghcr.io": {
			"auth": "Z2g6Z2hwX3Rva2Vu",
			"identitytoken": "eyJhbGciOi.secret.sig"
		}
	},
	"proxies": {
		"default": {
			"httpProxy": "http://proxy.example:3128",
			"noProxy": "localhost,127.0.0.1"
		}
	},
	"currentContext": "colima",
	"psFormat": "table {{.ID}}\t{{.Names}}",
	"x-vendor": {
		"nested": [1, 2.50, 1e3, true, null, {"deep": "value"}],
		"emoji": "🐳 ünïcødé \u00e9 \u003c",
		"big": 123456789012345678901234567890
	},
	"credsStore": "desktop"
}`

func write(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func fixedClock(p *Plan) {
	p.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
}

type rawMember struct {
	Key string
	Raw string
}

// topLevel returns the top-level members of a JSON object in file order,
// each value as its raw bytes.
func topLevel(t *testing.T, data []byte) []rawMember {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var out []rawMember
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, rawMember{k.(string), string(raw)})
	}
	return out
}

func withoutCredHelpers(ms []rawMember) []rawMember {
	return slices.DeleteFunc(slices.Clone(ms), func(m rawMember) bool { return strings.EqualFold(m.Key, credHelpersKey) })
}

func TestPath(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"DOCKER_CONFIG", []string{"HOME=/home/u", "DOCKER_CONFIG=/etc/dc"}, "/etc/dc/config.json"},
		{"HOME", []string{"HOME=/home/u"}, "/home/u/.docker/config.json"},
		{"empty DOCKER_CONFIG falls back to HOME", []string{"DOCKER_CONFIG=", "HOME=/home/u"}, "/home/u/.docker/config.json"},
		{"last one wins", []string{"HOME=/a", "HOME=/b"}, "/b/.docker/config.json"},
		{"USERPROFILE", []string{"USERPROFILE=/users/u"}, "/users/u/.docker/config.json"},
		{"value with =", []string{"DOCKER_CONFIG=/x=y"}, "/x=y/config.json"},
		{"nothing", []string{"PATH=/bin", "HOMEX=/nope"}, ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Path(tt.env); got != filepath.FromSlash(tt.want) {
				t.Errorf("Path() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: hostA, want: hostA},
		{in: "https://" + hostA, want: hostA},
		{in: "HTTPS://" + strings.ToUpper(hostA) + "/", want: hostA},
		{in: "http://" + hostA + "/v2/", want: hostA},
		{in: hostA + "/", want: hostA},
		{in: "  " + hostA + "\n", want: hostA},
		{in: "localhost:5000", want: "localhost:5000"},
		{in: "Public.ECR.aws", want: "public.ecr.aws"},
		{in: "", wantErr: true},
		{in: "https://", wantErr: true},
		{in: "oci://" + hostA, wantErr: true},
		{in: "user@" + hostA, wantErr: true},
		{in: "a b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NormalizeHost(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("NormalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestPlanCredHelpers(t *testing.T) {
	tests := []struct {
		name    string
		before  *string // nil: no file
		hosts   []string
		want    string
		changes []Change
	}{
		{
			name:    "missing file",
			hosts:   []string{hostA},
			want:    "{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}",
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "empty file",
			before:  ptr(""),
			hosts:   []string{hostA},
			want:    "{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}",
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "empty object keeps trailing newline",
			before:  ptr("{}\n"),
			hosts:   []string{hostA},
			want:    "{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}\n",
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "docker-written file: key appended, every other byte kept",
			before:  ptr(richConfig),
			hosts:   []string{hostB, hostA},
			want:    strings.TrimSuffix(richConfig, "\n}") + ",\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\",\n\t\t\"" + hostB + "\": \"ecrgate\"\n\t}\n}",
			changes: []Change{{Host: hostA, New: "ecrgate"}, {Host: hostB, New: "ecrgate"}},
		},
		{
			name:   "existing credHelpers in the middle: rewritten sorted, in place",
			before: ptr("{\n\t\"auths\": {},\n\t\"credHelpers\": {\n\t\t\"gcr.io\": \"gcloud\",\n\t\t\"" + hostC + "\": \"ecr-login\"\n\t},\n\t\"currentContext\": \"default\"\n}"),
			hosts:  []string{hostA},
			want: "{\n\t\"auths\": {},\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\",\n\t\t\"" + hostC +
				"\": \"ecr-login\",\n\t\t\"gcr.io\": \"gcloud\"\n\t},\n\t\"currentContext\": \"default\"\n}",
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "other helper replaced and reported",
			before:  ptr("{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecr-login\"\n\t}\n}"),
			hosts:   []string{hostA},
			want:    "{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}",
			changes: []Change{{Host: hostA, Old: "ecr-login", New: "ecrgate"}},
		},
		{
			name:   "already set: no change",
			before: ptr("{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}"),
			hosts:  []string{"https://" + hostA + "/"},
			want:   "{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}",
		},
		{
			name:    "key spelt in another case is Docker's credHelpers: edited in place",
			before:  ptr(`{"CredHelpers": {"gcr.io": "gcloud"}, "auths": {}}`),
			hosts:   []string{hostA},
			want:    `{"CredHelpers": {"` + hostA + `":"ecrgate","gcr.io":"gcloud"}, "auths": {}}`,
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "minified file stays on one line",
			before:  ptr(`{"auths":{"x":{"auth":"YTpi"}},"credsStore":"osxkeychain"}`),
			hosts:   []string{hostA},
			want:    `{"auths":{"x":{"auth":"YTpi"}},"credsStore":"osxkeychain","credHelpers":{"` + hostA + `":"ecrgate"}}`,
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "two-space file keeps its indentation",
			before:  ptr("{\n  \"auths\": {\n    \"x\": {}\n  }\n}\n"),
			hosts:   []string{hostA},
			want:    "{\n  \"auths\": {\n    \"x\": {}\n  },\n  \"credHelpers\": {\n    \"" + hostA + "\": \"ecrgate\"\n  }\n}\n",
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "credHelpers null",
			before:  ptr("{\n\t\"credHelpers\": null\n}"),
			hosts:   []string{hostA},
			want:    "{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}",
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:    "hosts normalized and deduplicated",
			before:  ptr("{}"),
			hosts:   []string{"HTTPS://" + strings.ToUpper(hostA) + "/", hostA, "http://" + hostA},
			want:    "{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}",
			changes: []Change{{Host: hostA, New: "ecrgate"}},
		},
		{
			name:   "no hosts: no change",
			before: ptr(richConfig),
			want:   richConfig,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := Path([]string{"HOME=" + t.TempDir()})
			if tt.before != nil {
				write(t, path, *tt.before, 0o600)
			}
			p, err := PlanCredHelpers(path, "ecrgate", tt.hosts)
			if err != nil {
				t.Fatalf("PlanCredHelpers: %v", err)
			}
			if string(p.After) != tt.want {
				t.Errorf("After =\n%s\nwant\n%s", p.After, tt.want)
			}
			if !slices.Equal(p.Changes, tt.changes) {
				t.Errorf("Changes = %v, want %v", p.Changes, tt.changes)
			}
			if p.Exists != (tt.before != nil) || p.Path != path || p.Target != path {
				t.Errorf("Exists, Path, Target = %v, %q, %q", p.Exists, p.Path, p.Target)
			}
			if tt.before != nil && string(p.Before) != *tt.before {
				t.Errorf("Before = %q, want the file's content", p.Before)
			}
			if tt.before != nil && strings.TrimSpace(*tt.before) != "" {
				// Every other top-level key keeps its place and its bytes.
				if got, want := withoutCredHelpers(topLevel(t, p.After)), withoutCredHelpers(topLevel(t, p.Before)); !slices.Equal(got, want) {
					t.Errorf("other keys changed:\n got %q\nwant %q", got, want)
				}
			}
			if tt.before == nil {
				if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("planning created the directory: %v", err)
				}
			} else if got := read(t, path); got != *tt.before {
				t.Errorf("planning changed the file")
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestChangeString(t *testing.T) {
	tests := []struct {
		c    Change
		want string
	}{
		{Change{Host: "h", New: "ecrgate"}, `add credHelpers["h"] = "ecrgate"`},
		{Change{Host: "h", Old: "ecr-login", New: "ecrgate"}, `replace credHelpers["h"]: "ecr-login" -> "ecrgate"`},
		{Change{Host: "h", Old: "ecrgate"}, `remove credHelpers["h"] (was "ecrgate")`},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestPlanBadArguments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	tests := []struct {
		name   string
		path   string
		helper string
		hosts  []string
		want   string
	}{
		{"no path", "", "ecrgate", []string{hostA}, "DOCKER_CONFIG or HOME"},
		{"empty helper", path, "", []string{hostA}, "helper name is empty"},
		{"full helper name", path, "docker-credential-ecrgate", []string{hostA}, "without the docker-credential- prefix"},
		{"bad helper", path, "a/b", []string{hostA}, "not a valid name"},
		{"bad host", path, "ecrgate", []string{hostA, "oci://x"}, "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlanCredHelpers(tt.path, tt.helper, tt.hosts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestApplyCreatesMissingFile(t *testing.T) {
	home := t.TempDir()
	path := Path([]string{"HOME=" + home})
	p, err := PlanCredHelpers(path, "ecrgate", []string{hostA})
	if err != nil {
		t.Fatal(err)
	}
	backup, err := p.Apply()
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if backup != "" {
		t.Errorf("backup = %q, want none for a new file", backup)
	}
	if got := read(t, path); got != string(p.After) {
		t.Errorf("file = %q, want %q", got, p.After)
	}
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{{filepath.Dir(path), fs.ModeDir | 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.want {
			t.Errorf("%s mode = %v, want %v", c.path, fi.Mode(), c.want)
		}
	}
	if got, want := dirNames(t, filepath.Dir(path)), []string{"config.json", "config.json.lock"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}

func TestApplyKeepsModeAndBacksUp(t *testing.T) {
	for _, mode := range []fs.FileMode{0o600, 0o640, 0o644} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := Path([]string{"DOCKER_CONFIG=" + dir})
			write(t, path, richConfig, mode)

			p, err := PlanCredHelpers(path, "ecrgate", []string{hostA})
			if err != nil {
				t.Fatal(err)
			}
			fixedClock(p)
			backup, err := p.Apply()
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if want := filepath.Join(dir, "config.json.bak-20260102T030405Z"); backup != want {
				t.Errorf("backup = %q, want %q", backup, want)
			}
			if got := read(t, backup); got != richConfig {
				t.Errorf("backup content differs from the old file")
			}
			if got := read(t, path); got != string(p.After) {
				t.Errorf("file content = %q, want After", got)
			}
			for _, f := range []string{path, backup} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != mode {
					t.Errorf("%s mode = %v, want %v", f, fi.Mode(), mode)
				}
			}

			// A second change in the same second gets its own backup.
			p2, err := PlanCredHelpers(path, "ecrgate", []string{hostB})
			if err != nil {
				t.Fatal(err)
			}
			fixedClock(p2)
			backup2, err := p2.Apply()
			if err != nil {
				t.Fatal(err)
			}
			if backup2 != backup+".1" || read(t, backup2) != string(p.After) || read(t, backup) != richConfig {
				t.Errorf("second backup = %q, want %q holding the first result", backup2, backup+".1")
			}
			want := []string{"config.json", "config.json.bak-20260102T030405Z", "config.json.bak-20260102T030405Z.1", "config.json.lock"}
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Errorf("directory holds %q, want %q (no temporary files left)", got, want)
			}
		})
	}
}

func TestIdempotent(t *testing.T) {
	for _, before := range []*string{nil, ptr(richConfig), ptr("{\"credHelpers\":{\"" + hostB + "\":\"ecr-login\"}}")} {
		t.Run(fmt.Sprint(before != nil), func(t *testing.T) {
			path := Path([]string{"HOME=" + t.TempDir()})
			if before != nil {
				write(t, path, *before, 0o600)
			}
			hosts := []string{hostA, hostB}
			p, err := PlanCredHelpers(path, "ecrgate", hosts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Apply(); err != nil {
				t.Fatal(err)
			}
			old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
			namesBefore := dirNames(t, filepath.Dir(path))

			p2, err := PlanCredHelpers(path, "ecrgate", []string{"https://" + hostB + "/", strings.ToUpper(hostA)})
			if err != nil {
				t.Fatal(err)
			}
			if len(p2.Changes) != 0 || p2.Diff() != "" || !bytes.Equal(p2.Before, p2.After) {
				t.Fatalf("second plan: changes %v, diff %q", p2.Changes, p2.Diff())
			}
			backup, err := p2.Apply()
			if err != nil || backup != "" {
				t.Fatalf("second Apply = %q, %v; want nothing done", backup, err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(old) {
				t.Errorf("mtime changed to %v", fi.ModTime())
			}
			if got := read(t, path); got != string(p.After) {
				t.Errorf("file changed on the second run")
			}
			if got := dirNames(t, filepath.Dir(path)); !slices.Equal(got, namesBefore) {
				t.Errorf("directory changed on the second run: %q, was %q", got, namesBefore)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"missing value", "{\n\t\"auths\": {},\n\t\"x\": }\n", []string{"not valid JSON", "line 3, column 7"}},
		{"trailing comma", "{\n\t\"a\": 1,\n}", []string{"line 3, column 1"}},
		{"unterminated", "{\n\t\"a\": \"b", []string{"line 2", "unexpected end"}},
		{"trailing garbage", "{}\n{}", []string{"line 2, column 1"}},
		{"single quotes", "{'a': 1}", []string{"line 1, column 2"}},
		{"array", "[1, 2]", []string{"top level is a JSON array"}},
		{"null", "null", []string{"top level is null"}},
		{"credHelpers not strings", "{\n\t\"auths\": {},\n\t\"credHelpers\": {\"h\": 1}\n}", []string{"line 3", `"credHelpers" must map`}},
		{"credHelpers a list", "{\"credHelpers\": [\"h\"]}", []string{`"credHelpers" must map`}},
		{"credHelpers twice", "{\"credHelpers\": {}, \"credHelpers\": {}}", []string{"appears twice"}},
		{"credHelpers twice in two cases", "{\"credHelpers\": {}, \"credhelpers\": {}}", []string{`appears twice at the top level (as "credHelpers" and "credhelpers")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.json")
			write(t, path, tt.content, 0o600)
			for name, plan := range map[string]func(string, string, []string) (*Plan, error){
				"add": PlanCredHelpers, "remove": PlanRemoveCredHelpers,
			} {
				p, err := plan(path, "ecrgate", []string{hostA})
				if err == nil {
					t.Fatalf("%s: no error; plan %+v", name, p)
				}
				for _, w := range append([]string{path}, tt.want...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not contain %q", name, err, w)
					}
				}
			}
			if got := read(t, path); got != tt.content {
				t.Errorf("file was touched")
			}
			if got := dirNames(t, dir); !slices.Equal(got, []string{"config.json"}) {
				t.Errorf("directory holds %q", got)
			}
		})
	}
}

// TestSymlink checks the decision documented on the package: a symlink to a
// regular file is followed and its target replaced (the link stays a link);
// anything else is refused.
func TestSymlink(t *testing.T) {
	t.Run("to a regular file", func(t *testing.T) {
		home := t.TempDir()
		dotfiles := t.TempDir()
		real := filepath.Join(dotfiles, "docker", "config.json")
		write(t, real, richConfig, 0o640)
		path := Path([]string{"HOME=" + home})
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, path); err != nil {
			t.Fatal(err)
		}
		realResolved, err := filepath.EvalSymlinks(real)
		if err != nil {
			t.Fatal(err)
		}

		p, err := PlanCredHelpers(path, "ecrgate", []string{hostA})
		if err != nil {
			t.Fatal(err)
		}
		if p.Path != path || p.Target != realResolved || !p.Exists || string(p.Before) != richConfig {
			t.Fatalf("plan Path %q Target %q Exists %v", p.Path, p.Target, p.Exists)
		}
		fixedClock(p)
		backup, err := p.Apply()
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if link, err := os.Readlink(path); err != nil || link != real {
			t.Errorf("link now %q, %v; want it still pointing at %q", link, err, real)
		}
		if got := read(t, real); got != string(p.After) {
			t.Errorf("target not updated")
		}
		if fi, err := os.Stat(real); err != nil || fi.Mode() != 0o640 {
			t.Errorf("target mode = %v, %v; want 0640", fi.Mode(), err)
		}
		if filepath.Dir(backup) != filepath.Dir(realResolved) || read(t, backup) != richConfig {
			t.Errorf("backup %q: want it beside the target, holding the old content", backup)
		}
		if got := dirNames(t, filepath.Dir(path)); !slices.Equal(got, []string{"config.json"}) {
			t.Errorf("link directory holds %q, want only the link", got)
		}
	})

	refused := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"dangling symlink", func(t *testing.T, path string) {
			must(t, os.Symlink(filepath.Join(t.TempDir(), "gone.json"), path))
		}, "does not resolve"},
		{"symlink loop", func(t *testing.T, path string) {
			must(t, os.Symlink(path, path))
		}, "does not resolve"},
		{"symlink to a directory", func(t *testing.T, path string) {
			must(t, os.Symlink(t.TempDir(), path))
		}, "which is a directory"},
		{"symlink to a device", func(t *testing.T, path string) {
			if _, err := os.Stat(os.DevNull); err != nil || os.DevNull != "/dev/null" {
				t.Skip("no /dev/null")
			}
			must(t, os.Symlink(os.DevNull, path))
		}, "which is a device"},
		{"directory", func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o700))
		}, "is a directory, not a regular file"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.json")
			tt.setup(t, path)
			before := dirNames(t, dir)
			_, err := PlanCredHelpers(path, "ecrgate", []string{hostA})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error = %v, want it to name %s and contain %q", err, path, tt.want)
			}
			if got := dirNames(t, dir); !slices.Equal(got, before) {
				t.Errorf("directory changed: %q", got)
			}
		})
	}

	t.Run("replaced by a directory after planning", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "config.json")
		p, err := PlanCredHelpers(path, "ecrgate", []string{hostA})
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.Mkdir(path, 0o700))
		if _, err := p.Apply(); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("Apply error = %v, want a refusal", err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentChange(t *testing.T) {
	tests := []struct {
		name   string
		before *string
		change func(t *testing.T, path string)
		after  *string // file content expected after the refused Apply; nil: no file
	}{
		{"edited", ptr(richConfig), func(t *testing.T, path string) {
			write(t, path, `{"currentContext": "other"}`, 0o600)
		}, ptr(`{"currentContext": "other"}`)},
		{"created", nil, func(t *testing.T, path string) {
			write(t, path, `{}`, 0o600)
		}, ptr(`{}`)},
		{"deleted", ptr(richConfig), func(t *testing.T, path string) {
			must(t, os.Remove(path))
		}, nil},
		{"replaced by a symlink", ptr(richConfig), func(t *testing.T, path string) {
			other := filepath.Join(t.TempDir(), "config.json")
			write(t, other, richConfig, 0o600)
			must(t, os.Remove(path))
			must(t, os.Symlink(other, path))
		}, ptr(richConfig)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.json")
			if tt.before != nil {
				write(t, path, *tt.before, 0o600)
			}
			p, err := PlanCredHelpers(path, "ecrgate", []string{hostA})
			if err != nil {
				t.Fatal(err)
			}
			tt.change(t, path)
			backup, err := p.Apply()
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("Apply = %q, %v; want ErrChanged", backup, err)
			}
			if want := path + " changed since the plan was made; run again"; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			got, rerr := os.ReadFile(path)
			switch {
			case tt.after == nil && !errors.Is(rerr, fs.ErrNotExist):
				t.Errorf("file exists after refused Apply: %v", rerr)
			case tt.after != nil && string(got) != *tt.after:
				t.Errorf("file = %q, want the other writer's %q", got, *tt.after)
			}
			for _, n := range dirNames(t, dir) {
				if strings.Contains(n, ".bak-") || strings.Contains(n, ".tmp-") {
					t.Errorf("left %s behind", n)
				}
			}
		})
	}
}

// TestConcurrentApplies runs many read-modify-write cycles against one file
// at once; with the lock and the re-read no update may be lost.
func TestConcurrentApplies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	write(t, path, richConfig, 0o600)
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			host := fmt.Sprintf("%012d.dkr.ecr.us-east-1.amazonaws.com", i)
			for range 200 {
				p, err := PlanCredHelpers(path, "ecrgate", []string{host})
				if err != nil {
					errs <- err
					return
				}
				_, err = p.Apply()
				if errors.Is(err, ErrChanged) {
					continue
				}
				errs <- err
				return
			}
			errs <- fmt.Errorf("%s: gave up after 200 conflicts", host)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var cfg struct{ CredHelpers map[string]string }
	data := []byte(read(t, path))
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.CredHelpers) != n {
		t.Errorf("credHelpers has %d entries, want %d: %v", len(cfg.CredHelpers), n, cfg.CredHelpers)
	}
	if got, want := withoutCredHelpers(topLevel(t, data)), topLevel(t, []byte(richConfig)); !slices.Equal(got, want) {
		t.Errorf("other keys changed")
	}
}

func TestApplyWaitsForLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	write(t, path, "{}", 0o600)
	unlock, err := lockPath(path+".lock", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanCredHelpers(path, "ecrgate", []string{hostA})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := p.Apply(); done <- err }()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("Apply finished while another holder had the lock: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if got := read(t, path); got != "{}" {
		t.Errorf("file written while locked")
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("Apply after unlock: %v", err)
	}
	if got := read(t, path); got != string(p.After) {
		t.Errorf("file = %q, want After", got)
	}
}

func TestDiff(t *testing.T) {
	const before = "{\n" +
		"\t\"auths\": {\n" +
		"\t\t\"ghcr.io\": {\n" +
		"\t\t\t\"auth\": \"Z2g6c2VjcmV0\"\n" +
		"\t\t}\n" +
		"\t},\n" +
		"\t\"credHelpers\": {\n" +
		"\t\t\"" + hostA + "\": \"ecr-login\",\n" +
		"\t\t\"gcr.io\": \"gcloud\"\n" +
		"\t},\n" +
		"\t\"proxies\": {\n" +
		"\t\t\"default\": {\n" +
		"\t\t\t\"httpsProxy\": \"http://bob:hunter2@proxy:3128\"\n" +
		"\t\t}\n" +
		"\t}\n" +
		"}"
	tests := []struct {
		name   string
		before *string
		plan   func(path string) (*Plan, error)
		want   string
	}{
		{
			name:   "replace and add",
			before: ptr(before),
			plan: func(path string) (*Plan, error) {
				return PlanCredHelpers(path, "ecrgate", []string{hostA, hostB})
			},
			want: "--- PATH\n+++ PATH\n" +
				"@@ -5,7 +5,8 @@\n" +
				" \t\t}\n" +
				" \t},\n" +
				" \t\"credHelpers\": {\n" +
				"-\t\t\"" + hostA + "\": \"ecr-login\",\n" +
				"+\t\t\"" + hostA + "\": \"ecrgate\",\n" +
				"+\t\t\"" + hostB + "\": \"ecrgate\",\n" +
				" \t\t\"gcr.io\": \"gcloud\"\n" +
				" \t},\n" +
				" \t\"proxies\": {\n",
		},
		{
			name: "new file",
			plan: func(path string) (*Plan, error) {
				return PlanCredHelpers(path, "ecrgate", []string{hostA})
			},
			want: "--- /dev/null\n+++ PATH\n" +
				"@@ -0,0 +1,5 @@\n" +
				"+{\n" +
				"+\t\"credHelpers\": {\n" +
				"+\t\t\"" + hostA + "\": \"ecrgate\"\n" +
				"+\t}\n" +
				"+}\n",
		},
		{
			name:   "redacts credentials on context lines",
			before: ptr("{\"auths\":{\"x\":{\"auth\":\"c2VjcmV0\",\"identitytoken\":\"tok\\\"en-SECRET\"}},\"proxies\":{\"default\":{\"httpProxy\":\"http://u:p@h\"}}}"),
			plan: func(path string) (*Plan, error) {
				return PlanCredHelpers(path, "ecrgate", []string{hostA})
			},
			want: "--- PATH\n+++ PATH\n" +
				"@@ -1 +1 @@\n" +
				"-{\"auths\":{\"x\":{\"auth\":\"<redacted>\",\"identitytoken\":\"<redacted>\"}},\"proxies\":{\"default\":{\"httpProxy\":\"http://<redacted>@h\"}}}\n" +
				"+{\"auths\":{\"x\":{\"auth\":\"<redacted>\",\"identitytoken\":\"<redacted>\"}},\"proxies\":{\"default\":{\"httpProxy\":\"http://<redacted>@h\"}},\"credHelpers\":{\"" + hostA + "\":\"ecrgate\"}}\n",
		},
		{
			name:   "remove",
			before: ptr(before),
			plan: func(path string) (*Plan, error) {
				return PlanRemoveCredHelpers(path, "ecr-login", []string{hostA})
			},
			want: "--- PATH\n+++ PATH\n" +
				"@@ -5,7 +5,6 @@\n" +
				" \t\t}\n" +
				" \t},\n" +
				" \t\"credHelpers\": {\n" +
				"-\t\t\"" + hostA + "\": \"ecr-login\",\n" +
				" \t\t\"gcr.io\": \"gcloud\"\n" +
				" \t},\n" +
				" \t\"proxies\": {\n",
		},
		{
			name:   "no change",
			before: ptr(before),
			plan: func(path string) (*Plan, error) {
				return PlanCredHelpers(path, "gcloud", []string{"gcr.io"})
			},
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			if tt.before != nil {
				write(t, path, *tt.before, 0o600)
			}
			p, err := tt.plan(path)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tt.want, "PATH", path)
			if got := p.Diff(); got != want {
				t.Errorf("Diff() =\n%s\nwant\n%s", got, want)
			}
			for _, secret := range []string{"Z2g6c2VjcmV0", "c2VjcmV0", "hunter2", "SECRET"} {
				if strings.Contains(p.Diff(), secret) {
					t.Errorf("Diff shows secret %q", secret)
				}
			}
		})
	}
}

func TestUnifiedDiffHunks(t *testing.T) {
	a := strings.Fields("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20")
	tests := []struct {
		name string
		b    []string
		want string
	}{
		{
			name: "changes 6 equal lines apart share a hunk, 9 apart do not",
			b:    strings.Fields("1 two 3 4 5 6 7 8 8.5 9 10 11 12 13 14 15 16 17 eighteen 19 20"),
			want: "@@ -1,11 +1,12 @@\n 1\n-2\n+two\n 3\n 4\n 5\n 6\n 7\n 8\n+8.5\n 9\n 10\n 11\n" +
				"@@ -15,6 +16,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n",
		},
		{
			name: "7 equal lines apart: two hunks",
			b:    strings.Fields("1 two 3 4 5 6 7 8 9 ten 11 12 13 14 15 16 17 18 19 20"),
			want: "@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n" +
				"@@ -7,7 +7,7 @@\n 7\n 8\n 9\n-10\n+ten\n 11\n 12\n 13\n",
		},
		{
			name: "deletion at the end",
			b:    a[:18],
			want: "@@ -16,5 +16,3 @@\n 16\n 17\n 18\n-19\n-20\n",
		},
		{
			name: "everything new",
			b:    []string{"x"},
			want: "@@ -1,20 +1 @@\n" + "-" + strings.Join(a, "\n-") + "\n+x\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := unifiedDiff("a", "b", a, tt.b), "--- a\n+++ b\n"+tt.want; got != want {
				t.Errorf("unifiedDiff =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name    string
		before  *string
		hosts   []string
		want    string
		changes []Change
	}{
		{
			name:    "only ours, leave others",
			before:  ptr("{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\",\n\t\t\"" + hostB + "\": \"ecr-login\",\n\t\t\"" + hostC + "\": \"ecrgate\"\n\t}\n}"),
			hosts:   []string{hostA, hostB, "unknown.example"},
			want:    "{\n\t\"credHelpers\": {\n\t\t\"" + hostB + "\": \"ecr-login\",\n\t\t\"" + hostC + "\": \"ecrgate\"\n\t}\n}",
			changes: []Change{{Host: hostA, Old: "ecrgate"}},
		},
		{
			name:    "emptied key dropped: only member",
			before:  ptr("{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t}\n}\n"),
			hosts:   []string{"https://" + hostA},
			want:    "{}\n",
			changes: []Change{{Host: hostA, Old: "ecrgate"}},
		},
		{
			name:    "emptied key dropped: first member",
			before:  ptr("{\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t},\n\t\"auths\": {}\n}"),
			hosts:   []string{hostA},
			want:    "{\n\t\"auths\": {}\n}",
			changes: []Change{{Host: hostA, Old: "ecrgate"}},
		},
		{
			name:    "emptied key dropped: middle member",
			before:  ptr("{\n\t\"auths\": {},\n\t\"credHelpers\": {\n\t\t\"" + hostA + "\": \"ecrgate\"\n\t},\n\t\"currentContext\": \"x\"\n}"),
			hosts:   []string{hostA},
			want:    "{\n\t\"auths\": {},\n\t\"currentContext\": \"x\"\n}",
			changes: []Change{{Host: hostA, Old: "ecrgate"}},
		},
		{
			name:    "emptied key dropped: minified last member",
			before:  ptr(`{"auths":{},"credHelpers":{"` + hostA + `":"ecrgate"}}`),
			hosts:   []string{hostA},
			want:    `{"auths":{}}`,
			changes: []Change{{Host: hostA, Old: "ecrgate"}},
		},
		{
			name:   "another helper's entry is not ours",
			before: ptr("{\"credHelpers\":{\"" + hostA + "\":\"ecr-login\"}}"),
			hosts:  []string{hostA},
			want:   "{\"credHelpers\":{\"" + hostA + "\":\"ecr-login\"}}",
		},
		{
			name:   "no credHelpers",
			before: ptr(richConfig),
			hosts:  []string{hostA},
			want:   richConfig,
		},
		{
			name:  "missing file",
			hosts: []string{hostA},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.json")
			if tt.before != nil {
				write(t, path, *tt.before, 0o600)
			}
			p, err := PlanRemoveCredHelpers(path, "ecrgate", tt.hosts)
			if err != nil {
				t.Fatal(err)
			}
			if string(p.After) != tt.want || !slices.Equal(p.Changes, tt.changes) {
				t.Fatalf("After = %q, Changes = %v; want %q, %v", p.After, p.Changes, tt.want, tt.changes)
			}
			if _, err := p.Apply(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			switch {
			case tt.before == nil && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("remove created the file: %v", err)
			case tt.before != nil && string(got) != tt.want:
				t.Errorf("file = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAddThenRemoveRoundTrip: undo restores a docker-written file exactly.
func TestAddThenRemoveRoundTrip(t *testing.T) {
	for _, before := range []string{richConfig, "{}", `{"auths":{}}`, "{\n  \"a\": 1\n}\n"} {
		path := filepath.Join(t.TempDir(), "config.json")
		write(t, path, before, 0o600)
		add, err := PlanCredHelpers(path, "ecrgate", []string{hostA, hostB})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := add.Apply(); err != nil {
			t.Fatal(err)
		}
		undo, err := PlanRemoveCredHelpers(path, "ecrgate", []string{hostB, hostA})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := undo.Apply(); err != nil {
			t.Fatal(err)
		}
		want := before
		if before == "{}" {
			want = "{}" // an empty object has no layout to restore
		}
		if got := read(t, path); got != want {
			t.Errorf("after add and remove: %q, want %q", got, want)
		}
	}
}

// FuzzPlan checks that on any valid top-level object the edit yields valid
// JSON holding the new entry, with every other member unchanged.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{richConfig, "{}", " { } ", `{"credHelpers":null}`, `{"a":1,"credHelpers":{"x":"y"},"b":[{}]}`, "{\"a\"\n:\n\"\\u0000\"\r\n}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseDocument("fuzz.json", data)
		if err != nil {
			return
		}
		helpers, err := doc.credHelpers("fuzz.json")
		if err != nil {
			return
		}
		next := map[string]string{hostA: "ecrgate"}
		for k, v := range helpers {
			if k != hostA {
				next[k] = v
			}
		}
		after, err := doc.withCredHelpers(next)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ CredHelpers map[string]string }
		if err := json.Unmarshal(after, &got); err != nil {
			t.Fatalf("edited %q into invalid JSON %q: %v", data, after, err)
		}
		if got.CredHelpers[hostA] != "ecrgate" || len(got.CredHelpers) != len(next) {
			t.Fatalf("credHelpers = %v, want %v", got.CredHelpers, next)
		}
		if !doc.blank {
			if a, b := withoutCredHelpers(topLevel(t, after)), withoutCredHelpers(topLevel(t, data)); !slices.Equal(a, b) {
				t.Fatalf("other members changed: %q -> %q", data, after)
			}
		}
	})
}
