package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/ecrname"
	"github.com/ecrgate/ecrgate/pkg/listen"
)

// Validate checks c and returns every problem found, joined with
// errors.Join, each an *Error naming the key path and, for a Config read
// from a file, the file and line. Empty fields are valid: they stand for
// their defaults. Parse and Load call Validate; call it again after changing
// a Config in code.
func (c *Config) Validate() error {
	return joinErrors(c.problems())
}

// validator collects problems with their key paths.
type validator struct {
	src  *source
	errs []*Error
}

func (v *validator) errf(key, format string, args ...any) {
	var file string
	var line int
	if v.src != nil {
		for k := key; ; k = parentKey(k) {
			if v.src.bad[k] {
				return // already reported as a decoding error
			}
			if k == "" {
				break
			}
		}
		file = v.src.name
		for k := key; k != "" && line == 0; k = parentKey(k) {
			line = v.src.lines[k]
		}
	}
	msg := fmt.Sprintf(format, args...)
	if v.src != nil && v.src.files[key] != "" {
		msg = fmt.Sprintf("in %s: %s", v.src.files[key], msg)
	}
	v.errs = append(v.errs, &Error{File: file, Line: line, Key: key, Msg: msg})
}

func (v *validator) line(key string) int {
	if v.src == nil {
		return 0
	}
	return v.src.lines[key]
}

// seenAt says where a value was first seen, for "repeated" messages.
func (v *validator) seenAt(key string) string {
	if l := v.line(key); l > 0 {
		return fmt.Sprintf("%s, line %d", key, l)
	}
	return key
}

// oneOf checks that val is "" or one of allowed.
func (v *validator) oneOf(key, val string, allowed ...string) {
	if val == "" || slices.Contains(allowed, val) {
		return
	}
	msg := fmt.Sprintf("%q is not one of %s", val, strings.Join(allowed, ", "))
	for _, a := range allowed {
		if strings.EqualFold(a, val) {
			msg += fmt.Sprintf(" (did you mean %q?)", a)
			break
		}
	}
	v.errf(key, "%s", msg)
}

