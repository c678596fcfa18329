package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/listen"
)

// Default values, in one place. The audit log and local host defaults depend
// on the environment and on other keys; see applyDefaults.
const (
	DefaultListen          = "127.0.0.1:5000"
	DefaultAdminListen     = "127.0.0.1:5002"
	DefaultInterceptListen = "127.0.0.1:5001"
	DefaultInterceptHosts  = InterceptConfigured
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "text"
)

// Values of Intercept.Hosts.
const (
	// InterceptConfigured decrypts CONNECTs to the ECR hosts named in the
	// file (default_registry, routes, registries, local_hosts) only.
	InterceptConfigured = "configured"
	// InterceptAllECR decrypts CONNECTs to every host ecrhost.Parse accepts.
	InterceptAllECR = "all-ecr"
)

// Values of Template.ImageTagMutability, as in ECR's API.
const (
	Mutable                 = "MUTABLE"
	Immutable               = "IMMUTABLE"
	ImmutableWithExclusion  = "IMMUTABLE_WITH_EXCLUSION"
	MutableWithExclusion    = "MUTABLE_WITH_EXCLUSION"
	FilterTypeWildcard      = "WILDCARD" // the only ExclusionFilter.FilterType
	EncryptionAES256        = "AES256"
	EncryptionKMS           = "KMS"
	EncryptionKMSDSSE       = "KMS_DSSE"
	RootPrefix              = "ROOT" // Template.Prefix of the fallback template
	maxExclusionFilters     = 5
	maxTags                 = 50
	minLifecyclePolicyChars = 100
	maxLifecyclePolicyChars = 30720
	maxRepoPolicyChars      = 10240
	maxPolicyFileBytes      = 1 << 20
)

// Config is ecrgate's configuration. The zero value is valid and means "all
// defaults"; Default and Parse fill the defaults in. Config holds no secrets.
// A Config returned by Parse, Load or Default is safe for concurrent reads.
type Config struct {
	Listen          string            // listen; default "127.0.0.1:5000"
	AdminListen     string            // admin_listen; default "127.0.0.1:5002"
	Intercept       Intercept         // intercept
	LogLevel        string            // log_level: debug, info, warn or error; default info
	LogFormat       string            // log_format: text or json; default text
	AuditLog        string            // audit_log: path; default $XDG_STATE_HOME/ecrgate/audit.jsonl
	DefaultRegistry string            // default_registry: ECR registry host (not ECR Public)
	Routes          []Route           // routes
	Registries      []Registry        // registries
	Allow           []string          // allow: repository-name globs ecrgate may create; empty = all
	Deny            []string          // deny: repository-name globs ecrgate must not create
	DryRun          bool              // dry_run
	Templates       []Template        // templates
	LocalHosts      map[string]string // local_hosts: local proxy host -> ECR registry host
	// SharedProxies (shared_proxies) maps a shared team proxy host, as it
	// appears in image names (ecrgate.example.internal:5000), to the ECR
	// registry host whose token the credential helper hands to it: the
	// client side of another machine's allow_remote.
	SharedProxies map[string]string
	// AllowRemote (allow_remote) makes ecrgate a shared service: listeners
	// off loopback are allowed (with TLS), and every request carries its
	// caller's own credentials upstream; ecrgate's own token is never
	// added.
	AllowRemote bool
	TLS         TLS // tls: the registry and intercept listeners' certificate
	// MountSharedLayers (mount_shared_layers; default true) lets ecrgate
	// answer a pusher's blob HEAD by mounting the blob from another
	// repository of the same registry (see MountShared).
	MountSharedLayers *bool

	// Path is the file the configuration was read from; "" if none.
	Path string

	src *source // where each key was found; nil for a Config built in code
}

