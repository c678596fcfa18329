package repocreate

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"golang.org/x/sync/singleflight"

	"github.com/ecrgate/ecrgate/pkg/awserr"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// DefaultCacheTTL is how long the ensurer remembers that a repository
// exists (or that ECR's CREATE_ON_PUSH template creates it), and how long it
// keeps a registry's creation templates.
const DefaultCacheTTL = 10 * time.Minute

// ensureTimeout bounds one ensure (describe, create, policies) including the
// SDK's retries (each call at most APIMaxAttempts attempts with at most
// APIMaxRetryWait of waiting between them, with the default clients). The work is detached from the request that started it, since
// other requests wait for the same result.
const ensureTimeout = 2 * time.Minute

// Options configure an Ensurer.
type Options struct {
	// Config supplies allow/deny, dry_run, templates, audit_log and the
	// per-registry AWS settings. nil means all defaults (and no audit log).
	Config *config.Config
	// Clients returns the ECR client for a registry host and the identity
	// (ARN) it acts as, for logs, messages and the audit file. Default: a
	// client per registry built with awsconf from Config.RegistryConfig(host)
	// and Env, identity from STS GetCallerIdentity (cached per registry;
	// "unknown" if that call fails).
	Clients func(ctx context.Context, registry string) (ECR, string, error)
	// Env is the environment (os.Environ() in main), for the default Clients.
	Env []string
	// Logger gets one info line per creation, warnings, and debug lines.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CacheTTL is how long "exists" is remembered, and "missing, ECR's
	// CREATE_ON_PUSH template creates it" likewise (default DefaultCacheTTL).
	CacheTTL time.Duration
	// OnCreate, if set, is called once per repository ecrgate creates
	// (how = HowCreated) or leaves to ECR's CREATE_ON_PUSH template
	// (how = HowNative), for metrics. Dry runs and repositories someone
	// else created meanwhile do not count. It must be quick and safe for
	// concurrent use.
	OnCreate func(registry, how string)
}

// Values of OnCreate's how.
const (
	HowCreated = "ecrgate" // ecrgate called CreateRepository
	HowNative  = "native"  // ECR creates it on push from its own template
)

// Ensurer makes sure repositories exist before the proxy forwards writes to
// them. It is safe for concurrent use.
type Ensurer struct {
	cfg      *config.Config
	clients  func(ctx context.Context, registry string) (ECR, string, error)
	planner  *Planner
	log      *slog.Logger
	now      func() time.Time
	ttl      time.Duration
	onCreate func(registry, how string)
	audit    *auditLog
	flights  singleflight.Group
	mounts   mountFacts

	mu      sync.Mutex
	known   map[string]knownRepo // registry + "/" + repository
	pruneAt int
}

// knownRepo is a cached "no need to create": the repository exists, or ECR
// creates it on push from the CREATE_ON_PUSH template native.
type knownRepo struct {
	expires time.Time
	native  string
}

// New returns an Ensurer. It opens the audit log (append, mode 0600, parent
// directories 0700) when Config.AuditLog is set.
func New(o Options) (*Ensurer, error) {
	cfg := o.Config
	if cfg == nil {
		cfg = &config.Config{}
	}
	clients := o.Clients
	if clients == nil {
		clients = newSDKClients(cfg, o.Env).get
	}
	// The planner fills in the defaults both share (logger, clock, TTL).
	pl := NewPlanner(PlannerOptions{Config: cfg, Clients: readOnlyClients(clients), Logger: o.Logger, Now: o.Now, CacheTTL: o.CacheTTL})
	e := &Ensurer{
		cfg:      cfg,
		clients:  clients,
		planner:  pl,
		log:      pl.log,
		now:      pl.now,
		ttl:      pl.ttl,
		onCreate: o.OnCreate,
		known:    map[string]knownRepo{},
		pruneAt:  1024,
	}
	if e.onCreate == nil {
		e.onCreate = func(string, string) {}
	}
	if e.cfg.AuditLog != "" {
		a, err := openAudit(e.cfg.AuditLog)
		if err != nil {
			return nil, err
		}
		e.audit = a
	}
	return e, nil
}

// Close closes the audit log.
func (e *Ensurer) Close() error { return e.audit.close() }

