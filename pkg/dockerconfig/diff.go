package dockerconfig

import (
	"fmt"
	"regexp"
	"strings"
)

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

// maxDiffCells bounds the line-matching table; past it the changed region is
// shown as all removed, then all added.
const maxDiffCells = 1 << 22

var (
	// secretValue matches the string values Docker keeps credentials in.
	secretValue = regexp.MustCompile(`("(?i:auth|identitytoken|registrytoken|password)"\s*:\s*)"(?:[^"\\]|\\.)*"`)
	// urlUserinfo matches credentials in a URL, e.g. in "proxies".
	urlUserinfo = regexp.MustCompile(`(://)[^/@"\s]+@`)
)

// redact hides credentials that may sit on context lines of a diff: the
// diff is for a terminal, and terminals end up in CI logs.
func redact(s string) string {
	s = secretValue.ReplaceAllString(s, `${1}"<redacted>"`)
	return urlUserinfo.ReplaceAllString(s, `${1}<redacted>@`)
}

// Diff returns a unified diff of Before against After for showing to the
// user, or "" when the plan changes nothing. Credential values (auth,
// identitytoken, registrytoken, password, and user:password@ in URLs) are
// redacted.
func (p *Plan) Diff() string {
	if len(p.Changes) == 0 {
		return ""
	}
	from := p.Path
	if !p.Exists {
		from = "/dev/null"
	}
	return unifiedDiff(from, p.Path, splitLines(redact(string(p.Before))), splitLines(redact(string(p.After))))
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

type diffOp struct {
	kind byte // ' ', '-' or '+'
	text string
}

// lineDiff returns an edit script turning a into b: the longest common
// subsequence of lines, after trimming the common prefix and suffix.
func lineDiff(a, b []string) []diffOp {
	var ops []diffOp
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		ops = append(ops, diffOp{' ', a[pre]})
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(ma), len(mb)
	if n*m > maxDiffCells {
		for _, l := range ma {
			ops = append(ops, diffOp{'-', l})
		}
		for _, l := range mb {
			ops = append(ops, diffOp{'+', l})
		}
	} else {
		// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				ops = append(ops, diffOp{' ', ma[i]})
				i++
				j++
			case j < m && (i == n || lcs[i][j+1] > lcs[i+1][j]):
				ops = append(ops, diffOp{'+', mb[j]})
				j++
			default:
				ops = append(ops, diffOp{'-', ma[i]})
				i++
			}
		}
	}
	for _, l := range a[len(a)-suf:] {
		ops = append(ops, diffOp{' ', l})
	}
	return ops
}

// unifiedDiff formats the edit script of a and b as unified diff hunks.
func unifiedDiff(from, to string, a, b []string) string {
	ops := lineDiff(a, b)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", from, to)
	aLine, bLine := 0, 0 // lines of a and b before ops[i]
	for i := 0; i < len(ops); {
		// Find the next change; the hunk starts diffContext lines before it.
		next := i
		for next < len(ops) && ops[next].kind == ' ' {
			next++
		}
		if next == len(ops) {
			break
		}
		start := max(next-diffContext, i)
		aLine += start - i // ops[i:start] are all unchanged
		bLine += start - i
		// Extend over changes separated by at most 2*diffContext equal
		// lines, where two hunks would overlap or touch.
		last := next
		for j := next; j < len(ops) && j-last-1 <= 2*diffContext; j++ {
			if ops[j].kind != ' ' {
				last = j
			}
		}
		end := min(last+diffContext+1, len(ops))
		var aCount, bCount int
		for _, op := range ops[start:end] {
			if op.kind != '+' {
				aCount++
			}
			if op.kind != '-' {
				bCount++
			}
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(aLine, aCount), hunkRange(bLine, bCount))
		for _, op := range ops[start:end] {
			sb.WriteByte(op.kind)
			sb.WriteString(op.text)
			sb.WriteByte('\n')
		}
		aLine += aCount
		bLine += bCount
		i = end
	}
	return sb.String()
}

// hunkRange formats a hunk's line range; before is the number of lines
// preceding the hunk.
func hunkRange(before, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", before)
	case 1:
		return fmt.Sprint(before + 1)
	}
	return fmt.Sprintf("%d,%d", before+1, count)
}
