// Package ecrname holds Amazon ECR's rules for repository names and image tags,
// so the emulator and the proxy reject exactly what ECR rejects, with a reason.
package ecrname

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Limits documented by ECR (see shared/ECR-FACTS.md).
const (
	MinNameLen = 2
	MaxNameLen = 256
	MaxTagLen  = 300
)

// Pattern is ECR's repository name grammar.
const Pattern = `(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*`

var (
	nameRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^` + Pattern + `$`) })
	componentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`) })
	// Docker's tag grammar; ECR allows up to MaxTagLen characters.
	tagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`) })
)

// Error says why a name or tag breaks ECR's rules.
type Error struct {
	Value  string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid repository name %q: %s", e.Value, e.Reason)
}

// ValidateRepository reports whether name is a valid ECR repository name and, if
// not, the first rule it breaks.
func ValidateRepository(name string) error {
	if nameRE().MatchString(name) && len(name) >= MinNameLen && len(name) <= MaxNameLen {
		return nil
	}
	return &Error{Value: name, Reason: reason(name)}
}

func reason(name string) string {
	switch {
	case len(name) < MinNameLen:
		return fmt.Sprintf("must be at least %d characters long", MinNameLen)
	case len(name) > MaxNameLen:
		return fmt.Sprintf("must be at most %d characters long (it has %d)", MaxNameLen, len(name))
	case strings.ToLower(name) != name:
		return "must be lower case"
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return "must not start or end with '/'"
	case strings.Contains(name, "//"):
		return "must not contain an empty path component ('//')"
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)) {
			return fmt.Sprintf("character %q at position %d is not allowed (use a-z, 0-9, '.', '_', '-', '/')", r, i+1)
		}
	}
	for _, c := range strings.Split(name, "/") {
		if !componentRE().MatchString(c) {
			return fmt.Sprintf("path component %q must start and end with a letter or digit and use only single '.', '_' or '__', or runs of '-' between them", c)
		}
	}
	return "must match " + Pattern
}

// ValidateTag reports whether tag is a valid image tag for ECR.
func ValidateTag(tag string) error {
	switch {
	case tag == "":
		return &Error{Value: tag, Reason: "tag must not be empty"}
	case len(tag) > MaxTagLen:
		return &Error{Value: tag, Reason: fmt.Sprintf("tag must be at most %d characters long", MaxTagLen)}
	case !tagRE().MatchString(tag):
		return &Error{Value: tag, Reason: "tag must start with a letter, digit or '_' and contain only letters, digits, '_', '.' and '-'"}
	}
	return nil
}
