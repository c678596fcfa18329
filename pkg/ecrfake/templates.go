package ecrfake

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"time"
)

var templatePrefixRE = regexp.MustCompile(`^(?:ROOT|(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?)$`)

type templateOut struct {
	Prefix                             string            `json:"prefix"`
	Description                        string            `json:"description,omitempty"`
	EncryptionConfiguration            *encryptionConfig `json:"encryptionConfiguration,omitempty"`
	ResourceTags                       []resourceTag     `json:"resourceTags,omitempty"`
	ImageTagMutability                 string            `json:"imageTagMutability,omitempty"`
	ImageTagMutabilityExclusionFilters []exclusionFilter `json:"imageTagMutabilityExclusionFilters,omitempty"`
	RepositoryPolicy                   string            `json:"repositoryPolicy,omitempty"`
	LifecyclePolicy                    string            `json:"lifecyclePolicy,omitempty"`
	AppliedFor                         []string          `json:"appliedFor"`
	CustomRoleArn                      string            `json:"customRoleArn,omitempty"`
	CreatedAt                          float64           `json:"createdAt"`
	UpdatedAt                          float64           `json:"updatedAt"`
}

func (t *template) out() templateOut {
	return templateOut{Prefix: t.Prefix, Description: t.Description, EncryptionConfiguration: t.Encryption,
		ResourceTags: t.ResourceTags, ImageTagMutability: t.TagMutability, ImageTagMutabilityExclusionFilters: t.ExclusionFilters,
		RepositoryPolicy: t.RepositoryPolicy, LifecyclePolicy: t.LifecyclePolicy, AppliedFor: t.AppliedFor,
		CustomRoleArn: t.CustomRoleArn, CreatedAt: epoch(t.CreatedAt), UpdatedAt: epoch(t.UpdatedAt)}
}

func errTemplateNotFound(prefix, account string) *awsError {
	return &awsError{http.StatusBadRequest, "TemplateNotFoundException",
		fmt.Sprintf("The specified repository creation template with prefix '%s' does not exist in the registry with id '%s'", prefix, account)}
}

func normalizePrefix(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

// validateTemplate checks a template as CreateRepositoryCreationTemplate
// and UpdateRepositoryCreationTemplate do, and returns its tag mutability
// with ECR's default. The caller holds st.mu.
func validateTemplate(in *templateOut, reg *registryState) (string, error) {
	if len(in.Prefix) > 256 || !templatePrefixRE.MatchString(in.Prefix) {
		return "", errInvalidParam("Invalid parameter at 'prefix' failed to satisfy constraint: 'must be ROOT or a repository namespace such as team or team/app', got %q", in.Prefix)
	}
	if len(in.AppliedFor) == 0 {
		return "", errInvalidParam("Invalid parameter at 'appliedFor': at least one of REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH is required")
	}
	for _, a := range in.AppliedFor {
		if a != "REPLICATION" && a != "PULL_THROUGH_CACHE" && a != appliedForCreateOnPush {
			return "", errInvalidParam("Invalid parameter at 'appliedFor' failed to satisfy constraint: 'Member must satisfy enum value set: [REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH]'")
		}
	}
	if len(in.Description) > 256 {
		return "", errInvalidParam("Invalid parameter at 'description': must be at most 256 characters")
	}
	if err := validateTags(in.ResourceTags); err != nil {
		return "", err
	}
	mut, err := validateMutability(in.ImageTagMutability, in.ImageTagMutabilityExclusionFilters)
	if err != nil {
		return "", err
	}
	if in.LifecyclePolicy != "" {
		if err := validateLifecyclePolicy(in.LifecyclePolicy); err != nil {
			return "", err
		}
	}
	if in.RepositoryPolicy != "" {
		if err := validateRepositoryPolicy(in.RepositoryPolicy); err != nil {
			return "", err
		}
	}
	if in.EncryptionConfiguration != nil {
		// Templates keep the key as given; the repository gets the default at creation.
		if _, err := validateEncryption(in.EncryptionConfiguration, reg); err != nil {
			return "", err
		}
	}
	return mut, nil
}

func opCreateTemplate(c *call) (any, error) {
	var in templateOut
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	mut, err := validateTemplate(&in, reg)
	if err != nil {
		return nil, err
	}
	prefix := normalizePrefix(in.Prefix)
	if reg.Templates[prefix] != nil {
		return nil, &awsError{http.StatusBadRequest, "TemplateAlreadyExistsException",
			fmt.Sprintf("The repository creation template with prefix '%s' already exists in the registry with id '%s'", prefix, reg.Account)}
	}
	now := c.e.opts.Now()
	t := &template{Prefix: prefix, Description: in.Description, Encryption: in.EncryptionConfiguration, ResourceTags: in.ResourceTags,
		TagMutability: mut, ExclusionFilters: in.ImageTagMutabilityExclusionFilters, RepositoryPolicy: in.RepositoryPolicy,
		LifecyclePolicy: in.LifecyclePolicy, AppliedFor: in.AppliedFor, CustomRoleArn: in.CustomRoleArn, CreatedAt: now, UpdatedAt: now}
	reg.Templates[prefix] = t
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "repositoryCreationTemplate": t.out()}, nil
}

