package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	acct1 = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	acct2 = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
)

// testEnv is the environment every test passes; the process's own is never read.
var testEnv = []string{"HOME=/home/u"}

func ptr[T any](v T) *T { return &v }

// lifecycleJSON is a valid lifecycle policy of more than 100 characters.
const lifecycleJSON = `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}`

func TestExampleFile(t *testing.T) {
	c, err := Load("testdata/example.yaml", testEnv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after Load: %v", err)
	}
	lifecycle, _ := os.ReadFile("testdata/lifecycle.json")
	policy, _ := os.ReadFile("testdata/pull-from-prod.json")
	want := &Config{
		Listen:      "127.0.0.1:5000",
		AdminListen: "127.0.0.1:5002",
		Intercept:   Intercept{Listen: "127.0.0.1:5001", Hosts: "configured", TunnelOthers: ptr(true)},
		LogLevel:    "info",
		LogFormat:   "text",
		AuditLog:    "/home/u/.local/state/ecrgate/audit.jsonl",

		DefaultRegistry: acct1,
		Routes:          []Route{{Prefix: "prod/", Registry: acct2}},
		Registries:      []Registry{{Host: acct1, Profile: "dev"}},
		Allow:           []string{"team/*", "tools/*"},
		Deny:            []string{"*/tmp*"},
		Templates: []Template{
			{Prefix: "ROOT", ImageTagMutability: "MUTABLE", Encryption: Encryption{Type: "AES256"}},
			{
				Prefix:                             "team",
				ImageTagMutability:                 "IMMUTABLE_WITH_EXCLUSION",
				ImageTagMutabilityExclusionFilters: []ExclusionFilter{{FilterType: "WILDCARD", Filter: "latest"}},
				ScanOnPush:                         true,
				Encryption:                         Encryption{Type: "KMS", KMSKey: "alias/ecr"},
				LifecyclePolicy:                    strings.TrimSpace(string(lifecycle)),
				RepositoryPolicy:                   strings.TrimSpace(string(policy)),
				Tags:                               map[string]string{"team": "platform", "cost-center": "42"},
			},
		},
		LocalHosts: map[string]string{"127.0.0.1:5000": acct1, "localhost:5000": acct1},
		Path:       "testdata/example.yaml",
	}
	got := *c
	got.src = nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("Load(example) =\n%+v\nwant\n%+v", got, *want)
	}
}

func TestDefaults(t *testing.T) {
	want := &Config{
		Listen:      "127.0.0.1:5000",
		AdminListen: "127.0.0.1:5002",
		Intercept:   Intercept{Listen: "127.0.0.1:5001", Hosts: "configured", TunnelOthers: ptr(true)},
		LogLevel:    "info",
		LogFormat:   "text",
		AuditLog:    "/home/u/.local/state/ecrgate/audit.jsonl",
		Path:        "config.yaml",
	}
	for _, in := range []string{"", "\n\n", "# only a comment\n  # another\n", "---\n", "--- # doc\n...\n", "{}", "null", "~\n", "listen:\nlog_level: ~\n"} {
		c, err := Parse([]byte(in), "config.yaml", testEnv)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		got := *c
		got.src = nil
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", in, got, *want)
		}
		if !c.Intercept.Tunnel() || c.SlogLevel().String() != "INFO" {
			t.Errorf("Parse(%q): Tunnel() = %v, SlogLevel() = %v; want true, INFO", in, c.Intercept.Tunnel(), c.SlogLevel())
		}
	}

	d := Default(testEnv)
	want.Path = ""
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Default =\n%+v\nwant\n%+v", *d, *want)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Default(env).Validate() = %v", err)
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("zero Config: Validate() = %v, want nil", err)
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		auditLog string
	}{
		{"HOME", []string{"HOME=/home/u"}, "/home/u/.local/state/ecrgate/audit.jsonl"},
		{"XDG_STATE_HOME", []string{"HOME=/home/u", "XDG_STATE_HOME=/var/state"}, "/var/state/ecrgate/audit.jsonl"},
		{"relative XDG_STATE_HOME ignored", []string{"HOME=/home/u", "XDG_STATE_HOME=state"}, "/home/u/.local/state/ecrgate/audit.jsonl"},
		{"last entry wins", []string{"HOME=/a", "HOME=/b"}, "/b/.local/state/ecrgate/audit.jsonl"},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(nil, "config.yaml", tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.AuditLog != tt.auditLog {
				t.Errorf("AuditLog = %q, want %q", c.AuditLog, tt.auditLog)
			}
		})
	}
}

