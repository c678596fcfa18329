package ecrfake

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ecrgate/ecrgate/pkg/atomicfile"
)

// ECR enum values the emulator understands.
const (
	mutable                = "MUTABLE"
	immutable              = "IMMUTABLE"
	immutableWithExclusion = "IMMUTABLE_WITH_EXCLUSION"
	mutableWithExclusion   = "MUTABLE_WITH_EXCLUSION"

	appliedForCreateOnPush = "CREATE_ON_PUSH"
	rootPrefix             = "ROOT"
)

type exclusionFilter struct {
	FilterType string `json:"filterType"`
	Filter     string `json:"filter"`
}

type encryptionConfig struct {
	EncryptionType string `json:"encryptionType"`
	KMSKey         string `json:"kmsKey,omitempty"`
}

type resourceTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// repository is one ECR repository with every setting the control plane can set.
type repository struct {
	Name             string            `json:"name"`
	CreatedAt        time.Time         `json:"createdAt"`
	TagMutability    string            `json:"imageTagMutability"`
	ExclusionFilters []exclusionFilter `json:"imageTagMutabilityExclusionFilters,omitempty"`
	ScanOnPush       bool              `json:"scanOnPush"`
	Encryption       encryptionConfig  `json:"encryption"`
	Tags             []resourceTag     `json:"tags,omitempty"`
	LifecyclePolicy  string            `json:"lifecyclePolicy,omitempty"`
	Policy           string            `json:"policy,omitempty"`
	// CreatedBy is "api" for CreateRepository and "create-on-push:<prefix>"
	// when a CREATE_ON_PUSH template created it.
	CreatedBy string `json:"createdBy"`
	// Scans are image scans by manifest digest (StartImageScan; scanning.go).
	Scans map[string]*imageScan `json:"scans,omitempty"`
	// LifecyclePreview is the last StartLifecyclePolicyPreview (lifecycle.go).
	LifecyclePreview *lifecyclePreview `json:"lifecyclePreview,omitempty"`
	// LastPulled is when each manifest digest was last pulled (pulltime.go).
	LastPulled map[string]time.Time `json:"lastPulled,omitempty"`
}

// tagImmutable reports whether tag may not be overwritten in r.
func (r *repository) tagImmutable(tag string) bool {
	switch r.TagMutability {
	case immutable:
		return true
	case immutableWithExclusion:
		return !matchesFilters(r.ExclusionFilters, tag)
	case mutableWithExclusion:
		return matchesFilters(r.ExclusionFilters, tag)
	default:
		return false
	}
}

func matchesFilters(fs []exclusionFilter, tag string) bool {
	for _, f := range fs {
		if wildcardMatch(f.Filter, tag) {
			return true
		}
	}
	return false
}

// wildcardMatch matches ECR's WILDCARD filters, where '*' is the only
// metacharacter and matches any run of characters.
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// template is a repository creation template.
type template struct {
	Prefix           string            `json:"prefix"`
	Description      string            `json:"description,omitempty"`
	Encryption       *encryptionConfig `json:"encryptionConfiguration,omitempty"`
	ResourceTags     []resourceTag     `json:"resourceTags,omitempty"`
	TagMutability    string            `json:"imageTagMutability,omitempty"`
	ExclusionFilters []exclusionFilter `json:"imageTagMutabilityExclusionFilters,omitempty"`
	RepositoryPolicy string            `json:"repositoryPolicy,omitempty"`
	LifecyclePolicy  string            `json:"lifecyclePolicy,omitempty"`
	AppliedFor       []string          `json:"appliedFor"`
	CustomRoleArn    string            `json:"customRoleArn,omitempty"`
	CreatedAt        time.Time         `json:"createdAt"`
	UpdatedAt        time.Time         `json:"updatedAt"`
}

func (t *template) appliesTo(what string) bool {
	for _, a := range t.AppliedFor {
		if a == what {
			return true
		}
	}
	return false
}

// covers reports whether the template's prefix matches repository name, with
// ECR's implied trailing '/' ("team" covers "team/app", not "teamx").
func (t *template) covers(name string) bool {
	return t.Prefix == rootPrefix || strings.HasPrefix(name, t.Prefix+"/")
}