// opUpdateTemplate replaces the fields the request carries and keeps the
// others; the result must pass Create's validation.
func opUpdateTemplate(c *call) (any, error) {
	var in struct {
		Prefix                             string             `json:"prefix"`
		Description                        *string            `json:"description"`
		EncryptionConfiguration            *encryptionConfig  `json:"encryptionConfiguration"`
		ResourceTags                       *[]resourceTag     `json:"resourceTags"`
		ImageTagMutability                 *string            `json:"imageTagMutability"`
		ImageTagMutabilityExclusionFilters *[]exclusionFilter `json:"imageTagMutabilityExclusionFilters"`
		RepositoryPolicy                   *string            `json:"repositoryPolicy"`
		LifecyclePolicy                    *string            `json:"lifecyclePolicy"`
		AppliedFor                         *[]string          `json:"appliedFor"`
		CustomRoleArn                      *string            `json:"customRoleArn"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.Prefix) > 256 || !templatePrefixRE.MatchString(in.Prefix) {
		return nil, errInvalidParam("Invalid parameter at 'prefix' failed to satisfy constraint: 'must be ROOT or a repository namespace such as team or team/app', got %q", in.Prefix)
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	prefix := normalizePrefix(in.Prefix)
	t := reg.Templates[prefix]
	if t == nil {
		return nil, errTemplateNotFound(prefix, reg.Account)
	}
	next := t.out()
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&next.Description, in.Description)
	set(&next.RepositoryPolicy, in.RepositoryPolicy)
	set(&next.LifecyclePolicy, in.LifecyclePolicy)
	set(&next.CustomRoleArn, in.CustomRoleArn)
	if in.EncryptionConfiguration != nil {
		next.EncryptionConfiguration = in.EncryptionConfiguration
	}
	if in.ResourceTags != nil {
		next.ResourceTags = *in.ResourceTags
	}
	if in.AppliedFor != nil {
		next.AppliedFor = *in.AppliedFor
	}
	if in.ImageTagMutability != nil {
		next.ImageTagMutability = *in.ImageTagMutability
		next.ImageTagMutabilityExclusionFilters = nil // filters belong to the mutability they came with
	}
	if in.ImageTagMutabilityExclusionFilters != nil {
		next.ImageTagMutabilityExclusionFilters = *in.ImageTagMutabilityExclusionFilters
	}
	mut, err := validateTemplate(&next, reg)
	if err != nil {
		return nil, err
	}
	t.Description, t.Encryption, t.ResourceTags = next.Description, next.EncryptionConfiguration, next.ResourceTags
	t.TagMutability, t.ExclusionFilters = mut, next.ImageTagMutabilityExclusionFilters
	t.RepositoryPolicy, t.LifecyclePolicy = next.RepositoryPolicy, next.LifecyclePolicy
	t.AppliedFor, t.CustomRoleArn = next.AppliedFor, next.CustomRoleArn
	t.UpdatedAt = c.e.opts.Now()
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "repositoryCreationTemplate": t.out()}, nil
}

func opDescribeTemplates(c *call) (any, error) {
	var in struct {
		Prefixes   []string `json:"prefixes"`
		NextToken  string   `json:"nextToken"`
		MaxResults int      `json:"maxResults"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.MaxResults < 0 || in.MaxResults > 1000 {
		return nil, errInvalidParam("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and 1000'")
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	var keys []string
	if len(in.Prefixes) > 0 {
		for _, p := range in.Prefixes {
			if reg.Templates[normalizePrefix(p)] != nil {
				keys = append(keys, normalizePrefix(p))
			}
		}
	} else {
		for k := range reg.Templates {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	page, next, err := paginate(keys, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := []templateOut{}
	for _, k := range page {
		out = append(out, reg.Templates[k].out())
	}
	resp := map[string]any{"registryId": reg.Account, "repositoryCreationTemplates": out}
	if next != "" {
		resp["nextToken"] = next
	}
	return resp, nil
}

func opDeleteTemplate(c *call) (any, error) {
	var in struct {
		Prefix string `json:"prefix"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	p := normalizePrefix(in.Prefix)
	t := reg.Templates[p]
	if t == nil {
		return nil, errTemplateNotFound(p, reg.Account)
	}
	delete(reg.Templates, p)
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "repositoryCreationTemplate": t.out()}, nil
}

// repositoryFromTemplate builds the repository a CREATE_ON_PUSH template
// creates: every setting the template carries, ECR's defaults otherwise.
func repositoryFromTemplate(reg *registryState, t *template, name string, now time.Time) *repository {
	r := &repository{Name: name, CreatedAt: now}
	r.TagMutability = t.TagMutability
	if r.TagMutability == "" {
		r.TagMutability = mutable
	}
	r.ExclusionFilters = t.ExclusionFilters
	r.Encryption = encryptionConfig{EncryptionType: "AES256"}
	if t.Encryption != nil && t.Encryption.EncryptionType != "" {
		r.Encryption = *t.Encryption
		if r.Encryption.EncryptionType != "AES256" && r.Encryption.KMSKey == "" {
			r.Encryption.KMSKey = "arn:aws:kms:" + reg.Region + ":" + reg.Account + ":alias/aws/ecr"
		}
	}
	r.Tags = append([]resourceTag(nil), t.ResourceTags...)
	r.LifecyclePolicy = t.LifecyclePolicy
	r.Policy = t.RepositoryPolicy
	r.CreatedBy = "create-on-push:" + t.Prefix
	return r
}
