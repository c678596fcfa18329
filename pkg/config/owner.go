package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/private"
)

// euid is the user the configuration file must be safe from others for. A
// variable so that tests, which run as root, can pose as an ordinary user.
var euid = os.Geteuid

// ErrOthersCanWrite is wrapped by the error Load returns for a
// configuration file that a user other than the current one and root could
// have written: the file itself (its owner or its mode) or the directory
// that holds it. Whoever can edit the file can set endpoint: and
// api_endpoint: and receive the registry tokens, so Load refuses it.
var ErrOthersCanWrite = errors.New("others can write the configuration file")

// othersCanWrite says why a configuration file is not safe from other users.
type othersCanWrite struct {
	file  string           // the configuration file, as named
	fileP *private.Problem // what is wrong with the file, if anything
	dir   string           // the directory that holds the file
	dirP  *private.Problem // what is wrong with the directory, if anything
}

// what words the problem and its consequence. Another user's file or
// directory is the whole story (the fix is to move away); modes of both are
// told at once, so one chmod fixes them.
func (w *othersCanWrite) what() string {
	const so = "make ecrgate send your registry tokens where they choose"
	switch {
	case w.fileP != nil && w.fileP.Kind == private.OtherOwner:
		return fmt.Sprintf("this file belongs to user id %d, neither you (user id %d) nor root, and that user could %s", w.fileP.Owner, w.fileP.User, so)
	case w.dirP != nil && w.dirP.Kind == private.OtherOwner:
		return fmt.Sprintf("the directory %s that holds this file belongs to user id %d, neither you (user id %d) nor root, and that user could %s", w.dir, w.dirP.Owner, w.dirP.User, so)
	case w.fileP != nil && w.dirP != nil:
		return fmt.Sprintf("other users can change this file (mode %04o) and the directory %s that holds it (mode %04o) and %s", w.fileP.Mode, w.dir, w.dirP.Mode, so)
	case w.fileP != nil:
		return fmt.Sprintf("other users can change this file (mode %04o) and %s", w.fileP.Mode, so)
	}
	return fmt.Sprintf("other users can change the directory %s that holds this file (mode %04o) and %s", w.dir, w.dirP.Mode, so)
}

// fix says what to do about it.
func (w *othersCanWrite) fix() string {
	switch {
	case w.fileP != nil && w.fileP.Kind == private.OtherOwner:
		return "copy it to a file of your own and point --config or ECRGATE_CONFIG there, or have root chown it to you"
	case w.dirP != nil && w.dirP.Kind == private.OtherOwner:
		return "move the file to a directory of your own and point --config or ECRGATE_CONFIG there"
	case w.fileP != nil && w.dirP != nil:
		return fmt.Sprintf("run \"chmod go-w %s %s\"", w.file, w.dir)
	case w.fileP != nil:
		return fmt.Sprintf("run \"chmod go-w %s\"", w.file)
	}
	return fmt.Sprintf("run \"chmod go-w %s\"", w.dir)
}

// readConfig reads the configuration file at path and checks the file it
// read and the directory that holds it (checkWriters). Errors are as
// os.ReadFile's; the check's problem is returned with the data.
func readConfig(path string) ([]byte, *othersCanWrite, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	return data, checkWriters(path, st), nil
}

// checkWriters checks the configuration file at path, st being the Stat of
// the file opened there, and the directory that holds it (the directory of
// the file a symbolic link resolves to): each must belong to the current
// user or root and be writable by no one else, a directory with the sticky
// bit excepted (private.Guarded). Read access is fine: the file holds no
// secrets. Nothing is checked on Windows.
func checkWriters(path string, st fs.FileInfo) *othersCanWrite {
	uid := euid()
	w := &othersCanWrite{file: path, fileP: private.Guarded(path, st, uid)}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path
	}
	w.dir = filepath.Dir(real)
	if dst, err := os.Stat(w.dir); err == nil {
		w.dirP = private.Guarded(w.dir, dst, uid)
	}
	if w.fileP == nil && w.dirP == nil {
		return nil
	}
	return w
}

// refusal is the error Load returns for w.
func refusal(w *othersCanWrite) error {
	return &Error{File: w.file, Msg: w.what() + ", so ecrgate refuses it: " + w.fix(), Err: ErrOthersCanWrite}
}

// LoadTolerant is Load for the programs that only read the configuration to
// hand Docker a token (docker-credential-ecrgate, ecrgate-fetch-token),
// which must keep working over a file that a umask of 002 left writable by
// its group. A file that others could have written (ErrOthersCanWrite) is
// not refused: it is read without its registries' endpoint and
// api_endpoint keys and without shared_proxies, so no token goes to an
// endpoint or a proxy another user chose,
// and warning (which wraps ErrOthersCanWrite) says so and how to fix the
// file. Every other problem is an error, as for Load.
func LoadTolerant(path string, env []string) (cfg *Config, warning error, err error) {
	cfg, w, err := load(path, env, false)
	if err != nil || w == nil {
		return cfg, nil, err
	}
	var ignored []string
	for i := range cfg.Registries {
		r := &cfg.Registries[i]
		if r.Endpoint != "" {
			ignored = append(ignored, indexKey("registries", i)+".endpoint")
		}
		if r.APIEndpoint != "" {
			ignored = append(ignored, indexKey("registries", i)+".api_endpoint")
		}
		r.Endpoint, r.APIEndpoint = "", ""
	}
	if len(cfg.SharedProxies) > 0 {
		// A shared proxy receives the user's tokens: as much a choice of
		// where tokens go as an endpoint.
		ignored = append(ignored, "shared_proxies")
		cfg.SharedProxies = nil
	}
	msg := w.what() + ", so its endpoint and api_endpoint keys would be ignored"
	if n := len(ignored); n > 0 {
		keys, verb := ignored[0], "is"
		if n > 1 {
			keys, verb = strings.Join(ignored[:n-1], ", ")+" and "+ignored[n-1], "are"
		}
		msg = w.what() + ", so its " + keys + " " + verb + " ignored"
	}
	return cfg, &Error{File: w.file, Msg: msg + ": " + w.fix(), Err: ErrOthersCanWrite}, nil
}

// policyWriters says why an "@file" policy at path, st being the Stat of
// the file opened there, is not safe from other users, or "" when it is:
// the same rule as for the configuration file (checkWriters). Whoever can
// change a repository policy file decides who may pull or push every
// repository ecrgate creates from that template.
func policyWriters(path string, st fs.FileInfo) string {
	w := checkWriters(path, st)
	if w == nil {
		return ""
	}
	switch {
	case w.fileP != nil && w.fileP.Kind == private.OtherOwner:
		return fmt.Sprintf("%s belongs to user id %d, neither you (user id %d) nor root, who could change the policy of every repository created from this template; keep the policy in a file of your own", path, w.fileP.Owner, w.fileP.User)
	case w.dirP != nil && w.dirP.Kind == private.OtherOwner:
		return fmt.Sprintf("the directory %s that holds %s belongs to user id %d, neither you (user id %d) nor root, who could change the policy of every repository created from this template; keep the policy in a directory of your own", w.dir, path, w.dirP.Owner, w.dirP.User)
	}
	return fmt.Sprintf("other users can change %s, and with it the policy of every repository created from this template, so ecrgate refuses it: %s", path, w.fix())
}
