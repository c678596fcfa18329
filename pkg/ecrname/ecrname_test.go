package ecrname

import (
	"net/url"
	"strings"
	"testing"
)

func TestValidateRepository(t *testing.T) {
	long := strings.Repeat("a", 257)
	tests := []struct {
		name   string
		reason string // "" = valid
	}{
		{"ab", ""},
		{"team/app", ""},
		{"team/app-1.2_x__y", ""},
		{"a--b/c---d", ""},
		{"a/b/c/d/e", ""},
		{strings.Repeat("a", 256), ""},
		{"a", "at least 2"},
		{"", "at least 2"},
		{long, "at most 256"},
		{"Team/app", "lower case"},
		{"/team", "start or end"},
		{"team/", "start or end"},
		{"team//app", "empty path component"},
		{"team/app:1", "character ':'"},
		{"team app", "character ' '"},
		{"team/-app", "path component \"-app\""},
		{"team/app.", "path component \"app.\""},
		{"team/a..b", "path component \"a..b\""},
		{"team/a___b", "path component \"a___b\""},
		{"team/a._b", "path component \"a._b\""},
	}
	for _, tt := range tests {
		err := ValidateRepository(tt.name)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("ValidateRepository(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("ValidateRepository(%q) = %v, want reason containing %q", tt.name, err, tt.reason)
		}
	}
}

func TestValidateTag(t *testing.T) {
	for tag, ok := range map[string]bool{
		"latest": true, "1.0.0": true, "_x": true, "v1-rc.2_b": true,
		"": false, ".x": false, "-x": false, "a:b": false, "a/b": false,
		strings.Repeat("t", 300): true, strings.Repeat("t", 301): false,
	} {
		if err := ValidateTag(tag); (err == nil) != ok {
			t.Errorf("ValidateTag(%q) = %v, want ok=%v", tag, err, ok)
		}
	}
}

func FuzzValidateRepository(f *testing.F) {
	for _, s := range []string{"team/app", "a", "A/b", "a//b", "a__b", "a-.b",
		// Hostile names a client may send (see pkg/proxy/badinput_test.go).
		"..", "a/../b", "a/./b", "%2e%2e", "a%2Fb", strings.Repeat("a", 257), strings.Repeat("a", 256), "a/", "/a",
		"ünïcödé/app", "app\x00", "a\r\nX-Injected: 1", "a\tb", "a b", "a/b/../../../etc", "a...b", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateRepository(s)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Reason == "" || e.Value != s {
				t.Fatalf("ValidateRepository(%q) = %#v: want an *Error with the value and a reason", s, err)
			}
			return
		}
		if len(s) < MinNameLen || len(s) > MaxNameLen || strings.ToLower(s) != s {
			t.Fatalf("accepted %q", s)
		}
		// The proxy relies on this: an accepted name has no empty or dot
		// segment and nothing a URL path would percent-encode, so a name
		// that arrives encoded was encoded to get past the rules.
		for _, c := range strings.Split(s, "/") {
			if c == "" || c == "." || c == ".." || url.PathEscape(c) != c || strings.Trim(c, "._-") != c {
				t.Fatalf("accepted %q with path component %q", s, c)
			}
		}
	})
}