func TestLocalHostsDefault(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       map[string]string
	}{
		{"no default registry", "listen: 127.0.0.1:5000", nil},
		{"default listen", "default_registry: " + acct1, map[string]string{"127.0.0.1:5000": acct1, "localhost:5000": acct1}},
		{"other port", "listen: 127.0.0.1:6000\ndefault_registry: " + acct1, map[string]string{"127.0.0.1:6000": acct1, "localhost:6000": acct1}},
		{"all addresses", "listen: :5000\nallow_remote: true\ntls: {cert_file: CERT, key_file: KEY}\ndefault_registry: " + acct1, map[string]string{"127.0.0.1:5000": acct1, "localhost:5000": acct1}},
		{"IPv6 loopback", "listen: \"[::1]:5000\"\ndefault_registry: " + acct1, map[string]string{"[::1]:5000": acct1, "localhost:5000": acct1}},
		{"localhost", "listen: localhost:5000\ndefault_registry: " + acct1, map[string]string{"localhost:5000": acct1}},
		{"upper case host normalized", "default_registry: 123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM", map[string]string{"127.0.0.1:5000": acct1, "localhost:5000": acct1}},
		{"given", "default_registry: " + acct1 + "\nlocal_hosts: {\"ecr.local:5000\": " + acct2 + "}", map[string]string{"ecr.local:5000": acct2}},
		{"given empty", "default_registry: " + acct1 + "\nlocal_hosts: {}", map[string]string{}},
	}
	cert, key := writePair(t, t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.yaml = strings.NewReplacer("CERT", cert, "KEY", key).Replace(tt.yaml)
			c, err := Parse([]byte(tt.yaml), "config.yaml", testEnv)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.LocalHosts, tt.want) {
				t.Errorf("LocalHosts = %v, want %v", c.LocalHosts, tt.want)
			}
			for local, reg := range tt.want {
				if got, ok := c.LocalRegistry(strings.ToUpper(local)); !ok || got != reg {
					t.Errorf("LocalRegistry(%q) = %q, %v; want %q, true", local, got, ok, reg)
				}
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"HOME only", []string{"HOME=/home/u"}, "/home/u/.config/ecrgate/config.yaml"},
		{"XDG_CONFIG_HOME", []string{"HOME=/home/u", "XDG_CONFIG_HOME=/etc/xdg-u"}, "/etc/xdg-u/ecrgate/config.yaml"},
		{"relative XDG_CONFIG_HOME ignored", []string{"HOME=/home/u", "XDG_CONFIG_HOME=cfg"}, "/home/u/.config/ecrgate/config.yaml"},
		{"empty XDG_CONFIG_HOME ignored", []string{"HOME=/home/u", "XDG_CONFIG_HOME="}, "/home/u/.config/ecrgate/config.yaml"},
		{"ECRGATE_CONFIG wins", []string{"HOME=/home/u", "XDG_CONFIG_HOME=/x", "ECRGATE_CONFIG=/srv/ecrgate.yaml"}, "/srv/ecrgate.yaml"},
		{"ECRGATE_CONFIG relative", []string{"ECRGATE_CONFIG=ecrgate.yaml"}, "ecrgate.yaml"},
		{"ECRGATE_CONFIG tilde", []string{"HOME=/home/u", "ECRGATE_CONFIG=~/e.yaml"}, "/home/u/e.yaml"},
		{"empty ECRGATE_CONFIG ignored", []string{"HOME=/home/u", "ECRGATE_CONFIG="}, "/home/u/.config/ecrgate/config.yaml"},
		{"XDG without HOME", []string{"XDG_CONFIG_HOME=/xdg"}, "/xdg/ecrgate/config.yaml"},
		{"nothing", nil, ""},
		{"malformed entries", []string{"HOME", "=x", "HOME=/h"}, "/h/.config/ecrgate/config.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultPath(tt.env); got != tt.want {
				t.Errorf("DefaultPath(%q) = %q, want %q", tt.env, got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("log_level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir() // no config file under it

	t.Run("missing default file gives defaults", func(t *testing.T) {
		c, err := Load("", []string{"HOME=" + home})
		if err != nil {
			t.Fatal(err)
		}
		if c.Path != "" || c.Listen != DefaultListen {
			t.Errorf("Path = %q, Listen = %q; want \"\", %q", c.Path, c.Listen, DefaultListen)
		}
	})
	t.Run("no HOME gives defaults", func(t *testing.T) {
		if _, err := Load("", nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("default file is read", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(dir, "xdg", "ecrgate"), 0o700); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "xdg", "ecrgate", "config.yaml")
		if err := os.WriteFile(p, []byte("log_format: json\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load("", []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg")})
		if err != nil {
			t.Fatal(err)
		}
		if c.Path != p || c.LogFormat != "json" {
			t.Errorf("Path = %q, LogFormat = %q; want %q, json", c.Path, c.LogFormat, p)
		}
	})
	t.Run("given file", func(t *testing.T) {
		c, err := Load(file, testEnv)
		if err != nil {
			t.Fatal(err)
		}
		if c.Path != file || c.LogLevel != "debug" {
			t.Errorf("Path = %q, LogLevel = %q; want %q, debug", c.Path, c.LogLevel, file)
		}
	})
	t.Run("ECRGATE_CONFIG file", func(t *testing.T) {
		c, err := Load("", []string{"ECRGATE_CONFIG=" + file})
		if err != nil {
			t.Fatal(err)
		}
		if c.Path != file || c.LogLevel != "debug" {
			t.Errorf("Path = %q, LogLevel = %q; want %q, debug", c.Path, c.LogLevel, file)
		}
	})
	missing := filepath.Join(dir, "missing.yaml")
	for _, tc := range []struct {
		name, path string
		env        []string
		want       string
	}{
		{"missing given file", missing, testEnv, missing + ": the configuration file given does not exist"},
		{"missing ECRGATE_CONFIG file", "", []string{"HOME=" + home, "ECRGATE_CONFIG=" + missing}, missing + ": the configuration file named by ECRGATE_CONFIG does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.path, tc.env)
			if err == nil || c != nil {
				t.Fatalf("Load = %v, %v; want an error", c, err)
			}
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %q; want it to contain %q and wrap fs.ErrNotExist", err, tc.want)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		_, err := Load(dir, testEnv)
		if err == nil || !strings.Contains(err.Error(), dir+": cannot read the configuration file") {
			t.Errorf("Load(dir) error = %v", err)
		}
	})
	t.Run("invalid file", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:5000\nlog_levle: debug\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(bad, testEnv)
		want := bad + `:2: unknown key "log_levle" (did you mean "log_level"?)`
		if err == nil || err.Error() != want {
			t.Errorf("Load error = %v, want %s", err, want)
		}
	})
}

