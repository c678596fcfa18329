// Package lifecycle parses Amazon ECR lifecycle policies and evaluates them
// over an image history, as ECR's lifecycle policy evaluator does: which
// images each rule would expire. It does no I/O; the emulator (pkg/ecrfake)
// feeds it a repository's images and deletes what it returns.
//
// The semantics follow ECR's documentation (Lifecycle policy properties and
// Lifecycle policy evaluation rules in the ECR user guide):
//
//   - rules are evaluated in ascending rulePriority; an image is expired by
//     at most one rule;
//   - an image that matches the tag selection of a rule (whether or not that
//     rule expires it) is never marked by a later rule, but later rules still
//     count it, "as if it had not been expired", for imageCountMoreThan;
//   - tagPrefixList and tagPatternList select an image only if every listed
//     prefix or pattern matches at least one of its tags; selection.storageClass
//     ("standard", the default, or "archive") selects images of that class;
//   - imageCountMoreThan keeps the newest countNumber images by push time and
//     marks the rest; sinceImagePushed marks images pushed more than
//     countNumber days before now.
//
// Choices where the documentation is silent, so that results are
// deterministic and safe to apply:
//
//   - "any" must be the last rule and "untagged" may appear once among the
//     rules of one storage class (the documentation predates storage
//     classes and says so of the whole policy);
//   - images pushed at the same instant are ordered by digest: the smaller
//     digest counts as the newer one;
//   - an image pushed exactly countNumber days ago is not yet expired;
//   - a manifest listed by an image index that is not itself expired is not
//     expired (ECR's BatchDeleteImage refuses to delete it, so the preview
//     shows what applying does);
//   - rules with countType sinceImagePulled or sinceImageTransitioned, or
//     with action transition, are parsed and validated and take part in the
//     one-rule-per-image ordering (they claim the images they select) but
//     mark nothing: see Rule.Evaluated.
package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// TagStatus is a rule's selection.tagStatus.
type TagStatus string

// Tag statuses.
const (
	Tagged   TagStatus = "tagged"
	Untagged TagStatus = "untagged"
	Any      TagStatus = "any"
)

// CountType is a rule's selection.countType.
type CountType string

// Count types. SinceImagePulled and SinceImageTransitioned are accepted but
// not evaluated.
const (
	ImageCountMoreThan     CountType = "imageCountMoreThan"
	SinceImagePushed       CountType = "sinceImagePushed"
	SinceImagePulled       CountType = "sinceImagePulled"
	SinceImageTransitioned CountType = "sinceImageTransitioned"
)

// ActionType is a rule's action.type.
type ActionType string

// Actions. Transition (to the archive storage class) is accepted but not
// evaluated.
const (
	Expire     ActionType = "expire"
	Transition ActionType = "transition"
)

// Storage classes of images and of a rule's selection.
const (
	StorageStandard = "standard"
	StorageArchive  = "archive"
)

// maxWildcards is ECR's limit of '*' in one tagPatternList entry.
const maxWildcards = 4

// day is the length of ECR's countUnit "days".
const day = 24 * time.Hour

// Rule is one parsed rule of a lifecycle policy.
type Rule struct {
	Priority       int
	Description    string
	TagStatus      TagStatus
	TagPrefixList  []string
	TagPatternList []string
	// StorageClass is the storage class the rule selects from: "standard"
	// (also when the policy leaves it out) or "archive".
	StorageClass string
	CountType    CountType
	CountUnit    string // "days" for the since* count types, else ""
	CountNumber  int
	Action       ActionType
	// TargetStorageClass is "archive" for a transition action.
	TargetStorageClass string
}

// Evaluated reports whether Evaluate marks images for r: an expire action
// with countType imageCountMoreThan or sinceImagePushed. Other rules still
// claim the images they select, so later rules cannot expire those.
func (r Rule) Evaluated() bool {
	return r.Action == Expire && (r.CountType == ImageCountMoreThan || r.CountType == SinceImagePushed)
}

// Policy is a parsed lifecycle policy; Rules are in ascending priority.
type Policy struct {
	Rules []Rule
}

// Image is one manifest in a repository's history.
type Image struct {
	Digest   string
	Tags     []string
	PushedAt time.Time
	// StorageClass is "standard" (or "") or "archive".
	StorageClass string
	// Children are the digests an image index lists (empty for an image).
	Children []string
}

