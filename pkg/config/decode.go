package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// decoder walks a YAML node tree into a Config, key by key, so that every
// unknown key and wrong type is reported with its line and key path.
type decoder struct {
	src   *source
	errs  []*Error
	steps int // nodes visited, to bound the work alias-heavy input can cause
	// guardPolicies refuses "@file" policies that others could have written.
	guardPolicies bool
}

// maxSteps bounds the nodes visited; a real configuration file has a few
// hundred.
const maxSteps = 1 << 16

// step counts a visited node and reports false, with an error the first
// time, once the budget is spent.
func (d *decoder) step(n *yaml.Node, key string) bool {
	d.steps++
	if d.steps == maxSteps+1 {
		d.errAt(n.Line, key, "the document is too large or uses too many aliases")
	}
	return d.steps <= maxSteps
}

// errAt records a problem at key (parent key path for unknown keys).
func (d *decoder) errAt(line int, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.src.name, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// typeErr records that the value at key could not be decoded; Validate then
// stays quiet about key and everything under it.
func (d *decoder) typeErr(n *yaml.Node, key, want string) {
	d.errAt(n.Line, key, "want %s, got %s", want, describe(n))
	d.src.bad[key] = true
}

var yamlLineError = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// parseYAML parses data as one YAML document and returns its root value
// node, or nil for an empty document.
func (d *decoder) parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, d.syntaxError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, d.syntaxError(err)
		}
		return nil, &Error{File: d.src.name, Line: next.Line, Msg: "the file holds more than one YAML document (---); keep one"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	return root, nil
}

func (d *decoder) syntaxError(err error) error {
	msg := err.Error()
	if m := yamlLineError().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: d.src.name, Line: line, Msg: "invalid YAML: " + m[2], Err: err}
	}
	return &Error{File: d.src.name, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: "), Err: err}
}

// resolve follows aliases to the node they stand for.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// describe names the kind of value n holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", truncate(n.Value, 40))
		case "!!null":
			return "nothing"
		case "!!bool", "!!int", "!!float":
			return truncate(n.Value, 40)
		}
		return fmt.Sprintf("%s %q", n.ShortTag(), truncate(n.Value, 40))
	}
	return "an unresolved alias"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// fields maps the keys a mapping may hold to what decodes each value.
type fields map[string]func(v *yaml.Node, key string)

// secretWords mark keys that look like credentials.
var secretWords = []string{"secret", "password", "token", "access_key", "accesskey", "session"}

// mapping decodes the mapping n at key with fs, reporting unknown and
// repeated keys.
func (d *decoder) mapping(n *yaml.Node, key string, fs fields) {
	n = d.resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.typeErr(n, key, "a mapping of keys to values")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.step(n, key) {
			return
		}
		k, v := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errAt(k.Line, key, "keys must be names, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errAt(k.Line, key, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			d.errAt(k.Line, joinKey(key, name), "key repeated (first at line %d)", first)
			continue
		}
		seen[name] = k.Line
		decode, ok := fs[name]
		if !ok {
			d.unknownKey(k, key, fs)
			continue
		}
		kk := joinKey(key, name)
		d.src.lines[kk] = k.Line
		decode(v, kk)
	}
}

func (d *decoder) unknownKey(k *yaml.Node, key string, fs fields) {
	name := k.Value
	msg := fmt.Sprintf("unknown key %q", truncate(name, 64))
	lower := strings.ToLower(name)
	if s := suggest(name, slices.Sorted(maps.Keys(fs))); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(lower, w) }) {
		msg += "; the file holds no credentials: name an AWS profile (profile) or role (role_arn) under registries"
	} else {
		msg += fmt.Sprintf(" (known keys: %s)", strings.Join(slices.Sorted(maps.Keys(fs)), ", "))
	}
	d.errAt(k.Line, key, "%s", msg)
}

// list decodes the sequence n at key, calling item for each element.
func (d *decoder) list(n *yaml.Node, key string, item func(i int, v *yaml.Node, key string)) {
	n = d.resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.typeErr(n, key, "a list")
		return
	}
	for i, v := range n.Content {
		if !d.step(v, key) {
			return
		}
		v = d.resolve(v)
		ik := indexKey(key, i)
		d.src.lines[ik] = v.Line
		item(i, v, ik)
	}
}

// str decodes a scalar as its text; numbers and booleans keep their spelling.
func (d *decoder) str(n *yaml.Node, key string) string {
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.typeErr(n, key, "a string")
		return ""
	}
	return n.Value
}

func (d *decoder) boolean(n *yaml.Node, key string) (b, ok bool) {
	if isNull(n) {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.typeErr(n, key, "true or false")
		return false, false
	}
	return b, true
}