// TestParseErrors has one row per rule. Each row's error must contain
// "config.yaml:<line>: <key>: " (or "config.yaml:<line>: " for file-level
// problems) followed, somewhere, by msg.
func TestParseErrors(t *testing.T) {
	tmpl := func(lines ...string) string {
		return "templates:\n  - prefix: team\n" + strings.Join(lines, "\n") + "\n"
	}
	longPolicy := `{"rules":[{"rulePriority":1,"description":"` + strings.Repeat("x", 30720) + `","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`
	longRepoPolicy := `{"Statement":[],"Sid":"` + strings.Repeat("x", 10240) + `"}`
	var manyTags strings.Builder
	for i := range 51 {
		fmt.Fprintf(&manyTags, "      k%d: v\n", i)
	}

	tests := []struct {
		name string
		yaml string
		line int
		key  string
		msg  string
	}{
		// file structure
		{"syntax error", "listen: 127.0.0.1:5000\nlog_level: a: b\n", 2, "", "invalid YAML: mapping values are not allowed in this context"},
		{"tab indentation", "intercept:\n\tlisten: x\n", 2, "", "invalid YAML"},
		{"two documents", "listen: 127.0.0.1:5000\n---\nlisten: 127.0.0.1:6000\n", 2, "", "more than one YAML document"},
		{"top level list", "- listen\n", 1, "", "want a mapping of keys to values, got a list"},
		{"top level string", "hello\n", 1, "", `want a mapping of keys to values, got the string "hello"`},
		{"unknown key with suggestion", "listen: 127.0.0.1:5000\n\n\n\n\n\ntempaltes: []\n", 7, "", `unknown key "tempaltes" (did you mean "templates"?)`},
		{"unknown key spelled with dash", "log-level: info\n", 1, "", `unknown key "log-level" (did you mean "log_level"?)`},
		{"unknown key without suggestion", "colour: blue\n", 1, "", `unknown key "colour" (known keys: admin_listen, allow,`},
		{"unknown nested key", tmpl("    scan_on_psh: true"), 3, "templates[0]", `unknown key "scan_on_psh" (did you mean "scan_on_push"?)`},
		{"unknown intercept key", "intercept:\n  host: all-ecr\n", 2, "intercept", `unknown key "host" (did you mean "hosts"?)`},
		{"unknown filter key", tmpl("    image_tag_mutability: IMMUTABLE_WITH_EXCLUSION", "    image_tag_mutability_exclusion_filters:", "      - {filter: latest, type: WILDCARD}"), 5, "templates[0].image_tag_mutability_exclusion_filters[0]", `unknown key "type"`},
		{"unknown encryption key", tmpl("    encryption: {type: KMS, kms-key: alias/x}"), 3, "templates[0].encryption", `unknown key "kms-key" (did you mean "kms_key"?)`},
		{"credentials refused", "registries:\n  - host: " + acct1 + "\n    aws_secret_access_key: abc\n", 3, "registries[0]", "the file holds no credentials"},
		{"repeated key", "listen: 127.0.0.1:5000\nlog_level: info\nlisten: 127.0.0.1:6000\n", 3, "listen", "key repeated (first at line 1)"},
		{"repeated tag", tmpl("    tags:", "      a: b", "      a: c"), 5, `templates[0].tags["a"]`, "key repeated (first at line 4)"},
		{"unknown key holding an anchor", "x: &x {listen: 127.0.0.1:5000}\n", 1, "", `unknown key "x"`},
		{"merge key refused", "templates:\n  - &t {prefix: team}\n  - <<: *t\n    scan_on_push: true\n", 3, "templates[1]", "merge keys (<<) are not supported"},
		{"non-scalar key", "? [a]\n: b\n", 1, "", "keys must be names"},

		// types
		{"string wanted", "listen: {host: x}\n", 1, "listen", "want a string, got a mapping"},
		{"list wanted", "allow: team/*\n", 1, "allow", `want a list, got the string "team/*"`},
		{"string item wanted", "deny:\n  - a\n  - [b]\n", 3, "deny[1]", "want a string, got a list"},
		{"mapping wanted", "intercept: 127.0.0.1:5001\n", 1, "intercept", "want a mapping of keys to values"},
		{"template mapping wanted", "templates:\n  - team\n", 2, "templates[0]", `want a mapping of keys to values, got the string "team"`},
		{"templates list wanted", "templates: {prefix: team}\n", 1, "templates", "want a list, got a mapping"},
		{"bool wanted", "dry_run: \"yes\"\n", 1, "dry_run", `want true or false, got the string "yes"`},
		{"bool wanted not number", tmpl("    scan_on_push: 1"), 3, "templates[0].scan_on_push", "want true or false, got 1"},
		{"tunnel_others bool", "intercept:\n  tunnel_others: sometimes\n", 2, "intercept.tunnel_others", "want true or false"},
		{"tags mapping wanted", tmpl("    tags: [a, b]"), 3, "templates[0].tags", "want a mapping of names to strings, got a list"},
		{"tag value string wanted", tmpl("    tags:", "      a: [b]"), 4, `templates[0].tags["a"]`, "want a string, got a list"},
		{"local_hosts mapping wanted", "local_hosts: localhost\n", 1, "local_hosts", "want a mapping of names to strings"},

		// listeners and enums
		{"listen without port", "listen: localhost\n", 1, "listen", `"localhost" is not a host:port address`},
		{"listen bad port", "admin_listen: 127.0.0.1:http\n", 1, "admin_listen", `port "http" must be a number from 0 to 65535`},
		{"listen port too big", "listen: 127.0.0.1:70000\n", 1, "listen", "must be a number from 0 to 65535"},
		{"intercept listen", "intercept:\n  listen: 5001\n", 2, "intercept.listen", "is not a host:port address"},
		{"listeners collide", "listen: 127.0.0.1:5000\nadmin_listen: 127.0.0.1:5000\n", 2, "admin_listen", `"127.0.0.1:5000" is also the address of listen`},
		{"listener collides with default", "intercept:\n  listen: 127.0.0.1:5002\n", 2, "intercept.listen", "also the address of admin_listen"},
		{"intercept hosts", "intercept:\n  hosts: everything\n", 2, "intercept.hosts", `"everything" is not one of configured, all-ecr`},
		{"log level", "log_level: verbose\n", 1, "log_level", `"verbose" is not one of debug, info, warn, error`},
		{"log level case", "log_level: INFO\n", 1, "log_level", `(did you mean "info"?)`},
		{"log format", "log_format: yaml\n", 1, "log_format", `"yaml" is not one of text, json`},
		{"audit log tilde without HOME", "\naudit_log: ~/audit.jsonl\n", 2, "audit_log", `cannot expand "~/": HOME is not set`},

		// registries
		{"default registry not ECR", "default_registry: ghcr.io\n", 1, "default_registry", "is not an Amazon ECR registry host"},
		{"default registry region typo", "default_registry: 123456789012.dkr.ecr.us-eas-1.amazonaws.com\n", 1, "default_registry", acct1},
		{"default registry public", "default_registry: public.ecr.aws\n", 1, "default_registry", "is ECR Public"},
		{"default registry with scheme", "default_registry: https://" + acct1 + "/\n", 1, "default_registry", "want the host name alone"},
		{"default registry with port", "default_registry: " + acct1 + ":443\n", 1, "default_registry", "want the host name alone"},
		{"route prefix without slash", "routes:\n  - prefix: prod\n    registry: " + acct2 + "\n", 2, "routes[0].prefix", `"prod" must end with '/' (e.g. "prod/")`},
		{"route prefix missing", "routes:\n  - registry: " + acct2 + "\n", 2, "routes[0].prefix", "required"},
		{"route prefix invalid", "routes:\n  - prefix: Prod/\n    registry: " + acct2 + "\n", 2, "routes[0].prefix", "must be lower case"},
		{"route prefix root", "routes:\n  - prefix: /\n    registry: " + acct2 + "\n", 2, "routes[0].prefix", `"/" is an empty namespace`},
		{"route prefix repeated", "routes:\n  - {prefix: prod/, registry: " + acct2 + "}\n  - {prefix: prod/, registry: " + acct1 + "}\n", 3, "routes[1].prefix", `"prod/" is already routed (routes[0].prefix, line 2)`},
		{"route registry missing", "routes:\n  - prefix: prod/\n", 2, "routes[0].registry", "required"},
		{"route registry public", "routes:\n  - prefix: prod/\n    registry: public.ecr.aws\n", 3, "routes[0].registry", "is ECR Public"},
		{"registry host missing", "registries:\n  - profile: dev\n", 2, "registries[0].host", "required"},
		{"registry host invalid", "registries:\n  - host: api.ecr.us-east-1.amazonaws.com\n", 2, "registries[0].host", "is an Amazon ECR API endpoint"},
		{"registry host repeated", "registries:\n  - host: " + acct1 + "\n  - host: " + strings.ToUpper(acct1) + "\n", 3, "registries[1].host", "is already configured (registries[0].host, line 2)"},
		{"role arn", "registries:\n  - host: " + acct1 + "\n    role_arn: arn:aws:iam::1234:role/x\n", 3, "registries[0].role_arn", "is not an IAM role ARN"},
		{"role arn user", "registries:\n  - host: " + acct1 + "\n    role_arn: arn:aws:iam::123456789012:user/x\n", 3, "registries[0].role_arn", "is not an IAM role ARN"},
		{"endpoint relative", "registries:\n  - host: " + acct1 + "\n    endpoint: 127.0.0.1:4566\n", 3, "registries[0].endpoint", "absolute http:// or https:// URL"},
		{"api endpoint scheme", "registries:\n  - host: " + acct1 + "\n    api_endpoint: ftp://x\n", 3, "registries[0].api_endpoint", "absolute http:// or https:// URL"},
		{"endpoint no host", "registries:\n  - host: " + acct1 + "\n    endpoint: http:///v2\n", 3, "registries[0].endpoint", "has no host"},
		{"endpoint credentials", "registries:\n  - host: " + acct1 + "\n    endpoint: https://user:hunter2@x\n", 3, "registries[0].endpoint", "must not carry credentials"},
		{"endpoint not URL", "registries:\n  - host: " + acct1 + "\n    endpoint: \"http://x:port\"\n", 3, "registries[0].endpoint", "is not a URL; want an absolute http:// or https:// URL"},
		{"local host key", "local_hosts:\n  \"http://localhost:5000\": " + acct1 + "\n", 2, `local_hosts["http://localhost:5000"]`, "must be a host or host:port"},
		{"local host port", "local_hosts:\n  \"localhost:x\": " + acct1 + "\n", 2, `local_hosts["localhost:x"]`, "must be a host or host:port"},
		{"local host value", "local_hosts:\n  localhost:5000: docker.io\n", 2, `local_hosts["localhost:5000"]`, "is not an Amazon ECR registry host"},
		{"local host value empty", "local_hosts:\n  localhost:5000:\n", 2, `local_hosts["localhost:5000"]`, "required"},

		// allow and deny
		{"allow empty pattern", "allow:\n  - team/*\n  - \"\"\n", 3, "allow[1]", "pattern must not be empty"},
		{"allow upper case", "allow: [Team/*]\n", 1, "allow[0]", "must be lower case"},
		{"allow question mark", "allow: [\"team/ap?\"]\n", 1, "allow[0]", `has '?' at position 8`},
		{"deny leading slash", "deny: [/tmp]\n", 1, "deny[0]", "must not start or end with '/'"},
		{"deny double slash", "deny: [a//b]\n", 1, "deny[0]", "must not contain '//'"},
		{"deny triple star", "deny:\n  - a/***\n", 2, "deny[0]", "has '***'"},

		// templates
		{"template prefix slash", "templates:\n  - prefix: /\n", 2, "templates[0].prefix", `"/" is an empty namespace`},
		{"template prefix missing", "templates:\n  - scan_on_push: true\n", 2, "templates[0].prefix", "required"},
		{"template prefix invalid", "templates:\n  - prefix: Team\n", 2, "templates[0].prefix", "must be lower case"},
		{"template prefix repeated", "templates:\n  - prefix: team\n  - prefix: team/\n", 3, "templates[1].prefix", `"team" already has a template (templates[0].prefix, line 2)`},
		{"mutability", "templates:\n  - prefix: ROOT\n  - prefix: team\n    image_tag_mutability: SOMETIMES\n", 4, "templates[1].image_tag_mutability", `"SOMETIMES" is not one of MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION`},
		{"mutability case", tmpl("    image_tag_mutability: immutable"), 3, "templates[0].image_tag_mutability", `(did you mean "IMMUTABLE"?)`},
		{"filters without exclusion mutability", tmpl("    image_tag_mutability_exclusion_filters: [{filter: latest}]"), 3, "templates[0].image_tag_mutability_exclusion_filters", "exclusion filters need image_tag_mutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not MUTABLE"},
		{"exclusion mutability without filters", tmpl("    image_tag_mutability: IMMUTABLE_WITH_EXCLUSION"), 3, "templates[0].image_tag_mutability", "needs at least one entry in image_tag_mutability_exclusion_filters"},
		{"too many filters", tmpl("    image_tag_mutability: IMMUTABLE", "    image_tag_mutability_exclusion_filters: [{filter: a}, {filter: b}, {filter: c}, {filter: d}, {filter: e}, {filter: f}]"), 4, "templates[0].image_tag_mutability_exclusion_filters", "has 6 filters; ECR allows at most 5"},
		{"filter type", tmpl("    image_tag_mutability: IMMUTABLE", "    image_tag_mutability_exclusion_filters:", "      - filter_type: REGEX", "        filter: latest"), 5, "templates[0].image_tag_mutability_exclusion_filters[0].filter_type", `"REGEX" is not one of WILDCARD`},
		{"filter missing", tmpl("    image_tag_mutability: IMMUTABLE", "    image_tag_mutability_exclusion_filters:", "      - filter_type: WILDCARD"), 5, "templates[0].image_tag_mutability_exclusion_filters[0].filter", "required"},
		{"filter characters", tmpl("    image_tag_mutability: MUTABLE", "    image_tag_mutability_exclusion_filters:", "      - filter: \"v1+\""), 5, "templates[0].image_tag_mutability_exclusion_filters[0].filter", "must be 1 to 128 characters"},
		{"filter length", tmpl("    image_tag_mutability: MUTABLE", "    image_tag_mutability_exclusion_filters:", "      - filter: "+strings.Repeat("a", 129)), 5, "templates[0].image_tag_mutability_exclusion_filters[0].filter", "must be 1 to 128 characters"},
		{"encryption type", tmpl("    encryption:", "      type: SSE"), 4, "templates[0].encryption.type", `"SSE" is not one of AES256, KMS, KMS_DSSE`},
		{"kms key without KMS", tmpl("    encryption: {kms_key: alias/ecr}"), 3, "templates[0].encryption.kms_key", "only used with type KMS or KMS_DSSE, not AES256"},
		{"kms key format", tmpl("    encryption: {type: KMS_DSSE, kms_key: ecr}"), 3, "templates[0].encryption.kms_key", `"ecr" is not a KMS key id, key ARN, alias/<name> or alias ARN`},
		{"lifecycle not JSON", tmpl("    lifecycle_policy: '{rules: []}'"), 3, "templates[0].lifecycle_policy", "not a JSON object"},
		{"lifecycle not object", tmpl("    lifecycle_policy: '[1]'"), 3, "templates[0].lifecycle_policy", "not a JSON object"},
		{"lifecycle no rules", tmpl(`    lifecycle_policy: '{"Rules": [1]}'`), 3, "templates[0].lifecycle_policy", `the policy has no "rules"`},
		{"lifecycle empty rules", tmpl(`    lifecycle_policy: '{"rules": []}'`), 3, "templates[0].lifecycle_policy", `"rules" is empty`},
		{"lifecycle rules not list", tmpl(`    lifecycle_policy: '{"rules": {}}'`), 3, "templates[0].lifecycle_policy", `"rules" must be a list`},
		{"lifecycle too short", tmpl(`    lifecycle_policy: '{"rules": [{}]}'`), 3, "templates[0].lifecycle_policy", "the policy is 15 characters long; ECR accepts 100 to 30720"},
		{"lifecycle too long", tmpl("    lifecycle_policy: '" + longPolicy + "'"), 3, "templates[0].lifecycle_policy", "ECR accepts 100 to 30720"},
		{"lifecycle missing file", tmpl("    lifecycle_policy: \"@no-such-file.json\""), 3, "templates[0].lifecycle_policy", "no-such-file.json: no such file or directory"},
		{"lifecycle bare @", tmpl("    lifecycle_policy: \"@\""), 3, "templates[0].lifecycle_policy", `"@" must be followed by a file name`},
		{"lifecycle @directory", tmpl("    lifecycle_policy: \"@testdata\""), 3, "templates[0].lifecycle_policy", "not a regular file"},
		{"lifecycle @file invalid", tmpl("    lifecycle_policy: \"@testdata/pull-from-prod.json\""), 3, "templates[0].lifecycle_policy", `in testdata/pull-from-prod.json: the policy has no "rules"`},
		{"repository policy not JSON", tmpl("    repository_policy: nope"), 3, "templates[0].repository_policy", "not a JSON object"},
		{"repository policy no statement", tmpl(`    repository_policy: '{"Version": "2012-10-17"}'`), 3, "templates[0].repository_policy", `the policy has no "Statement"`},
		{"repository policy too long", tmpl("    repository_policy: '" + longRepoPolicy + "'"), 3, "templates[0].repository_policy", "ECR accepts at most 10240"},
		{"repository policy missing file", tmpl("    repository_policy: \"@~/nope.json\""), 3, "templates[0].repository_policy", "/home/u/nope.json: no such file or directory"},
		{"too many tags", tmpl("    tags:", manyTags.String()), 3, "templates[0].tags", "has 51 tags; ECR allows at most 50"},
		{"aws tag", tmpl("    tags:", "      AWS:cost: x"), 4, `templates[0].tags["AWS:cost"]`, `tag keys starting with "aws:" are reserved`},
		{"tag key too long", tmpl("    tags:", "      "+strings.Repeat("k", 129)+": x"), 4, `templates[0].tags["` + strings.Repeat("k", 129) + `"]`, "tag key is 129 characters long; at most 128"},
		{"tag key empty", tmpl("    tags:", "      \"\": x"), 4, `templates[0].tags[""]`, "tag keys must not be empty"},
		{"tag key characters", tmpl("    tags:", "      \"a*b\": x"), 4, `templates[0].tags["a*b"]`, "tag key may hold only"},
		{"tag value too long", tmpl("    tags:", "      k: "+strings.Repeat("v", 257)), 4, `templates[0].tags["k"]`, "tag value is 257 characters long; at most 256"},
		{"tag value characters", tmpl("    tags:", "      k: \"a;b\""), 4, `templates[0].tags["k"]`, "tag value may hold only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), "config.yaml", testEnv[:len(testEnv):len(testEnv)])
			if tt.name == "audit log tilde without HOME" {
				c, err = Parse([]byte(tt.yaml), "config.yaml", nil)
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want an error; got %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			where := fmt.Sprintf("config.yaml:%d: ", tt.line)
			if tt.key != "" {
				where += tt.key + ": "
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, where) && strings.Contains(line, tt.msg) {
					return
				}
			}
			t.Errorf("Parse error:\n%v\nwant a line starting %q containing %q", err, where, tt.msg)
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	in := `listen: nowhere
tempaltes: []
log_level: loud
templates:
  - prefix: team
    image_tag_mutability: SOMETIMES
    tags: [x]
  - prefix: team
    encryption: {type: AES256, kms_key: alias/x}
`
	_, err := Parse([]byte(in), "config.yaml", testEnv)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	want := []string{
		`config.yaml:1: listen: "nowhere" is not a host:port address`,
		`config.yaml:2: unknown key "tempaltes" (did you mean "templates"?)`,
		`config.yaml:3: log_level: "loud" is not one of debug, info, warn, error`,
		`config.yaml:6: templates[0].image_tag_mutability: "SOMETIMES" is not one of`,
		`config.yaml:7: templates[0].tags: want a mapping of names to strings, got a list`,
		`config.yaml:8: templates[1].prefix: "team" already has a template (templates[0].prefix, line 5)`,
		`config.yaml:9: templates[1].encryption.kms_key: only used with type KMS or KMS_DSSE`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "config.yaml" || e.Line != 1 || e.Key != "listen" {
		t.Errorf("errors.As(*Error) = %+v", e)
	}
}

func TestValidateInCode(t *testing.T) {
	c := &Config{
		Listen:    "127.0.0.1:5000",
		Templates: []Template{{Prefix: "team", ImageTagMutability: "IMMUTABLE", ImageTagMutabilityExclusionFilters: []ExclusionFilter{{Filter: "latest"}}}},
		Routes:    []Route{{Prefix: "prod/", Registry: acct2}},
	}
	err := c.Validate()
	want := "templates[0].image_tag_mutability_exclusion_filters: exclusion filters need image_tag_mutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not IMMUTABLE"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
	c.Templates[0].ImageTagMutability = ImmutableWithExclusion
	c.Templates[0].LifecyclePolicy = "@lifecycle.json"
	err = c.Validate()
	want = `templates[0].lifecycle_policy: file reference "@lifecycle.json" was not read`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
	c.Templates[0].LifecyclePolicy = lifecycleJSON
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}

	// A Config from Parse keeps its lines when changed in code.
	p, err := Parse([]byte("\nlisten: 127.0.0.1:5000\n"), "c.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	p.Listen = "bad"
	if err := p.Validate(); err == nil || !strings.HasPrefix(err.Error(), `c.yaml:2: listen: "bad" is not`) {
		t.Errorf("Validate() = %v", err)
	}
}

func TestPolicyFiles(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "conf", "policies"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "conf", "policies", "lc.json"), []byte("\n"+lifecycleJSON+"\n\n"), 0o600))
	must(os.WriteFile(filepath.Join(home, "repo.json"), []byte(`{"Statement": []}`), 0o600))
	must(os.WriteFile(filepath.Join(dir, "abs.json"), []byte(`{"Version":"2012-10-17","Statement":[]}`), 0o600))
	env := []string{"HOME=" + home}

	in := fmt.Sprintf(`audit_log: logs/audit.jsonl
templates:
  - prefix: a
    lifecycle_policy: "@policies/lc.json"
    repository_policy: "@~/repo.json"
  - prefix: b
    repository_policy: "@%s"
  - prefix: c
    lifecycle_policy: |
      %s
`, filepath.Join(dir, "abs.json"), lifecycleJSON)
	name := filepath.Join(dir, "conf", "config.yaml")
	c, err := Parse([]byte(in), name, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{c.Templates[0].LifecyclePolicy, lifecycleJSON},
		{c.Templates[0].RepositoryPolicy, `{"Statement": []}`},
		{c.Templates[1].RepositoryPolicy, `{"Version":"2012-10-17","Statement":[]}`},
		{c.Templates[2].LifecyclePolicy, lifecycleJSON},
		{c.AuditLog, filepath.Join(dir, "conf", "logs", "audit.jsonl")},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}

	// The same file elsewhere cannot find its relative policy, and says which key and line.
	_, err = Parse([]byte(in), filepath.Join(dir, "config.yaml"), env)
	want := fmt.Sprintf("%s:4: templates[0].lifecycle_policy: read %s: no such file or directory",
		filepath.Join(dir, "config.yaml"), filepath.Join(dir, "policies", "lc.json"))
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v\nwant %s", err, want)
	}
}