// TLS names the certificate and key (PEM files) the registry listener and
// the intercept listener's CONNECT front serve; both or neither. Parse
// resolves them like audit_log ("~/", relative to the config's directory).
type TLS struct {
	CertFile string // cert_file
	KeyFile  string // key_file
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Listener keys, as CheckListen takes them.
const (
	KeyListen          = "listen"
	KeyAdminListen     = "admin_listen"
	KeyInterceptListen = "intercept.listen"
)

// CheckListen returns an error unless the listener of key (KeyListen,
// KeyAdminListen or KeyInterceptListen) may listen on addr: loopback
// (listen.CheckLoopback) always; any other address only with allow_remote:
// true, and for the registry and intercept listeners only with tls: as
// well (the admin listener stays plain HTTP for kubelet probes and
// Prometheus, and serves nothing secret). Validate and the server ask this
// one function.
func (c *Config) CheckListen(key, addr string) error {
	loop := listen.CheckLoopback(addr)
	if loop == nil {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return loop
	}
	tlsNeeded := key != KeyAdminListen
	switch {
	case !c.AllowRemote && tlsNeeded:
		return fmt.Errorf("%w; for a shared team proxy set allow_remote: true and tls: {cert_file, key_file}", loop)
	case !c.AllowRemote:
		return fmt.Errorf("%w; for a shared team proxy set allow_remote: true", loop)
	case tlsNeeded && !c.TLS.Enabled():
		return fmt.Errorf("listen address %q is off loopback, which needs tls: {cert_file, key_file} as well as allow_remote: true: clients send their ECR tokens to it", addr)
	}
	return nil
}

// Intercept configures the CONNECT front that dockerd's HTTPS_PROXY points at.
type Intercept struct {
	Listen string // listen; default "127.0.0.1:5001"
	// Hosts (hosts) says which CONNECT targets are decrypted and served:
	// "configured" (the default; "" means the same) or "all-ecr".
	Hosts string
	// TunnelOthers (tunnel_others; default true) passes CONNECTs to every
	// other host through untouched; false refuses them.
	TunnelOthers *bool
}

// MountShared reports whether shared layers are mounted instead of
// uploaded: MountSharedLayers, true when unset.
func (c *Config) MountShared() bool { return c.MountSharedLayers == nil || *c.MountSharedLayers }

// Tunnel reports whether CONNECTs to hosts that are not intercepted are
// tunnelled: TunnelOthers, true when unset.
func (i Intercept) Tunnel() bool { return i.TunnelOthers == nil || *i.TunnelOthers }

// Route sends registry-mode names that start with Prefix to another registry.
type Route struct {
	Prefix   string // prefix: repository-name prefix ending in "/", e.g. "prod/"
	Registry string // registry: ECR registry host (not ECR Public)
}

// Registry holds per-registry settings.
type Registry struct {
	Host        string // host: ECR registry host (ECR Public allowed)
	Profile     string // profile: AWS shared-config profile
	RoleARN     string // role_arn: IAM role to assume
	Endpoint    string // endpoint: data-plane URL override
	APIEndpoint string // api_endpoint: control-plane URL override
}

// Template is what a repository that ecrgate creates gets, like an ECR
// repository creation template.
type Template struct {
	// Prefix (prefix) is "ROOT" or a repository namespace such as "team" or
	// "team/app"; it matches names under it, with an implied trailing "/".
	Prefix string
	// ImageTagMutability (image_tag_mutability) is MUTABLE (the default),
	// IMMUTABLE, IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION.
	ImageTagMutability string
	// ImageTagMutabilityExclusionFilters (image_tag_mutability_exclusion_filters):
	// 1 to 5 filters, with the *_WITH_EXCLUSION mutabilities only.
	ImageTagMutabilityExclusionFilters []ExclusionFilter
	ScanOnPush                         bool       // scan_on_push
	Encryption                         Encryption // encryption
	// LifecyclePolicy (lifecycle_policy) is the policy's JSON text. In the
	// file it is inline JSON or "@path"; Parse replaces "@path" with the
	// file's content.
	LifecyclePolicy string
	// RepositoryPolicy (repository_policy) is the policy's JSON text, inline
	// or from "@path" like LifecyclePolicy.
	RepositoryPolicy string
	Tags             map[string]string // tags: resource tags
	// MountFrom (mount_from) names repositories of the same registry
	// where shared layers may already live: ecrgate asks there when its
	// own index of blobs knows none for a layer being pushed.
	MountFrom []string
	// PullAccounts (pull_accounts) are AWS account ids (12 digits) whose
	// principals may pull from the repository: the repository policy gets
	// a statement (Sid "ecrgate-pull-accounts", see package repopolicy)
	// allowing their roots ecr:BatchGetImage, ecr:GetDownloadUrlForLayer
	// and ecr:BatchCheckLayerAvailability, merged with RepositoryPolicy.
	PullAccounts []string
	// PullPrincipals (pull_principals) are IAM role or user ARNs added to
	// the same statement.
	PullPrincipals []string
	// CustomRoleARN (custom_role_arn) is the IAM role ECR assumes when it
	// creates a repository from this template's ECR creation template
	// (ecrgate templates export): ECR needs one for KMS encryption and
	// resource tags. ecrgate's own creations do not use it.
	CustomRoleARN string
}

// ExclusionFilter names tags exempt from a template's tag mutability.
type ExclusionFilter struct {
	FilterType string // filter_type: WILDCARD (the default)
	Filter     string // filter: 1 to 128 characters of [0-9a-zA-Z._*-]
}

// Encryption is a template's encryption at rest.
type Encryption struct {
	Type   string // type: AES256 (the default), KMS or KMS_DSSE
	KMSKey string // kms_key: key id, key ARN, alias/<name> or alias ARN; KMS types only
}

// source records where a parsed Config came from, for messages.
type source struct {
	name  string
	lines map[string]int            // key path -> line
	files map[string]string         // key path -> file an @file value was read from
	bad   map[string]bool           // key paths that failed to decode
	globs map[string]*regexp.Regexp // compiled allow and deny patterns
}

// Default returns the configuration an empty file gives.
func Default(env []string) *Config {
	c := &Config{}
	c.applyDefaults(env)
	return c
}

// applyDefaults fills in every unset field that has a default.
func (c *Config) applyDefaults(env []string) {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.Listen, DefaultListen)
	set(&c.AdminListen, DefaultAdminListen)
	set(&c.Intercept.Listen, DefaultInterceptListen)
	set(&c.Intercept.Hosts, DefaultInterceptHosts)
	if c.Intercept.TunnelOthers == nil {
		t := true
		c.Intercept.TunnelOthers = &t
	}
	set(&c.LogLevel, DefaultLogLevel)
	set(&c.LogFormat, DefaultLogFormat)
	if c.AuditLog == "" {
		if dir := xdgDir(env, "XDG_STATE_HOME", ".local/state"); dir != "" {
			c.AuditLog = filepath.Join(dir, "ecrgate", "audit.jsonl")
		}
	}
	for i := range c.Templates {
		t := &c.Templates[i]
		set(&t.ImageTagMutability, Mutable)
		set(&t.Encryption.Type, EncryptionAES256)
		for j := range t.ImageTagMutabilityExclusionFilters {
			set(&t.ImageTagMutabilityExclusionFilters[j].FilterType, FilterTypeWildcard)
		}
	}
	if c.LocalHosts == nil && c.DefaultRegistry != "" && registryProblem(c.DefaultRegistry, false) == "" {
		if hosts := defaultLocalHosts(c.Listen); len(hosts) > 0 {
			c.LocalHosts = make(map[string]string, len(hosts))
			for _, h := range hosts {
				c.LocalHosts[h] = c.DefaultRegistry
			}
		}
	}
}

