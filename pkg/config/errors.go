package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/editdist"
)

// Error is one problem in a configuration, located by file, line and key path.
// The errors returned by Parse, Load and Validate are *Error values, joined
// with errors.Join when there is more than one; errors.As finds them.
type Error struct {
	File string // file name given to Parse or Load; "" for a Config built in code
	Line int    // 1-based line in File; 0 when unknown
	Key  string // key path such as "templates[1].image_tag_mutability"; "" for the file itself
	Msg  string // what is wrong: lower case, no final period
	Err  error  // underlying error, if any (for errors.Is, e.g. fs.ErrNotExist)
}

// Error formats e as "file:line: key: message", leaving out the parts that
// are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// joinErrors orders errs by line (problems without a line last, in the order
// found) and joins them; it returns nil for none.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// Key paths look like templates[1].tags["cost-center"]: names joined by
// dots, list indexes and quoted map keys in brackets.

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func indexKey(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func mapKey(parent, k string) string { return parent + "[" + strconv.Quote(k) + "]" }

// parentKey returns the key path that contains key, "" for a top-level key.
func parentKey(key string) string {
	last := 0 // start of the last segment
	for i := 0; i < len(key); {
		switch key[i] {
		case '.':
			last = i
			i++
		case '[':
			last = i
			if i+1 < len(key) && key[i+1] == '"' {
				q, err := strconv.QuotedPrefix(key[i+1:])
				if err != nil {
					return key[:i]
				}
				i += 1 + len(q)
			}
			for i < len(key) && key[i] != ']' {
				i++
			}
			i++
		default:
			i++
		}
	}
	return key[:last]
}

// suggest returns the candidate that name was probably meant to be, or "".
// Spelling variants (case, '-' for '_') match outright; otherwise the nearest
// candidate by edit distance (a swap of two letters counts once) wins if it
// is close enough.
func suggest(name string, candidates []string) string {
	fold := func(s string) string {
		return strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", -1
	for _, c := range candidates {
		if fold(c) == fold(name) {
			return c
		}
		d := distance(strings.ToLower(name), c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(1, min(3, len(best)/3))
	if bestDist >= 0 && bestDist <= limit {
		return best
	}
	return ""
}

// distance is editdist.Distance for keys: junk longer than any key is not
// worth the time.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	return editdist.Distance(a, b)
}