func TestScalarsAndAliases(t *testing.T) {
	c, err := Parse([]byte(`
allow: &names ["team/*", "tools/*"]
deny: *names
templates:
  - prefix: 2024
    tags: {n: 42, b: true, f: 1.50, z: 007}
    image_tag_mutability: &imm IMMUTABLE
  - prefix: team
    image_tag_mutability: *imm
`), "config.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"team/*", "tools/*"}; !reflect.DeepEqual(c.Deny, want) {
		t.Errorf("Deny = %q, want %q", c.Deny, want)
	}
	if c.Templates[0].Prefix != "2024" || c.Templates[1].ImageTagMutability != Immutable {
		t.Errorf("Templates = %+v", c.Templates)
	}
	if want := map[string]string{"n": "42", "b": "true", "f": "1.50", "z": "007"}; !reflect.DeepEqual(c.Templates[0].Tags, want) {
		t.Errorf("Tags = %q, want %q (numbers keep their spelling)", c.Templates[0].Tags, want)
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("templates:\n  - &t\n    prefix: team\n    image_tag_mutability_exclusion_filters: [&f {filter: a}")
	b.WriteString(strings.Repeat(", *f", 300))
	b.WriteString("]\n")
	b.WriteString(strings.Repeat("  - *t\n", 300))
	_, err := Parse([]byte(b.String()), "config.yaml", testEnv)
	if err == nil || !strings.Contains(err.Error(), "the document is too large or uses too many aliases") {
		t.Errorf("Parse error does not report the exhausted budget")
	}
}

func TestRegistryHosts(t *testing.T) {
	c, err := Load("testdata/example.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	c.Registries = append(c.Registries, Registry{Host: "PUBLIC.ECR.AWS"})
	if got, want := c.RegistryHosts(), []string{acct1, acct2, "public.ecr.aws"}; !reflect.DeepEqual(got, want) {
		t.Errorf("RegistryHosts() = %q, want %q", got, want)
	}
	if got := (&Config{}).RegistryHosts(); len(got) != 0 {
		t.Errorf("empty Config: RegistryHosts() = %q", got)
	}
}

func TestRegistryFor(t *testing.T) {
	c := &Config{
		DefaultRegistry: acct1,
		Routes: []Route{
			{Prefix: "prod/", Registry: acct2},
			{Prefix: "prod/eu/", Registry: "333333333333.dkr.ecr.eu-central-1.amazonaws.com"},
			{Prefix: "cn/", Registry: "444444444444.dkr.ecr.cn-north-1.amazonaws.com.cn"},
		},
	}
	tests := []struct{ repo, host, rest string }{
		{"team/app", acct1, "team/app"},
		{"prod/app", acct2, "app"},
		{"prod/team/app", acct2, "team/app"},
		{"prod/eu/app", "333333333333.dkr.ecr.eu-central-1.amazonaws.com", "app"}, // longest prefix wins
		{"prod/euro/app", acct2, "euro/app"},
		{"production/app", acct1, "production/app"},
		{"prod", acct1, "prod"},
		{"cn/x", "444444444444.dkr.ecr.cn-north-1.amazonaws.com.cn", "x"},
	}
	for _, tt := range tests {
		if host, rest := c.RegistryFor(tt.repo); host != tt.host || rest != tt.rest {
			t.Errorf("RegistryFor(%q) = %q, %q; want %q, %q", tt.repo, host, rest, tt.host, tt.rest)
		}
	}
	if host, rest := (&Config{}).RegistryFor("team/app"); host != "" || rest != "team/app" {
		t.Errorf("no registry: RegistryFor = %q, %q; want \"\", team/app", host, rest)
	}

	c.Registries = []Registry{{Host: acct1, Profile: "dev"}, {Host: "public.ecr.aws", Profile: "pub"}}
	for _, tt := range []struct {
		host, profile string
		ok            bool
	}{
		{acct1, "dev", true},
		{strings.ToUpper(acct1), "dev", true},
		{acct1 + ".", "dev", true},
		{"PUBLIC.ECR.AWS", "pub", true},
		{acct2, "", false},
	} {
		r, ok := c.RegistryConfig(tt.host)
		if ok != tt.ok || r.Profile != tt.profile {
			t.Errorf("RegistryConfig(%q) = %+v, %v; want profile %q, %v", tt.host, r, ok, tt.profile, tt.ok)
		}
	}
}

func TestTemplateFor(t *testing.T) {
	c, err := Parse([]byte(`
templates:
  - prefix: team
    image_tag_mutability: IMMUTABLE
    tags: {level: team}
  - prefix: team/app/
    encryption: {type: KMS}
    tags: {level: app}
  - prefix: ROOT
    scan_on_push: true
    tags: {level: root}
  - prefix: t
    tags: {level: t}
`), "config.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ repo, level string }{
		{"team/svc", "team"},
		{"team/a/b/c", "team"},
		{"team/app/api", "app"}, // longest prefix wins
		{"team/app", "team"},    // "team/app" does not lie under "team/app/"
		{"team/apps/x", "team"},
		{"teamx/app", "root"}, // implied slash: "team" does not match "teamx/app"
		{"team", "root"},
		{"t/x", "t"},
		{"tools/x", "root"},
		{"app", "root"},
	}
	for _, tt := range tests {
		if got := c.TemplateFor(tt.repo); got.Tags["level"] != tt.level {
			t.Errorf("TemplateFor(%q) = template %q, want level %q", tt.repo, got.Prefix, tt.level)
		}
	}
	app := c.TemplateFor("team/app/api")
	if app.Prefix != "team/app" || app.ImageTagMutability != Mutable || app.Encryption.Type != EncryptionKMS {
		t.Errorf("TemplateFor(team/app/api) = %+v", app)
	}
	app.Tags["level"] = "changed"
	if c.TemplateFor("team/app/api").Tags["level"] != "app" {
		t.Error("TemplateFor returned a template sharing its tags with the Config")
	}

	none := &Config{Templates: []Template{{Prefix: "team"}}}
	if got := none.TemplateFor("tools/x"); !reflect.DeepEqual(got, DefaultTemplate()) {
		t.Errorf("no ROOT: TemplateFor = %+v, want %+v", got, DefaultTemplate())
	}
	if got := none.TemplateFor("team/x"); got.Prefix != "team" || got.ImageTagMutability != Mutable || got.Encryption.Type != EncryptionAES256 {
		t.Errorf("in-code template without defaults: TemplateFor = %+v", got)
	}
	if got := (&Config{}).TemplateFor("x/y"); got.ImageTagMutability != Mutable || got.Encryption.Type != EncryptionAES256 || got.Prefix != "" {
		t.Errorf("empty config: TemplateFor = %+v", got)
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		repo        string
		ok          bool
		rule        string
	}{
		{"empty lists allow all", nil, nil, "anything/x", true, "allow: all (no allow list)"},
		{"allow match", []string{"team/*", "tools/*"}, nil, "tools/lint", true, "allow: tools/*"},
		{"first allow match reported", []string{"team/*", "team/**"}, nil, "team/app", true, "allow: team/*"},
		{"star stays in component", []string{"team/*"}, nil, "team/app/api", false, "not in allow list"},
		{"star needs the slash", []string{"team/*"}, nil, "team", false, "not in allow list"},
		{"double star crosses components", []string{"team/**"}, nil, "team/app/api", true, "allow: team/**"},
		{"double star prefix", []string{"**/app"}, nil, "a/b/app", true, "allow: **/app"},
		{"double star slash matches zero components", []string{"**/app"}, nil, "app", true, "allow: **/app"},
		{"double star in the middle", []string{"team/**/api"}, nil, "team/api", true, "allow: team/**/api"},
		{"double star in the middle, deeper", []string{"team/**/api"}, nil, "team/a/b/api", true, "allow: team/**/api"},
		{"double star inside a component", []string{"team**"}, nil, "teamx/y", true, "allow: team**"},
		{"literal dot", []string{"a.b"}, nil, "axb", false, "not in allow list"},
		{"exact name", []string{"team/app"}, nil, "team/app", true, "allow: team/app"},
		{"prefix only is not a match", []string{"team/app"}, nil, "team/app2", false, "not in allow list"},
		{"deny wins", []string{"team/*"}, []string{"*/tmp*"}, "team/tmp-1", false, "deny: */tmp*"},
		{"deny with empty allow", nil, []string{"*/tmp*"}, "team/tmp-1", false, "deny: */tmp*"},
		{"deny one level", nil, []string{"*/tmp*"}, "tmp-1", true, "allow: all (no allow list)"},
		{"deny one level deeper", nil, []string{"*/tmp*"}, "a/b/tmp-1", true, "allow: all (no allow list)"},
		{"deny any depth", nil, []string{"**/tmp*"}, "a/b/tmp-1", false, "deny: **/tmp*"},
		{"deny any depth top", nil, []string{"**/tmp*"}, "tmp-1", false, "deny: **/tmp*"},
		{"not denied", []string{"team/*"}, []string{"*/tmp*"}, "team/app", true, "allow: team/*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &Config{Allow: tt.allow, Deny: tt.deny}
			if err := in.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// Through Parse (compiled patterns) and built in code (compiled on use).
			y := fmt.Sprintf("allow: %s\ndeny: %s\n", yamlList(tt.allow), yamlList(tt.deny))
			parsed, err := Parse([]byte(y), "config.yaml", testEnv)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*Config{in, parsed} {
				ok, rule := c.Allowed(tt.repo)
				if ok != tt.ok || rule != tt.rule {
					t.Errorf("Allowed(%q) = %v, %q; want %v, %q", tt.repo, ok, rule, tt.ok, tt.rule)
				}
			}
		})
	}
}