func (c *Config) problems() []*Error {
	v := &validator{src: c.src}

	listeners := map[string]string{} // address -> key
	for _, l := range []struct{ key, addr string }{
		{"listen", c.Listen}, {"admin_listen", c.AdminListen}, {"intercept.listen", c.Intercept.Listen},
	} {
		if l.addr == "" {
			continue
		}
		if p := listenProblem(l.addr); p != "" {
			v.errf(l.key, "%s", p)
			continue
		}
		if err := c.CheckListen(l.key, l.addr); err != nil {
			v.errf(l.key, "%v", err)
		}
		if other, dup := listeners[l.addr]; dup {
			v.errf(l.key, "%q is also the address of %s; each listener needs its own", l.addr, other)
			continue
		}
		listeners[l.addr] = l.key
	}
	v.oneOf("intercept.hosts", c.Intercept.Hosts, InterceptConfigured, InterceptAllECR)
	v.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	v.oneOf("log_format", c.LogFormat, "text", "json")

	if c.DefaultRegistry != "" {
		if p := registryProblem(c.DefaultRegistry, false); p != "" {
			v.errf("default_registry", "%s", p)
		}
	}

	routes := map[string]string{}
	for i, r := range c.Routes {
		k := indexKey("routes", i)
		switch {
		case r.Prefix == "":
			v.errf(joinKey(k, "prefix"), "required (a repository-name prefix ending in '/', e.g. \"prod/\")")
		case !strings.HasSuffix(r.Prefix, "/"):
			v.errf(joinKey(k, "prefix"), "%q must end with '/' (e.g. %q)", r.Prefix, r.Prefix+"/")
		default:
			if p := namespaceProblem(strings.TrimSuffix(r.Prefix, "/")); p != "" {
				v.errf(joinKey(k, "prefix"), "%q %s", r.Prefix, p)
			} else if first, dup := routes[r.Prefix]; dup {
				v.errf(joinKey(k, "prefix"), "%q is already routed (%s)", r.Prefix, v.seenAt(first))
			} else {
				routes[r.Prefix] = joinKey(k, "prefix")
			}
		}
		if r.Registry == "" {
			v.errf(joinKey(k, "registry"), "required (an ECR registry host)")
		} else if p := registryProblem(r.Registry, false); p != "" {
			v.errf(joinKey(k, "registry"), "%s", p)
		}
	}

	hosts := map[string]string{}
	for i, r := range c.Registries {
		k := indexKey("registries", i)
		if r.Host == "" {
			v.errf(joinKey(k, "host"), "required (an ECR registry host)")
		} else if p := registryProblem(r.Host, true); p != "" {
			v.errf(joinKey(k, "host"), "%s", p)
		} else {
			h := strings.ToLower(strings.TrimSuffix(r.Host, "."))
			if first, dup := hosts[h]; dup {
				v.errf(joinKey(k, "host"), "%q is already configured (%s)", r.Host, v.seenAt(first))
			} else {
				hosts[h] = joinKey(k, "host")
			}
		}
		if r.RoleARN != "" && !roleARN().MatchString(r.RoleARN) {
			v.errf(joinKey(k, "role_arn"), "%q is not an IAM role ARN (want arn:aws:iam::<12-digit account>:role/<name>)", r.RoleARN)
		}
		if r.Endpoint != "" {
			if p := endpointProblem(r.Endpoint); p != "" {
				v.errf(joinKey(k, "endpoint"), "%s", p)
			}
		}
		if r.APIEndpoint != "" {
			if p := endpointProblem(r.APIEndpoint); p != "" {
				v.errf(joinKey(k, "api_endpoint"), "%s", p)
			}
		}
	}

	for _, list := range []struct {
		key      string
		patterns []string
	}{{"allow", c.Allow}, {"deny", c.Deny}} {
		for i, p := range list.patterns {
			if msg := globProblem(p); msg != "" {
				v.errf(indexKey(list.key, i), "%s", msg)
			}
		}
	}

	prefixes := map[string]string{}
	for i, t := range c.Templates {
		k := indexKey("templates", i)
		pk := joinKey(k, "prefix")
		p := strings.TrimSuffix(t.Prefix, "/")
		switch {
		case t.Prefix == "":
			v.errf(pk, "required (ROOT or a repository namespace such as \"team\")")
		case p != RootPrefix && namespaceProblem(p) != "":
			v.errf(pk, "%q %s", t.Prefix, namespaceProblem(p))
		default:
			if first, dup := prefixes[p]; dup {
				v.errf(pk, "%q already has a template (%s)", t.Prefix, v.seenAt(first))
			} else {
				prefixes[p] = pk
			}
		}
		v.template(k, t)
	}

	for _, local := range slices.Sorted(maps.Keys(c.LocalHosts)) {
		k := mapKey("local_hosts", local)
		if p := localHostProblem(local); p != "" {
			v.errf(k, "%s", p)
		}
		if reg := c.LocalHosts[local]; reg == "" {
			v.errf(k, "required (the ECR registry host the credential helper serves for %q)", local)
		} else if p := registryProblem(reg, false); p != "" {
			v.errf(k, "%s", p)
		}
	}
	for _, shared := range slices.Sorted(maps.Keys(c.SharedProxies)) {
		k := mapKey("shared_proxies", shared)
		switch {
		case localHostProblem(shared) != "":
			v.errf(k, "%s", localHostProblem(shared))
		case listen.IsLoopbackHost(shared):
			v.errf(k, "%q is this machine: a shared proxy is another machine's ecrgate, reached over TLS; a local proxy goes in local_hosts, which gets no token", shared)
		default:
			if _, local := c.LocalRegistry(shared); local {
				v.errf(k, "%q is also in local_hosts: a host is either a local proxy (no token) or a shared proxy (the caller's token), not both", shared)
			}
			if _, err := ecrhost.Parse(shared); err == nil {
				v.errf(k, "%q is an ECR registry itself; name the shared proxy's host", shared)
			}
		}
		if reg := c.SharedProxies[shared]; reg == "" {
			v.errf(k, "required (the ECR registry host whose token the credential helper hands to %q)", shared)
		} else if p := registryProblem(reg, false); p != "" {
			v.errf(k, "%s", p)
		}
	}

	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		v.errf("tls.cert_file", "needs tls.key_file as well (the certificate's private key)")
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		v.errf("tls.key_file", "needs tls.cert_file as well (the certificate it is the key of)")
	}
	return v.errs
}

var (
	roleARN = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws[-a-z]*:iam::[0-9]{12}:role/(?:[\x21-\x7e]+/)?[A-Za-z0-9+=,.@_-]{1,64}$`)
	})
	filterText = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-zA-Z._*-]{1,128}$`) })
	kmsKeyID   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)
	})
	kmsAlias = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,250}$`) })
	kmsARN   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws[-a-z]*:kms:[a-z0-9-]+:[0-9]{12}:(?:key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+)$`)
	})
	mutabilities = []string{Mutable, Immutable, ImmutableWithExclusion, MutableWithExclusion}
)