func (d *decoder) strings(n *yaml.Node, key string) []string {
	var out []string
	d.list(n, key, func(_ int, v *yaml.Node, k string) {
		out = append(out, d.str(v, k))
	})
	return out
}

// stringMap decodes a mapping of names to strings. A present but empty
// mapping gives an empty, non-nil map.
func (d *decoder) stringMap(n *yaml.Node, key string) map[string]string {
	n = d.resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.typeErr(n, key, "a mapping of names to strings")
		return nil
	}
	out := map[string]string{}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.errAt(k.Line, key, "keys must be names, got %s", describe(k))
			continue
		}
		mk := mapKey(key, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errAt(k.Line, mk, "key repeated (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.src.lines[mk] = k.Line
		out[k.Value] = d.str(v, mk)
	}
	return out
}

// config decodes the top-level mapping.
func (d *decoder) config(root *yaml.Node, c *Config) {
	if root == nil {
		return
	}
	str := func(p *string) func(*yaml.Node, string) {
		return func(v *yaml.Node, k string) { *p = d.str(v, k) }
	}
	d.mapping(root, "", fields{
		"listen":       str(&c.Listen),
		"admin_listen": str(&c.AdminListen),
		"intercept": func(v *yaml.Node, k string) {
			d.mapping(v, k, fields{
				"listen": str(&c.Intercept.Listen),
				"hosts":  str(&c.Intercept.Hosts),
				"tunnel_others": func(v *yaml.Node, k string) {
					if b, ok := d.boolean(v, k); ok {
						c.Intercept.TunnelOthers = &b
					}
				},
			})
		},
		"log_level":        str(&c.LogLevel),
		"log_format":       str(&c.LogFormat),
		"audit_log":        str(&c.AuditLog),
		"default_registry": str(&c.DefaultRegistry),
		"routes": func(v *yaml.Node, k string) {
			d.list(v, k, func(_ int, v *yaml.Node, k string) {
				var r Route
				d.mapping(v, k, fields{"prefix": str(&r.Prefix), "registry": str(&r.Registry)})
				c.Routes = append(c.Routes, r)
			})
		},
		"registries": func(v *yaml.Node, k string) {
			d.list(v, k, func(_ int, v *yaml.Node, k string) {
				var r Registry
				d.mapping(v, k, fields{
					"host":         str(&r.Host),
					"profile":      str(&r.Profile),
					"role_arn":     str(&r.RoleARN),
					"endpoint":     str(&r.Endpoint),
					"api_endpoint": str(&r.APIEndpoint),
				})
				c.Registries = append(c.Registries, r)
			})
		},
		"allow": func(v *yaml.Node, k string) { c.Allow = d.strings(v, k) },
		"deny":  func(v *yaml.Node, k string) { c.Deny = d.strings(v, k) },
		"dry_run": func(v *yaml.Node, k string) {
			c.DryRun, _ = d.boolean(v, k)
		},
		"templates": func(v *yaml.Node, k string) {
			d.list(v, k, func(_ int, v *yaml.Node, k string) {
				c.Templates = append(c.Templates, d.template(v, k))
			})
		},
		"local_hosts":    func(v *yaml.Node, k string) { c.LocalHosts = d.stringMap(v, k) },
		"shared_proxies": func(v *yaml.Node, k string) { c.SharedProxies = d.stringMap(v, k) },
		"allow_remote": func(v *yaml.Node, k string) {
			c.AllowRemote, _ = d.boolean(v, k)
		},
		"tls": func(v *yaml.Node, k string) {
			d.mapping(v, k, fields{"cert_file": str(&c.TLS.CertFile), "key_file": str(&c.TLS.KeyFile)})
		},
		"mount_shared_layers": func(v *yaml.Node, k string) {
			if b, ok := d.boolean(v, k); ok {
				c.MountSharedLayers = &b
			}
		},
	})
}

