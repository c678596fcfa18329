//go:build unix

package localca

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The attacks below are those of a user who can write the CA directory (its
// owner, or anyone when it is loose) or a certs directory (Docker Desktop's
// ~/.docker/certs.d, a --certs-dir of theirs), aimed at root's
// "sudo ecrgate ca install" or "sudo ecrgate ca uninstall".

const testHost2 = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"

// uninstallT runs Uninstall on the CA in dir, looking in certsDirs.
func uninstallT(dir string, certsDirs ...string) (*UninstallReport, error) {
	return Uninstall(dir, certsDirs)
}

// installedCA creates a CA in a temporary directory and installs it into a
// temporary certs directory for testHost. It returns the CA, the certs
// directory and the installed file.
func installedCA(t *testing.T) (*CA, string, string) {
	t.Helper()
	ca, err := Init(filepath.Join(t.TempDir(), "ca"), epoch)
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(t.TempDir(), "certs.d")
	if _, err := ca.Install(certs, []string{testHost}); err != nil {
		t.Fatal(err)
	}
	return ca, certs, filepath.Join(certs, testHost, installedFile)
}

// forgeManifest adds an entry for path, with the SHA-256 of what path holds
// now, to the manifest in the CA directory dir, as a user who can write it
// could.
func forgeManifest(t *testing.T, dir, path string) {
	t.Helper()
	mpath := filepath.Join(dir, ManifestFile)
	var m manifest
	if b, err := os.ReadFile(mpath); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	m.Files = append(m.Files, manifestEntry{Path: path, Host: filepath.Base(filepath.Dir(path)), SHA256: hashHex(cur)})
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mpath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeT(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlinkT(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// mustHold fails unless path (not followed) is a regular file holding
// content.
func mustHold(t *testing.T, path, content string) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s is gone: %v", path, err)
		return
	}
	if !st.Mode().IsRegular() {
		t.Errorf("%s is no longer a regular file (%v)", path, st.Mode())
		return
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("%s was overwritten: now %d bytes starting %q", path, len(b), b[:min(len(b), 27)])
	}
}

// mustLink fails unless path is still a symbolic link to target.
func mustLink(t *testing.T, path, target string) {
	t.Helper()
	if got, err := os.Readlink(path); err != nil || got != target {
		t.Errorf("the symbolic link %s was replaced or removed: %q, %v", path, got, err)
	}
}

// Uninstall removes <certs dir>/<ECR host>/ca.crt only when it is a regular
// file in a real directory holding exactly this CA's certificate, in one of
// the certs directories it is given, whatever the manifest says.
func TestUninstallRemovesOnlyWhatThisCAWrote(t *testing.T) {
	for _, tc := range []struct {
		name string
		// plant sets the trap and returns the path the manifest is made
		// to name and a check that the trap was left alone.
		plant func(t *testing.T, ca *CA, certs, tmp string) (string, func(t *testing.T))
	}{
		{"a file outside any certs directory (issue 11, B3)", func(t *testing.T, ca *CA, certs, tmp string) (string, func(t *testing.T)) {
			victim := filepath.Join(tmp, "etc", "kubernetes", "pki", "ca.crt")
			writeT(t, victim, "the cluster's CA\n")
			return victim, func(t *testing.T) { mustHold(t, victim, "the cluster's CA\n") }
		}},
		{"this CA in a certs directory uninstall was not given", func(t *testing.T, ca *CA, certs, tmp string) (string, func(t *testing.T)) {
			victim := filepath.Join(tmp, "elsewhere", testHost2, "ca.crt")
			writeT(t, victim, string(ca.PEM()))
			return victim, func(t *testing.T) { mustHold(t, victim, string(ca.PEM())) }
		}},
		{"this CA in a directory that is not an ECR host", func(t *testing.T, ca *CA, certs, tmp string) (string, func(t *testing.T)) {
			victim := filepath.Join(certs, "registry.example.com", "ca.crt")
			writeT(t, victim, string(ca.PEM()))
			return victim, func(t *testing.T) { mustHold(t, victim, string(ca.PEM())) }
		}},
		{"another CA with the recorded hash", func(t *testing.T, ca *CA, certs, tmp string) (string, func(t *testing.T)) {
			victim := filepath.Join(certs, testHost2, "ca.crt")
			writeT(t, victim, "the company's CA\n")
			return victim, func(t *testing.T) { mustHold(t, victim, "the company's CA\n") }
		}},
		{"host directory is a symbolic link", func(t *testing.T, ca *CA, certs, tmp string) (string, func(t *testing.T)) {
			pki := filepath.Join(tmp, "pki")
			writeT(t, filepath.Join(pki, "ca.crt"), string(ca.PEM()))
			link := filepath.Join(certs, testHost2)
			symlinkT(t, pki, link)
			return filepath.Join(link, "ca.crt"), func(t *testing.T) {
				mustHold(t, filepath.Join(pki, "ca.crt"), string(ca.PEM()))
				mustLink(t, link, pki)
			}
		}},
		{"ca.crt is a symbolic link", func(t *testing.T, ca *CA, certs, tmp string) (string, func(t *testing.T)) {
			target := filepath.Join(tmp, "copy.crt")
			writeT(t, target, string(ca.PEM()))
			link := filepath.Join(certs, testHost2, "ca.crt")
			symlinkT(t, target, link)
			return link, func(t *testing.T) {
				mustHold(t, target, string(ca.PEM()))
				mustLink(t, link, target)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, certs, ours := installedCA(t)
			victim, check := tc.plant(t, ca, certs, t.TempDir())
			forgeManifest(t, ca.Dir(), victim)

			rep, err := uninstallT(ca.Dir(), certs)
			if rep == nil {
				t.Fatalf("Uninstall: %v", err)
			}
			check(t)
			if _, err := os.Stat(filepath.Dir(victim)); err != nil {
				t.Errorf("the directory of %s is gone: %v", victim, err)
			}
			if slices.Contains(rep.Removed, victim) {
				t.Errorf("Uninstall reports %s removed", victim)
			}
			// What Install did write is removed all the same.
			if !slices.Equal(rep.Removed, []string{ours}) {
				t.Errorf("removed %v, want %v (err %v)", rep.Removed, []string{ours}, err)
			}
			if _, err := os.Lstat(ours); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Uninstall left %s", ours)
			}
		})
	}
}

// Uninstall trusts nothing in a CA directory that loading the CA would
// refuse: a directory others may enter or that belongs to another user,
// nor a manifest that is not a regular file.
func TestUninstallRefusesLooseCADir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, ca *CA, ours string)
		want  string
	}{
		{"directory others may enter", func(t *testing.T, ca *CA, ours string) { chmodT(t, ca.Dir(), 0o755) },
			"chmod 700"},
		{"directory of another user", func(t *testing.T, ca *CA, ours string) { poseAs(t, os.Getuid()+4242) },
			"not to you"},
		{"manifest is a symbolic link", func(t *testing.T, ca *CA, ours string) {
			mpath := filepath.Join(ca.Dir(), ManifestFile)
			moved := filepath.Join(t.TempDir(), "elsewhere.json")
			if err := os.Rename(mpath, moved); err != nil {
				t.Fatal(err)
			}
			symlinkT(t, moved, mpath)
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, certs, ours := installedCA(t)
			tc.setup(t, ca, ours)
			rep, err := uninstallT(ca.Dir(), certs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Uninstall error = %v, want it to contain %q", err, tc.want)
			}
			if rep != nil && len(rep.Removed) > 0 {
				t.Errorf("Uninstall removed %v", rep.Removed)
			}
			mustHold(t, ours, string(ca.PEM()))
		})
	}
}

