package localca

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// DockerCertsDir is where dockerd looks for per-registry CA certificates on
// Linux: <DockerCertsDir>/<host>/*.crt. dockerd reads it on every
// connection, so a change needs no restart.
const DockerCertsDir = "/etc/docker/certs.d"

// DockerDesktopCertsDir returns Docker Desktop's per-registry certificate
// directory for the environment env: $HOME/.docker/certs.d, or "" without
// HOME.
func DockerDesktopCertsDir(env []string) string {
	if h := getenv(env, "HOME"); h != "" {
		return filepath.Join(h, ".docker", "certs.d")
	}
	return ""
}

// installedFile is the name Install gives the CA in each host directory.
const installedFile = "ca.crt"

// manifest is the content of ManifestFile: every file Install wrote (or
// found already holding the CA), with the SHA-256 of what it wrote, so that
// Uninstall removes exactly those files and only while they are unchanged.
type manifest struct {
	Files []manifestEntry `json:"files"`
}

type manifestEntry struct {
	Path   string `json:"path"`   // absolute
	Host   string `json:"host"`   // the registry host the file is for
	SHA256 string `json:"sha256"` // hex SHA-256 of the content written
}

// InstallReport says what Install did, by absolute path.
type InstallReport struct {
	Written   []string // created, or replaced an earlier CA that Install had written
	Unchanged []string // already held this CA
	Manifest  string   // the manifest file recording them
}

// Changed reports whether Install wrote anything.
func (r *InstallReport) Changed() bool { return len(r.Written) > 0 }

// Install writes the CA certificate to <certsDir>/<host>/ca.crt for each
// host, which dockerd then trusts for that registry, and records every such
// file in the CA directory's manifest for Uninstall. Running it twice changes
// nothing. Hosts ecrhost.Parse rejects are refused with its reason (the
// CA's name constraints would make a certificate for them useless), as are
// hosts the CA does not permit. A ca.crt that Install did not write and that
// holds something else is left alone and reported as an error; one that
// holds this very CA is recorded as installed. Errors for some hosts do not
// stop the others; file-system errors wrap the underlying error, so
// errors.Is(err, fs.ErrPermission) tells the caller that root is needed.
func (c *CA) Install(certsDir string, hosts []string) (*InstallReport, error) {
	if certsDir == "" {
		return nil, errors.New("no certificate directory given")
	}
	certsDir, err := filepath.Abs(certsDir)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	for _, h := range hosts {
		r, err := ecrhost.Parse(h)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
			continue
		}
		if !c.Permits(r.Host) {
			errs = append(errs, fmt.Errorf("%s: the local CA in %s does not permit this host (it predates this region): run \"ecrgate ca uninstall\", remove the CA files and run \"ecrgate ca init\" again", r.Host, c.dir))
			continue
		}
		if !slices.Contains(names, r.Host) {
			names = append(names, r.Host)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(names) == 0 {
		return nil, errors.New("no registry hosts to install the CA for")
	}

	mpath := filepath.Join(c.dir, ManifestFile)
	m, err := readManifest(mpath)
	if err != nil {
		return nil, err
	}
	rep := &InstallReport{Manifest: mpath}
	sum := hashHex(c.pem)
	changed := false
	for _, host := range names {
		path := filepath.Join(certsDir, host, installedFile)
		i := m.index(path)
		cur, err := os.ReadFile(path)
		switch {
		case err == nil && bytes.Equal(cur, c.pem):
			rep.Unchanged = append(rep.Unchanged, path)
			if i < 0 || m.Files[i].SHA256 != sum {
				m.put(manifestEntry{Path: path, Host: host, SHA256: sum})
				changed = true
			}
			continue
		case err == nil && (i < 0 || hashHex(cur) != m.Files[i].SHA256):
			errs = append(errs, fmt.Errorf("%s already exists with other content that ecrgate did not write; it is left alone: move it away, or choose another --certs-dir", path))
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Errorf("read %s: %w", path, err))
			continue
		}
		// Missing, or an earlier CA that Install wrote: write this one.
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			errs = append(errs, fmt.Errorf("create %s: %w", filepath.Dir(path), err))
			continue
		}
		if err := writeReplace(path, c.pem, 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", path, err))
			continue
		}
		rep.Written = append(rep.Written, path)
		m.put(manifestEntry{Path: path, Host: host, SHA256: sum})
		changed = true
	}
	if changed {
		if err := writeManifest(mpath, m); err != nil {
			errs = append(errs, fmt.Errorf("record the installed files in %s (ecrgate ca uninstall will not know them): %w", mpath, err))
		}
	}
	return rep, errors.Join(errs...)
}