// defaultLocalHosts returns the names Docker may use for the registry-mode
// listener: its own host and port, plus localhost (and 127.0.0.1 when it
// listens on every address).
func defaultLocalHosts(listen string) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return nil
	}
	var hosts []string
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		hosts = append(hosts, net.JoinHostPort("127.0.0.1", port))
	} else {
		hosts = append(hosts, net.JoinHostPort(strings.ToLower(host), port))
	}
	hosts = append(hosts, net.JoinHostPort("localhost", port))
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// xdgDir returns the XDG base directory named by the variable name, or
// $HOME/fallback when it is unset or not absolute (as the XDG spec asks), or
// "" when HOME is unset too.
func xdgDir(env []string, name, fallback string) string {
	if d := environ.Get(env, name); filepath.IsAbs(d) {
		return d
	}
	if h := environ.Get(env, "HOME"); h != "" {
		return filepath.Join(h, filepath.FromSlash(fallback))
	}
	return ""
}

// errNoHome is returned by expandHome for "~/" without HOME.
var errNoHome = errors.New(`cannot expand "~/": HOME is not set`)

// expandHome replaces a leading "~/" in p with $HOME/.
func expandHome(p string, env []string) (string, error) {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p, nil
	}
	home := environ.Get(env, "HOME")
	if home == "" {
		return p, errNoHome
	}
	return filepath.Join(home, rest), nil
}

