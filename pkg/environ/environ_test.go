package environ

import "testing"

func TestLastEntryWins(t *testing.T) {
	env := []string{"A=1", "B=", "junk", "A=2", "C=x=y"}
	for _, tc := range []struct {
		name, want string
		set        bool
	}{
		{"A", "2", true},
		{"B", "", true},
		{"C", "x=y", true},
		{"D", "", false},
		{"junk", "", false},
	} {
		v, ok := Lookup(env, tc.name)
		if v != tc.want || ok != tc.set || Get(env, tc.name) != tc.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tc.name, v, ok, tc.want, tc.set)
		}
		if m := Map(env); m[tc.name] != tc.want {
			t.Errorf("Map()[%q] = %q, want %q", tc.name, m[tc.name], tc.want)
		}
	}
}