func (v *validator) template(k string, t Template) {
	mk := joinKey(k, "image_tag_mutability")
	fk := joinKey(k, "image_tag_mutability_exclusion_filters")
	v.oneOf(mk, t.ImageTagMutability, mutabilities...)
	withExclusion := t.ImageTagMutability == ImmutableWithExclusion || t.ImageTagMutability == MutableWithExclusion
	switch n := len(t.ImageTagMutabilityExclusionFilters); {
	case n > 0 && !withExclusion && slices.Contains(mutabilities, t.ImageTagMutability):
		v.errf(fk, "exclusion filters need image_tag_mutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not %s", cmp.Or(t.ImageTagMutability, Mutable))
	case n == 0 && withExclusion:
		v.errf(mk, "%s needs at least one entry in image_tag_mutability_exclusion_filters", t.ImageTagMutability)
	case n > maxExclusionFilters:
		v.errf(fk, "has %d filters; ECR allows at most %d", n, maxExclusionFilters)
	}
	for i, f := range t.ImageTagMutabilityExclusionFilters {
		ik := indexKey(fk, i)
		v.oneOf(joinKey(ik, "filter_type"), f.FilterType, FilterTypeWildcard)
		switch {
		case f.Filter == "":
			v.errf(joinKey(ik, "filter"), "required (a tag pattern such as \"latest\" or \"release-*\")")
		case !filterText().MatchString(f.Filter):
			v.errf(joinKey(ik, "filter"), "%q must be 1 to 128 characters of 0-9, a-z, A-Z, '.', '_', '-' and '*'", truncate(f.Filter, 140))
		}
	}

	ek := joinKey(k, "encryption")
	v.oneOf(joinKey(ek, "type"), t.Encryption.Type, EncryptionAES256, EncryptionKMS, EncryptionKMSDSSE)
	if key := t.Encryption.KMSKey; key != "" {
		switch {
		case t.Encryption.Type != EncryptionKMS && t.Encryption.Type != EncryptionKMSDSSE:
			v.errf(joinKey(ek, "kms_key"), "only used with type KMS or KMS_DSSE, not %s", cmp.Or(t.Encryption.Type, EncryptionAES256))
		case !kmsKeyID().MatchString(key) && !kmsAlias().MatchString(key) && !kmsARN().MatchString(key):
			v.errf(joinKey(ek, "kms_key"), "%q is not a KMS key id, key ARN, alias/<name> or alias ARN", truncate(key, 140))
		}
	}

	if t.LifecyclePolicy != "" {
		if p := lifecyclePolicyProblem(t.LifecyclePolicy); p != "" {
			v.errf(joinKey(k, "lifecycle_policy"), "%s", p)
		}
	}
	if t.RepositoryPolicy != "" {
		if p := repositoryPolicyProblem(t.RepositoryPolicy); p != "" {
			v.errf(joinKey(k, "repository_policy"), "%s", p)
		}
	}

	v.pull(k, t)

	tk := joinKey(k, "tags")
	if len(t.Tags) > maxTags {
		v.errf(tk, "has %d tags; ECR allows at most %d", len(t.Tags), maxTags)
	}
	for _, name := range slices.Sorted(maps.Keys(t.Tags)) {
		if p := tagProblem(name, t.Tags[name]); p != "" {
			v.errf(mapKey(tk, name), "%s", p)
		}
	}

	mfk := joinKey(k, "mount_from")
	for i, name := range t.MountFrom {
		if err := ecrname.ValidateRepository(name); err != nil {
			reason := err.Error()
			var ne *ecrname.Error
			if errors.As(err, &ne) {
				reason = ne.Reason
			}
			v.errf(indexKey(mfk, i), "%q is not a repository name: %s", truncate(name, 140), reason)
		}
	}
}

// listenProblem checks a host:port listen address.
func listenProblem(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		reason := err.Error()
		if errors.As(err, &ae) {
			reason = ae.Err
		}
		return fmt.Sprintf("%q is not a host:port address such as 127.0.0.1:5000 (%s)", addr, reason)
	}
	if !isPort(port) {
		return fmt.Sprintf("%q: port %q must be a number from 0 to 65535", addr, port)
	}
	if strings.ContainsFunc(host, unicode.IsSpace) || strings.ContainsAny(host, "/") {
		return fmt.Sprintf("%q: %q is not a host name or IP address", addr, host)
	}
	return ""
}

// registryProblem checks an ECR registry host given without scheme, port or
// path; ECR Public only where public is true.
func registryProblem(host string, public bool) string {
	r, err := ecrhost.Parse(host)
	if err != nil {
		msg := err.Error()
		var he *ecrhost.HostError
		if errors.As(err, &he) && he.Suggestion != "" && !strings.Contains(msg, he.Suggestion) {
			if strings.Contains(msg, "did you mean") {
				msg += fmt.Sprintf("; the host would be %q", he.Suggestion)
			} else {
				msg += fmt.Sprintf(" (did you mean %q?)", he.Suggestion)
			}
		}
		return msg
	}
	if bare := strings.ToLower(strings.TrimSuffix(host, ".")); bare != r.Host {
		return fmt.Sprintf("%q: want the host name alone, without scheme, port or path: %q", host, r.Host)
	}
	if r.Public && !public {
		return fmt.Sprintf("%q is ECR Public, which ecrgate cannot push through; name a private registry (<account>.dkr.ecr.<region>.amazonaws.com)", host)
	}
	return ""
}

