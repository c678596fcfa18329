// Package explain answers "what would ecrgate do with a push of this name?"
// without doing it: which registry and repository the name maps to, whether
// ECR accepts the name, which allow/deny rule decides whether ecrgate may
// create it, whether it exists, whether one of ECR's own CREATE_ON_PUSH
// creation templates covers it (ecrgate then leaves the creation to ECR),
// and else which local template ecrgate would create it from, with every
// setting.
//
// The answer is repocreate's Plan — the ensurer's own decision, computed by
// the code Ensure runs — rendered for a person, so it cannot drift from what
// a push does. The only AWS calls are read-only: STS GetCallerIdentity, ECR
// DescribeRepositories and DescribeRepositoryCreationTemplates. The clients
// are repocreate.ReadECR, which has nothing else, so nothing can be created.
package explain

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// Options configure Explain.
type Options struct {
	// Config is the configuration (nil: all defaults).
	Config *config.Config
	// Env is the environment (os.Environ()), for the default Clients.
	Env []string
	// Registry is the registry a bare name ("team/app") goes to; default:
	// the config's routes and default_registry, as in registry mode.
	Registry string
	// Clients returns the read-only ECR client for a registry and the
	// identity (ARN) it acts as. Default: the proxy's own clients, read-only.
	Clients func(ctx context.Context, registry string) (repocreate.ReadECR, string, error)
	// Offline makes no AWS call: existence and native templates stay unknown.
	Offline bool
	// NS is the ?ns= value containerd adds when it pulls through a
	// hosts.toml mirror (the registry the mirror stands in for), for names
	// of the registry-mode listener; "" for none.
	NS string
}

// Values of Result.Verdict: the plan's repocreate.Action.
const (
	VerdictInvalid     = string(repocreate.ActionInvalid)     // ECR rejects the name: NAME_INVALID, no AWS call
	VerdictUnsupported = string(repocreate.ActionUnsupported) // not a registry ecrgate creates repositories in
	VerdictExists      = string(repocreate.ActionExists)      // the push goes ahead; nothing to create
	VerdictNative      = string(repocreate.ActionNative)      // ECR creates it on push from its own template
	VerdictDenied      = string(repocreate.ActionDenied)      // missing, and allow/deny forbid creating it
	VerdictDryRun      = string(repocreate.ActionDryRun)      // missing; dry_run logs and refuses
	VerdictCreate      = string(repocreate.ActionCreate)      // ecrgate creates it from a local template
	VerdictUnknown     = string(repocreate.ActionUnknown)     // AWS could not be asked; see Summary
)

// Result is the explanation of one name. Field names in JSON are stable.
type Result struct {
	Input      string   `json:"input"`
	Mode       string   `json:"mode"` // ModeRegistry, ModeIntercept, ModeDirect or ModeBare
	Registry   string   `json:"registry"`
	Repository string   `json:"repository"`
	Reference  string   `json:"reference,omitempty"` // ":tag" or "@digest" as given
	Route      string   `json:"route,omitempty"`     // the routes: prefix that matched
	Notes      []string `json:"notes,omitempty"`

	// Via is the rule that chose the registry, as pkg/route names it for
	// `ecrgate serve`: "default_registry (config.yaml:1)", "routes[0]
	// prefix prod/ (config.yaml:3)", "registry-qualified path",
	// "intercept.hosts", "--registry".
	Via string `json:"via,omitempty"`

	Valid         bool   `json:"valid"`
	InvalidReason string `json:"invalid_reason,omitempty"`

	Rule *Rule `json:"rule,omitempty"`

	Identity    string `json:"identity,omitempty"` // the AWS principal ecrgate acts as
	Exists      *bool  `json:"exists"`             // null when unknown
	ExistsError string `json:"exists_error,omitempty"`

	// NativeTemplate is the prefix of ECR's CREATE_ON_PUSH template that
	// covers the name ("" for none); NativeNote says why the templates were
	// not read, NativeError why reading them failed.
	NativeTemplate string    `json:"native_template,omitempty"`
	Native         *Template `json:"native,omitempty"`
	NativeNote     string    `json:"native_note,omitempty"`
	NativeError    string    `json:"native_error,omitempty"`

	// Template is the local template ecrgate creates the repository from
	// when it creates it.
	Template *Template `json:"template,omitempty"`
	DryRun   bool      `json:"dry_run"`

	// Mounts says whether a push of the name gets the layers it lacks
	// mounted from other repositories of the registry (#16).
	Mounts *Mounts `json:"mounts,omitempty"`

	Verdict string `json:"verdict"`
	Summary string `json:"summary"`
}

// Mounts is what ecrgate does with a layer a push of the name lacks:
// mount_shared_layers, and the template's mount_from.
type Mounts struct {
	Enabled bool     `json:"enabled"`
	From    []string `json:"mount_from,omitempty"`
}

