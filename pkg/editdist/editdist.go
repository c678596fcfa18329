// Package editdist measures how far apart two short strings are, for the
// "did you mean …?" hints of the config (a mistyped key) and of ecrhost (a
// mistyped region): one implementation for both.
package editdist

// Distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent bytes
// each cost one. It takes O(len(a)·len(b)) time, so callers bound what
// they pass (keys and regions are short).
func Distance(a, b string) int {
	// Three rows: the one before the previous (for transpositions), the
	// previous and the current.
	pp := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, pp[j-2]+1)
			}
			cur[j] = d
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
