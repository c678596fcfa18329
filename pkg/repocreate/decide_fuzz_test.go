package repocreate

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrname"
)

const fuzzRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// splitList turns one fuzzed string into a short list ("a,b" → [a b]),
// bounded so that the reference matchers below stay cheap.
func splitList(s string, max, maxLen int) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > max {
		parts = parts[:max]
	}
	for i, p := range parts {
		if len(p) > maxLen {
			parts[i] = p[:maxLen]
		}
	}
	return parts
}

// validGlob is the documented pattern syntax (config/glob.go): a-z, 0-9,
// '.', '_', '-', '/' and the wildcards; no '/' at either end, no '//', no
// '***'. The configuration refuses anything else at start.
func validGlob(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "***") {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/*", r)) {
			return false
		}
	}
	return true
}

// globMatch is an independent reading of the documented glob semantics:
// '*' any run within one component, '**' any run across components, '**/'
// at the start or after '/' zero or more whole components.
func globMatch(pattern, name string) bool {
	memo := map[[2]int]bool{}
	seen := map[[2]int]bool{}
	var m func(i, j int) bool
	m = func(i, j int) bool {
		k := [2]int{i, j}
		if seen[k] {
			return memo[k]
		}
		seen[k] = true
		var ok bool
		switch p := pattern[i:]; {
		case p == "":
			ok = j == len(name)
		case strings.HasPrefix(p, "**/") && (i == 0 || pattern[i-1] == '/'):
			ok = m(i+3, j)
			for x := j; !ok && x < len(name); x++ {
				ok = name[x] == '/' && m(i+3, x+1)
			}
		case strings.HasPrefix(p, "**"):
			for x := j; !ok && x <= len(name); x++ {
				ok = m(i+2, x)
			}
		case p[0] == '*':
			for x := j; !ok && x <= len(name); x++ {
				ok = m(i+1, x)
				if x < len(name) && name[x] == '/' {
					break
				}
			}
		default:
			ok = j < len(name) && name[j] == p[0] && m(i+1, j+1)
		}
		memo[k] = ok
		return ok
	}
	return m(0, 0)
}

// refTemplate is ECR's template choice read from the documentation: the
// longest prefix p with name under p+"/" (the first of equals), else the
// first ROOT, else none (-1).
func refTemplate(prefixes []string, name string) int {
	best, root := -1, -1
	for i, p := range prefixes {
		p = strings.TrimSuffix(p, "/")
		if p == config.RootPrefix {
			if root < 0 {
				root = i
			}
			continue
		}
		if p != "" && strings.HasPrefix(name, p+"/") && (best < 0 || len(p) > len(strings.TrimSuffix(prefixes[best], "/"))) {
			best = i
		}
	}
	if best < 0 {
		return root
	}
	return best
}

var hostileNames = []string{
	"..", "a/../b", "%2e%2e", "a%2Fb", "Team/App", strings.Repeat("a", 257), strings.Repeat("a", 256), "a//b", "a/", "/a",
	"ünïcödé", "app\x00", "a\r\nb", "", "a", "ab", "team/tmp1", "team/app", "team/app/api", "tools/x", "tools/x/y",
	"x/secret", "a/b/c/secret", "teamx/app",
}

// FuzzDecide checks the decision for any name under any small set of
// templates and allow/deny rules against independent readings of the
// documented rules: invalid names are NAME_INVALID and nothing else, a name
// a deny rule matches (or that no allow rule admits) is DENIED naming the
// rule, the template is the longest matching prefix (else ROOT, else the
// built-in default, exactly as matchNative picks ECR's own templates), and
// the same input always gives the same answer.
func FuzzDecide(f *testing.F) {
	for _, n := range hostileNames {
		f.Add(n, "ROOT,team,team/app/", "team/**,tools/*", "*/tmp*,**/secret")
		f.Add(n, "", "", "")
		f.Add(n, "team,team", "**", "**/tmp*")
		f.Add(n, "a/b,a,ROOT,ROOT", "a/**/c,*", "*")
	}
	f.Fuzz(func(t *testing.T, name, templates, allow, deny string) {
		prefixes := splitList(templates, 6, 40)
		cfg := &config.Config{Path: "fuzz.yaml", Allow: splitList(allow, 4, 24), Deny: splitList(deny, 4, 24)}
		for _, p := range append(cfg.Allow, cfg.Deny...) {
			if !validGlob(p) {
				return // the configuration refuses it at start
			}
		}
		for i, p := range prefixes {
			cfg.Templates = append(cfg.Templates, config.Template{Prefix: p, Tags: map[string]string{"i": strconv.Itoa(i)}})
		}

		p, err := Decide(cfg, fuzzRegistry, name)
		p2, err2 := Decide(cfg, fuzzRegistry, name)
		if !reflect.DeepEqual(p, p2) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("Decide(%q) not deterministic: %+v %v, then %+v %v", name, p, err, p2, err2)
		}
		var ec errcode.Error
		if err != nil && !errors.As(err, &ec) {
			t.Fatalf("Decide(%q) error %v (%T) is not an errcode.Error", name, err, err)
		}

		if ecrname.ValidateRepository(name) != nil {
			if err == nil || ec.Code != errcode.ErrorCodeNameInvalid || !reflect.DeepEqual(p, Plan{}) || !strings.Contains(ec.Message, strconv.Quote(name)) {
				t.Fatalf("Decide(%q) = %+v, %v; want NAME_INVALID quoting the name and no plan", name, p, err)
			}
			return
		}

		// Allow and deny, as documented: a matching deny rule wins, then
		// the allow list (empty admits all).
		denyRule := ""
		for _, d := range cfg.Deny {
			if globMatch(d, name) {
				denyRule = d
				break
			}
		}
		admitted := len(cfg.Allow) == 0
		for _, a := range cfg.Allow {
			admitted = admitted || globMatch(a, name)
		}
		switch {
		case denyRule != "":
			if err == nil || ec.Code != errcode.ErrorCodeDenied || !strings.Contains(ec.Message, fmt.Sprintf("denied by rule %q", denyRule)) {
				t.Fatalf("Decide(%q) with deny %q = %v; want DENIED naming rule %q", name, cfg.Deny, err, denyRule)
			}
		case !admitted:
			if err == nil || ec.Code != errcode.ErrorCodeDenied || !strings.Contains(ec.Message, "matches no rule of allow") {
				t.Fatalf("Decide(%q) with allow %q = %v; want DENIED (not in the allow list)", name, cfg.Allow, err)
			}
		default:
			if err != nil {
				t.Fatalf("Decide(%q) with allow %q deny %q = %v; want it allowed", name, cfg.Allow, cfg.Deny, err)
			}
		}

		// The plan is complete either way, for the name asked about.
		if p.Registry != fuzzRegistry || p.Repository != name || p.Input == nil || aws.ToString(p.Input.RepositoryName) != name ||
			aws.ToString(p.Input.RegistryId) != "123456789012" {
			t.Fatalf("Decide(%q) plan %+v is not for that name in %s", name, p, fuzzRegistry)
		}

		want := refTemplate(prefixes, name)
		native := matchNative(prefixes, name)
		if want < 0 {
			// No template matches: the documented built-in default.
			in := p.Input
			if p.Template.Prefix != "" || p.TemplateName() != "builtin" || native != "" ||
				in.ImageTagMutability != types.ImageTagMutabilityMutable || in.EncryptionConfiguration.EncryptionType != types.EncryptionTypeAes256 ||
				in.EncryptionConfiguration.KmsKey != nil || in.ImageScanningConfiguration.ScanOnPush || len(in.Tags) != 0 ||
				len(in.ImageTagMutabilityExclusionFilters) != 0 || p.LifecyclePolicy != "" || p.RepositoryPolicy != "" {
				t.Fatalf("Decide(%q) with templates %q = %+v (native %q); want the built-in default", name, prefixes, p, native)
			}
			return
		}
		if got := p.Template.Tags["i"]; got != strconv.Itoa(want) {
			t.Fatalf("Decide(%q) with templates %q chose template #%s (%q), want #%d (%q)", name, prefixes, got, p.Template.Prefix, want, prefixes[want])
		}
		if wantPrefix := strings.TrimSuffix(prefixes[want], "/"); native != wantPrefix || p.TemplateName() != wantPrefix {
			t.Fatalf("Decide(%q) with templates %q: local template %q, ECR's own matcher %q, want %q", name, prefixes, p.TemplateName(), native, wantPrefix)
		}
		if len(p.Input.Tags) != 1 || aws.ToString(p.Input.Tags[0].Value) != strconv.Itoa(want) {
			t.Fatalf("Decide(%q): CreateRepository tags %+v are not template #%d's", name, p.Input.Tags, want)
		}
	})
}

func TestGlobMatchReference(t *testing.T) {
	// The reference matcher itself, on the documented examples.
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"team/*", "team/app", true}, {"team/*", "team/app/api", false}, {"team/**", "team/app/api", true},
		{"*/tmp*", "team/tmp-1", true}, {"*/tmp*", "tmp-1", false}, {"*/tmp*", "a/b/tmp-1", false},
		{"**/tmp*", "tmp-1", true}, {"**/tmp*", "a/b/tmp-1", true}, {"a/**/c", "a/c", true}, {"a/**/c", "a/b/x/c", true},
		{"a/**/c", "a/bc", false}, {"a**/c", "ab/x/c", true},
	} {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
		if ok, _ := (&config.Config{Allow: []string{tt.pattern}}).Allowed(tt.name); ok != tt.want {
			t.Errorf("config allow %q for %q = %v, want %v", tt.pattern, tt.name, ok, tt.want)
		}
	}
}