// Rule is the allow/deny rule that decides whether ecrgate may create the
// repository.
type Rule struct {
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule"`           // as config.Allowed names it: "deny: */tmp*", "allow: team/**", …
	Key     string `json:"key,omitempty"`  // "deny[0]", "allow[2]"; "" without a list entry
	File    string `json:"file,omitempty"` // the config file
	Line    int    `json:"line,omitempty"` // 1-based, 0 when unknown
	Message string `json:"message,omitempty"`
}

// Template is what a repository gets at creation: a local template of the
// config or one of ECR's creation templates.
type Template struct {
	Source             string            `json:"source"` // "local", "builtin" or "native"
	Prefix             string            `json:"prefix"` // "" for the built-in default
	File               string            `json:"file,omitempty"`
	Line               int               `json:"line,omitempty"`
	ImageTagMutability string            `json:"image_tag_mutability"`
	ExclusionFilters   []string          `json:"image_tag_mutability_exclusion_filters,omitempty"`
	ScanOnPush         *bool             `json:"scan_on_push,omitempty"` // null for native templates (scanning is registry-wide)
	EncryptionType     string            `json:"encryption_type"`
	KMSKey             string            `json:"kms_key,omitempty"`
	LifecyclePolicy    string            `json:"lifecycle_policy,omitempty"`
	RepositoryPolicy   string            `json:"repository_policy,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// Explain explains what a push of name (as the user would push it:
// localhost:5000/team/app:1, <account>.dkr.ecr.<region>.amazonaws.com/team/app
// or team/app) would make ecrgate do. It returns an error only when the name
// cannot be mapped to a registry; everything else is in the Result.
func Explain(ctx context.Context, name string, o Options) (*Result, error) {
	cfg := o.Config
	if cfg == nil {
		cfg = &config.Config{}
	}
	ref, err := parseReference(name)
	if err != nil {
		return nil, err
	}
	t, err := resolve(cfg, ref, o.Registry, o.NS)
	if err != nil {
		return nil, err
	}
	r := &Result{Input: name, Mode: t.mode, Registry: t.registry, Repository: t.repository, Reference: ref.ref,
		Route: t.route, Via: t.via, Notes: t.notes, DryRun: cfg.DryRun}

	planner := repocreate.NewPlanner(repocreate.PlannerOptions{Config: cfg, Env: o.Env, Clients: o.Clients, Offline: o.Offline})
	p, err := planner.Plan(ctx, t.registry, t.repository)
	var ec errcode.Error
	errors.As(err, &ec)
	switch p.Action {
	case repocreate.ActionInvalid:
		r.InvalidReason = ec.Message
		r.Verdict = VerdictInvalid
		r.Summary = "the push fails with NAME_INVALID before any AWS call: " + ec.Message
		return r, nil
	case repocreate.ActionUnsupported:
		r.Valid = true
		r.Verdict = VerdictUnsupported
		r.Summary = ec.Message
		return r, nil
	}
	r.Valid = true
	r.Rule = rule(p)
	r.Template = localTemplate(p)
	on, from := repocreate.MountSources(cfg, t.repository)
	r.Mounts = &Mounts{Enabled: on, From: from}

	if o.Offline {
		r.Verdict = VerdictUnknown
		r.Summary = "not asked AWS (offline): " + ifMissing(r, p)
		return r, nil
	}
	if f := p.Failed; f != nil && f.Op == "" {
		r.ExistsError = fmt.Sprintf("cannot build an ECR client for %s: %v", p.Registry, f.Err)
		r.Verdict = VerdictUnknown
		r.Summary = r.ExistsError + "; " + ifMissing(r, p)
		return r, nil
	}
	if p.Identity != "unknown" {
		r.Identity = p.Identity
	}
	render(p, r)
	return r, nil
}

// render sets what ECR said and the verdict: the plan, in words.
func render(p repocreate.Plan, r *Result) {
	r.Exists = p.Exists
	switch {
	case p.Action == repocreate.ActionExists:
		r.Verdict = VerdictExists
		r.Summary = fmt.Sprintf("%s exists in %s: the push goes ahead and ecrgate creates nothing (allow/deny and dry_run apply to creation only)", p.Repository, p.Registry)
		return
	case p.Exists == nil:
		r.ExistsError = failure(p)
		r.Verdict = VerdictUnknown
		r.Summary = "a push fails until this is fixed: " + r.ExistsError
		return
	}

	reg, _ := ecrhost.Parse(p.Registry)
	switch n := p.Natives; {
	case n == nil:
		msg := failure(p)
		r.NativeError = msg
		r.Verdict = VerdictUnknown
		r.Summary = "a push fails until ECR answers: " + msg
		return
	case n.OtherAccount != "":
		r.NativeNote = fmt.Sprintf("ecrgate acts as %s of account %s, so it cannot read the creation templates of account %s and assumes none creates repositories on push", p.Identity, n.OtherAccount, reg.Account)
	case n.Unreadable != nil:
		r.NativeNote = "cannot read ECR's repository creation templates, so ecrgate assumes none creates repositories on push: " + n.Unreadable.Reply.Message
	case p.Native != nil:
		r.NativeTemplate = p.NativePrefix()
		r.Native = nativeTemplate(p.NativePrefix(), *p.Native)
		r.Verdict = VerdictNative
		r.Summary = fmt.Sprintf("%s does not exist; ECR's own repository creation template %q (CREATE_ON_PUSH) creates it on the push, so ecrgate defers to it and its local templates are not used", p.Repository, r.NativeTemplate)
		return
	}
	r.Verdict, r.Summary = missingVerdict(r, p)
}

// failure is the reply a push gets for the lookup that failed.
func failure(p repocreate.Plan) string {
	if p.Failed == nil {
		return "ECR did not answer"
	}
	return p.Failed.Reply.Message
}

// missingVerdict is what happens to a repository that is missing with no
// native template to create it: the plan's IfMissing, in words.
func missingVerdict(r *Result, p repocreate.Plan) (verdict, summary string) {
	switch a := p.IfMissing(); a {
	case repocreate.ActionDenied:
		return string(a), fmt.Sprintf("%s does not exist and the push fails with DENIED: %s", p.Repository, r.Rule.Message)
	case repocreate.ActionDryRun:
		return string(a), fmt.Sprintf("%s does not exist; dry_run is on, so ecrgate logs that it would create it from %s and refuses the push", p.Repository, templateName(r.Template))
	}
	return VerdictCreate, fmt.Sprintf("%s does not exist: ecrgate creates it in %s from %s at the first write of the push", p.Repository, p.Registry, templateName(r.Template))
}

// ifMissing says what happens if the repository turns out to be missing
// (no native template assumed).
func ifMissing(r *Result, p repocreate.Plan) string {
	_, s := missingVerdict(r, p)
	return "if " + strings.Replace(s, " does not exist", " is missing and no CREATE_ON_PUSH template of ECR covers it", 1)
}

func templateName(t *Template) string {
	if t.Prefix == "" {
		return "the built-in default template"
	}
	return fmt.Sprintf("template %q", t.Prefix)
}

// rule is the plan's allow/deny rule.
func rule(p repocreate.Plan) *Rule {
	r := &Rule{Allowed: p.Rule.Allowed, Rule: p.Rule.Rule, Key: p.Rule.Key, File: p.ConfigFile, Line: p.Rule.Line}
	if !r.Allowed {
		r.Message = p.Rule.Message
	}
	return r
}

// localTemplate describes the template of p with the settings that
// CreateRepository and the policies get.
func localTemplate(p repocreate.Plan) *Template {
	in := p.Input
	t := &Template{Source: "local", Prefix: p.Template.Prefix, ScanOnPush: aws.Bool(in.ImageScanningConfiguration.ScanOnPush),
		ImageTagMutability: string(in.ImageTagMutability), LifecyclePolicy: p.LifecyclePolicy, RepositoryPolicy: p.RepositoryPolicy}
	if t.Prefix == "" {
		t.Source = "builtin"
	} else if p.TemplateKey != "" {
		t.File, t.Line = p.ConfigFile, p.TemplateLine
	}
	for _, f := range in.ImageTagMutabilityExclusionFilters {
		t.ExclusionFilters = append(t.ExclusionFilters, aws.ToString(f.Filter))
	}
	if e := in.EncryptionConfiguration; e != nil {
		t.EncryptionType, t.KMSKey = string(e.EncryptionType), aws.ToString(e.KmsKey)
	}
	if len(in.Tags) > 0 {
		t.Tags = map[string]string{}
		for _, tag := range in.Tags {
			t.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
	}
	return t
}

// nativeTemplate describes ECR's creation template prefix, as the plan
// found it.
func nativeTemplate(prefix string, rt types.RepositoryCreationTemplate) *Template {
	t := &Template{Source: "native", Prefix: prefix, ImageTagMutability: string(rt.ImageTagMutability),
		LifecyclePolicy: aws.ToString(rt.LifecyclePolicy), RepositoryPolicy: aws.ToString(rt.RepositoryPolicy)}
	if t.ImageTagMutability == "" {
		t.ImageTagMutability = string(types.ImageTagMutabilityMutable)
	}
	for _, f := range rt.ImageTagMutabilityExclusionFilters {
		t.ExclusionFilters = append(t.ExclusionFilters, aws.ToString(f.Filter))
	}
	t.EncryptionType = string(types.EncryptionTypeAes256)
	if e := rt.EncryptionConfiguration; e != nil {
		t.EncryptionType, t.KMSKey = string(e.EncryptionType), aws.ToString(e.KmsKey)
	}
	if len(rt.ResourceTags) > 0 {
		t.Tags = map[string]string{}
		for _, tag := range rt.ResourceTags {
			t.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
	}
	return t
}