// DefaultPath returns where the configuration file is looked for: the value
// of ECRGATE_CONFIG if set (a leading "~/" expanded), else
// $XDG_CONFIG_HOME/ecrgate/config.yaml, with XDG_CONFIG_HOME defaulting to
// $HOME/.config. It returns "" when neither variable nor HOME is set.
func DefaultPath(env []string) string {
	if p := environ.Get(env, "ECRGATE_CONFIG"); p != "" {
		p, _ = expandHome(p, env)
		return p
	}
	if dir := xdgDir(env, "XDG_CONFIG_HOME", ".config"); dir != "" {
		return filepath.Join(dir, "ecrgate", "config.yaml")
	}
	return ""
}

// Load reads and validates the configuration file at path, or at
// DefaultPath(env) when path is "". A missing file at the default path gives
// the defaults; a missing file that was named (by path or ECRGATE_CONFIG) is
// an error that wraps fs.ErrNotExist. env is the environment
// (os.Environ() in main), used for HOME, XDG_* and ECRGATE_CONFIG.
//
// Load refuses a file that a user other than the current one and root could
// have written (the file, by its owner or mode, or the directory that holds
// it), with an error that wraps ErrOthersCanWrite and says which command
// fixes it: whoever can edit the file can choose where tokens are sent.
func Load(path string, env []string) (*Config, error) {
	cfg, w, err := load(path, env, true)
	if w != nil { // before any problem inside: the content is not the user's
		return nil, refusal(w)
	}
	return cfg, err
}

// load is Load that also parses a file others could have written, and says
// what makes it so.
func load(path string, env []string, guardPolicies bool) (*Config, *othersCanWrite, error) {
	named := "given"
	if path == "" {
		path = DefaultPath(env)
		named = ""
		if environ.Get(env, "ECRGATE_CONFIG") != "" {
			named = "named by ECRGATE_CONFIG"
		}
	}
	if path == "" {
		return Default(env), nil, nil
	}
	data, w, err := readConfig(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if named == "" {
				return Default(env), nil, nil
			}
			return nil, nil, &Error{File: path, Msg: "the configuration file " + named + " does not exist; create it or name another", Err: err}
		}
		var pe *fs.PathError
		msg := err.Error()
		if errors.As(err, &pe) {
			msg = "cannot read the configuration file: " + pe.Err.Error()
		}
		return nil, nil, &Error{File: path, Msg: msg, Err: err}
	}
	cfg, err := parse(data, path, env, guardPolicies)
	return cfg, w, err
}

// Parse parses and validates a configuration file's content. name is the
// file's name, used in messages and as Config.Path; "@file" references and a
// relative audit_log are resolved against filepath.Dir(name). Every problem
// is reported, joined with errors.Join; on error the Config is nil.
func Parse(data []byte, name string, env []string) (*Config, error) {
	return parse(data, name, env, true)
}

// parse is Parse; guardPolicies refuses "@file" policies that others could
// have written (off only for the credential helper, which reads no policy).
func parse(data []byte, name string, env []string, guardPolicies bool) (*Config, error) {
	src := &source{
		name:  name,
		lines: map[string]int{},
		files: map[string]string{},
		bad:   map[string]bool{},
	}
	c := &Config{Path: name, src: src}
	d := &decoder{src: src, guardPolicies: guardPolicies}
	root, err := d.parseYAML(data)
	if err != nil {
		return nil, err
	}
	d.config(root, c)
	c.normalize()
	d.resolveFiles(c, env)
	c.applyDefaults(env)
	errs := append(d.errs, c.problems()...)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	src.globs = map[string]*regexp.Regexp{}
	for _, p := range slices.Concat(c.Allow, c.Deny) {
		src.globs[p], _ = compileGlob(p)
	}
	return c, nil
}