// Result is one image a rule expires.
type Result struct {
	Image        Image
	RulePriority int
	Action       ActionType
}

// Parse parses and validates a lifecycle policy text. Errors name the rule
// (its position and rulePriority) and the field at fault.
func Parse(text string) (Policy, error) {
	var doc struct {
		Rules []json.RawMessage `json:"rules"`
	}
	if err := strictDecode([]byte(text), &doc, "rules"); err != nil {
		return Policy{}, fmt.Errorf("policy is not a JSON object with a \"rules\" array: %w", err)
	}
	if len(doc.Rules) == 0 {
		return Policy{}, errors.New("policy has no rules: \"rules\" must list at least one rule")
	}
	var p Policy
	seen := map[int]int{} // priority -> index
	for i, raw := range doc.Rules {
		r, err := parseRule(raw)
		if err != nil {
			return Policy{}, ruleError(i, r.Priority, err)
		}
		if j, dup := seen[r.Priority]; dup {
			return Policy{}, ruleError(i, r.Priority, fmt.Errorf("rulePriority %d is already used by rules[%d]: priorities must be unique", r.Priority, j))
		}
		seen[r.Priority] = i
		p.Rules = append(p.Rules, r)
	}
	sort.SliceStable(p.Rules, func(a, b int) bool { return p.Rules[a].Priority < p.Rules[b].Priority })
	// The two ordering constraints hold among the rules of one storage class:
	// the classes select disjoint sets of images.
	lastOfClass := map[string]int{}
	for _, r := range p.Rules {
		lastOfClass[r.StorageClass] = r.Priority
	}
	untagged := map[string]int{}
	for _, r := range p.Rules {
		switch r.TagStatus {
		case Any:
			if last := lastOfClass[r.StorageClass]; r.Priority != last {
				return Policy{}, fmt.Errorf("rule with rulePriority %d: tagStatus \"any\" must be on the rule with the highest rulePriority (of storageClass %q), but rulePriority %d is higher", r.Priority, r.StorageClass, last)
			}
		case Untagged:
			if prev, dup := untagged[r.StorageClass]; dup {
				return Policy{}, fmt.Errorf("rules with rulePriority %d and %d both select tagStatus \"untagged\" (of storageClass %q): only one rule may", prev, r.Priority, r.StorageClass)
			}
			untagged[r.StorageClass] = r.Priority
		}
	}
	return p, nil
}

func ruleError(i, priority int, err error) error {
	if priority == 0 {
		return fmt.Errorf("rules[%d]: %w", i, err)
	}
	return fmt.Errorf("rules[%d] (rulePriority %d): %w", i, priority, err)
}

// strictDecode decodes one JSON object into v, refusing trailing data and
// keys other than the ones named (compared exactly: encoding/json alone would
// take "tagPrefixlist" for "tagPrefixList", where ECR refuses it).
func strictDecode(b []byte, v any, keys ...string) error {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&obj); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	if obj == nil {
		return errors.New("must be a JSON object, not null")
	}
	for k := range obj {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("unknown field %q (known: %s)", k, strings.Join(keys, ", "))
		}
	}
	return json.Unmarshal(b, v)
}

type ruleJSON struct {
	RulePriority *int            `json:"rulePriority"`
	Description  string          `json:"description"`
	Selection    json.RawMessage `json:"selection"`
	Action       json.RawMessage `json:"action"`
}

type selectionJSON struct {
	TagStatus      string   `json:"tagStatus"`
	TagPrefixList  []string `json:"tagPrefixList"`
	TagPatternList []string `json:"tagPatternList"`
	StorageClass   string   `json:"storageClass"`
	CountType      string   `json:"countType"`
	CountUnit      *string  `json:"countUnit"`
	CountNumber    *int     `json:"countNumber"`
}

type actionJSON struct {
	Type               string `json:"type"`
	TargetStorageClass string `json:"targetStorageClass"`
}