// Install never writes through a symbolic link planted at a host directory
// or at ca.crt, and never counts a linked ca.crt as installed.
func TestInstallDoesNotFollowSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, ca *CA, certs, tmp string) func(t *testing.T)
	}{
		{"host directory links to another CA's directory", func(t *testing.T, ca *CA, certs, tmp string) func(t *testing.T) {
			pki := filepath.Join(tmp, "pki")
			writeT(t, filepath.Join(pki, "ca.crt"), "the cluster's CA\n")
			link := filepath.Join(certs, testHost)
			symlinkT(t, pki, link)
			forgeManifest(t, ca.Dir(), filepath.Join(link, "ca.crt"))
			return func(t *testing.T) {
				mustHold(t, filepath.Join(pki, "ca.crt"), "the cluster's CA\n")
				mustLink(t, link, pki)
			}
		}},
		{"host directory links to an empty directory", func(t *testing.T, ca *CA, certs, tmp string) func(t *testing.T) {
			empty := filepath.Join(tmp, "empty")
			if err := os.Mkdir(empty, 0o755); err != nil {
				t.Fatal(err)
			}
			symlinkT(t, empty, filepath.Join(certs, testHost))
			return func(t *testing.T) {
				if entries, _ := os.ReadDir(empty); len(entries) != 0 {
					t.Errorf("Install wrote %s into the linked directory", entries[0].Name())
				}
			}
		}},
		{"ca.crt links to another CA", func(t *testing.T, ca *CA, certs, tmp string) func(t *testing.T) {
			victim := filepath.Join(tmp, "kube-ca.crt")
			writeT(t, victim, "the cluster's CA\n")
			link := filepath.Join(certs, testHost, "ca.crt")
			symlinkT(t, victim, link)
			forgeManifest(t, ca.Dir(), link)
			return func(t *testing.T) {
				mustHold(t, victim, "the cluster's CA\n")
				mustLink(t, link, victim)
			}
		}},
		{"ca.crt links to a copy of this CA", func(t *testing.T, ca *CA, certs, tmp string) func(t *testing.T) {
			cp := filepath.Join(tmp, "copy.crt")
			writeT(t, cp, string(ca.PEM()))
			link := filepath.Join(certs, testHost, "ca.crt")
			symlinkT(t, cp, link)
			return func(t *testing.T) {
				mustLink(t, link, cp)
				if files, _ := Installed(ca.Dir()); len(files) != 0 {
					t.Errorf("a linked ca.crt was recorded as installed: %v", files)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := Init(filepath.Join(t.TempDir(), "ca"), epoch)
			if err != nil {
				t.Fatal(err)
			}
			certs := filepath.Join(t.TempDir(), "certs.d")
			check := tc.plant(t, ca, certs, t.TempDir())
			rep, err := ca.Install(certs, []string{testHost})
			if err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("Install error = %v, want a refusal naming the symbolic link", err)
			}
			if rep != nil && rep.Changed() {
				t.Errorf("Install wrote %v", rep.Written)
			}
			check(t)
			if left, _ := filepath.Glob(filepath.Join(certs, "*", ".*tmp*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// A manifest entry does not make Install replace a ca.crt that is not a
// CA ecrgate made: the entry's hash only says what the file holds.
func TestInstallReplacesOnlyItsOwnOldCA(t *testing.T) {
	ca, err := Init(filepath.Join(t.TempDir(), "ca"), epoch)
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(t.TempDir(), "certs.d")
	foreign := filepath.Join(certs, testHost, "ca.crt")
	writeT(t, foreign, "the company's CA\n")
	forgeManifest(t, ca.Dir(), foreign)

	rep, err := ca.Install(certs, []string{testHost})
	if err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Errorf("Install over a foreign ca.crt the manifest names: %v", err)
	}
	if rep != nil && rep.Changed() {
		t.Errorf("Install wrote %v", rep.Written)
	}
	mustHold(t, foreign, "the company's CA\n")
}
