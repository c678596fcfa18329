package ecrfake

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Repository and registry settings: tag mutability, scanning configuration,
// replication and pull-through-cache rules. Replication and pull through
// cache are state only: the emulator stores, validates and answers them as
// ECR does, but never copies an image to another registry nor pulls one from
// an upstream registry.

// Scan frequencies and types of registry scanning.
const (
	scanOnPush     = "SCAN_ON_PUSH"
	continuousScan = "CONTINUOUS_SCAN"
	manualScan     = "MANUAL"
	scanTypeBasic  = "BASIC"
	scanTypeEnh    = "ENHANCED"
)

// registryScanning is the registry scanning configuration
// (PutRegistryScanningConfiguration).
type registryScanning struct {
	ScanType string         `json:"scanType"`
	Rules    []scanningRule `json:"rules"`
}

type scanningRule struct {
	ScanFrequency     string           `json:"scanFrequency"`
	RepositoryFilters []scanningFilter `json:"repositoryFilters"`
}

type scanningFilter struct {
	Filter     string `json:"filter"`
	FilterType string `json:"filterType"`
}

// replicationConfiguration is the registry's replication configuration
// (PutReplicationConfiguration).
type replicationConfiguration struct {
	Rules []replicationRule `json:"rules"`
}

type replicationRule struct {
	Destinations      []replicationDestination `json:"destinations"`
	RepositoryFilters []replicationFilter      `json:"repositoryFilters,omitempty"`
}

type replicationDestination struct {
	Region     string `json:"region"`
	RegistryID string `json:"registryId"`
}

type replicationFilter struct {
	Filter     string `json:"filter"`
	FilterType string `json:"filterType"`
}

// pullThroughCacheRule is one pull-through-cache rule, keyed by its ECR
// repository prefix.
type pullThroughCacheRule struct {
	Prefix                   string    `json:"ecrRepositoryPrefix"`
	UpstreamRegistryURL      string    `json:"upstreamRegistryUrl"`
	UpstreamRegistry         string    `json:"upstreamRegistry"`
	CredentialArn            string    `json:"credentialArn,omitempty"`
	CustomRoleArn            string    `json:"customRoleArn,omitempty"`
	UpstreamRepositoryPrefix string    `json:"upstreamRepositoryPrefix,omitempty"`
	CreatedAt                time.Time `json:"createdAt"`
	UpdatedAt                time.Time `json:"updatedAt"`
}

// --- PutImageTagMutability, PutImageScanningConfiguration --------------------

func opPutImageTagMutability(c *call) (any, error) {
	var in struct {
		repoRef
		ImageTagMutability                 string            `json:"imageTagMutability"`
		ImageTagMutabilityExclusionFilters []exclusionFilter `json:"imageTagMutabilityExclusionFilters"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.ImageTagMutability == "" {
		return nil, errInvalidParam("Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must not be null'")
	}
	mut, err := validateMutability(in.ImageTagMutability, in.ImageTagMutabilityExclusionFilters)
	if err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, r, err := c.lookupRepo(in.repoRef)
	if err != nil {
		return nil, err
	}
	r.TagMutability, r.ExclusionFilters = mut, in.ImageTagMutabilityExclusionFilters
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	out := map[string]any{"registryId": reg.Account, "repositoryName": r.Name, "imageTagMutability": mut}
	if len(r.ExclusionFilters) > 0 {
		out["imageTagMutabilityExclusionFilters"] = r.ExclusionFilters
	}
	return out, nil
}

func opPutImageScanningConfiguration(c *call) (any, error) {
	var in struct {
		repoRef
		ImageScanningConfiguration *struct {
			ScanOnPush bool `json:"scanOnPush"`
		} `json:"imageScanningConfiguration"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.ImageScanningConfiguration == nil {
		return nil, errInvalidParam("Invalid parameter at 'imageScanningConfiguration' failed to satisfy constraint: 'Member must not be null'")
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, r, err := c.lookupRepo(in.repoRef)
	if err != nil {
		return nil, err
	}
	r.ScanOnPush = in.ImageScanningConfiguration.ScanOnPush
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "repositoryName": r.Name,
		"imageScanningConfiguration": map[string]bool{"scanOnPush": r.ScanOnPush}}, nil
}

// --- DescribeRegistry, PutReplicationConfiguration ---------------------------

func (reg *registryState) replication() replicationConfiguration {
	if reg.Replication == nil {
		return replicationConfiguration{Rules: []replicationRule{}}
	}
	return *reg.Replication
}

func opDescribeRegistry(c *call) (any, error) {
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "replicationConfiguration": reg.replication()}, nil
}

