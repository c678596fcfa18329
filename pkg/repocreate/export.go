package repocreate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// Exporting local templates as ECR's own repository creation templates
// (`ecrgate templates export`): the path from ecrgate's creation on push to
// ECR's native CREATE_ON_PUSH. Each local template becomes the
// CreateRepositoryCreationTemplate input that makes ECR create a repository
// with the settings ecrgate would give it: the CreateRepository input and
// policies of Decide, by the same code (createInput, RepositoryPolicy).

// TemplateECR is the part of the ECR API templates export uses.
// *ecr.Client fits.
type TemplateECR interface {
	DescribeRepositoryCreationTemplates(ctx context.Context, in *ecr.DescribeRepositoryCreationTemplatesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeRepositoryCreationTemplatesOutput, error)
	CreateRepositoryCreationTemplate(ctx context.Context, in *ecr.CreateRepositoryCreationTemplateInput, optFns ...func(*ecr.Options)) (*ecr.CreateRepositoryCreationTemplateOutput, error)
	UpdateRepositoryCreationTemplate(ctx context.Context, in *ecr.UpdateRepositoryCreationTemplateInput, optFns ...func(*ecr.Options)) (*ecr.UpdateRepositoryCreationTemplateOutput, error)
}

var _ TemplateECR = (*ecr.Client)(nil)

// ExportDescription is the description an exported template is created
// with.
const ExportDescription = "created by ecrgate templates export"

// Change is what applying an exported template does.
type Change string

// The changes.
const (
	ChangeCreate    Change = "create"    // ECR has no template with the prefix
	ChangeUpdate    Change = "update"    // ECR's template differs in Fields
	ChangeUnchanged Change = "unchanged" // ECR's template already has every setting
)

// Field is one setting of an exported template: its value in ECR ("" when
// unset or when ECR has no template) and the value the local template needs.
type Field struct {
	Name       string // "applied_for", "image_tag_mutability", …
	Have, Want string
}

// ExportedTemplate is one local template as an ECR repository creation
// template.
type ExportedTemplate struct {
	// Prefix is the template's prefix, the same in ECR ("ROOT" or a
	// namespace, with the same implied trailing '/').
	Prefix string
	// Key and Line locate the local template ("templates[1]", its line).
	Key  string
	Line int
	// Input is the CreateRepositoryCreationTemplate call that gives ECR the
	// template (AppliedFor: CREATE_ON_PUSH, plus what ECR's template of the
	// prefix is already applied for).
	Input *ecr.CreateRepositoryCreationTemplateInput
	// Have is ECR's template of the prefix; nil when it has none.
	Have *types.RepositoryCreationTemplate
	// Change is what applying does; Fields are every setting, with Have
	// and Want, and Changed lists the names of those that differ.
	Change  Change
	Fields  []Field
	Changed []string
	// Warnings are what the ECR template cannot do as ecrgate does.
	Warnings []string
	// RoleMissing says that the template sets KMS encryption or tags, for
	// which ECR needs custom_role_arn (or --role-arn), and has none.
	RoleMissing bool

	account string // the registry's
	kms     bool   // the template sets KMS or KMS_DSSE encryption
}

// checkRole sets RoleMissing and the custom role's warnings, once the role
// is known (the local one, --role-arn, or ECR's template's own).
func (et *ExportedTemplate) checkRole() {
	role := aws.ToString(et.Input.CustomRoleArn)
	if role == "" && (et.kms || len(et.Input.ResourceTags) > 0) {
		et.RoleMissing = true
		var what []string
		if et.kms {
			what = append(what, "encryption "+string(et.Input.EncryptionConfiguration.EncryptionType))
		}
		if len(et.Input.ResourceTags) > 0 {
			what = append(what, "tags")
		}
		et.Warnings = append(et.Warnings, fmt.Sprintf(
			"custom_role_arn: ECR needs a role to create repositories with %s from a template: set custom_role_arn: in the template or pass --role-arn (a role of account %s that ECR can assume)",
			strings.Join(what, " and "), et.account))
	}
	if role != "" && accountOf(role) != et.account {
		et.Warnings = append(et.Warnings, fmt.Sprintf("custom_role_arn: %s is not a role of account %s; ECR accepts only a role of the registry's own account", role, et.account))
	}
}

