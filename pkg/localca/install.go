package localca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/environ"
)

// DockerCertsDir is where dockerd looks for per-registry CA certificates on
// Linux: <DockerCertsDir>/<host>/*.crt. dockerd reads it on every
// connection, so a change needs no restart.
const DockerCertsDir = "/etc/docker/certs.d"

// DockerDesktopCertsDir returns Docker Desktop's per-registry certificate
// directory for the environment env: $HOME/.docker/certs.d, or "" without
// HOME.
func DockerDesktopCertsDir(env []string) string {
	if h := environ.Get(env, "HOME"); h != "" {
		return filepath.Join(h, ".docker", "certs.d")
	}
	return ""
}

// installedFile is the name Install gives the CA in each host directory.
const installedFile = "ca.crt"

// manifest is the content of ManifestFile: every file Install wrote (or
// found already holding the CA). It tells Uninstall where to look and
// Install which old ca.crt it wrote, but it is never the authority for
// removing or replacing a file: the CA directory's owner can write anything
// into it, and root runs on that user's directory under sudo. So Uninstall
// removes only what holds this CA's certificate, and Install replaces only
// an old certificate that an ecrgate CA's name constraints confine to ECR
// hosts.
type manifest struct {
	Files []manifestEntry `json:"files"`
}

type manifestEntry struct {
	Path   string `json:"path"`   // absolute: <certs dir>/<host>/ca.crt
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
// holds this very CA is recorded as installed. A host directory or ca.crt
// that is a symbolic link (or not a directory, not a regular file) is never
// written through, and is reported as an error; the certificate is written
// atomically beside ca.crt and renamed over it. Errors for some hosts do
// not stop the others; file-system errors wrap the underlying error, so
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

	caRoot, err := openCADir(c.dir)
	if err != nil {
		return nil, err
	}
	defer caRoot.Close()
	mpath := filepath.Join(c.dir, ManifestFile)
	m, err := readManifest(caRoot, mpath)
	if err != nil {
		return nil, err
	}
	rep := &InstallReport{Manifest: mpath}
	if err := os.MkdirAll(certsDir, 0o755); err != nil {
		return rep, fmt.Errorf("create %s: %w", certsDir, err)
	}
	certsRoot, err := os.OpenRoot(certsDir)
	if err != nil {
		return rep, fmt.Errorf("open %s: %w", certsDir, err)
	}
	defer certsRoot.Close()
	sum := hashHex(c.pem)
	changed := false
	for _, host := range names {
		path := filepath.Join(certsDir, host, installedFile)
		wrote, err := c.installHost(certsRoot, host, path, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if wrote {
			rep.Written = append(rep.Written, path)
		} else {
			rep.Unchanged = append(rep.Unchanged, path)
		}
		if i := m.index(path); wrote || i < 0 || m.Files[i].SHA256 != sum {
			m.put(manifestEntry{Path: path, Host: host, SHA256: sum})
			changed = true
		}
	}
	if changed {
		if err := writeManifest(caRoot, m); err != nil {
			errs = append(errs, fmt.Errorf("record the installed files in %s (ecrgate ca uninstall will not know them): %w", mpath, err))
		}
	}
	return rep, errors.Join(errs...)
}

// installHost makes <certsRoot>/<host>/ca.crt, whose full name is path,
// hold the CA certificate, and reports whether it wrote it.
func (c *CA) installHost(certsRoot *os.Root, host, path string, m *manifest) (bool, error) {
	dir := filepath.Dir(path)
	hostDir, _, err := openSubdir(certsRoot, host, true)
	if errors.Is(err, errNotPlain) {
		return false, fmt.Errorf("%s is a symbolic link or not a directory; ecrgate does not write through it and leaves it alone: remove it, or choose another --certs-dir", dir)
	}
	if err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	defer hostDir.Close()
	cur, err := readRegular(hostDir, installedFile, maxCertFile)
	switch {
	case err == nil && bytes.Equal(cur, c.pem):
		return false, nil
	case err == nil && !m.wrote(path, cur):
		return false, fmt.Errorf("%s already exists with other content that ecrgate did not write; it is left alone: move it away, or choose another --certs-dir", path)
	case errors.Is(err, errNotPlain):
		return false, fmt.Errorf("%s is a symbolic link or not a regular file; ecrgate does not write through it and leaves it alone: remove it, or choose another --certs-dir", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	// Missing, or an earlier CA that Install wrote: write this one.
	if err := writeIn(hostDir, installedFile, c.pem, 0o644); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// wrote reports whether cur, the content of path, is an earlier ecrgate CA
// certificate that Install wrote there: recorded with cur's hash, and a CA
// certificate whose critical name constraints permit ECR registry domains
// only, so that replacing it takes no other name's trust away.
func (m *manifest) wrote(path string, cur []byte) bool {
	i := m.index(path)
	if i < 0 || m.Files[i].SHA256 != hashHex(cur) {
		return false
	}
	block, rest := pem.Decode(cur)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA || !cert.BasicConstraintsValid || !cert.PermittedDNSDomainsCritical ||
		len(cert.PermittedDNSDomains) == 0 || !slices.Equal(cert.Subject.Organization, []string{"ecrgate"}) {
		return false
	}
	for _, d := range cert.PermittedDNSDomains {
		if d == ecrhost.PublicHost {
			continue
		}
		const account = "000000000000."
		if r, err := ecrhost.Parse(account + d); err != nil || r.Host != account+d {
			return false
		}
	}
	return true
}

// UninstallReport says what Uninstall did, by absolute path.
type UninstallReport struct {
	Removed     []string // files removed
	RemovedDirs []string // host directories removed because they became empty
	Missing     []string // recorded files that were already gone
	// Modified are recorded files that no longer hold this CA's
	// certificate as a regular file in a real directory (changed since,
	// or a symbolic link); left in place and forgotten.
	Modified []string
	// Elsewhere are recorded files that are not <certs dir>/<ECR host>/ca.crt
	// in one of the certificate directories Uninstall was given; left in
	// place and still recorded.
	Elsewhere []string
	Manifest  string // the manifest file
}

// Changed reports whether Uninstall removed anything.
func (r *UninstallReport) Changed() bool { return len(r.Removed) > 0 }

// Uninstall removes the copies of the CA in dir that Install put in the
// certificate directories certsDirs, as its manifest records them. It
// trusts the manifest only to say where to look: first it checks the CA
// directory as loading the CA does (the current user's, or any owner's for
// root, and closed to group and others) and loads the CA; then it removes a
// recorded file only if it is <one of certsDirs>/<ECR registry host>/ca.crt,
// a regular file in a real directory (no symbolic link at either), holding
// exactly this CA's certificate. A host directory that becomes empty is
// removed too. Files that hold something else are left in place and
// reported; files outside certsDirs are left in place, reported, and stay
// recorded for an Uninstall given their directory. Files that could not be
// removed (permission denied, say) stay recorded for another try, and their
// errors are returned. Running it twice does nothing the second time.
func Uninstall(dir string, certsDirs []string) (*UninstallReport, error) {
	if dir == "" {
		return nil, errors.New("no CA directory: set HOME or XDG_DATA_HOME, or pass --dir")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, ManifestFile)
	rep := &UninstallReport{Manifest: mpath}
	caRoot, err := openCADir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, nil // no CA directory: nothing was installed from it
	}
	if err != nil {
		return nil, err
	}
	defer caRoot.Close()
	m, err := readManifest(caRoot, mpath)
	if err != nil {
		return nil, err
	}
	if len(m.Files) == 0 {
		return rep, nil
	}
	ca, err := Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		paths := make([]string, len(m.Files))
		for i, e := range m.Files {
			paths[i] = e.Path
		}
		return nil, fmt.Errorf("the CA certificate in %s is gone, so ecrgate cannot tell the files it installed from others and removes none: check and remove these yourself, then remove %s: %s",
			dir, mpath, strings.Join(paths, ", "))
	}
	if err != nil {
		return nil, err
	}

	var dirs []string
	for _, d := range certsDirs {
		if d == "" {
			continue
		}
		if d, err = filepath.Abs(d); err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
	}
	roots := map[string]*os.Root{}
	defer func() {
		for _, r := range roots {
			if r != nil {
				r.Close()
			}
		}
	}()
	var keep []manifestEntry
	var errs []error
	for _, e := range m.Files {
		certsDir, host, ok := locate(e.Path, dirs)
		if !ok {
			rep.Elsewhere = append(rep.Elsewhere, e.Path)
			keep = append(keep, e)
			continue
		}
		certsRoot, seen := roots[certsDir]
		if !seen {
			certsRoot, err = os.OpenRoot(certsDir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("open %s: %w", certsDir, err))
				keep = append(keep, e)
				continue
			}
			roots[certsDir] = certsRoot
		}
		if certsRoot == nil {
			rep.Missing = append(rep.Missing, e.Path)
			continue
		}
		removedDir, err := ca.uninstallHost(certsRoot, host, e.Path, rep)
		if err != nil {
			errs = append(errs, err)
			keep = append(keep, e)
		}
		if removedDir {
			rep.RemovedDirs = append(rep.RemovedDirs, filepath.Dir(e.Path))
		}
	}
	m.Files = keep
	if len(keep) == 0 {
		if err := caRoot.Remove(ManifestFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("clear %s: %w", mpath, err))
		}
	} else if err := writeManifest(caRoot, m); err != nil {
		errs = append(errs, fmt.Errorf("update %s: %w", mpath, err))
	}
	return rep, errors.Join(errs...)
}