// parseRule returns what it could read (the priority, for the error) and
// the first problem.
func parseRule(raw json.RawMessage) (Rule, error) {
	var in ruleJSON
	if err := strictDecode(raw, &in, "rulePriority", "description", "selection", "action"); err != nil {
		return Rule{}, err
	}
	var r Rule
	if in.RulePriority == nil {
		return r, errors.New("rulePriority is required")
	}
	r.Priority = *in.RulePriority
	r.Description = in.Description
	if r.Priority < 1 {
		return r, fmt.Errorf("rulePriority %d must be a positive integer", r.Priority)
	}
	if len(in.Selection) == 0 {
		return r, errors.New("selection is required")
	}
	var sel selectionJSON
	if err := strictDecode(in.Selection, &sel, "tagStatus", "tagPrefixList", "tagPatternList", "storageClass", "countType", "countUnit", "countNumber"); err != nil {
		return r, fmt.Errorf("selection: %w", err)
	}
	if err := r.parseSelection(sel); err != nil {
		return r, fmt.Errorf("selection.%w", err)
	}
	if len(in.Action) == 0 {
		return r, errors.New("action is required")
	}
	var act actionJSON
	if err := strictDecode(in.Action, &act, "type", "targetStorageClass"); err != nil {
		return r, fmt.Errorf("action: %w", err)
	}
	switch ActionType(act.Type) {
	case Expire:
		if act.TargetStorageClass != "" {
			return r, errors.New("action.targetStorageClass is only allowed with action type \"transition\"")
		}
	case Transition:
		if act.TargetStorageClass != StorageArchive {
			return r, fmt.Errorf("action.targetStorageClass %q must be \"archive\" for action type \"transition\"", act.TargetStorageClass)
		}
	case "":
		return r, errors.New("action.type is required (\"expire\" or \"transition\")")
	default:
		return r, fmt.Errorf("action.type %q must be \"expire\" or \"transition\"", act.Type)
	}
	r.Action, r.TargetStorageClass = ActionType(act.Type), act.TargetStorageClass
	return r, nil
}

func (r *Rule) parseSelection(sel selectionJSON) error {
	r.TagStatus = TagStatus(sel.TagStatus)
	hasPrefix, hasPattern := sel.TagPrefixList != nil, sel.TagPatternList != nil
	switch r.TagStatus {
	case Tagged:
		switch {
		case hasPrefix && hasPattern:
			return errors.New("tagPrefixList and tagPatternList cannot both be given in one rule")
		case !hasPrefix && !hasPattern:
			return errors.New("tagStatus \"tagged\" needs a tagPrefixList or a tagPatternList")
		case hasPrefix && len(sel.TagPrefixList) == 0:
			return errors.New("tagPrefixList must not be empty")
		case hasPattern && len(sel.TagPatternList) == 0:
			return errors.New("tagPatternList must not be empty")
		}
		for _, p := range sel.TagPrefixList {
			if p == "" {
				return errors.New("tagPrefixList must not contain an empty prefix")
			}
		}
		for _, p := range sel.TagPatternList {
			if p == "" {
				return errors.New("tagPatternList must not contain an empty pattern")
			}
			if n := strings.Count(p, "*"); n > maxWildcards {
				return fmt.Errorf("tagPatternList entry %q has %d wildcards, at most %d are allowed", p, n, maxWildcards)
			}
		}
		r.TagPrefixList, r.TagPatternList = sel.TagPrefixList, sel.TagPatternList
	case Untagged, Any:
		if hasPrefix || hasPattern {
			return fmt.Errorf("tagPrefixList and tagPatternList are only allowed with tagStatus \"tagged\", not %q", sel.TagStatus)
		}
	case "":
		return errors.New("tagStatus is required (\"tagged\", \"untagged\" or \"any\")")
	default:
		return fmt.Errorf("tagStatus %q must be \"tagged\", \"untagged\" or \"any\"", sel.TagStatus)
	}
	switch sel.StorageClass {
	case "", StorageStandard:
		r.StorageClass = StorageStandard
	case StorageArchive:
		r.StorageClass = StorageArchive
	default:
		return fmt.Errorf("storageClass %q must be \"standard\" or \"archive\"", sel.StorageClass)
	}
	r.CountType = CountType(sel.CountType)
	switch r.CountType {
	case ImageCountMoreThan:
		if sel.CountUnit != nil {
			return errors.New("countUnit is not allowed with countType \"imageCountMoreThan\"")
		}
	case SinceImagePushed, SinceImagePulled, SinceImageTransitioned:
		if sel.CountUnit == nil {
			return fmt.Errorf("countUnit is required with countType %q (\"days\")", sel.CountType)
		}
		if *sel.CountUnit != "days" {
			return fmt.Errorf("countUnit %q must be \"days\"", *sel.CountUnit)
		}
		r.CountUnit = *sel.CountUnit
	case "":
		return errors.New("countType is required (\"imageCountMoreThan\", \"sinceImagePushed\", \"sinceImagePulled\" or \"sinceImageTransitioned\")")
	default:
		return fmt.Errorf("countType %q must be \"imageCountMoreThan\", \"sinceImagePushed\", \"sinceImagePulled\" or \"sinceImageTransitioned\"", sel.CountType)
	}
	if sel.CountNumber == nil {
		return errors.New("countNumber is required")
	}
	if *sel.CountNumber < 1 {
		return fmt.Errorf("countNumber %d must be a positive integer", *sel.CountNumber)
	}
	r.CountNumber = *sel.CountNumber
	return nil
}

