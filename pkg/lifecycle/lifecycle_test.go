package lifecycle

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// img is an image pushed daysAgo days before now, named by its digest.
func img(digest string, daysAgo float64, tags ...string) Image {
	return Image{Digest: digest, Tags: tags, PushedAt: now.Add(-time.Duration(daysAgo * float64(day)))}
}

// rule builds one rule's JSON.
func rule(priority int, selection, action string) string {
	if action == "" {
		action = `{"type":"expire"}`
	}
	return fmt.Sprintf(`{"rulePriority":%d,"selection":%s,"action":%s}`, priority, selection, action)
}

func policy(rules ...string) string { return `{"rules":[` + strings.Join(rules, ",") + `]}` }

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		images []Image
		want   map[string]int // digest -> rule priority
	}{
		{
			name:   "count keeps the newest N of the selection",
			policy: policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}`, "")),
			images: []Image{img("a", 5, "1"), img("b", 4, "2"), img("c", 3), img("d", 2, "4")},
			want:   map[string]int{"a": 1, "b": 1},
		},
		{
			name:   "count not exceeded expires nothing",
			policy: policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3}`, "")),
			images: []Image{img("a", 5, "1"), img("b", 4, "2"), img("c", 3)},
			want:   map[string]int{},
		},
		{
			name:   "days: older than N days expires, exactly N days does not",
			policy: policy(rule(1, `{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14}`, "")),
			images: []Image{img("old", 15), img("edge", 14), img("new", 1), img("tagged-old", 30, "v1")},
			want:   map[string]int{"old": 1},
		},
		{
			name:   "untagged selects only untagged images",
			policy: policy(rule(1, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`, "")),
			images: []Image{img("t1", 9, "a"), img("u1", 8), img("u2", 7), img("t2", 1, "b")},
			want:   map[string]int{"u1": 1},
		},
		{
			name:   "tagPrefixList: every prefix must match one of the tags",
			policy: policy(rule(1, `{"tagStatus":"tagged","tagPrefixList":["alpha","beta"],"countType":"sinceImagePushed","countUnit":"days","countNumber":5}`, "")),
			images: []Image{
				img("A", 12, "alpha-1"), img("B", 11, "beta-1"), img("C", 10, "alpha-2", "beta-2"),
				img("D", 4, "alpha-3"), img("E", 3, "alpha-4", "beta-4"), img("F", 9, "alphabeta"),
			},
			want: map[string]int{"C": 1},
		},
		{
			name:   "tagPrefixList is a prefix, not a pattern",
			policy: policy(rule(1, `{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1}`, "")),
			images: []Image{img("a", 3, "prod-1"), img("b", 2, "xprod"), img("c", 1, "prod-2"), img("d", 4, "prod*")},
			want:   map[string]int{"a": 1, "d": 1},
		},
		{
			name:   "tagPatternList wildcards, every pattern must match one of the tags",
			policy: policy(rule(1, `{"tagStatus":"tagged","tagPatternList":["prod*","*-rc*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, "")),
			images: []Image{
				img("a", 5, "prod", "1.0-rc1"), img("b", 5, "prod-1"), img("c", 5, "release-rc2", "production"),
				img("d", 5, "xprod", "1-rc"), img("e", 5, "prod-rc"),
			},
			want: map[string]int{"a": 1, "c": 1, "e": 1},
		},
		{
			name:   "pattern without wildcard matches the whole tag only",
			policy: policy(rule(1, `{"tagStatus":"tagged","tagPatternList":["latest"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, "")),
			images: []Image{img("a", 5, "latest"), img("b", 5, "latest-1"), img("c", 5, "not-latest")},
			want:   map[string]int{"a": 1},
		},
		{
			name: "lower priority number first, whatever the order in the text",
			policy: policy(
				rule(20, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}`, ""),
				rule(3, `{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":5}`, ""),
			),
			images: []Image{img("p1", 9, "prod-1"), img("p2", 8, "prod-2"), img("x", 7, "dev"), img("u", 1)},
			// p1, p2 are prod: rule 3 keeps them and they are never
			// expired by rule 20 even though it counts them.
			want: map[string]int{"x": 20},
		},
		{
			// The ECR guide's example: Rule 1 prod (keep 1), Rule 2 beta (keep 1);
			// A [beta-1 prod-1] oldest, B [beta-2 prod-2], C [beta-3] newest.
			name: "ECR example: an image seen by an earlier rule is not expired by a later one",
			policy: policy(
				rule(1, `{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1}`, ""),
				rule(2, `{"tagStatus":"tagged","tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1}`, ""),
			),
			images: []Image{img("A", 10, "beta-1", "prod-1"), img("B", 9, "beta-2", "prod-2"), img("C", 8, "beta-3")},
			want:   map[string]int{"A": 1},
		},
		{
			name: "ECR example: both expired by the first rule",
			policy: policy(
				rule(1, `{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1}`, ""),
				rule(2, `{"tagStatus":"tagged","tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1}`, ""),
			),
			images: []Image{img("A", 10, "beta-1", "prod-1"), img("B", 9, "beta-2", "prod-2"), img("C", 8, "beta-3", "prod-3")},
			want:   map[string]int{"A": 1, "B": 1},
		},
		{
			name: "one rule per image: the first matching rule's priority is reported",
			policy: policy(
				rule(1, `{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, ""),
				rule(2, `{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, ""),
			),
			images: []Image{img("u", 5), img("t", 5, "v1"), img("fresh", 0.5, "v2")},
			want:   map[string]int{"u": 1, "t": 2},
		},
		{
			name:   "later rules count images an earlier rule claimed",
			policy: policy(rule(1, `{"tagStatus":"tagged","tagPrefixList":["keep"],"countType":"imageCountMoreThan","countNumber":100}`, ""), rule(2, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}`, "")),
			images: []Image{img("k1", 1, "keep-1"), img("k2", 2, "keep-2"), img("o1", 3, "other"), img("o2", 4)},
			// rule 2 keeps the newest two of all four (k1, k2), marks o1
			// and o2, and may expire them: they were not claimed.
			want: map[string]int{"o1": 2, "o2": 2},
		},
		{
			name:   "same push time: the larger digest counts as older",
			policy: policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}`, "")),
			images: []Image{img("sha256:cc", 1, "c"), img("sha256:aa", 1, "a"), img("sha256:bb", 1, "b"), img("sha256:00", 2, "z")},
			want:   map[string]int{"sha256:cc": 1, "sha256:00": 1},
		},
		{
			name:   "a child of an index that stays is not expired",
			policy: policy(rule(1, `{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, "")),
			images: []Image{
				{Digest: "idx", Tags: []string{"multi"}, PushedAt: now.Add(-5 * day), Children: []string{"amd64", "arm64"}},
				img("amd64", 5), img("arm64", 5), img("orphan", 5),
			},
			want: map[string]int{"orphan": 1},
		},
		{
			name:   "children of an expired index may expire with it",
			policy: policy(rule(1, `{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, "")),
			images: []Image{
				{Digest: "idx", Tags: []string{"multi"}, PushedAt: now.Add(-5 * day), Children: []string{"amd64", "arm64"}},
				img("amd64", 5), img("arm64", 0.1), img("new", 0.1, "v2"),
			},
			want: map[string]int{"idx": 1, "amd64": 1},
		},
		{
			name: "storageClass: a rule selects only images of its class (standard when left out)",
			policy: policy(
				rule(1, `{"tagStatus":"any","storageClass":"archive","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, ""),
			),
			images: []Image{
				{Digest: "arch", Tags: []string{"a"}, PushedAt: now.Add(-9 * day), StorageClass: StorageArchive},
				img("std", 9, "s"),
			},
			want: map[string]int{"arch": 1},
		},
		{
			name:   "storageClass standard is the default",
			policy: policy(rule(1, `{"tagStatus":"any","storageClass":"standard","countType":"imageCountMoreThan","countNumber":1}`, "")),
			images: []Image{
				{Digest: "arch", PushedAt: now.Add(-9 * day), StorageClass: StorageArchive},
				img("std1", 8), img("std2", 7), {Digest: "std3", PushedAt: now.Add(-6 * day), StorageClass: StorageStandard},
			},
			want: map[string]int{"std1": 1, "std2": 1},
		},
		{
			name: "rules not evaluated claim their images but expire none",
			policy: policy(
				rule(1, `{"tagStatus":"tagged","tagPrefixList":["old"],"countType":"sinceImagePulled","countUnit":"days","countNumber":1}`, ""),
				rule(2, `{"tagStatus":"tagged","tagPrefixList":["arch"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, `{"type":"transition","targetStorageClass":"archive"}`),
				rule(3, `{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`, ""),
			),
			images: []Image{img("o", 9, "old-1"), img("a", 9, "arch-1"), img("x", 9, "x")},
			want:   map[string]int{"x": 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.policy)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := map[string]int{}
			res := Evaluate(p, tc.images, now)
			for _, r := range res {
				if _, dup := got[r.Image.Digest]; dup {
					t.Fatalf("image %s expired twice: %+v", r.Image.Digest, res)
				}
				if r.Action != Expire {
					t.Fatalf("result action %q, want expire", r.Action)
				}
				got[r.Image.Digest] = r.RulePriority
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("expired %v, want %v", got, tc.want)
			}
			for i := 1; i < len(res); i++ {
				if newerFirst(res[i-1].Image, res[i].Image) {
					t.Fatalf("results not oldest first: %+v", res)
				}
			}
		})
	}
}

func TestEvaluateIsDeterministic(t *testing.T) {
	p, err := Parse(policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3}`, "")))
	if err != nil {
		t.Fatal(err)
	}
	var imgs []Image
	for i := range 10 {
		imgs = append(imgs, img(fmt.Sprintf("sha256:%02d", i), 1))
	}
	digests := func(rs []Result) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Image.Digest)
		}
		return out
	}
	first := digests(Evaluate(p, imgs, now))
	if len(first) != 7 || first[0] != "sha256:09" || first[6] != "sha256:03" {
		t.Fatalf("expired %v, want sha256:09 … sha256:03", first)
	}
	for range 20 {
		slices.Reverse(imgs)
		if got := digests(Evaluate(p, imgs, now)); !slices.Equal(got, first) {
			t.Fatalf("second evaluation %v, first %v", got, first)
		}
	}
}

func TestParse(t *testing.T) {
	p, err := Parse(policy(
		`{"rulePriority":10,"description":"old dev","selection":{"tagStatus":"tagged","tagPatternList":["dev-*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}`,
		rule(2, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`, ""),
	))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Priority: 2, TagStatus: Untagged, StorageClass: StorageStandard, CountType: ImageCountMoreThan, CountNumber: 1, Action: Expire},
		{Priority: 10, Description: "old dev", TagStatus: Tagged, TagPatternList: []string{"dev-*"}, StorageClass: StorageStandard, CountType: SinceImagePushed,
			CountUnit: "days", CountNumber: 7, Action: Expire},
	}
	if fmt.Sprint(p.Rules) != fmt.Sprint(want) {
		t.Fatalf("Parse = %+v, want %+v", p.Rules, want)
	}
}

func TestParseErrors(t *testing.T) {
	any1 := rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}`, "")
	tests := []struct {
		name, policy string
		want         []string // substrings of the error
	}{
		{"not JSON", `{"rules":`, []string{"not a JSON object"}},
		{"no rules", `{"rules":[]}`, []string{"no rules"}},
		{"unknown top-level key", `{"rules":[` + any1 + `],"x":1}`, []string{`unknown field "x"`}},
		{"missing priority", policy(`{"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}`), []string{"rules[0]", "rulePriority is required"}},
		{"zero priority", policy(rule(0, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"rules[0]", "positive"}},
		{"duplicate priority", policy(rule(1, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`, ""), any1), []string{"rules[1] (rulePriority 1)", "unique"}},
		{"misspelt key", policy(rule(1, `{"tagStatus":"tagged","tagPrefixlist":["a"],"countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"rules[0] (rulePriority 1)", `unknown field "tagPrefixlist"`}},
		{"bad tagStatus", policy(rule(4, `{"tagStatus":"TAGGED","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"rulePriority 4", `tagStatus "TAGGED"`}},
		{"tagged without a list", policy(rule(1, `{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"needs a tagPrefixList or a tagPatternList"}},
		{"both lists", policy(rule(1, `{"tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"cannot both"}},
		{"empty list", policy(rule(1, `{"tagStatus":"tagged","tagPrefixList":[],"countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"tagPrefixList must not be empty"}},
		{"untagged with a list", policy(rule(1, `{"tagStatus":"untagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1}`, "")), []string{`only allowed with tagStatus "tagged"`}},
		{"five wildcards", policy(rule(1, `{"tagStatus":"tagged","tagPatternList":["*a*b*c*d*"],"countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"5 wildcards", "at most 4"}},
		{"countUnit with count", policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1}`, "")), []string{"countUnit is not allowed"}},
		{"days without countUnit", policy(rule(1, `{"tagStatus":"any","countType":"sinceImagePushed","countNumber":1}`, "")), []string{"countUnit is required"}},
		{"hours", policy(rule(1, `{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"hours","countNumber":1}`, "")), []string{`countUnit "hours"`}},
		{"bad countType", policy(rule(1, `{"tagStatus":"any","countType":"imageCountLessThan","countNumber":1}`, "")), []string{`countType "imageCountLessThan"`}},
		{"missing countNumber", policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan"}`, "")), []string{"countNumber is required"}},
		{"zero countNumber", policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":0}`, "")), []string{"countNumber 0"}},
		{"fractional countNumber", policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1.5}`, "")), []string{"rules[0] (rulePriority 1)", "countNumber"}},
		{"bad storageClass", policy(rule(1, `{"tagStatus":"any","storageClass":"glacier","countType":"imageCountMoreThan","countNumber":1}`, "")), []string{`storageClass "glacier"`}},
		{"bad action", policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}`, `{"type":"delete"}`)), []string{`action.type "delete"`}},
		{"transition without class", policy(rule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}`, `{"type":"transition"}`)), []string{"targetStorageClass"}},
		{"missing action", policy(`{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}}`), []string{"action is required"}},
		{"any not last", policy(any1, rule(2, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"rulePriority 1", `"any" must be on the rule with the highest rulePriority`}},
		{"any not last among archive rules", policy(rule(1, `{"tagStatus":"any","storageClass":"archive","countType":"imageCountMoreThan","countNumber":1}`, ""), rule(2, `{"tagStatus":"untagged","storageClass":"archive","countType":"imageCountMoreThan","countNumber":1}`, "")), []string{"rulePriority 1", `"archive"`}},
		{"two untagged rules", policy(rule(1, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`, ""), rule(2, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5}`, "")), []string{"rulePriority 1 and 2", "only one rule"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.policy)
			if err == nil {
				t.Fatalf("Parse(%s) succeeded", tc.policy)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"prod*", "prod", true},
		{"prod*", "prod-1", true},
		{"prod*", "xprod", false},
		{"*prod", "xprod", true},
		{"*", "", true},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"*test*1*2*3", "my-test-1-2-3", true},
		{"*test*1*2*3", "my-test-3-2-1", false},
		{"v*.*.*", "v1.2.3", true},
		{"v*.*.*", "v1.2", false},
	}
	for _, tc := range tests {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(policy(rule(1, `{"tagStatus":"tagged","tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1}`, "")))
	f.Add(`{"rules":[{}]}`)
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(text)
		if err != nil {
			return
		}
		for i := 1; i < len(p.Rules); i++ {
			if p.Rules[i-1].Priority >= p.Rules[i].Priority {
				t.Fatalf("rules not in strictly ascending priority: %+v", p.Rules)
			}
		}
		Evaluate(p, []Image{img("a", 3, "a1"), img("b", 1)}, now)
	})
}