// Export is the local templates of a configuration as a registry's ECR
// creation templates, compared with the ones it has.
type Export struct {
	Registry string // the registry host
	Identity string // the AWS principal ecrgate acts as there
	// Templates are the local templates, in the configuration's order.
	Templates []ExportedTemplate
	// OnlyInECR are the prefixes of ECR's templates that no local template
	// has; export leaves them as they are.
	OnlyInECR []string
	// Warnings concern the configuration as a whole: what ecrgate does
	// that no ECR template can.
	Warnings []string

	client TemplateECR
}

// ExportOptions configure ExportTemplates.
type ExportOptions struct {
	// Config holds the templates (and the per-registry AWS settings).
	Config *config.Config
	// Registry is the ECR registry host whose templates are compared and
	// written.
	Registry string
	// RoleARN is the custom role for templates without custom_role_arn.
	RoleARN string
	// Env is the environment (os.Environ()), for the default Clients.
	Env []string
	// Clients returns the ECR client for a registry host and the identity
	// (ARN) it acts as. Default: the ensurer's own clients (awsconf with
	// the registry's profile, role_arn and api_endpoint, the environment's
	// AWS_ENDPOINT_URL_ECR), unwrapped to reach the template calls.
	Clients func(ctx context.Context, registry string) (TemplateECR, string, error)
	// Offline asks ECR nothing: every template is a ChangeCreate.
	Offline bool
}

// ExportTemplates builds the ECR creation template of every local template
// of o.Config for o.Registry and compares each with the one ECR has
// (DescribeRepositoryCreationTemplates, as o.Registry's identity; templates
// are per account, so that identity must be of the registry's account).
// Nothing is written: see Export.Apply.
func ExportTemplates(ctx context.Context, o ExportOptions) (*Export, error) {
	cfg := o.Config
	if cfg == nil {
		cfg = &config.Config{}
	}
	x, err := exportInputs(cfg, o.Registry, o.RoleARN)
	if err != nil {
		return nil, err
	}
	if o.Offline {
		x.compare(nil)
		return x, nil
	}
	clients := o.Clients
	if clients == nil {
		s := newSDKClients(cfg, o.Env)
		clients = func(ctx context.Context, registry string) (TemplateECR, string, error) {
			c, err := s.client(ctx, registry)
			if err != nil {
				return nil, "", err
			}
			return c.ecr, c.whoAmI(ctx), nil
		}
	}
	client, identity, err := clients(ctx, x.Registry)
	if err != nil {
		return nil, fmt.Errorf("ecrgate cannot reach the ECR API of %s: %w; check the registries: entry for it in %s and your AWS configuration", x.Registry, err, configName(cfg))
	}
	x.client, x.Identity = client, identity
	reg, _ := ecrhost.Parse(x.Registry)
	if acct := accountOf(identity); acct != "" && acct != reg.Account {
		return nil, fmt.Errorf("ecrgate acts as %s of account %s, but the creation templates of %s belong to account %s and can be read and written only from it; set profile: or role_arn: for %s under registries: in %s",
			identity, acct, x.Registry, reg.Account, x.Registry, configName(cfg))
	}
	var have []types.RepositoryCreationTemplate
	pages := ecr.NewDescribeRepositoryCreationTemplatesPaginator(client, &ecr.DescribeRepositoryCreationTemplatesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the creation templates of %s as %s: %w", x.Registry, identity, err)
		}
		have = append(have, page.RepositoryCreationTemplates...)
	}
	x.compare(have)
	return x, nil
}

// CompareTemplates is ExportTemplates without AWS: the local templates of
// cfg as ECR creation templates of registry, compared with have (ECR's
// templates, as DescribeRepositoryCreationTemplates gives them). `ecrgate
// doctor` tells with it whether an overlapping native template is a local
// one as exported. The result cannot be applied.
func CompareTemplates(cfg *config.Config, registry string, have []types.RepositoryCreationTemplate) (*Export, error) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	x, err := exportInputs(cfg, registry, "")
	if err != nil {
		return nil, err
	}
	x.compare(have)
	return x, nil
}

