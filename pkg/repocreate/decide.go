// Package repocreate is the repository ensurer of the push proxy: before the
// first write to a repository it makes sure the repository exists in Amazon
// ECR, creating it from the configuration's templates when it does not.
//
// The work is split in three, like distribution's access records:
//
//   - Decide is the pure decision for one name — is it a valid ECR name, may
//     ecrgate create it (allow/deny, and which rule), which template
//     applies, and the exact CreateRepository input — table-tested without
//     I/O.
//   - Planner.Plan completes it with ECR's read-only answers, in the
//     ensurer's order: does the repository exist, does one of ECR's own
//     CREATE_ON_PUSH creation templates create it on push (ecrgate then
//     defers to it), and so what Ensure does (Plan.Action). A Planner holds
//     only ReadECR clients, so it cannot change anything in AWS; `ecrgate
//     explain` and `ecrgate doctor` render its Plans.
//   - Ensurer does the rest: an existence cache, one DescribeRepositories
//     and at most one CreateRepository per name however many requests race
//     (singleflight), dry runs, the lifecycle and repository policies, a log
//     line and an audit record per creation. Ensure is Plan, by the same
//     code, then acting on it; Ensurer.Plan tells what it would do.
//
// Every error Ensure returns is an errcode.Error of
// github.com/distribution/distribution/v3/registry/api/errcode whose message
// is one sentence a person can act on; the proxy writes it to the client with
// errcode.ServeJSON.
//
// # Allow, deny and dry run apply to creation only
//
// The allow and deny lists name the repositories ecrgate may create, as the
// configuration documents them: a push to a repository that already exists
// (or that ECR creates itself through a CREATE_ON_PUSH template) is never
// refused because of them. A denied name therefore costs one
// DescribeRepositories call before the DENIED answer, so that existing
// repositories keep working. Likewise dry_run withholds only ecrgate's own
// CreateRepository.
package repocreate

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/ecrname"
	"github.com/ecrgate/ecrgate/pkg/repopolicy"
)

// Plan is the decision for one repository name: is the name valid, which
// allow/deny rule decides whether ecrgate may create it, does it exist, does
// one of ECR's own CREATE_ON_PUSH creation templates create it, and else what
// exactly ecrgate would create. Decide fills in the part that needs no I/O;
// Planner.Plan and Ensurer.Plan add what ECR says (Identity, Exists,
// Natives, Native, Failed) and the Action. Ensure acts on the same Plan.
type Plan struct {
	// Registry is the normalized ECR registry host (lower case, no scheme
	// or port).
	Registry string
	// Repository is the repository name in that registry.
	Repository string
	// Rule is the allow/deny rule that decides whether ecrgate may create
	// the repository.
	Rule Rule
	// Template is the configuration template that applies, defaults filled
	// in; its Prefix is "" for the built-in default.
	Template config.Template
	// TemplateKey locates Template in the configuration ("templates[1]");
	// "" for the built-in default. TemplateLine is its 1-based line in
	// ConfigFile, 0 when unknown (Decide leaves it 0).
	TemplateKey  string
	TemplateLine int
	// Input is the CreateRepository call that creates the repository with
	// every setting of Template that CreateRepository takes.
	Input *ecr.CreateRepositoryInput
	// LifecyclePolicy and RepositoryPolicy are applied after creation when
	// not empty (CreateRepository does not take them). RepositoryPolicy is
	// the template's repository_policy merged with the statement of its
	// pull_accounts and pull_principals (see RepositoryPolicy).
	LifecyclePolicy, RepositoryPolicy string
	// DryRun is the configuration's dry_run: decide and log, create nothing.
	DryRun bool
	// ConfigFile is the configuration file Rule and Template come from (""
	// without one).
	ConfigFile string

	// Identity is the AWS principal (ARN) ecrgate acts as, "unknown" when
	// STS cannot tell, "" when not asked.
	Identity string
	// Exists says whether the repository exists; nil when ECR was not
	// asked or could not answer.
	Exists *bool
	// Natives are ECR's CREATE_ON_PUSH creation templates of the registry,
	// looked at when the repository is missing; nil otherwise.
	Natives *Natives
	// Native is the one of them that creates the repository on push; nil
	// when none does.
	Native *types.RepositoryCreationTemplate
	// Failed is the AWS call that kept the plan from being completed, when
	// Action is ActionUnknown after asking AWS.
	Failed *Failure
	// Action is what Ensure does with the name.
	Action Action
}

// Action is what Ensure does with a repository name.
type Action string

// The actions. Their values are explain's verdicts.
const (
	ActionInvalid     Action = "invalid"     // the name breaks ECR's rules: NAME_INVALID, no AWS call
	ActionUnsupported Action = "unsupported" // not a registry ecrgate creates repositories in
	ActionExists      Action = "exists"      // the repository exists: the push goes ahead, nothing is created
	ActionNative      Action = "native"      // missing; ECR creates it on push from its CREATE_ON_PUSH template
	ActionDenied      Action = "denied"      // missing, and allow/deny forbid ecrgate to create it
	ActionDryRun      Action = "dry-run"     // missing; dry_run is on: logged, audited and refused
	ActionCreate      Action = "create"      // missing; ecrgate creates it from Template
	ActionUnknown     Action = "unknown"     // ECR not asked (Decide, offline) or not answering (Failed)
)