// Ensure makes sure repository exists in registry (an ECR registry host)
// before a write is forwarded to it, or that ECR will create it on the push.
// It returns nil when the write may go ahead, else an errcode.Error:
// NAME_INVALID for a name ECR would reject (no AWS call), DENIED for a
// missing repository ecrgate may not create (allow/deny, dry_run, IAM),
// UNAVAILABLE or TOOMANYREQUESTS when retrying later may help.
//
// A repository known to exist is not looked up again for CacheTTL. Otherwise
// one DescribeRepositories, and if the repository is missing and no
// CREATE_ON_PUSH template of ECR covers it, one CreateRepository from the
// matching template followed by its lifecycle and repository policies — one
// of each however many callers ask for the same repository at once.
//
// When a policy cannot be applied after the repository was created, Ensure
// still returns nil: the repository exists, so failing the push would not
// undo anything (a retry would find it and go ahead). The failure is logged
// as a warning and recorded in the audit line's "warnings".
//
// The Caller in ctx (WithCaller), if any, is named in the audit and log
// lines of a creation; when several callers ask at once, the one whose
// request started the work is.
func (e *Ensurer) Ensure(ctx context.Context, registry, repository string) error {
	if e.isKnown(strings.ToLower(registry) + "/" + repository) {
		return nil
	}
	p, err := decide(e.cfg, registry, repository)
	if err != nil {
		return err
	}
	key := p.Registry + "/" + p.Repository
	if e.isKnown(key) {
		return nil
	}
	ch := e.flights.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ensureTimeout)
		defer cancel()
		return nil, e.ensure(fctx, key, p)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf(
			"stopped waiting for repository %q in %s to be looked up or created: %v; retry the push", p.Repository, p.Registry, ctx.Err()))
	}
}

// Plan tells what Ensure would do with repository in registry now, without
// doing it: see Planner.Plan. It asks ECR through this ensurer's clients,
// read-only, and shares its knowledge of the registries' creation
// templates, but neither reads nor fills its existence cache.
func (e *Ensurer) Plan(ctx context.Context, registry, repository string) (Plan, error) {
	return e.planner.Plan(ctx, registry, repository)
}

// Invalidate forgets what the ensurer knows about repository, so the next
// Ensure looks it up again. The proxy calls it when ECR answers NAME_UNKNOWN
// for a repository the cache said exists (someone deleted it).
func (e *Ensurer) Invalidate(registry, repository string) {
	reg := normRegistry(registry)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, key := range []string{reg + "/" + repository, strings.ToLower(registry) + "/" + repository} {
		if k, ok := e.known[key]; ok {
			delete(e.known, key)
			if k.native != "" {
				// ECR did not create it: its templates may have changed.
				e.planner.forget(reg)
			}
		}
	}
}

func normRegistry(registry string) string {
	if r, err := ecrhost.Parse(registry); err == nil {
		return r.Host
	}
	return strings.ToLower(registry)
}

func (e *Ensurer) isKnown(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.known[key]
	if !ok {
		return false
	}
	if !e.now().Before(k.expires) {
		delete(e.known, key)
		return false
	}
	return true
}

func (e *Ensurer) remember(key, native string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if len(e.known) >= e.pruneAt {
		for k, v := range e.known {
			if !now.Before(v.expires) {
				delete(e.known, k)
			}
		}
		e.pruneAt = max(1024, 2*len(e.known))
	}
	e.known[key] = knownRepo{expires: now.Add(e.ttl), native: native}
}

func (e *Ensurer) configName() string { return configName(e.cfg) }

// ensure plans and acts for one repository; it runs once per key at a
// time. p is decide's part of the plan.
func (e *Ensurer) ensure(ctx context.Context, key string, p Plan) error {
	if e.isKnown(key) { // a flight that just ended may have settled it
		return nil
	}
	client, identity, err := e.clients(ctx, p.Registry)
	var read ReadECR
	if err == nil {
		read = readOnly{client}
	}
	p, err = e.planner.lookup(ctx, read, identity, err, p)
	return e.act(ctx, key, client, p, err)
}

