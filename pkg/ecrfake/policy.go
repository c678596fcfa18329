package ecrfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A small evaluator of the resource-based policies ECR keeps: repository
// policies (SetRepositoryPolicy) and the registry policy
// (PutRegistryPolicy). It answers one question, whether a statement allows
// or denies a principal an action on a resource, with IAM's rules for the
// parts ECR's policies use: Statement as a list or a single object, Effect,
// Principal ("*", {"AWS": string|list}), Action and NotAction (string|list,
// '*' and '?' wildcards, case-insensitive), Resource (absent = any).
// A statement with a Condition never applies: the emulator has no request
// context to evaluate one against.

// effect is the outcome of evaluating a policy for one request.
type effect int

const (
	effectNone  effect = iota // no statement applies: implicit deny
	effectAllow               // an Allow statement applies and no Deny does
	effectDeny                // a Deny statement applies
)

// stringList is a JSON string or list of strings, as IAM accepts for
// Action, Resource and the values of Principal.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*l = many
	return nil
}

// principal is a statement's Principal: "*" or {"AWS": …, "Service": …}.
type principal struct {
	any bool
	aws []string // ARNs, account ids or "*"
}

func (p *principal) UnmarshalJSON(b []byte) error {
	var star string
	if err := json.Unmarshal(b, &star); err == nil {
		if star != "*" {
			return fmt.Errorf("principal %q: a string principal must be \"*\"", star)
		}
		p.any = true
		return nil
	}
	var m map[string]stringList
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New(`principal must be "*" or an object such as {"AWS": "arn:aws:iam::123456789012:root"}`)
	}
	for k, v := range m {
		switch k {
		case "AWS":
			p.aws = append(p.aws, v...)
		case "Service", "Federated", "CanonicalUser":
			// Never a registry token's principal.
		default:
			return fmt.Errorf("principal type %q is not one of AWS, Service, Federated, CanonicalUser", k)
		}
	}
	return nil
}

type statement struct {
	Sid          string           `json:"Sid"`
	Effect       string           `json:"Effect"`
	Principal    *principal       `json:"Principal"`
	NotPrincipal *principal       `json:"NotPrincipal"`
	Action       stringList       `json:"Action"`
	NotAction    stringList       `json:"NotAction"`
	Resource     stringList       `json:"Resource"`
	Condition    *json.RawMessage `json:"Condition"`
}

// policyDoc is a parsed policy.
type policyDoc struct {
	Statements []statement
}

// parsePolicy parses and checks a policy text.
func parsePolicy(text string) (*policyDoc, error) {
	var raw struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("policy is not a JSON object: %w", err)
	}
	var doc policyDoc
	switch s := strings.TrimSpace(string(raw.Statement)); {
	case s == "" || s == "null":
		return nil, errors.New("policy has no Statement")
	case strings.HasPrefix(s, "["):
		if err := json.Unmarshal(raw.Statement, &doc.Statements); err != nil {
			return nil, fmt.Errorf("policy Statement: %w", err)
		}
	default:
		var one statement
		if err := json.Unmarshal(raw.Statement, &one); err != nil {
			return nil, fmt.Errorf("policy Statement: %w", err)
		}
		doc.Statements = []statement{one}
	}
	if len(doc.Statements) == 0 {
		return nil, errors.New("policy has no Statement")
	}
	for i, st := range doc.Statements {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return nil, fmt.Errorf("statement %d: Effect %q must be Allow or Deny", i, st.Effect)
		}
		if (st.Principal == nil) == (st.NotPrincipal == nil) {
			return nil, fmt.Errorf("statement %d: a resource policy statement needs exactly one of Principal and NotPrincipal", i)
		}
		if (len(st.Action) == 0) == (len(st.NotAction) == 0) {
			return nil, fmt.Errorf("statement %d: needs exactly one of Action and NotAction", i)
		}
	}
	return &doc, nil
}

// evaluate returns what doc says about principalARN performing action (such
// as "ecr:BatchGetImage") on resource (an ARN). Deny wins over Allow.
func (doc *policyDoc) evaluate(principalARN, action, resource string) effect {
	out := effectNone
	if doc == nil {
		return out
	}
	for _, st := range doc.Statements {
		if !st.applies(principalARN, action, resource) {
			continue
		}
		if st.Effect == "Deny" {
			return effectDeny
		}
		out = effectAllow
	}
	return out
}