// registryState is one private registry: an account in a region.
type registryState struct {
	Account      string                 `json:"account"`
	Region       string                 `json:"region"`
	Repositories map[string]*repository `json:"repositories"`
	Templates    map[string]*template   `json:"templates"`
	// Policy is the registry permissions policy (PutRegistryPolicy; account.go).
	Policy string `json:"registryPolicy,omitempty"`
	// AccountSettings holds GetAccountSetting/PutAccountSetting values by
	// name, such as BLOB_MOUNTING (account.go).
	AccountSettings map[string]string `json:"accountSettings,omitempty"`
	// Scanning is the registry scanning configuration (settings.go).
	Scanning *registryScanning `json:"scanning,omitempty"`
	// Replication is the replication configuration (settings.go).
	Replication *replicationConfiguration `json:"replication,omitempty"`
	// PullThroughCacheRules by ECR repository prefix (settings.go).
	PullThroughCacheRules map[string]*pullThroughCacheRule `json:"pullThroughCacheRules,omitempty"`
	// PullTimeExclusions are the principals whose pulls leave
	// lastRecordedPullTime alone, with when they were added (pulltime.go).
	PullTimeExclusions map[string]time.Time `json:"pullTimeUpdateExclusions,omitempty"`
}

// matchTemplate returns the longest-prefix template covering name that
// applies for what, or nil.
func (s *registryState) matchTemplate(name, what string) *template {
	var best *template
	for _, t := range s.Templates {
		if !t.appliesTo(what) || !t.covers(name) {
			continue
		}
		if best == nil || best.Prefix == rootPrefix || (t.Prefix != rootPrefix && len(t.Prefix) > len(best.Prefix)) {
			best = t
		}
	}
	return best
}

func (s *registryState) sortedRepoNames() []string {
	names := make([]string, 0, len(s.Repositories))
	for n := range s.Repositories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// authToken is an issued GetAuthorizationToken password.
type authToken struct {
	Account   string    `json:"account"`
	Region    string    `json:"region"`
	Principal string    `json:"principal"`
	Expires   time.Time `json:"expires"`
}

// credential is an AWS access key the emulator accepts: a configured user or
// temporary credentials it issued through STS or SSO.
type credential struct {
	Secret       string    `json:"secret"`
	SessionToken string    `json:"sessionToken,omitempty"`
	Account      string    `json:"account"`
	ARN          string    `json:"arn"`
	RoleARN      string    `json:"roleArn,omitempty"` // for assumed roles
	Expires      time.Time `json:"expires,omitzero"`
}

// state is everything the emulator remembers; guarded by mu.
type state struct {
	mu         sync.Mutex
	Registries map[string]*registryState `json:"registries"` // key: account/region
	Tokens     map[string]*authToken     `json:"tokens"`     // key: password
	Creds      map[string]*credential    `json:"credentials"`
	path       string                    // persistence file; "" = memory only
}

func registryKey(account, region string) string { return account + "/" + region }

func (s *state) registry(account, region string) *registryState {
	k := registryKey(account, region)
	r := s.Registries[k]
	if r == nil {
		r = &registryState{Account: account, Region: region,
			Repositories: map[string]*repository{}, Templates: map[string]*template{}}
		s.Registries[k] = r
	}
	return r
}

// save writes the state atomically when the emulator persists to disk. The
// caller holds mu.
func (s *state) save() error {
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode emulator state: %w", err)
	}
	if err := atomicfile.WriteFile(s.path, b, 0o600, false); err != nil {
		return fmt.Errorf("save emulator state: %w", err)
	}
	return nil
}

func loadState(path string) (*state, error) {
	s := &state{Registries: map[string]*registryState{}, Tokens: map[string]*authToken{},
		Creds: map[string]*credential{}, path: path}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load emulator state: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("load emulator state %s: %w", path, err)
	}
	for _, r := range s.Registries {
		if r.Repositories == nil {
			r.Repositories = map[string]*repository{}
		}
		if r.Templates == nil {
			r.Templates = map[string]*template{}
		}
	}
	if s.Tokens == nil {
		s.Tokens = map[string]*authToken{}
	}
	if s.Creds == nil {
		s.Creds = map[string]*credential{}
	}
	return s, nil
}