var (
	regionRE            = regexp.MustCompile(`^[0-9a-z-]{2,25}$`)
	replicationFilterRE = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$`)
)

const (
	maxReplicationRules        = 10
	maxReplicationDestinations = 25 // unique destinations across all rules
)

func validateReplication(cfg *replicationConfiguration, reg *registryState) error {
	if len(cfg.Rules) > maxReplicationRules {
		return errInvalidParam("Invalid parameter at 'replicationConfiguration.rules' failed to satisfy constraint: 'Member must have length less than or equal to %d'", maxReplicationRules)
	}
	dests := map[replicationDestination]bool{}
	for i, rule := range cfg.Rules {
		if len(rule.Destinations) == 0 {
			return errInvalidParam("Invalid parameter at 'replicationConfiguration.rules.%d.member.destinations' failed to satisfy constraint: 'Member must have length greater than or equal to 1'", i+1)
		}
		for _, d := range rule.Destinations {
			if !regionRE.MatchString(d.Region) {
				return errInvalidParam("Invalid parameter at 'region' failed to satisfy constraint: 'Member must satisfy regular expression pattern: [0-9a-z-]{2,25}'")
			}
			if !accountRE.MatchString(d.RegistryID) {
				return errInvalidParam("Invalid parameter at 'registryId' failed to satisfy constraint: 'Member must satisfy regular expression pattern: [0-9]{12}'")
			}
			if d.Region == reg.Region && d.RegistryID == reg.Account {
				return errInvalidParam("Invalid parameter: the replication destination %s/%s is the source registry; a registry cannot replicate to itself", d.RegistryID, d.Region)
			}
			dests[d] = true
		}
		if rule.RepositoryFilters != nil && (len(rule.RepositoryFilters) == 0 || len(rule.RepositoryFilters) > 100) {
			return errInvalidParam("Invalid parameter at 'repositoryFilters' failed to satisfy constraint: 'Member must have length between 1 and 100'")
		}
		for _, f := range rule.RepositoryFilters {
			if f.FilterType != "PREFIX_MATCH" {
				return errInvalidParam("Invalid parameter at 'filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [PREFIX_MATCH]'")
			}
			if len(f.Filter) < 2 || len(f.Filter) > 256 || !replicationFilterRE.MatchString(f.Filter) {
				return errInvalidParam("Invalid parameter at 'filter' failed to satisfy constraint: 'must be 2-256 characters of a repository name prefix', got %q", f.Filter)
			}
		}
	}
	if len(dests) > maxReplicationDestinations {
		return errInvalidParam("Invalid parameter at 'replicationConfiguration': a replication configuration may have at most %d unique destinations (got %d)", maxReplicationDestinations, len(dests))
	}
	return nil
}

func opPutReplicationConfiguration(c *call) (any, error) {
	var in struct {
		ReplicationConfiguration *replicationConfiguration `json:"replicationConfiguration"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.ReplicationConfiguration == nil || in.ReplicationConfiguration.Rules == nil {
		return nil, errInvalidParam("Invalid parameter at 'replicationConfiguration.rules' failed to satisfy constraint: 'Member must not be null'")
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	if err := validateReplication(in.ReplicationConfiguration, reg); err != nil {
		return nil, err
	}
	reg.Replication = in.ReplicationConfiguration
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"replicationConfiguration": reg.replication()}, nil
}

// --- registry scanning ---------------------------------------------------------

func (reg *registryState) scanning() registryScanning {
	if reg.Scanning == nil {
		return registryScanning{ScanType: scanTypeBasic, Rules: []scanningRule{}}
	}
	return *reg.Scanning
}

var scanFilterRE = regexp.MustCompile(`^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$`)