// exportInputs builds the ECR template input of each local template of cfg
// for registry, with its warnings, and the configuration's warnings.
func exportInputs(cfg *config.Config, registry, roleARN string) (*Export, error) {
	reg, err := ecrhost.Parse(registry)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q is not an ECR registry host: %w", registry, err)
	case reg.Public:
		return nil, fmt.Errorf("%s is ECR Public, which has no repository creation templates", reg.Host)
	}
	x := &Export{Registry: reg.Host}
	root := false
	for i, t := range cfg.Templates {
		if t.Prefix == config.RootPrefix {
			root = true
		}
		key := fmt.Sprintf("templates[%d]", i)
		et := ExportedTemplate{Prefix: t.Prefix, Key: key, Line: cfg.Line(key), account: reg.Account,
			kms: t.Encryption.Type == config.EncryptionKMS || t.Encryption.Type == config.EncryptionKMSDSSE}
		policy, err := RepositoryPolicy(t, string(reg.Partition))
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", key, t.Prefix, err)
		}
		ci := createInput(reg.Account, "", t)
		in := &ecr.CreateRepositoryCreationTemplateInput{
			Prefix:                             aws.String(t.Prefix),
			Description:                        aws.String(ExportDescription),
			AppliedFor:                         []types.RCTAppliedFor{types.RCTAppliedForCreateOnPush},
			ImageTagMutability:                 ci.ImageTagMutability,
			ImageTagMutabilityExclusionFilters: ci.ImageTagMutabilityExclusionFilters,
			EncryptionConfiguration: &types.EncryptionConfigurationForRepositoryCreationTemplate{
				EncryptionType: ci.EncryptionConfiguration.EncryptionType,
				KmsKey:         ci.EncryptionConfiguration.KmsKey,
			},
			ResourceTags: ci.Tags,
		}
		if policy != "" {
			in.RepositoryPolicy = aws.String(policy)
		}
		if t.LifecyclePolicy != "" {
			in.LifecyclePolicy = aws.String(t.LifecyclePolicy)
		}
		role := cmp.Or(t.CustomRoleARN, roleARN)
		if role != "" {
			in.CustomRoleArn = aws.String(role)
		}
		et.Input = in

		if t.ScanOnPush {
			filter := t.Prefix + "/*"
			if t.Prefix == config.RootPrefix {
				filter = "*"
			}
			et.Warnings = append(et.Warnings, fmt.Sprintf(
				`scan_on_push: ECR's creation templates cannot set it: scanning is a registry setting; aws ecr put-registry-scanning-configuration --scan-type BASIC --rules '[{"scanFrequency":"SCAN_ON_PUSH","repositoryFilters":[{"filter":"%s","filterType":"WILDCARD"}]}]' scans the same repositories (it replaces the registry's rules: merge with aws ecr get-registry-scanning-configuration first)`,
				filter))
		}
		if len(t.MountFrom) > 0 {
			et.Warnings = append(et.Warnings, "mount_from: ecrgate's own, for pushes through it; without ecrgate a client mounts layers only when it asks for a mount itself")
		}
		x.Templates = append(x.Templates, et)
	}

	if len(cfg.Allow) > 0 || len(cfg.Deny) > 0 {
		x.Warnings = append(x.Warnings,
			"allow: and deny: have no counterpart in ECR's creation templates: ECR creates every missing name under an exported prefix that a push names, whatever the globs say; refuse names with IAM instead (a Deny on ecr:CreateRepository for arn:aws:ecr:<region>:<account>:repository/<pattern>, whose * also matches '/')")
	}
	if cfg.DryRun {
		x.Warnings = append(x.Warnings, "dry_run: true has no counterpart: ECR's creation templates create repositories for real")
	}
	if !root && len(cfg.Templates) > 0 {
		x.Warnings = append(x.Warnings,
			"no ROOT template: ecrgate creates a name under no prefix from its built-in default (MUTABLE, AES256), ECR creates none; add a template with prefix: ROOT to have ECR create them too")
	}
	return x, nil
}