// Rule is the allow/deny rule that decides whether ecrgate may create a
// repository.
type Rule struct {
	Allowed bool
	// Rule names the rule as config.Allowed does: "deny: */tmp*",
	// "allow: team/**", "allow: all (no allow list)", "not in allow list".
	Rule string
	// Key locates the rule in the configuration: "deny[0]", "allow[2]",
	// "allow" when the name matches no entry of the allow list, "" when
	// there is no list.
	Key string
	// Line is the 1-based line of Key in the configuration file, 0 when
	// unknown (Decide leaves it 0).
	Line int
	// Message is, when the rule refuses, the DENIED message of a push that
	// would need ecrgate to create the repository.
	Message string

	list  string // "allow" or "deny": the top-level key of Key
	index int    // the entry of list, -1 for the key itself
}

// Failure is an AWS call of a plan that failed.
type Failure struct {
	// Op is the ECR operation ("DescribeRepositories",
	// "DescribeRepositoryCreationTemplates"); "" when no ECR client could
	// be built for the registry.
	Op string
	// Err is the cause, as the SDK (or the client's construction) gave it.
	Err error
	// Reply is the registry error a push gets for it: one sentence that
	// says what to do.
	Reply errcode.Error
}

func (f *Failure) Error() string { return f.Reply.Message }

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

// TemplateName names p's template for logs and the audit file: its prefix
// ("team", "ROOT") or "builtin" for the built-in default.
func (p Plan) TemplateName() string { return templateName(p.Template) }

// NativePrefix is the prefix of p.Native ("ROOT" for ECR's fallback
// template), or "" when no CREATE_ON_PUSH template creates the repository.
func (p Plan) NativePrefix() string {
	if p.Native == nil {
		return ""
	}
	return strings.TrimSuffix(aws.ToString(p.Native.Prefix), "/")
}

func templateName(t config.Template) string {
	if t.Prefix == "" {
		return "builtin"
	}
	return t.Prefix
}

// describeTemplate names a template in a sentence.
func describeTemplate(t config.Template) string {
	if t.Prefix == "" {
		return "the built-in default template"
	}
	return fmt.Sprintf("template %q", t.Prefix)
}

// Decide is the pure decision for repository in registry under cfg (nil
// means all defaults):
//
//   - a name that breaks ECR's rules gives NAME_INVALID saying why;
//   - a registry host that is not a private ECR registry gives UNKNOWN, or
//     UNSUPPORTED for ECR Public;
//   - a name the allow/deny lists refuse gives DENIED naming the rule, e.g.
//     repository "x/tmp1" is denied by rule "*/tmp*" in config.yaml …;
//   - otherwise the template with the longest matching prefix (then ROOT,
//     then the built-in default) becomes the CreateRepository input.
//
// Every error is an errcode.Error. With a DENIED error the returned Plan is
// still complete, so a caller can tell what would have been created. The
// Plan's Action is ActionUnknown: whether the repository exists is for
// Planner.Plan to find out.
func Decide(cfg *config.Config, registry, repository string) (Plan, error) {
	p, err := decide(cfg, registry, repository)
	if err != nil {
		return Plan{}, err
	}
	if !p.Rule.Allowed {
		return p, p.denied()
	}
	return p, nil
}

// decide is Decide with the allow/deny verdict in p.Rule rather than an
// error: the ensurer refuses a denied name only when the repository does
// not exist. With an error, p has the Action (invalid or unsupported).
func decide(cfg *config.Config, registry, repository string) (Plan, error) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	if err := ecrname.ValidateRepository(repository); err != nil {
		reason := err.Error()
		var ne *ecrname.Error
		if errors.As(err, &ne) {
			reason = ne.Reason
		}
		return Plan{Repository: repository, Action: ActionInvalid}, errcode.ErrorCodeNameInvalid.WithMessage(fmt.Sprintf(
			"invalid repository name %q: %s", repository, reason))
	}
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return Plan{Repository: repository, Action: ActionUnsupported}, errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf(
			"ecrgate cannot create repositories in %q: %v; check default_registry and routes in %s", registry, err, configName(cfg)))
	}
	if reg.Public {
		return Plan{Registry: reg.Host, Repository: repository, Action: ActionUnsupported}, errcode.ErrorCodeUnsupported.WithMessage(fmt.Sprintf(
			"ecrgate does not create repositories in ECR Public (%s): create %q in the ECR Public console first", reg.Host, repository))
	}

	t := cfg.TemplateFor(repository)
	p := Plan{
		Registry:        reg.Host,
		Repository:      repository,
		Rule:            rule(cfg, repository),
		Template:        t,
		Input:           createInput(reg.Account, repository, t),
		LifecyclePolicy: t.LifecyclePolicy,
		DryRun:          cfg.DryRun,
		ConfigFile:      cfg.Path,
		Action:          ActionUnknown,
	}
	if i := slices.IndexFunc(cfg.Templates, func(x config.Template) bool { return x.Prefix == t.Prefix }); t.Prefix != "" && i >= 0 {
		p.TemplateKey = fmt.Sprintf("templates[%d]", i)
	}
	if p.RepositoryPolicy, err = RepositoryPolicy(t, string(reg.Partition)); err != nil {
		// Parse and Validate refuse such a template; only a Config built
		// in code without Validate gets here.
		p.Action = ActionUnsupported
		return p, errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf(
			"%s cannot be applied: %v; fix it in %s", describeTemplate(t), err, configName(cfg)))
	}
	return p, nil
}

