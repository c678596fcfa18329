// Package repocreate is the repository ensurer of the push proxy: before the
// first write to a repository it makes sure the repository exists in Amazon
// ECR, creating it from the configuration's templates when it does not.
//
// The work is split in two, like distribution's access records:
//
//   - Decide is the pure decision for one name — is it a valid ECR name, may
//     ecrgate create it (allow/deny), which template applies, and the exact
//     CreateRepository input — table-tested without I/O.
//   - Ensurer does the I/O around it: an existence cache, one
//     DescribeRepositories and at most one CreateRepository per name however
//     many requests race (singleflight), deference to ECR's own CREATE_ON_PUSH
//     creation templates, dry runs, the lifecycle and repository policies,
//     a log line and an audit record per creation.
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
)

// Plan is the decision for one repository name: what ecrgate would create,
// and how. It is computed without I/O by Decide.
type Plan struct {
	// Registry is the normalized ECR registry host (lower case, no scheme
	// or port).
	Registry string
	// Repository is the repository name in that registry.
	Repository string
	// Template is the configuration template that applies, defaults filled
	// in; its Prefix is "" for the built-in default.
	Template config.Template
	// Input is the CreateRepository call that creates the repository with
	// every setting of Template that CreateRepository takes.
	Input *ecr.CreateRepositoryInput
	// LifecyclePolicy and RepositoryPolicy are applied after creation when
	// not empty (CreateRepository does not take them).
	LifecyclePolicy, RepositoryPolicy string
	// DryRun is the configuration's dry_run: decide and log, create nothing.
	DryRun bool
}

// TemplateName names p's template for logs and the audit file: its prefix
// ("team", "ROOT") or "builtin" for the built-in default.
func (p Plan) TemplateName() string { return templateName(p.Template) }

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
// still complete, so a caller can tell what would have been created.
func Decide(cfg *config.Config, registry, repository string) (Plan, error) {
	p, denied, err := decide(cfg, registry, repository)
	if err != nil {
		return Plan{}, err
	}
	return p, denied
}

// decide is Decide with the allow/deny verdict apart from hard errors: the
// ensurer refuses a denied name only when the repository does not exist.
func decide(cfg *config.Config, registry, repository string) (p Plan, denied, err error) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	if err := ecrname.ValidateRepository(repository); err != nil {
		reason := err.Error()
		var ne *ecrname.Error
		if errors.As(err, &ne) {
			reason = ne.Reason
		}
		return Plan{}, nil, errcode.ErrorCodeNameInvalid.WithMessage(fmt.Sprintf(
			"invalid repository name %q: %s", repository, reason))
	}
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return Plan{}, nil, errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf(
			"ecrgate cannot create repositories in %q: %v; check default_registry and routes in %s", registry, err, configName(cfg)))
	}
	if reg.Public {
		return Plan{}, nil, errcode.ErrorCodeUnsupported.WithMessage(fmt.Sprintf(
			"ecrgate does not create repositories in ECR Public (%s): create %q in the ECR Public console first", reg.Host, repository))
	}

	t := cfg.TemplateFor(repository)
	p = Plan{
		Registry:         reg.Host,
		Repository:       repository,
		Template:         t,
		Input:            createInput(reg.Account, repository, t),
		LifecyclePolicy:  t.LifecyclePolicy,
		RepositoryPolicy: t.RepositoryPolicy,
		DryRun:           cfg.DryRun,
	}
	if ok, rule := cfg.Allowed(repository); !ok {
		denied = errcode.ErrorCodeDenied.WithMessage(deniedMessage(cfg, repository, rule))
	}
	return p, denied, nil
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