// compare sets each template's Have, Change and Fields against ECR's
// templates have, and OnlyInECR.
func (x *Export) compare(have []types.RepositoryCreationTemplate) {
	byPrefix := map[string]*types.RepositoryCreationTemplate{}
	for i := range have {
		byPrefix[strings.TrimSuffix(aws.ToString(have[i].Prefix), "/")] = &have[i]
	}
	for i := range x.Templates {
		et := &x.Templates[i]
		et.Have = byPrefix[et.Prefix]
		delete(byPrefix, et.Prefix)
		if et.Have != nil {
			// Keep what ECR's template is applied for besides create on push.
			for _, a := range et.Have.AppliedFor {
				if !slices.Contains(et.Input.AppliedFor, a) {
					et.Input.AppliedFor = append(et.Input.AppliedFor, a)
				}
			}
			if et.Input.CustomRoleArn == nil && et.Have.CustomRoleArn != nil {
				et.Input.CustomRoleArn = et.Have.CustomRoleArn // kept: ecrgate has no say on it
			}
			if len(et.Input.AppliedFor) > 1 {
				et.Warnings = append(et.Warnings, fmt.Sprintf("ECR's template %q is also applied for %s: these settings apply there too",
					et.Prefix, strings.Join(appliedFor(et.Have.AppliedFor, types.RCTAppliedForCreateOnPush), ", ")))
			}
		}
		et.checkRole()
		et.Fields = fields(et.Input, et.Have)
		switch et.Changed = nil; {
		case et.Have == nil:
			et.Change = ChangeCreate
		default:
			for _, f := range et.Fields {
				if f.Have != f.Want {
					et.Changed = append(et.Changed, f.Name)
				}
			}
			et.Change = ChangeUnchanged
			if len(et.Changed) > 0 {
				et.Change = ChangeUpdate
			}
		}
	}
	x.OnlyInECR = slices.Sorted(maps.Keys(byPrefix))
}

// appliedFor lists as, without skip.
func appliedFor(as []types.RCTAppliedFor, skip types.RCTAppliedFor) []string {
	var out []string
	for _, a := range as {
		if a != skip {
			out = append(out, string(a))
		}
	}
	return out
}

// fields renders every compared setting of want and have (nil: none), in
// the same canonical form, so equal settings give equal strings.
func fields(want *ecr.CreateRepositoryCreationTemplateInput, have *types.RepositoryCreationTemplate) []Field {
	var h types.RepositoryCreationTemplate
	if have != nil {
		h = *have
	}
	var hEnc, wEnc string
	if have != nil {
		hEnc = encryption(h.EncryptionConfiguration)
	}
	wEnc = encryption(want.EncryptionConfiguration)
	mut := func(m types.ImageTagMutability, ok bool) string {
		if !ok {
			return ""
		}
		return cmp.Or(string(m), string(types.ImageTagMutabilityMutable))
	}
	return []Field{
		{"applied_for", appliedForText(h.AppliedFor), appliedForText(want.AppliedFor)},
		{"image_tag_mutability", mut(h.ImageTagMutability, have != nil), mut(want.ImageTagMutability, true)},
		{"image_tag_mutability_exclusion_filters", filtersText(h.ImageTagMutabilityExclusionFilters), filtersText(want.ImageTagMutabilityExclusionFilters)},
		{"encryption", hEnc, wEnc},
		{"resource_tags", tagsText(h.ResourceTags), tagsText(want.ResourceTags)},
		{"repository_policy", canonicalPolicy(aws.ToString(h.RepositoryPolicy)), canonicalPolicy(aws.ToString(want.RepositoryPolicy))},
		{"lifecycle_policy", canonicalJSON(aws.ToString(h.LifecyclePolicy)), canonicalJSON(aws.ToString(want.LifecyclePolicy))},
		{"custom_role_arn", aws.ToString(h.CustomRoleArn), aws.ToString(want.CustomRoleArn)},
	}
}

func appliedForText(as []types.RCTAppliedFor) string {
	var s []string
	for _, a := range as {
		s = append(s, string(a))
	}
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ", ")
}

func encryption(e *types.EncryptionConfigurationForRepositoryCreationTemplate) string {
	if e == nil || e.EncryptionType == "" {
		return string(types.EncryptionTypeAes256)
	}
	if k := aws.ToString(e.KmsKey); k != "" {
		return string(e.EncryptionType) + ", key " + k
	}
	return string(e.EncryptionType)
}