func validateRegistryScanning(s *registryScanning) error {
	switch s.ScanType {
	case scanTypeBasic, scanTypeEnh:
	default:
		return errInvalidParam("Invalid parameter at 'scanType' failed to satisfy constraint: 'Member must satisfy enum value set: [BASIC, ENHANCED]'")
	}
	if len(s.Rules) > 2 {
		return errInvalidParam("Invalid parameter at 'rules' failed to satisfy constraint: 'Member must have length less than or equal to 2'")
	}
	seen := map[string]bool{}
	for _, r := range s.Rules {
		switch r.ScanFrequency {
		case scanOnPush, manualScan:
		case continuousScan:
			if s.ScanType == scanTypeBasic {
				return errInvalidParam("Invalid parameter at 'scanFrequency': CONTINUOUS_SCAN is supported only with scanType ENHANCED")
			}
		default:
			return errInvalidParam("Invalid parameter at 'scanFrequency' failed to satisfy constraint: 'Member must satisfy enum value set: [SCAN_ON_PUSH, CONTINUOUS_SCAN, MANUAL]'")
		}
		if seen[r.ScanFrequency] {
			return errInvalidParam("Invalid parameter at 'rules': more than one rule with scanFrequency %s", r.ScanFrequency)
		}
		seen[r.ScanFrequency] = true
		if r.RepositoryFilters == nil {
			return errInvalidParam("Invalid parameter at 'repositoryFilters' failed to satisfy constraint: 'Member must not be null'")
		}
		if len(r.RepositoryFilters) > 100 {
			return errInvalidParam("Invalid parameter at 'repositoryFilters' failed to satisfy constraint: 'Member must have length less than or equal to 100'")
		}
		for _, f := range r.RepositoryFilters {
			if f.FilterType != "WILDCARD" {
				return errInvalidParam("Invalid parameter at 'filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [WILDCARD]'")
			}
			if len(f.Filter) > 255 || !scanFilterRE.MatchString(f.Filter) {
				return errInvalidParam("Invalid parameter at 'filter' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ^[a-z0-9*](?:[._\\-/a-z0-9*]?[a-z0-9*]+)*$', got %q", f.Filter)
			}
		}
	}
	return nil
}

func opGetRegistryScanningConfiguration(c *call) (any, error) {
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "scanningConfiguration": reg.scanning()}, nil
}

func opPutRegistryScanningConfiguration(c *call) (any, error) {
	var in registryScanning
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.ScanType == "" {
		in.ScanType = scanTypeBasic
	}
	if in.Rules == nil {
		in.Rules = []scanningRule{}
	}
	if err := validateRegistryScanning(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	reg.Scanning = &in
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"registryScanningConfiguration": reg.scanning()}, nil
}

// repoScanning is a repository's effective scanning configuration.
type repoScanning struct {
	RepositoryArn      string           `json:"repositoryArn"`
	RepositoryName     string           `json:"repositoryName"`
	ScanOnPush         bool             `json:"scanOnPush"`
	ScanFrequency      string           `json:"scanFrequency"`
	AppliedScanFilters []scanningFilter `json:"appliedScanFilters"`
}

// effectiveScanning derives a repository's scanning configuration as ECR
// does: registry rules, when the registry has any, decide (CONTINUOUS_SCAN
// before SCAN_ON_PUSH before MANUAL; the filters that matched are the applied
// ones); without registry rules the repository's own (deprecated) scanOnPush
// flag does. The caller holds st.mu.
func effectiveScanning(reg *registryState, r *repository) repoScanning {
	out := repoScanning{RepositoryArn: repoARN(reg.Region, reg.Account, r.Name), RepositoryName: r.Name,
		ScanFrequency: manualScan, AppliedScanFilters: []scanningFilter{}}
	s := reg.scanning()
	if len(s.Rules) == 0 {
		if r.ScanOnPush {
			out.ScanOnPush, out.ScanFrequency = true, scanOnPush
		}
		return out
	}
	for _, freq := range []string{continuousScan, scanOnPush, manualScan} {
		for _, rule := range s.Rules {
			if rule.ScanFrequency != freq {
				continue
			}
			var matched []scanningFilter
			for _, f := range rule.RepositoryFilters {
				if wildcardMatch(f.Filter, r.Name) {
					matched = append(matched, f)
				}
			}
			if len(matched) > 0 {
				out.ScanFrequency, out.AppliedScanFilters = freq, matched
				out.ScanOnPush = freq != manualScan
				return out
			}
		}
	}
	return out
}

