package editdist

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"templates", "templates", 0},
		{"tempaltes", "templates", 1}, // a swap of adjacent letters
		{"template", "templates", 1},
		{"us-eas-1", "us-east-1", 1},
		{"useast1", "us-east-1", 2},
		{"eu-west-1", "us-west-2", 3},
		{"ca", "abc", 3}, // OSA, not Damerau: no edit of a transposed pair
		{"kitten", "sitting", 3},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
}