// namespaceProblem checks a repository namespace (a name prefix without the
// trailing '/'), which may be a single character.
func namespaceProblem(ns string) string {
	if ns == "" {
		return "is an empty namespace"
	}
	err := ecrname.ValidateRepository(ns + "/x")
	if err == nil {
		return ""
	}
	var ne *ecrname.Error
	if errors.As(err, &ne) {
		return "is not a valid repository namespace: " + ne.Reason
	}
	return "is not a valid repository namespace: " + err.Error()
}

// localHostProblem checks a local_hosts key: a host name or host:port as
// Docker passes it to the credential helper.
func localHostProblem(h string) string {
	bad := fmt.Sprintf("%q must be a host or host:port as in image names (e.g. localhost:5000), without scheme or path", h)
	if strings.Contains(h, "/") || strings.ContainsFunc(h, unicode.IsSpace) {
		return bad
	}
	host := h
	if strings.Contains(h, ":") && !(strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]")) {
		hh, port, err := net.SplitHostPort(h)
		if err != nil || !isPort(port) {
			return bad
		}
		host = hh
	}
	if host == "" || host == "[]" {
		return bad
	}
	return ""
}

// isPort reports whether s is a decimal port number.
func isPort(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// endpointProblem checks an endpoint override URL.
func endpointProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL; want an absolute http:// or https:// URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q is not an absolute http:// or https:// URL", s)
	case u.Host == "":
		return fmt.Sprintf("%q has no host", s)
	case u.User != nil:
		return fmt.Sprintf("%q must not carry credentials; the file holds no secrets", u.Redacted())
	}
	return ""
}

// lifecyclePolicyProblem checks an ECR lifecycle policy text.
func lifecyclePolicyProblem(s string) string {
	if strings.HasPrefix(s, "@") {
		return fmt.Sprintf("file reference %q was not read; Parse and Load read @file references", truncate(s, 140))
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return "not a JSON object: " + err.Error()
	}
	raw, ok := doc["rules"]
	if !ok {
		return `the policy has no "rules"`
	}
	var rules []json.RawMessage
	if err := json.Unmarshal(raw, &rules); err != nil {
		return `"rules" must be a list of rules`
	}
	if len(rules) == 0 {
		return `"rules" is empty`
	}
	if n := utf8.RuneCountInString(s); n < minLifecyclePolicyChars || n > maxLifecyclePolicyChars {
		return fmt.Sprintf("the policy is %d characters long; ECR accepts %d to %d", n, minLifecyclePolicyChars, maxLifecyclePolicyChars)
	}
	return ""
}

// repositoryPolicyProblem checks an ECR repository (IAM resource) policy.
func repositoryPolicyProblem(s string) string {
	if strings.HasPrefix(s, "@") {
		return fmt.Sprintf("file reference %q was not read; Parse and Load read @file references", truncate(s, 140))
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return "not a JSON object: " + err.Error()
	}
	if raw, ok := doc["Statement"]; !ok || string(raw) == "null" {
		return `the policy has no "Statement"`
	}
	if n := utf8.RuneCountInString(s); n > maxRepoPolicyChars {
		return fmt.Sprintf("the policy is %d characters long; ECR accepts at most %d", n, maxRepoPolicyChars)
	}
	return ""
}

// tagText is the character set AWS allows in tag keys and values.
var tagText = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`) })

func tagProblem(key, value string) string {
	switch n := utf8.RuneCountInString(key); {
	case n == 0:
		return "tag keys must not be empty"
	case n > 128:
		return fmt.Sprintf("tag key is %d characters long; at most 128", n)
	case strings.HasPrefix(strings.ToLower(key), "aws:"):
		return `tag keys starting with "aws:" are reserved by AWS`
	case !utf8.ValidString(key) || !tagText().MatchString(key):
		return "tag key may hold only letters, digits, spaces and _ . : / = + - @"
	}
	switch n := utf8.RuneCountInString(value); {
	case n > 256:
		return fmt.Sprintf("tag value is %d characters long; at most 256", n)
	case !utf8.ValidString(value) || !tagText().MatchString(value):
		return "tag value may hold only letters, digits, spaces and _ . : / = + - @"
	}
	return ""
}
