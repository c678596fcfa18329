package blobindex

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
)

const reg = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

func TestAddLookupForget(t *testing.T) {
	x := Open(Options{MaxRepos: 2})
	x.Add(reg, "team/a", "sha256:1", 10)
	x.Add(reg, "team/b", "sha256:1", -1)
	x.Add(reg, "team/c", "sha256:1", -1)
	repos, size, ok := x.Lookup(reg, "sha256:1")
	if !ok || size != 10 || !slices.Equal(repos, []string{"team/c", "team/b"}) {
		t.Fatalf("Lookup = %q, %d, %v; want [team/c team/b] (most recent first, at most 2), 10, true", repos, size, ok)
	}
	if _, _, ok := x.Lookup("222222222222.dkr.ecr.us-east-1.amazonaws.com", "sha256:1"); ok {
		t.Error("a blob of one registry is known in another")
	}
	x.Forget(reg, "team/c", "sha256:1")
	if repos, _, _ := x.Lookup(reg, "sha256:1"); !slices.Equal(repos, []string{"team/b"}) {
		t.Errorf("after Forget(team/c): %q", repos)
	}
	x.Forget(reg, "team/b", "sha256:1")
	if _, _, ok := x.Lookup(reg, "sha256:1"); ok || x.Len() != 0 {
		t.Errorf("after forgetting every repository the entry stays (Len %d)", x.Len())
	}
}

func TestLRUEviction(t *testing.T) {
	x := Open(Options{MaxEntries: 3})
	for i := range 3 {
		x.Add(reg, "r", fmt.Sprintf("sha256:%d", i), 1)
	}
	x.Lookup(reg, "sha256:0") // used: 1 is now the least recently used
	x.Add(reg, "r", "sha256:3", 1)
	if _, _, ok := x.Lookup(reg, "sha256:1"); ok {
		t.Error("least recently used entry sha256:1 kept past MaxEntries")
	}
	for _, d := range []string{"sha256:0", "sha256:2", "sha256:3"} {
		if _, _, ok := x.Lookup(reg, d); !ok {
			t.Errorf("%s evicted", d)
		}
	}

	// The byte bound: entries go, oldest first, until the file fits.
	y := Open(Options{MaxFileBytes: 2000})
	for i := range 100 {
		y.Add(reg, "team/app", fmt.Sprintf("sha256:%064d", i), 1)
	}
	if n := y.Len(); n == 0 || n >= 100 {
		t.Fatalf("Len = %d with MaxFileBytes 2000, want some but not all 100", n)
	}
	if _, _, ok := y.Lookup(reg, fmt.Sprintf("sha256:%064d", 99)); !ok {
		t.Error("newest entry evicted by the byte bound")
	}
	if _, _, ok := y.Lookup(reg, fmt.Sprintf("sha256:%064d", 0)); ok {
		t.Error("oldest entry kept past the byte bound")
	}
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "ecrgate", "blobs.json")
	x := Open(Options{Path: path, MaxEntries: 2})
	x.Add(reg, "base", "sha256:old", 5)
	x.Add(reg, "base", "sha256:a", 5)
	x.Add(reg, "team/app", "sha256:b", 7)
	x.Add(reg, "team/app2", "sha256:b", 7)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("index file mode %o, want 0600", st.Mode().Perm())
		}
	}
	y := Open(Options{Path: path, MaxEntries: 2})
	defer y.Close()
	if repos, size, ok := y.Lookup(reg, "sha256:b"); !ok || size != 7 || !slices.Equal(repos, []string{"team/app2", "team/app"}) {
		t.Errorf("reloaded sha256:b = %q %d %v", repos, size, ok)
	}
	if _, _, ok := y.Lookup(reg, "sha256:old"); ok {
		t.Error("evicted entry came back from the file")
	}
	// The order of use survives: a is older than b, so it goes first.
	y.Lookup(reg, "sha256:b")
	y.Add(reg, "x", "sha256:c", 1)
	if _, _, ok := y.Lookup(reg, "sha256:a"); ok {
		t.Error("least recently used entry of the reloaded index kept")
	}
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":   "{not json",
		"truncated": `{"version":1,"entries":[{"registry":"r","digest":"sha256:1","size":1,"repos":["a"]}`,
		"version":   `{"version":99,"entries":[]}`,
		"nulls":     `{"version":1,"entries":[null,{"registry":"","digest":"x"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			x := Open(Options{Path: path})
			if x.Len() != 0 {
				t.Errorf("Len = %d from a bad file", x.Len())
			}
			x.Add(reg, "a", "sha256:1", 1)
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			y := Open(Options{Path: path})
			defer y.Close()
			if _, _, ok := y.Lookup(reg, "sha256:1"); !ok {
				t.Error("the bad file was not replaced by a good one")
			}
		})
	}
	if runtime.GOOS == "windows" {
		return
	}
	path := filepath.Join(dir, "open.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"entries":[{"registry":"`+reg+`","digest":"sha256:1","size":1,"repos":["a"]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if x := Open(Options{Path: path}); x.Len() != 0 {
		t.Error("a file others can read was loaded")
	}
}

func TestConcurrent(t *testing.T) {
	x := Open(Options{Path: filepath.Join(t.TempDir(), "b.json"), MaxEntries: 50, FlushInterval: 1})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				d := fmt.Sprintf("sha256:%d", i%70)
				x.Add(reg, fmt.Sprintf("r%d", g), d, int64(i))
				x.Lookup(reg, d)
				if i%7 == 0 {
					x.Forget(reg, fmt.Sprintf("r%d", g), d)
				}
			}
		})
	}
	wg.Wait()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if n := x.Len(); n > 50 {
		t.Errorf("Len = %d > MaxEntries", n)
	}
}
