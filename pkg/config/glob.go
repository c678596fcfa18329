package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Globs in allow and deny match whole repository names:
//
//	*     any run of characters within one path component (not '/')
//	**    any run of characters, '/' included
//	**/   at the start or after '/': zero or more whole components
//
// Every other character stands for itself. So "team/*" matches "team/app"
// but not "team/app/api", "team/**" matches both, "*/tmp*" matches
// "team/tmp-1" but not "tmp-1" or "a/b/tmp-1", and "**/tmp*" matches all
// three.

// globProblem says what is wrong with pattern, or "" if it is valid.
func globProblem(pattern string) string {
	switch {
	case pattern == "":
		return "pattern must not be empty"
	case len(pattern) > 512:
		return fmt.Sprintf("pattern is %d characters long; repository names have at most 256", len(pattern))
	}
	for i, r := range pattern {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', strings.ContainsRune("._-/*", r):
		case r >= 'A' && r <= 'Z':
			return fmt.Sprintf("pattern %q must be lower case, as repository names are", pattern)
		default:
			return fmt.Sprintf("pattern %q has %q at position %d; only a-z, 0-9, '.', '_', '-', '/' and the wildcards * and ** may appear", pattern, r, i+1)
		}
	}
	switch {
	case strings.HasPrefix(pattern, "/") || strings.HasSuffix(pattern, "/"):
		return fmt.Sprintf("pattern %q must not start or end with '/'", pattern)
	case strings.Contains(pattern, "//"):
		return fmt.Sprintf("pattern %q must not contain '//'", pattern)
	case strings.Contains(pattern, "***"):
		return fmt.Sprintf("pattern %q has '***'; use * or **", pattern)
	}
	return ""
}

// compileGlob turns a valid pattern into an anchored regular expression.
func compileGlob(pattern string) (*regexp.Regexp, error) {
	if p := globProblem(pattern); p != "" {
		return nil, fmt.Errorf("%s", p)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**/") && (i == 0 || pattern[i-1] == '/'):
			b.WriteString("(?:.*/)?")
			i += 3
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(".*")
			i += 2
		case pattern[i] == '*':
			b.WriteString("[^/]*")
			i++
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			i++
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