// act carries out plan p, whose error is err.
func (e *Ensurer) act(ctx context.Context, key string, client ECR, p Plan, err error) error {
	log := e.log.With("repository", p.Repository, "registry", p.Registry)
	caller, _ := CallerFrom(ctx)
	if caller.Addr != "" {
		log = log.With("client", caller.Addr)
	}
	if caller.Token != "" {
		log = log.With("token", caller.Token)
	}
	switch p.Action {
	case ActionExists:
		e.remember(key, "")
		log.Debug("repository exists")
		return nil

	case ActionNative:
		native := p.NativePrefix()
		e.remember(key, native)
		log.Info("repository missing; ECR creates it on push from its repository creation template",
			"template", "native:"+native, "identity", p.Identity)
		e.writeAudit(log, auditRecord{Registry: p.Registry, Repository: p.Repository, Template: "native:" + native, Identity: p.Identity,
			Client: caller.Addr, Token: caller.Token})
		e.onCreate(p.Registry, HowNative)
		return nil

	case ActionDenied:
		log.Info("repository missing; not creating it", "reason", p.Rule.Message)
		return err

	case ActionDryRun:
		log.Info("dry run: would create repository", "template", p.TemplateName(), "identity", p.Identity)
		e.writeAudit(log, auditRecord{Registry: p.Registry, Repository: p.Repository, Template: p.TemplateName(), Identity: p.Identity, DryRun: true,
			Client: caller.Addr, Token: caller.Token})
		return err

	case ActionCreate:
		return e.create(ctx, log, key, client, p, caller)
	}
	switch f := p.Failed; {
	case f == nil:
	case f.Op == "":
		log.Warn("cannot build ECR client", "error", f.Err)
	default:
		log.Warn(f.Op+" failed", "identity", p.Identity, "error", f.Err)
	}
	return err
}

// create creates the repository of p, then applies its policies.
// Only the CreateRepository that succeeds writes the "created" lines: a
// replica (or a person, or ECR's create on push) that lost the race to
// RepositoryAlreadyExists logs that at info and audits nothing.
func (e *Ensurer) create(ctx context.Context, log *slog.Logger, key string, client ECR, p Plan, caller Caller) error {
	identity := p.Identity
	if _, err := client.CreateRepository(ctx, p.Input); err != nil {
		if awserr.Classify(err) == awserr.AlreadyExists {
			// Somebody else (another ecrgate, a person, ECR's create on
			// push) won the race; their settings stand.
			e.remember(key, "")
			log.Info("repository was created by someone else meanwhile", "identity", identity)
			return nil
		}
		log.Warn("CreateRepository failed", "template", p.TemplateName(), "identity", identity, "error", err)
		return mapError("CreateRepository", p, identity, e.configName(), err)
	}

	var warnings []string
	if p.LifecyclePolicy != "" {
		_, err := client.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{
			RegistryId:          p.Input.RegistryId,
			RepositoryName:      aws.String(p.Repository),
			LifecyclePolicyText: aws.String(p.LifecyclePolicy),
		})
		if err != nil {
			msg := mapError("PutLifecyclePolicy", p, identity, e.configName(), err).Message
			log.Warn("repository created without its lifecycle policy", "template", p.TemplateName(), "identity", identity, "error", msg)
			warnings = append(warnings, "lifecycle_policy: "+msg)
		}
	}
	if p.RepositoryPolicy != "" {
		_, err := client.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{
			RegistryId:     p.Input.RegistryId,
			RepositoryName: aws.String(p.Repository),
			PolicyText:     aws.String(p.RepositoryPolicy),
		})
		if err != nil {
			msg := mapError("SetRepositoryPolicy", p, identity, e.configName(), err).Message
			log.Warn("repository created without its repository policy", "template", p.TemplateName(), "identity", identity, "error", msg)
			warnings = append(warnings, "repository_policy: "+msg)
		}
	}

	e.remember(key, "")
	log.Info("created repository", "template", p.TemplateName(), "identity", identity)
	e.writeAudit(log, auditRecord{Registry: p.Registry, Repository: p.Repository, Template: p.TemplateName(),
		Identity: identity, Client: caller.Addr, Token: caller.Token, Warnings: warnings})
	e.onCreate(p.Registry, HowCreated)
	return nil
}

func (e *Ensurer) writeAudit(log *slog.Logger, r auditRecord) {
	r.Time = e.now().UTC()
	if err := e.audit.write(r); err != nil {
		log.Error("cannot write audit log", "path", e.cfg.AuditLog, "error", err)
	}
}