// UninstallReport says what Uninstall did, by absolute path.
type UninstallReport struct {
	Removed     []string // files removed
	RemovedDirs []string // host directories removed because they became empty
	Missing     []string // recorded files that were already gone
	Modified    []string // recorded files whose content changed since; left in place
	Manifest    string   // the manifest file
}

// Changed reports whether Uninstall removed anything.
func (r *UninstallReport) Changed() bool { return len(r.Removed) > 0 }

// Uninstall removes the files the manifest in the CA directory dir records,
// each only if it still holds what Install wrote; a modified file is left in
// place and reported. A host directory that becomes empty is removed too.
// The manifest then forgets every file it handled; files that could not be
// removed (permission denied, say) stay recorded for another try, and their
// errors are returned. Running it twice does nothing the second time. It
// needs only the manifest, not the CA.
func Uninstall(dir string) (*UninstallReport, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, ManifestFile)
	m, err := readManifest(mpath)
	if err != nil {
		return nil, err
	}
	rep := &UninstallReport{Manifest: mpath}
	if len(m.Files) == 0 {
		return rep, nil
	}
	var keep []manifestEntry
	var errs []error
	for _, e := range m.Files {
		cur, err := os.ReadFile(e.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			rep.Missing = append(rep.Missing, e.Path)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("read %s: %w", e.Path, err))
			keep = append(keep, e)
			continue
		case hashHex(cur) != e.SHA256:
			rep.Modified = append(rep.Modified, e.Path)
			continue
		}
		if err := os.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", e.Path, err))
			keep = append(keep, e)
			continue
		}
		rep.Removed = append(rep.Removed, e.Path)
		// Only an empty directory can be removed; one with other files
		// (client certificates, another CA) stays.
		if d := filepath.Dir(e.Path); os.Remove(d) == nil {
			rep.RemovedDirs = append(rep.RemovedDirs, d)
		}
	}
	m.Files = keep
	if len(keep) == 0 {
		if err := os.Remove(mpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("clear %s: %w", mpath, err))
		}
	} else if err := writeManifest(mpath, m); err != nil {
		errs = append(errs, fmt.Errorf("update %s: %w", mpath, err))
	}
	return rep, errors.Join(errs...)
}

// Installed returns the files the manifest in the CA directory dir records,
// sorted.
func Installed(dir string) ([]string, error) {
	m, err := readManifest(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(m.Files))
	for i, e := range m.Files {
		out[i] = e.Path
	}
	return out, nil
}

func (m *manifest) index(path string) int {
	return slices.IndexFunc(m.Files, func(e manifestEntry) bool { return e.Path == path })
}

func (m *manifest) put(e manifestEntry) {
	if i := m.index(e.Path); i >= 0 {
		m.Files[i] = e
		return
	}
	m.Files = append(m.Files, e)
	slices.SortFunc(m.Files, func(a, b manifestEntry) int { return strings.Compare(a.Path, b.Path) })
}

// readManifest reads the manifest at path; a missing file is an empty one.
func readManifest(path string) (*manifest, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &manifest{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v): remove the files it lists by hand, then remove it", path, err)
	}
	for _, e := range m.Files {
		if !filepath.IsAbs(e.Path) || filepath.Base(e.Path) != installedFile || e.SHA256 == "" {
			return nil, fmt.Errorf("%s is corrupt (entry %q): remove the files it lists by hand, then remove it", path, e.Path)
		}
	}
	return &m, nil
}

func writeManifest(path string, m *manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeReplace(path, append(data, '\n'), 0o644)
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