// normalize puts a decoded file's values in canonical form: registry hosts in
// lower case, template prefixes without a trailing "/", policies without
// surrounding white space, and IMMUTABLE or MUTABLE with exclusion filters
// turned into IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION.
func (c *Config) normalize() {
	host := func(p *string) { *p = strings.ToLower(strings.TrimSuffix(*p, ".")) }
	host(&c.DefaultRegistry)
	for i := range c.Routes {
		host(&c.Routes[i].Registry)
	}
	for i := range c.Registries {
		host(&c.Registries[i].Host)
	}
	for k, v := range c.LocalHosts {
		c.LocalHosts[k] = strings.ToLower(strings.TrimSuffix(v, "."))
	}
	for k, v := range c.SharedProxies {
		c.SharedProxies[k] = strings.ToLower(strings.TrimSuffix(v, "."))
	}
	for i := range c.Templates {
		t := &c.Templates[i]
		if t.Prefix != "/" {
			t.Prefix = strings.TrimSuffix(t.Prefix, "/")
		}
		if len(t.ImageTagMutabilityExclusionFilters) > 0 && (t.ImageTagMutability == Immutable || t.ImageTagMutability == Mutable) {
			t.ImageTagMutability += "_WITH_EXCLUSION"
		}
		t.LifecyclePolicy = strings.TrimSpace(t.LifecyclePolicy)
		t.RepositoryPolicy = strings.TrimSpace(t.RepositoryPolicy)
	}
}

// SlogLevel returns LogLevel as a slog.Level (info when unset or unknown).
func (c *Config) SlogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// RegistryFor maps a registry-mode repository name to the ECR registry host
// it goes to and the name it has there. The route with the longest matching
// prefix wins and its prefix is stripped ("prod/app" with route "prod/" is
// "app" in the route's registry); without a matching route the name goes
// unchanged to DefaultRegistry. host is "" when neither applies.
func (c *Config) RegistryFor(repo string) (host string, rest string) {
	best, bestLen := -1, 0
	for i, r := range c.Routes {
		p := strings.TrimSuffix(r.Prefix, "/") + "/"
		if p != "/" && strings.HasPrefix(repo, p) && len(p) > bestLen {
			best, bestLen = i, len(p)
		}
	}
	if best < 0 {
		return c.DefaultRegistry, repo
	}
	return c.Routes[best].Registry, repo[bestLen:]
}

// RegistryConfig returns the registries entry for host, compared without
// regard to case.
func (c *Config) RegistryConfig(host string) (Registry, bool) {
	host = strings.TrimSuffix(host, ".")
	for _, r := range c.Registries {
		if strings.EqualFold(strings.TrimSuffix(r.Host, "."), host) {
			return r, true
		}
	}
	return Registry{}, false
}

// LocalRegistry returns the ECR registry host that the credential helper
// serves for a local proxy host such as "localhost:5000" (case-insensitive).
func (c *Config) LocalRegistry(local string) (string, bool) {
	for k, v := range c.LocalHosts {
		if strings.EqualFold(k, local) {
			return v, true
		}
	}
	return "", false
}

// SharedProxyRegistry returns the ECR registry host whose token the
// credential helper hands to the shared team proxy host shared (a
// shared_proxies key, compared without regard to case).
func (c *Config) SharedProxyRegistry(shared string) (string, bool) {
	for k, v := range c.SharedProxies {
		if strings.EqualFold(k, shared) {
			return v, true
		}
	}
	return "", false
}

// DefaultTemplate returns what TemplateFor gives when no template matches
// and there is no ROOT template: MUTABLE tags, AES256 encryption, nothing
// else, and an empty Prefix.
func DefaultTemplate() Template {
	return Template{ImageTagMutability: Mutable, Encryption: Encryption{Type: EncryptionAES256}}
}

// Line is the 1-based line in the configuration file of key, a key path
// as errors name it ("default_registry", "deny[0]", "templates[1]",
// "templates[1].scan_on_push"); 0 when the Config was not parsed from a
// file or has no such key. Messages use it to cite the rule they apply.
func (c *Config) Line(key string) int {
	if c == nil || c.src == nil {
		return 0
	}
	return c.src.lines[key]
}