func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func TestSuggest(t *testing.T) {
	keys := []string{"templates", "listen", "log_level", "log_format", "dry_run", "allow", "deny"}
	for _, tt := range []struct{ in, want string }{
		{"tempaltes", "templates"},
		{"template", "templates"},
		{"Listen", "listen"},
		{"dryRun", "dry_run"},
		{"log_levl", "log_level"},
		{"deni", "deny"},
		{"colour", ""},
		{"x", ""},
	} {
		if got := suggest(tt.in, keys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParentKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"listen", ""},
		{"intercept.listen", "intercept"},
		{"templates[1]", "templates"},
		{"templates[1].tags", "templates[1]"},
		{`templates[1].tags["a.b[c]"]`, "templates[1].tags"},
		{`local_hosts["x"]`, "local_hosts"},
		{"", ""},
	} {
		if got := parentKey(tt.in); got != tt.want {
			t.Errorf("parentKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/example.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"listen: 127.0.0.1:5000\n",
		"templates:\n  - prefix: team\n    image_tag_mutability: IMMUTABLE\n    image_tag_mutability_exclusion_filters: [{filter: latest}]\n",
		"templates:\n  - prefix: ROOT\n    lifecycle_policy: '" + lifecycleJSON + "'\n    repository_policy: '{\"Statement\":[]}'\n    tags: {a: \"1\"}\n",
		"a: &a [x, y]\nb: *a\n",
		"templates:\n  - &t {prefix: team}\n  - *t\n",
		"allow: [\"**/x\", \"a/*\"]\ndeny: [\"*/tmp*\"]\n",
		"local_hosts: {\"localhost:5000\": " + acct1 + "}\ndefault_registry: " + acct1 + "\n",
		"registries:\n  - {host: public.ecr.aws, endpoint: \"http://127.0.0.1:1\", role_arn: \"arn:aws:iam::123456789012:role/x\"}\n",
		"intercept: {listen: \"[::1]:1\", hosts: all-ecr, tunnel_others: false}\n",
		"routes: [{prefix: p/, registry: " + acct2 + "}]\n",
		"? [a]\n: b\n",
		"---\n---\n",
		// Hostile input: an alias bomb, deep nesting, control bytes, CR/LF
		// in keys and values, unicode look-alikes, a tab indent, huge scalars.
		"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nallow: *d\n",
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		"allow: [\"team/*\\x00\"]\ndeny: [\"a\\r\\nb\"]\n",
		"listen: \"127.0.0.1:5000\\r\\nX-Injected: 1\"\n",
		"default_registry: 123456789012.dkr.ecr.us-east-1.amаzonaws.com\n",
		"templates:\n\t- prefix: team\n",
		"templates:\n  - prefix: \"../..\"\n  - prefix: \"team//app\"\n  - prefix: \"Team\"\n",
		"routes: [{prefix: \"\", registry: \"\"}]\n",
		"log_level: " + strings.Repeat("x", 1<<16) + "\n",
		"\xef\xbb\xbflisten: 127.0.0.1:5000\n",
		"listen: 127.0.0.1:5000\x00\n",
	} {
		f.Add([]byte(s))
	}
	name := filepath.Join("testdata", "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, name, testEnv)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned both a Config and an error: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse succeeded but Validate fails: %v\ninput:\n%s", err, data)
		}
		// The lookups must not panic on whatever Parse accepted.
		c.RegistryFor("team/app")
		c.TemplateFor("team/app")
		c.Allowed("team/app")
	})
}