func (st *statement) applies(principalARN, action, resource string) bool {
	if st.Condition != nil {
		return false
	}
	if st.Principal != nil && !st.Principal.matches(principalARN) {
		return false
	}
	if st.NotPrincipal != nil && st.NotPrincipal.matches(principalARN) {
		return false
	}
	if len(st.Action) > 0 && !matchAny(st.Action, action, true) {
		return false
	}
	if len(st.NotAction) > 0 && matchAny(st.NotAction, action, true) {
		return false
	}
	if len(st.Resource) > 0 && !matchAny(st.Resource, resource, false) {
		return false
	}
	return true
}

// matches reports whether the Principal names principalARN: "*", the ARN
// itself, its account (as "arn:aws:iam::<acct>:root" or the bare id), or,
// for an assumed-role session, its role.
func (p *principal) matches(principalARN string) bool {
	if p.any {
		return true
	}
	names := principalNames(principalARN)
	for _, v := range p.aws {
		if v == "*" {
			return true
		}
		for _, n := range names {
			if v == n {
				return true
			}
		}
	}
	return false
}

// principalNames are the Principal values IAM matches a caller with.
func principalNames(arn string) []string {
	names := []string{arn}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !accountRE.MatchString(parts[4]) {
		return names
	}
	partition, acct := parts[1], parts[4]
	names = append(names, acct, "arn:"+partition+":iam::"+acct+":root")
	// arn:aws:sts::<acct>:assumed-role/<role>/<session> is a session of
	// arn:aws:iam::<acct>:role/<role>.
	if role := iamPrincipal(arn); role != arn {
		names = append(names, role)
	}
	return names
}

// principalAccount is the account of a principal ARN, or "".
func principalAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || !accountRE.MatchString(parts[4]) {
		return ""
	}
	return parts[4]
}

func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			if iamWildcard(strings.ToLower(p), strings.ToLower(s)) {
				return true
			}
		} else if iamWildcard(p, s) {
			return true
		}
	}
	return false
}

// iamWildcard matches IAM's wildcards: '*' any run of characters, '?' one.
func iamWildcard(pattern, s string) bool {
	// Iterative matcher with backtracking to the last '*'.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// v1RegistryActions are the only actions a registry policy governs when the
// registry's REGISTRY_POLICY_SCOPE is V1.
var v1RegistryActions = []string{"ecr:ReplicateImage", "ecr:BatchImportUpstreamImage", "ecr:CreateRepository"}

// authorizeECR decides whether principalARN may perform action (such as
// "ecr:BatchGetImage") on repository repo of the registry account/region,
// as ECR does with resource-based policies: an explicit Deny in the
// repository policy or the registry policy refuses; otherwise a principal
// of the registry's own account, or of the account tokenAccount names (the
// registry its token was requested for), is allowed; anyone else needs an
// Allow in one of the two policies. The caller must not hold st.mu.
func (e *Emulator) authorizeECR(principalARN, tokenAccount, account, region, repo, action string) bool {
	e.st.mu.Lock()
	reg := e.st.registry(account, region)
	var repoPolicy string
	if r := reg.Repositories[repo]; r != nil {
		repoPolicy = r.Policy
	}
	regPolicy, scope := reg.Policy, reg.setting(settingRegistryPolicyScope)
	e.st.mu.Unlock()

	resource := repoARN(region, account, repo)
	allowed := false
	policies := []struct {
		text     string
		registry bool
	}{{repoPolicy, false}, {regPolicy, true}}
	for _, p := range policies {
		if p.text == "" || (p.registry && scope == "V1" && !matchAny(v1RegistryActions, action, true)) {
			continue
		}
		doc, err := parsePolicy(p.text)
		if err != nil { // stored texts were validated; an unreadable one grants nothing
			continue
		}
		switch doc.evaluate(principalARN, action, resource) {
		case effectDeny:
			return false
		case effectAllow:
			allowed = true
		}
	}
	own := principalAccount(principalARN)
	return allowed || own == account || tokenAccount == account
}