// selects reports whether img meets the tag (and storage class)
// requirements of r.
func (r Rule) selects(img Image) bool {
	if (img.StorageClass == StorageArchive) != (r.StorageClass == StorageArchive) {
		return false
	}
	switch r.TagStatus {
	case Any:
		return true
	case Untagged:
		return len(img.Tags) == 0
	}
	if len(img.Tags) == 0 {
		return false
	}
	for _, p := range r.TagPrefixList {
		if !anyTag(img.Tags, func(t string) bool { return strings.HasPrefix(t, p) }) {
			return false
		}
	}
	for _, p := range r.TagPatternList {
		if !anyTag(img.Tags, func(t string) bool { return wildcardMatch(p, t) }) {
			return false
		}
	}
	return true
}

func anyTag(tags []string, ok func(string) bool) bool {
	for _, t := range tags {
		if ok(t) {
			return true
		}
	}
	return false
}

// wildcardMatch matches a tagPatternList entry, where '*' matches any run of
// characters (none included) and every other character itself.
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

// newerFirst orders images newest first; the same push time falls back to
// the digest, the smaller counting as newer.
func newerFirst(a, b Image) bool {
	if !a.PushedAt.Equal(b.PushedAt) {
		return a.PushedAt.After(b.PushedAt)
	}
	return a.Digest < b.Digest
}

// Evaluate returns the images p expires at time now, oldest first (by push
// time, then digest), each with the priority of the rule that expires it.
func Evaluate(p Policy, images []Image, now time.Time) []Result {
	rules := append([]Rule(nil), p.Rules...)
	sort.SliceStable(rules, func(a, b int) bool { return rules[a].Priority < rules[b].Priority })
	claimed := map[string]bool{}
	marked := map[string]Result{}
	for _, r := range rules {
		var selected []Image
		for _, img := range images {
			if r.selects(img) {
				selected = append(selected, img)
			}
		}
		if r.Evaluated() {
			for _, img := range r.expires(selected, now) {
				if !claimed[img.Digest] {
					marked[img.Digest] = Result{Image: img, RulePriority: r.Priority, Action: r.Action}
				}
			}
		}
		for _, img := range selected {
			claimed[img.Digest] = true
		}
	}
	protectChildren(images, marked)
	out := make([]Result, 0, len(marked))
	for _, res := range marked {
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool { return newerFirst(out[j].Image, out[i].Image) })
	return out
}

// expires returns which of the images r selected it marks.
func (r Rule) expires(selected []Image, now time.Time) []Image {
	switch r.CountType {
	case ImageCountMoreThan:
		if len(selected) <= r.CountNumber {
			return nil
		}
		sorted := append([]Image(nil), selected...)
		sort.Slice(sorted, func(i, j int) bool { return newerFirst(sorted[i], sorted[j]) })
		return sorted[r.CountNumber:]
	case SinceImagePushed:
		cutoff := now.Add(-time.Duration(r.CountNumber) * day)
		var out []Image
		for _, img := range selected {
			if img.PushedAt.Before(cutoff) {
				out = append(out, img)
			}
		}
		return out
	}
	return nil
}

// protectChildren unmarks manifests that an index which stays lists, until
// nothing changes (an index may itself be the child of a kept index).
func protectChildren(images []Image, marked map[string]Result) {
	for changed := true; changed; {
		changed = false
		for _, img := range images {
			if _, gone := marked[img.Digest]; gone {
				continue
			}
			for _, c := range img.Children {
				if _, ok := marked[c]; ok {
					delete(marked, c)
					changed = true
				}
			}
		}
	}
}