func filtersText(fs []types.ImageTagMutabilityExclusionFilter) string {
	var s []string
	for _, f := range fs {
		s = append(s, string(f.FilterType)+":"+aws.ToString(f.Filter))
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func tagsText(tags []types.Tag) string {
	var s []string
	for _, t := range tags {
		s = append(s, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

// canonicalJSON is a JSON text with object keys sorted and no white space,
// so that two spellings of one policy compare equal; text that is not JSON
// comes back as it is.
func canonicalJSON(s string) string {
	if s == "" {
		return ""
	}
	var v any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return s
	}
	return strings.TrimSpace(b.String())
}

// canonicalPolicy is canonicalJSON of an IAM policy in which the forms IAM
// takes as equal are made equal: Statement and each Action, NotAction,
// Resource, NotResource and Principal value as a list, even of one.
// (Services may hand a policy back in the other form.)
func canonicalPolicy(s string) string {
	var doc map[string]any
	if s == "" || json.Unmarshal([]byte(s), &doc) != nil {
		return canonicalJSON(s)
	}
	list := func(v any) any {
		if _, ok := v.([]any); ok || v == nil {
			return v
		}
		return []any{v}
	}
	sts, _ := list(doc["Statement"]).([]any)
	for _, st := range sts {
		m, ok := st.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range []string{"Action", "NotAction", "Resource", "NotResource"} {
			if v, ok := m[k]; ok {
				m[k] = list(v)
			}
		}
		for _, k := range []string{"Principal", "NotPrincipal"} {
			if p, ok := m[k].(map[string]any); ok {
				for t, v := range p {
					p[t] = list(v)
				}
			}
		}
	}
	if sts != nil {
		doc["Statement"] = sts
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return canonicalJSON(s)
	}
	return canonicalJSON(string(b))
}

// ErrRoleMissing is Apply's error when a template that needs a custom role
// has none; nothing was written.
var ErrRoleMissing = errors.New("custom role missing")

// Applied is what Apply did with one template.
type Applied struct {
	Prefix string
	Change Change // ChangeCreate, ChangeUpdate or ChangeUnchanged (nothing sent)
}

// Apply creates ECR's templates that are missing and updates those that
// differ, in the configuration's order; unchanged ones are not sent, so a
// second Apply changes nothing. When a template to write needs a custom
// role (RoleMissing), Apply writes nothing and returns an error wrapping
// ErrRoleMissing that names the templates. An export built with Offline
// cannot be applied.
func (x *Export) Apply(ctx context.Context) ([]Applied, error) {
	if x.client == nil {
		return nil, errors.New("the export was built offline; build it with ECR's templates to apply it")
	}
	var missing []string
	for _, et := range x.Templates {
		if et.Change != ChangeUnchanged && et.RoleMissing {
			missing = append(missing, fmt.Sprintf("%q", et.Prefix))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: ECR needs a custom role to create repositories with KMS encryption or tags from template %s: set custom_role_arn: in it or pass --role-arn arn:aws:iam::<account>:role/<name>; nothing was written",
			ErrRoleMissing, strings.Join(missing, ", "))
	}
	var done []Applied
	for _, et := range x.Templates {
		in := et.Input
		var err error
		switch et.Change {
		case ChangeCreate:
			_, err = x.client.CreateRepositoryCreationTemplate(ctx, in)
		case ChangeUpdate:
			up := &ecr.UpdateRepositoryCreationTemplateInput{
				Prefix:                             in.Prefix,
				AppliedFor:                         in.AppliedFor,
				ImageTagMutability:                 in.ImageTagMutability,
				ImageTagMutabilityExclusionFilters: in.ImageTagMutabilityExclusionFilters,
				EncryptionConfiguration:            in.EncryptionConfiguration,
				// Empty, not absent: tags and policies the local template
				// does not have are removed.
				ResourceTags:     append([]types.Tag{}, in.ResourceTags...),
				RepositoryPolicy: aws.String(aws.ToString(in.RepositoryPolicy)),
				LifecyclePolicy:  aws.String(aws.ToString(in.LifecyclePolicy)),
				CustomRoleArn:    in.CustomRoleArn,
			}
			_, err = x.client.UpdateRepositoryCreationTemplate(ctx, up)
		}
		if err != nil {
			op := "CreateRepositoryCreationTemplate"
			if et.Change == ChangeUpdate {
				op = "UpdateRepositoryCreationTemplate"
			}
			return done, fmt.Errorf("%s %q in %s as %s: %w", op, et.Prefix, x.Registry, x.Identity, err)
		}
		done = append(done, Applied{Prefix: et.Prefix, Change: et.Change})
	}
	return done, nil
}