// RepositoryPolicy is the repository policy a repository created from t
// gets in a registry of partition ("aws", "aws-cn", …): t's
// repository_policy with the statement that lets its pull_accounts and
// pull_principals pull (repopolicy.Merge). Every Plan's RepositoryPolicy,
// and so what serve sets, explain shows and templates export exports, is
// this.
func RepositoryPolicy(t config.Template, partition string) (string, error) {
	return repopolicy.Merge(t.RepositoryPolicy, partition, t.PullAccounts, t.PullPrincipals)
}

// denied is the DENIED error of a push that needs ecrgate to create a
// repository its rule refuses.
func (p Plan) denied() error { return errcode.ErrorCodeDenied.WithMessage(p.Rule.Message) }

// rule finds the allow/deny rule that decides for repo, and where it is.
func rule(cfg *config.Config, repo string) Rule {
	ok, text := cfg.Allowed(repo)
	r := Rule{Allowed: ok, Rule: text, index: -1}
	list, key := cfg.Allow, "allow"
	pattern, found := strings.CutPrefix(text, "allow: ")
	if p, deny := strings.CutPrefix(text, "deny: "); deny {
		list, key, pattern, found = cfg.Deny, "deny", p, true
	}
	if i := slices.Index(list, pattern); found && i >= 0 {
		r.Key, r.list, r.index = fmt.Sprintf("%s[%d]", key, i), key, i
	} else if !ok {
		r.Key, r.list = "allow", "allow"
	}
	if !ok {
		r.Message = deniedMessage(cfg, repo, text)
	}
	return r
}

func deniedMessage(cfg *config.Config, repository, rule string) string {
	where := configName(cfg)
	if pattern, ok := strings.CutPrefix(rule, "deny: "); ok {
		return fmt.Sprintf("repository %q is denied by rule %q in %s, so ecrgate will not create it: create it in ECR yourself or change deny:",
			repository, pattern, where)
	}
	return fmt.Sprintf("repository %q matches no rule of allow: [%s] in %s, so ecrgate will not create it: create it in ECR yourself or add it to allow:",
		repository, strings.Join(cfg.Allow, ", "), where)
}

func configName(cfg *config.Config) string {
	if cfg.Path == "" {
		return "the configuration"
	}
	return cfg.Path
}

// createInput builds the CreateRepository call for t. Tags are sorted by key
// so the input is deterministic.
func createInput(account, repository string, t config.Template) *ecr.CreateRepositoryInput {
	in := &ecr.CreateRepositoryInput{
		RepositoryName:             aws.String(repository),
		ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: t.ScanOnPush},
	}
	if account != "" {
		in.RegistryId = aws.String(account)
	}

	mut := t.ImageTagMutability
	if mut == "" {
		mut = config.Mutable
	}
	if len(t.ImageTagMutabilityExclusionFilters) > 0 {
		// The configuration's convenience: IMMUTABLE or MUTABLE with
		// filters means the *_WITH_EXCLUSION setting.
		switch mut {
		case config.Immutable:
			mut = config.ImmutableWithExclusion
		case config.Mutable:
			mut = config.MutableWithExclusion
		}
		for _, f := range t.ImageTagMutabilityExclusionFilters {
			ft := f.FilterType
			if ft == "" {
				ft = config.FilterTypeWildcard
			}
			in.ImageTagMutabilityExclusionFilters = append(in.ImageTagMutabilityExclusionFilters,
				types.ImageTagMutabilityExclusionFilter{FilterType: types.ImageTagMutabilityExclusionFilterType(ft), Filter: aws.String(f.Filter)})
		}
	}
	in.ImageTagMutability = types.ImageTagMutability(mut)

	enc := t.Encryption.Type
	if enc == "" {
		enc = config.EncryptionAES256
	}
	in.EncryptionConfiguration = &types.EncryptionConfiguration{EncryptionType: types.EncryptionType(enc)}
	if t.Encryption.KMSKey != "" {
		in.EncryptionConfiguration.KmsKey = aws.String(t.Encryption.KMSKey)
	}

	for _, k := range slices.Sorted(maps.Keys(t.Tags)) {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(t.Tags[k])})
	}
	return in
}