// locate splits path into a directory of dirs and an ECR registry host when
// it is exactly <dir>/<host>/ca.crt, host as ecrhost.Parse normalizes it.
func locate(path string, dirs []string) (dir, host string, ok bool) {
	host = filepath.Base(filepath.Dir(path))
	dir = filepath.Dir(filepath.Dir(path))
	if !slices.Contains(dirs, dir) || filepath.Join(dir, host, installedFile) != path {
		return "", "", false
	}
	if r, err := ecrhost.Parse(host); err != nil || r.Host != host {
		return "", "", false
	}
	return dir, host, true
}

// uninstallHost removes <certsRoot>/<host>/ca.crt, whose full name is path,
// if it holds this CA's certificate, adding path to rep's Removed, Missing
// or Modified, and then the host directory if that left it empty; it
// reports whether it removed the directory. An error means path stays
// recorded.
func (c *CA) uninstallHost(certsRoot *os.Root, host, path string, rep *UninstallReport) (bool, error) {
	hostDir, hostSt, err := openSubdir(certsRoot, host, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rep.Missing = append(rep.Missing, path)
		return false, nil
	case errors.Is(err, errNotPlain):
		rep.Modified = append(rep.Modified, path)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("open %s: %w", filepath.Dir(path), err)
	}
	cur, err := readRegular(hostDir, installedFile, int64(len(c.pem)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rep.Missing = append(rep.Missing, path)
		hostDir.Close()
		return false, nil
	case errors.Is(err, errNotPlain) || err == nil && !bytes.Equal(cur, c.pem):
		rep.Modified = append(rep.Modified, path)
		hostDir.Close()
		return false, nil
	case err != nil:
		hostDir.Close()
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	err = hostDir.Remove(installedFile)
	hostDir.Close()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("remove %s: %w", path, err)
	}
	rep.Removed = append(rep.Removed, path)
	// Only an empty directory can be removed; one with other files
	// (client certificates, another CA) stays. Only the very directory
	// checked above, never a symbolic link put in its place.
	if st, err := certsRoot.Lstat(host); err != nil || !st.IsDir() || !os.SameFile(st, hostSt) {
		return false, nil
	}
	return certsRoot.Remove(host) == nil, nil
}

// Installed returns the files the manifest in the CA directory dir records,
// sorted. The directory must pass the checks that loading the CA makes.
func Installed(dir string) ([]string, error) {
	r, err := openCADir(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	m, err := readManifest(r, filepath.Join(dir, ManifestFile))
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

// readManifest reads ManifestFile in the CA directory r (path names it in
// errors); a missing file is an empty one, and one that is not a regular
// file is refused.
func readManifest(r *os.Root, path string) (*manifest, error) {
	data, err := readRegular(r, ManifestFile, maxManifestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &manifest{}, nil
	}
	if errors.Is(err, errNotPlain) {
		return nil, fmt.Errorf("%s is not a regular file (a symbolic link or other), and ecrgate does not follow it: remove it, and the files \"ecrgate ca install\" wrote by hand", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxManifestFile {
		return nil, fmt.Errorf("%s is corrupt (larger than %d bytes): remove the files it lists by hand, then remove it", path, maxManifestFile)
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

// writeManifest replaces ManifestFile in the CA directory r with m.
func writeManifest(r *os.Root, m *manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeIn(r, ManifestFile, append(data, '\n'), 0o644)
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
