package repocreate

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"golang.org/x/sync/singleflight"

	"github.com/ecrgate/ecrgate/pkg/awserr"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// PlannerOptions configure a Planner.
type PlannerOptions struct {
	// Config supplies allow/deny, dry_run, templates and the per-registry
	// AWS settings. nil means all defaults.
	Config *config.Config
	// Clients returns the read-only ECR client for a registry host and the
	// identity (ARN) it acts as. Default: the ensurer's own clients (see
	// Options.Clients), read-only.
	Clients func(ctx context.Context, registry string) (ReadECR, string, error)
	// Env is the environment (os.Environ() in main), for the default Clients.
	Env []string
	// Logger gets a warning, once per registry, when ECR's creation
	// templates cannot be read. Default: discard.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CacheTTL is how long a registry's creation templates are kept
	// (default DefaultCacheTTL).
	CacheTTL time.Duration
	// Offline makes Plan ask AWS nothing: it stops at Decide's part, with
	// Action ActionUnknown.
	Offline bool
}

// Planner computes Plans: the ensurer's decision for a name, with the
// read-only ECR calls it takes. Its clients are ReadECR, so a Planner cannot
// change anything in AWS. Safe for concurrent use.
type Planner struct {
	cfg     *config.Config
	clients func(ctx context.Context, registry string) (ReadECR, string, error)
	log     *slog.Logger
	now     func() time.Time
	ttl     time.Duration
	offline bool
	flights singleflight.Group

	mu           sync.Mutex
	natives      map[string]nativeSet // registry → its CREATE_ON_PUSH templates
	nativeWarned map[string]bool      // registry → template lookup failure logged
}

type nativeSet struct {
	expires    time.Time
	templates  []types.RepositoryCreationTemplate
	unreadable error // why they could not be read; nil when they were
}

// NewPlanner returns a Planner.
func NewPlanner(o PlannerOptions) *Planner {
	pl := &Planner{
		cfg:          o.Config,
		clients:      o.Clients,
		log:          o.Logger,
		now:          o.Now,
		ttl:          o.CacheTTL,
		offline:      o.Offline,
		natives:      map[string]nativeSet{},
		nativeWarned: map[string]bool{},
	}
	if pl.cfg == nil {
		pl.cfg = &config.Config{}
	}
	if pl.log == nil {
		pl.log = slog.New(slog.DiscardHandler)
	}
	if pl.now == nil {
		pl.now = time.Now
	}
	if pl.ttl <= 0 {
		pl.ttl = DefaultCacheTTL
	}
	if pl.clients == nil {
		pl.clients = readOnlyClients(newSDKClients(pl.cfg, o.Env).get)
	}
	return pl
}

// Plan tells what Ensure would do with repository in registry, by the same
// code, without doing it: Decide's part (valid name? which allow/deny rule?
// which local template, with every setting?), then, unless the Planner is
// offline, ECR's part in the ensurer's order (does the repository exist?
// does one of ECR's CREATE_ON_PUSH creation templates create it?), and the
// Action. The rule's and the template's lines in the configuration file are
// filled in as well.
//
// The error is the errcode.Error that Ensure would return now (nil when the
// push may go ahead): NAME_INVALID, UNKNOWN or UNSUPPORTED for names and
// registries ecrgate does not handle, DENIED for a missing repository that
// allow/deny or dry_run keep ecrgate from creating, and the reply of a
// failed lookup (p.Failed says which). Only a creation's own failures are
// beyond a plan.
func (pl *Planner) Plan(ctx context.Context, registry, repository string) (Plan, error) {
	p, err := decide(pl.cfg, registry, repository)
	if err != nil {
		return p, err
	}
	locate(&p, pl.cfg)
	if pl.offline {
		return p, nil
	}
	client, identity, err := pl.clients(ctx, p.Registry)
	return pl.lookup(ctx, client, identity, err, p)
}