func opBatchGetRepositoryScanningConfiguration(c *call) (any, error) {
	var in struct {
		RepositoryNames []string `json:"repositoryNames"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.RepositoryNames) == 0 || len(in.RepositoryNames) > 25 {
		return nil, errInvalidParam("Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'Member must have length between 1 and 25'")
	}
	for _, n := range in.RepositoryNames {
		if err := validateRepoName(n); err != nil {
			return nil, err
		}
	}
	type failure struct {
		RepositoryName string `json:"repositoryName"`
		FailureCode    string `json:"failureCode"`
		FailureReason  string `json:"failureReason"`
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor("")
	if err != nil {
		return nil, err
	}
	configs, failures := []repoScanning{}, []failure{}
	for _, n := range in.RepositoryNames {
		r := reg.Repositories[n]
		if r == nil {
			failures = append(failures, failure{n, "REPOSITORY_NOT_FOUND",
				fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", n, reg.Account)})
			continue
		}
		configs = append(configs, effectiveScanning(reg, r))
	}
	return map[string]any{"scanningConfigurations": configs, "failures": failures}, nil
}

// --- pull-through-cache rules ----------------------------------------------------

const maxPullThroughCacheRules = 50 // ECR's default quota per registry

var (
	ptcPrefixRE     = regexp.MustCompile(`^(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*/?|ROOT)$`)
	credentialArnRE = regexp.MustCompile(`^arn:aws(?:-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr-pullthroughcache/[a-zA-Z0-9/_+=.@-]+$`)
	ecrUpstreamRE   = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$`)
	azureUpstreamRE = regexp.MustCompile(`^[a-zA-Z0-9]+\.azurecr\.io$`)
	roleArnRE       = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)
)

// upstreams are ECR's supported upstream registries, by name.
var upstreams = map[string]struct {
	matches   func(url string) bool
	needsCred bool // a Secrets Manager secret is required
}{
	"ecr":                       {ecrUpstreamRE.MatchString, false},
	"ecr-public":                {func(u string) bool { return u == "public.ecr.aws" }, false},
	"quay":                      {func(u string) bool { return u == "quay.io" }, false},
	"k8s":                       {func(u string) bool { return u == "registry.k8s.io" }, false},
	"docker-hub":                {func(u string) bool { return u == "registry-1.docker.io" }, true},
	"github-container-registry": {func(u string) bool { return u == "ghcr.io" }, true},
	"gitlab-container-registry": {func(u string) bool { return u == "registry.gitlab.com" }, true},
	"azure-container-registry":  {azureUpstreamRE.MatchString, true},
	"chainguard":                {func(u string) bool { return u == "cgr.dev" }, false},
}

func upstreamFor(url string) string {
	for name, u := range upstreams {
		if u.matches(url) {
			return name
		}
	}
	return ""
}

func validatePTCPrefix(field, p string) error {
	if len(p) < 2 || len(p) > 30 || !ptcPrefixRE.MatchString(p) {
		return errInvalidParam("Invalid parameter at '%s' failed to satisfy constraint: 'Member must have length between 2 and 30 and satisfy regular expression pattern: ^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$', got %q", field, p)
	}
	return nil
}

// validateCredentials checks the credential and role ARNs a rule for
// upstream needs.
func validateCredentials(upstream, credentialArn, customRoleArn string) error {
	if credentialArn != "" && (len(credentialArn) < 50 || len(credentialArn) > 612 || !credentialArnRE.MatchString(credentialArn)) {
		return errInvalidParam("Invalid parameter at 'credentialArn' failed to satisfy constraint: 'Member must be the ARN of a Secrets Manager secret whose name starts with ecr-pullthroughcache/', got %q", credentialArn)
	}
	if upstreams[upstream].needsCred && credentialArn == "" {
		return errInvalidParam("Invalid parameter: a credentialArn is required for the upstream registry %s", upstream)
	}
	if customRoleArn != "" && (len(customRoleArn) > 2048 || !roleArnRE.MatchString(customRoleArn)) {
		return errInvalidParam("Invalid parameter at 'customRoleArn': %q is not an IAM role ARN", customRoleArn)
	}
	if upstream == "ecr" && customRoleArn == "" {
		return errInvalidParam("Invalid parameter: a customRoleArn is required for the upstream registry ecr")
	}
	return nil
}

func errPTCNotFound(prefix, account string) *awsError {
	return &awsError{http.StatusBadRequest, "PullThroughCacheRuleNotFoundException",
		fmt.Sprintf("The pull through cache rule with prefix '%s' does not exist in the registry with id '%s'", prefix, account)}
}

func (p *pullThroughCacheRule) out(account string) map[string]any {
	o := map[string]any{"registryId": account, "ecrRepositoryPrefix": p.Prefix,
		"upstreamRegistryUrl": p.UpstreamRegistryURL, "upstreamRegistry": p.UpstreamRegistry,
		"createdAt": epoch(p.CreatedAt), "updatedAt": epoch(p.UpdatedAt)}
	for k, v := range map[string]string{"credentialArn": p.CredentialArn, "customRoleArn": p.CustomRoleArn,
		"upstreamRepositoryPrefix": p.UpstreamRepositoryPrefix} {
		if v != "" {
			o[k] = v
		}
	}
	return o
}