// RegistryHosts returns the ECR registry hosts the configuration names
// (default_registry, routes, registries and local_hosts values), in lower
// case, sorted, each once: the hosts intercept.hosts "configured" decrypts.
func (c *Config) RegistryHosts() []string {
	var hosts []string
	add := func(h string) {
		if h != "" {
			hosts = append(hosts, strings.ToLower(strings.TrimSuffix(h, ".")))
		}
	}
	add(c.DefaultRegistry)
	for _, r := range c.Routes {
		add(r.Registry)
	}
	for _, r := range c.Registries {
		add(r.Host)
	}
	for _, h := range c.LocalHosts {
		add(h)
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// CredHelperHosts returns the hosts Docker should ask
// docker-credential-ecrgate about (what ecrgate setup docker writes into
// credHelpers and ecrgate doctor checks): RegistryHosts, plus each
// shared_proxies host and the registry it serves. Never a local proxy host.
// Lower case, sorted, each once.
func (c *Config) CredHelperHosts() []string {
	hosts := c.RegistryHosts()
	for h, reg := range c.SharedProxies {
		hosts = append(hosts, strings.ToLower(h))
		if reg != "" {
			hosts = append(hosts, strings.ToLower(reg))
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// TemplateFor returns the template for repository repo, as ECR picks one: the
// longest prefix p with repo under p + "/" wins ("team" matches "team/app",
// never "teamx/app" or "team" itself), then ROOT, then DefaultTemplate(). The
// result has its defaults filled in and shares no memory with c.
func (c *Config) TemplateFor(repo string) Template {
	best, root := -1, -1
	bestLen := 0
	for i, t := range c.Templates {
		p := strings.TrimSuffix(t.Prefix, "/")
		switch {
		case p == RootPrefix:
			if root < 0 {
				root = i
			}
		case p != "" && strings.HasPrefix(repo, p+"/") && len(p) > bestLen:
			best, bestLen = i, len(p)
		}
	}
	if best < 0 {
		best = root
	}
	if best < 0 {
		return DefaultTemplate()
	}
	t := c.Templates[best]
	t.Prefix = strings.TrimSuffix(t.Prefix, "/")
	if t.ImageTagMutability == "" {
		t.ImageTagMutability = Mutable
	}
	if t.Encryption.Type == "" {
		t.Encryption.Type = EncryptionAES256
	}
	t.ImageTagMutabilityExclusionFilters = slices.Clone(t.ImageTagMutabilityExclusionFilters)
	for i := range t.ImageTagMutabilityExclusionFilters {
		if t.ImageTagMutabilityExclusionFilters[i].FilterType == "" {
			t.ImageTagMutabilityExclusionFilters[i].FilterType = FilterTypeWildcard
		}
	}
	t.Tags = maps.Clone(t.Tags)
	t.PullAccounts = slices.Clone(t.PullAccounts)
	t.PullPrincipals = slices.Clone(t.PullPrincipals)
	return t
}

// Allowed reports whether ecrgate may create repository repo, and the rule
// that decided: a matching deny pattern ("deny: */tmp*") wins over
// everything; otherwise the first matching allow pattern ("allow: team/*"),
// or, with an empty allow list, "allow: all (no allow list)"; otherwise
// "not in allow list". See the package documentation for the glob syntax.
func (c *Config) Allowed(repo string) (ok bool, rule string) {
	for _, p := range c.Deny {
		if c.match(p, repo) {
			return false, "deny: " + p
		}
	}
	if len(c.Allow) == 0 {
		return true, "allow: all (no allow list)"
	}
	for _, p := range c.Allow {
		if c.match(p, repo) {
			return true, "allow: " + p
		}
	}
	return false, "not in allow list"
}

// match reports whether repo matches the glob pattern, using the pattern
// compiled by Parse when there is one.
func (c *Config) match(pattern, repo string) bool {
	var re *regexp.Regexp
	if c.src != nil {
		re = c.src.globs[pattern]
	}
	if re == nil {
		var err error
		if re, err = compileGlob(pattern); err != nil {
			return false
		}
	}
	return re.MatchString(repo)
}