// lookup completes the decided plan p with what ECR says, asking as
// identity through client (clientErr: why there is no client). It is the
// whole of what Ensure decides with.
func (pl *Planner) lookup(ctx context.Context, client ReadECR, identity string, clientErr error, p Plan) (Plan, error) {
	if clientErr != nil {
		return p.fail(pl.noClient(p, clientErr))
	}
	p.Identity = identity
	_, err := client.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{
		RegistryId:      p.Input.RegistryId,
		RepositoryNames: []string{p.Repository},
	})
	if err == nil {
		p.Exists, p.Action = aws.Bool(true), ActionExists
		return p, nil
	}
	if awserr.Classify(err) != awserr.NotFound {
		return p.fail(pl.failure("DescribeRepositories", p, err))
	}
	p.Exists = aws.Bool(false)

	n, err := pl.nativesFor(ctx, client, p)
	if err != nil {
		return p.fail(err.(*Failure))
	}
	p.Natives = &n
	if t := n.match(p.Repository); t != nil {
		p.Native, p.Action = t, ActionNative
		return p, nil
	}
	p.Action = p.IfMissing()
	switch p.Action {
	case ActionDenied:
		return p, p.denied()
	case ActionDryRun:
		return p, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"dry_run is on: ecrgate would create %s in %s from %s; set dry_run: false in %s to create it",
			p.Repository, p.Registry, describeTemplate(p.Template), configName(pl.cfg)))
	}
	return p, nil
}

// IfMissing is what Ensure does when the repository is missing and no
// CREATE_ON_PUSH template of ECR creates it: ActionDenied when the rule
// refuses, ActionDryRun with dry_run, else ActionCreate.
func (p Plan) IfMissing() Action {
	switch {
	case !p.Rule.Allowed:
		return ActionDenied
	case p.DryRun:
		return ActionDryRun
	}
	return ActionCreate
}

// fail ends p with the failure f.
func (p Plan) fail(f *Failure) (Plan, error) {
	p.Failed, p.Action = f, ActionUnknown
	return p, f.Reply
}

// noClient is the Failure of a registry without an ECR client.
func (pl *Planner) noClient(p Plan, err error) *Failure {
	return &Failure{Err: err, Reply: errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf(
		"ecrgate cannot reach the ECR API of %s: %v; check the registries: entry for it in %s and your AWS configuration",
		p.Registry, err, configName(pl.cfg)))}
}

// failure is the Failure of ECR operation op for p.
func (pl *Planner) failure(op string, p Plan, err error) *Failure {
	return &Failure{Op: op, Err: err, Reply: mapError(op, p, p.Identity, configName(pl.cfg), err)}
}

// Natives is what the ensurer knows of a registry's CREATE_ON_PUSH
// repository creation templates: ECR creates a missing repository itself
// when one of them covers it, and ecrgate then leaves the creation to ECR.
type Natives struct {
	// Templates are the registry's creation templates that apply to
	// CREATE_ON_PUSH, with their settings, as ECR describes them.
	Templates []types.RepositoryCreationTemplate
	// OtherAccount is, when ecrgate acts as an identity of another account
	// than the registry's, that account: DescribeRepositoryCreationTemplates
	// answers for the caller's own registry, so the templates were not read
	// and the ensurer assumes there are none.
	OtherAccount string
	// Unreadable is why the templates could not be read when the ensurer
	// carries on as if there were none (access denied, say); nil otherwise.
	Unreadable *Failure
}

// Prefixes returns the templates' prefixes ("ROOT" for the fallback).
func (n Natives) Prefixes() []string {
	var out []string
	for _, t := range n.Templates {
		out = append(out, aws.ToString(t.Prefix))
	}
	return out
}

// match returns the template ECR applies to repository, or nil.
func (n Natives) match(repository string) *types.RepositoryCreationTemplate {
	best := matchNative(n.Prefixes(), repository)
	if best == "" {
		return nil
	}
	for i := range n.Templates {
		if strings.TrimSuffix(aws.ToString(n.Templates[i].Prefix), "/") == best {
			t := n.Templates[i]
			return &t
		}
	}
	return nil
}

// Natives returns the CREATE_ON_PUSH creation templates of registry as the
// ensurer sees them, by the code Plan runs. The error, a *Failure, is one
// that fails a push of a missing repository (no client, throttling, ECR
// unavailable); other failures to read them are in Natives.Unreadable.
func (pl *Planner) Natives(ctx context.Context, registry string) (Natives, error) {
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return Natives{}, &Failure{Err: err, Reply: errcode.ErrorCodeUnknown.WithMessage(err.Error())}
	}
	p := Plan{Registry: reg.Host, Input: createInput(reg.Account, "", config.Template{})}
	client, identity, err := pl.clients(ctx, reg.Host)
	if err != nil {
		return Natives{}, pl.noClient(p, err)
	}
	p.Identity = identity
	return pl.nativesFor(ctx, client, p)
}