// ptcRule looks up the rule for prefix. The caller holds st.mu.
func (c *call) ptcRule(registryID, prefix string) (*registryState, *pullThroughCacheRule, error) {
	if err := validatePTCPrefix("ecrRepositoryPrefix", prefix); err != nil {
		return nil, nil, err
	}
	reg, err := c.registryFor(registryID)
	if err != nil {
		return nil, nil, err
	}
	p := normalizePrefix(prefix)
	rule := reg.PullThroughCacheRules[p]
	if rule == nil {
		return nil, nil, errPTCNotFound(p, reg.Account)
	}
	return reg, rule, nil
}

func opCreatePullThroughCacheRule(c *call) (any, error) {
	var in struct {
		RegistryID               string `json:"registryId"`
		EcrRepositoryPrefix      string `json:"ecrRepositoryPrefix"`
		UpstreamRegistryURL      string `json:"upstreamRegistryUrl"`
		UpstreamRegistry         string `json:"upstreamRegistry"`
		CredentialArn            string `json:"credentialArn"`
		CustomRoleArn            string `json:"customRoleArn"`
		UpstreamRepositoryPrefix string `json:"upstreamRepositoryPrefix"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := validatePTCPrefix("ecrRepositoryPrefix", in.EcrRepositoryPrefix); err != nil {
		return nil, err
	}
	if in.UpstreamRegistryURL == "" {
		return nil, errInvalidParam("Invalid parameter at 'upstreamRegistryUrl' failed to satisfy constraint: 'Member must not be null'")
	}
	url := strings.TrimSuffix(strings.TrimPrefix(in.UpstreamRegistryURL, "https://"), "/")
	upstream := in.UpstreamRegistry
	if upstream == "" {
		upstream = upstreamFor(url)
	} else if _, ok := upstreams[upstream]; !ok {
		return nil, errInvalidParam("Invalid parameter at 'upstreamRegistry' failed to satisfy constraint: 'Member must satisfy enum value set: [ecr, ecr-public, quay, k8s, docker-hub, github-container-registry, azure-container-registry, gitlab-container-registry, chainguard]'")
	}
	if upstream == "" || !upstreams[upstream].matches(url) {
		what := ""
		if upstream != "" {
			what = " for upstream registry " + upstream
		}
		return nil, &awsError{http.StatusBadRequest, "UnsupportedUpstreamRegistryException", fmt.Sprintf(
			"The upstream registry URL '%s' is not supported%s. Supported upstream registries: public.ecr.aws, quay.io, registry.k8s.io, registry-1.docker.io, ghcr.io, registry.gitlab.com, <name>.azurecr.io, cgr.dev, <account>.dkr.ecr.<region>.amazonaws.com",
			in.UpstreamRegistryURL, what)}
	}
	if in.UpstreamRepositoryPrefix != "" {
		if upstream != "ecr" {
			return nil, errInvalidParam("Invalid parameter at 'upstreamRepositoryPrefix': an upstream repository prefix is supported only for the upstream registry ecr")
		}
		if err := validatePTCPrefix("upstreamRepositoryPrefix", in.UpstreamRepositoryPrefix); err != nil {
			return nil, err
		}
	}
	if err := validateCredentials(upstream, in.CredentialArn, in.CustomRoleArn); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor(in.RegistryID)
	if err != nil {
		return nil, err
	}
	prefix := normalizePrefix(in.EcrRepositoryPrefix)
	if reg.PullThroughCacheRules[prefix] != nil {
		return nil, &awsError{http.StatusBadRequest, "PullThroughCacheRuleAlreadyExistsException",
			fmt.Sprintf("A pull through cache rule with prefix '%s' already exists in the registry with id '%s'", prefix, reg.Account)}
	}
	if len(reg.PullThroughCacheRules) >= maxPullThroughCacheRules {
		return nil, &awsError{http.StatusBadRequest, "LimitExceededException",
			fmt.Sprintf("The operation did not succeed because it would cause a service quota to be exceeded: pull through cache rules per registry (%d).", maxPullThroughCacheRules)}
	}
	now := c.e.opts.Now()
	rule := &pullThroughCacheRule{Prefix: prefix, UpstreamRegistryURL: url, UpstreamRegistry: upstream,
		CredentialArn: in.CredentialArn, CustomRoleArn: in.CustomRoleArn, UpstreamRepositoryPrefix: in.UpstreamRepositoryPrefix,
		CreatedAt: now, UpdatedAt: now}
	if upstream == "ecr" && rule.UpstreamRepositoryPrefix == "" {
		rule.UpstreamRepositoryPrefix = rootPrefix
	}
	if reg.PullThroughCacheRules == nil {
		reg.PullThroughCacheRules = map[string]*pullThroughCacheRule{}
	}
	reg.PullThroughCacheRules[prefix] = rule
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	o := rule.out(reg.Account)
	delete(o, "updatedAt")
	return o, nil
}

func opDescribePullThroughCacheRules(c *call) (any, error) {
	var in struct {
		RegistryID            string   `json:"registryId"`
		EcrRepositoryPrefixes []string `json:"ecrRepositoryPrefixes"`
		NextToken             string   `json:"nextToken"`
		MaxResults            int      `json:"maxResults"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.MaxResults < 0 || in.MaxResults > 1000 {
		return nil, errInvalidParam("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and 1000'")
	}
	if in.EcrRepositoryPrefixes != nil && (len(in.EcrRepositoryPrefixes) == 0 || len(in.EcrRepositoryPrefixes) > 100) {
		return nil, errInvalidParam("Invalid parameter at 'ecrRepositoryPrefixes' failed to satisfy constraint: 'Member must have length between 1 and 100'")
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, err := c.registryFor(in.RegistryID)
	if err != nil {
		return nil, err
	}
	var keys []string
	if len(in.EcrRepositoryPrefixes) > 0 {
		for _, p := range in.EcrRepositoryPrefixes {
			if err := validatePTCPrefix("ecrRepositoryPrefixes", p); err != nil {
				return nil, err
			}
			p = normalizePrefix(p)
			if reg.PullThroughCacheRules[p] == nil {
				return nil, errPTCNotFound(p, reg.Account)
			}
			if !contains(keys, p) {
				keys = append(keys, p)
			}
		}
	} else {
		for k := range reg.PullThroughCacheRules {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	page, next, err := paginate(keys, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	rules := []map[string]any{}
	for _, k := range page {
		rules = append(rules, reg.PullThroughCacheRules[k].out(reg.Account))
	}
	resp := map[string]any{"pullThroughCacheRules": rules}
	if next != "" {
		resp["nextToken"] = next
	}
	return resp, nil
}

type ptcRef struct {
	RegistryID          string `json:"registryId"`
	EcrRepositoryPrefix string `json:"ecrRepositoryPrefix"`
}

func opDeletePullThroughCacheRule(c *call) (any, error) {
	var in ptcRef
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, rule, err := c.ptcRule(in.RegistryID, in.EcrRepositoryPrefix)
	if err != nil {
		return nil, err
	}
	delete(reg.PullThroughCacheRules, rule.Prefix)
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	o := rule.out(reg.Account)
	delete(o, "updatedAt")
	delete(o, "upstreamRegistry")
	return o, nil
}

func opUpdatePullThroughCacheRule(c *call) (any, error) {
	var in struct {
		ptcRef
		CredentialArn *string `json:"credentialArn"`
		CustomRoleArn *string `json:"customRoleArn"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, rule, err := c.ptcRule(in.RegistryID, in.EcrRepositoryPrefix)
	if err != nil {
		return nil, err
	}
	cred, role := rule.CredentialArn, rule.CustomRoleArn
	if in.CredentialArn != nil {
		cred = *in.CredentialArn
	}
	if in.CustomRoleArn != nil {
		role = *in.CustomRoleArn
	}
	if err := validateCredentials(rule.UpstreamRegistry, cred, role); err != nil {
		return nil, err
	}
	rule.CredentialArn, rule.CustomRoleArn, rule.UpdatedAt = cred, role, c.e.opts.Now()
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	o := rule.out(reg.Account)
	for _, k := range []string{"createdAt", "upstreamRegistry", "upstreamRegistryUrl"} {
		delete(o, k)
	}
	return o, nil
}

// opValidatePullThroughCacheRule answers isValid true: the emulator reaches
// no upstream registry and no Secrets Manager.
func opValidatePullThroughCacheRule(c *call) (any, error) {
	var in ptcRef
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	reg, rule, err := c.ptcRule(in.RegistryID, in.EcrRepositoryPrefix)
	if err != nil {
		return nil, err
	}
	o := rule.out(reg.Account)
	for _, k := range []string{"createdAt", "updatedAt", "upstreamRegistry"} {
		delete(o, k)
	}
	o["isValid"] = true
	return o, nil
}