func (d *decoder) template(n *yaml.Node, key string) Template {
	var t Template
	str := func(p *string) func(*yaml.Node, string) {
		return func(v *yaml.Node, k string) { *p = d.str(v, k) }
	}
	d.mapping(n, key, fields{
		"prefix":               str(&t.Prefix),
		"image_tag_mutability": str(&t.ImageTagMutability),
		"image_tag_mutability_exclusion_filters": func(v *yaml.Node, k string) {
			d.list(v, k, func(_ int, v *yaml.Node, k string) {
				var f ExclusionFilter
				d.mapping(v, k, fields{"filter_type": str(&f.FilterType), "filter": str(&f.Filter)})
				t.ImageTagMutabilityExclusionFilters = append(t.ImageTagMutabilityExclusionFilters, f)
			})
		},
		"scan_on_push": func(v *yaml.Node, k string) { t.ScanOnPush, _ = d.boolean(v, k) },
		"encryption": func(v *yaml.Node, k string) {
			d.mapping(v, k, fields{"type": str(&t.Encryption.Type), "kms_key": str(&t.Encryption.KMSKey)})
		},
		"lifecycle_policy":  str(&t.LifecyclePolicy),
		"repository_policy": str(&t.RepositoryPolicy),
		"tags":              func(v *yaml.Node, k string) { t.Tags = d.stringMap(v, k) },
		"mount_from":        func(v *yaml.Node, k string) { t.MountFrom = d.strings(v, k) },
		"pull_accounts":     func(v *yaml.Node, k string) { t.PullAccounts = d.strings(v, k) },
		"pull_principals":   func(v *yaml.Node, k string) { t.PullPrincipals = d.strings(v, k) },
		"custom_role_arn":   str(&t.CustomRoleARN),
	})
	return t
}

// resolveFiles expands "~/" in audit_log and reads the "@file" policies,
// resolving relative paths against the configuration file's directory.
func (d *decoder) resolveFiles(c *Config, env []string) {
	dir := filepath.Dir(d.src.name)
	resolve := func(p string) (string, error) {
		p, err := expandHome(p, env)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return p, nil
	}
	for _, f := range []struct {
		key string
		p   *string
	}{{"audit_log", &c.AuditLog}, {"tls.cert_file", &c.TLS.CertFile}, {"tls.key_file", &c.TLS.KeyFile}} {
		if *f.p == "" {
			continue
		}
		p, err := resolve(*f.p)
		if err != nil {
			d.errAt(d.src.lines[f.key], f.key, "%v", err)
			d.src.bad[f.key] = true
		} else {
			*f.p = p
		}
	}
	if d.guardPolicies {
		d.checkKeyPair(c)
	}
	for i := range c.Templates {
		t := &c.Templates[i]
		tk := indexKey("templates", i)
		d.readPolicy(&t.LifecyclePolicy, joinKey(tk, "lifecycle_policy"), resolve)
		d.readPolicy(&t.RepositoryPolicy, joinKey(tk, "repository_policy"), resolve)
	}
}

// readPolicy replaces an "@file" value at key with the file's content.
func (d *decoder) readPolicy(p *string, key string, resolve func(string) (string, error)) {
	ref, ok := strings.CutPrefix(*p, "@")
	if !ok {
		return
	}
	fail := func(format string, args ...any) {
		d.errAt(d.src.lines[key], key, format, args...)
		d.src.bad[key] = true
	}
	if ref == "" {
		fail(`"@" must be followed by a file name`)
		return
	}
	path, err := resolve(ref)
	if err != nil {
		fail("%v", err)
		return
	}
	data, st, err := readSmallFile(path)
	if err != nil {
		fail("%v", err)
		return
	}
	if d.guardPolicies {
		if why := policyWriters(path, st); why != "" {
			fail("%s", why)
			return
		}
	}
	*p = strings.TrimSpace(string(data))
	d.src.files[key] = path
}

// readSmallFile reads a regular file of at most maxPolicyFileBytes, and
// returns the Stat of the file it read.
func readSmallFile(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s", errorText(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s", errorText(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("read %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPolicyFileBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s", errorText(err))
	}
	if len(data) > maxPolicyFileBytes {
		return nil, nil, fmt.Errorf("read %s: larger than %d bytes", path, maxPolicyFileBytes)
	}
	return data, fi, nil
}

// errorText renders an *fs.PathError as "path: reason".
func errorText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

// checkKeyPair reads tls.cert_file and tls.key_file, when both are given,
// and reports a file that cannot be read or a pair that does not match, so
// serve fails at start rather than at the first handshake. The credential
// helper, which serves nothing, does not read them.
func (d *decoder) checkKeyPair(c *Config) {
	if c.TLS.CertFile == "" || c.TLS.KeyFile == "" || d.src.bad["tls.cert_file"] || d.src.bad["tls.key_file"] {
		return
	}
	for _, f := range []struct{ key, path string }{{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
		if _, _, err := readSmallFile(f.path); err != nil {
			d.errAt(d.src.lines[f.key], f.key, "%v", err)
			d.src.bad[f.key] = true
			return
		}
	}
	if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
		d.errAt(d.src.lines["tls"], "tls", "%s and %s are not a certificate and its private key in PEM: %v", c.TLS.CertFile, c.TLS.KeyFile, err)
		d.src.bad["tls"] = true
	}
}