// nativesFor reads (or remembers) the CREATE_ON_PUSH templates of p's
// registry, asking as p.Identity. The error is a *Failure.
func (pl *Planner) nativesFor(ctx context.Context, client ReadECR, p Plan) (Natives, error) {
	// DescribeRepositoryCreationTemplates reads the caller's own registry:
	// for a registry of another account it would answer about the wrong one.
	if acct := accountOf(p.Identity); acct != "" && p.Input.RegistryId != nil && acct != *p.Input.RegistryId {
		return Natives{OtherAccount: acct}, nil
	}
	s, err := pl.nativeSet(ctx, client, p)
	if err != nil {
		return Natives{}, pl.failure("DescribeRepositoryCreationTemplates", p, err)
	}
	n := Natives{Templates: s.templates}
	if s.unreadable != nil {
		n.Unreadable = pl.failure("DescribeRepositoryCreationTemplates", p, s.unreadable)
	}
	return n, nil
}

func (pl *Planner) nativeSet(ctx context.Context, client ReadECR, p Plan) (nativeSet, error) {
	lookup := func() (nativeSet, bool) {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		s, ok := pl.natives[p.Registry]
		if !ok || !pl.now().Before(s.expires) {
			return nativeSet{}, false
		}
		return s, true
	}
	if s, ok := lookup(); ok {
		return s, nil
	}
	v, err, _ := pl.flights.Do(p.Registry, func() (any, error) {
		if s, ok := lookup(); ok {
			return s, nil
		}
		templates, err := listCreateOnPush(ctx, client)
		s := nativeSet{templates: templates}
		if err != nil {
			if awserr.Classify(err).Transient() {
				return nil, err
			}
			// Not allowed to look (or not offered here): as if there were
			// none. Said once per registry.
			pl.mu.Lock()
			warned := pl.nativeWarned[p.Registry]
			pl.nativeWarned[p.Registry] = true
			pl.mu.Unlock()
			if !warned {
				pl.log.Warn("cannot read ECR's repository creation templates; assuming none creates repositories on push",
					"registry", p.Registry, "identity", p.Identity, "error", awserr.Short(err))
			}
			s = nativeSet{unreadable: err}
		}
		s.expires = pl.now().Add(pl.ttl)
		pl.mu.Lock()
		pl.natives[p.Registry] = s
		pl.mu.Unlock()
		return s, nil
	})
	if err != nil {
		return nativeSet{}, err
	}
	return v.(nativeSet), nil
}

// forget drops what the planner remembers of registry's templates.
func (pl *Planner) forget(registry string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	delete(pl.natives, registry)
}

// listCreateOnPush returns the registry's repository creation templates
// that apply to CREATE_ON_PUSH, reading every page.
func listCreateOnPush(ctx context.Context, client ReadECR) ([]types.RepositoryCreationTemplate, error) {
	var out []types.RepositoryCreationTemplate
	pages := ecr.NewDescribeRepositoryCreationTemplatesPaginator(client, &ecr.DescribeRepositoryCreationTemplatesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range page.RepositoryCreationTemplates {
			if slices.Contains(t.AppliedFor, types.RCTAppliedForCreateOnPush) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// matchNative picks the template ECR applies to repository: the longest
// prefix p with repository under p + "/", else ROOT, else none ("").
func matchNative(prefixes []string, repository string) string {
	best, root := "", false
	for _, p := range prefixes {
		p = strings.TrimSuffix(p, "/")
		switch {
		case p == config.RootPrefix:
			root = true
		case p != "" && strings.HasPrefix(repository, p+"/") && len(p) > len(best):
			best = p
		}
	}
	if best == "" && root {
		return config.RootPrefix
	}
	return best
}

// accountOf returns the account id in an IAM or STS ARN, or "".
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" || len(parts[4]) != 12 {
		return ""
	}
	return parts[4]
}

// locate fills in the lines of p's rule and template in its configuration
// file.
func locate(p *Plan, cfg *config.Config) {
	if p.Rule.list != "" {
		p.Rule.Line = cfg.Line(fmt.Sprintf("%s[%d]", p.Rule.list, p.Rule.index))
	}
	if p.TemplateKey != "" {
		i := slices.IndexFunc(cfg.Templates, func(x config.Template) bool { return x.Prefix == p.Template.Prefix })
		p.TemplateLine = cfg.Line(fmt.Sprintf("templates[%d]", i))
	}
}
