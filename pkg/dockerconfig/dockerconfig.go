// Package dockerconfig reads and safely patches the Docker client's config
// file ($DOCKER_CONFIG/config.json, default ~/.docker/config.json) to add or
// remove "credHelpers" entries.
//
// Work happens in two steps. PlanCredHelpers and PlanRemoveCredHelpers read
// the file and compute the new content without touching anything; the caller
// shows Plan.Diff and Plan.Changes to the user, then calls Plan.Apply.
//
// The edit is a splice: only the value of the top-level "credHelpers" key
// (matched without regard to case, as Docker's decoder does) is
// rewritten (keys sorted, indented like the rest of the file, which for a
// file Docker wrote means a tab). Every other byte of the file — the other
// keys, their order, their values, whitespace, escapes, numbers — is kept as
// it was. When "credHelpers" is missing it is appended as the last top-level
// key; when removal empties it, the key is dropped, as Docker itself omits an
// empty map.
//
// Apply replaces the file atomically in the style of tailscale's atomicfile:
// a temporary file in the same directory, chmod, fsync, close, rename. It
// first writes a backup of the old content (config.json.bak-<UTC timestamp>,
// same mode) and holds an advisory lock (flock on config.json.lock beside the
// file) around the read-modify-write, re-reading the file under the lock and
// refusing with ErrChanged if it differs from what the plan was made from.
//
// Symlinks: when config.json is a symlink that resolves to a regular file
// (dotfile managers such as GNU Stow, chezmoi or home-manager create these),
// the link is followed and its target is replaced in place, in the target's
// directory, so the link keeps pointing where it did; this is also what the
// docker CLI does when it saves the file. Backup and lock file go beside the
// target. A symlink that does not resolve is refused rather than guessed at,
// and so is any target that is not a regular file (a directory, a device, a
// FIFO, a socket).
package dockerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ecrgate/ecrgate/pkg/environ"
)

// FileName is the name of Docker's client config file.
const FileName = "config.json"

// maxFileSize bounds how much of a config file is read. Real files are a few
// kilobytes; the bound only stops a mistaken path from reading a huge file.
const maxFileSize = 32 << 20

// credHelpersKey is the top-level key this package edits.
const credHelpersKey = "credHelpers"

// ErrChanged reports that the config file was modified by someone else
// between planning and applying.
var ErrChanged = errors.New("changed since the plan was made")

// Path returns the path of Docker's client config file for the environment
// env (in os.Environ form): $DOCKER_CONFIG/config.json when DOCKER_CONFIG is
// set and not empty, else $HOME/.docker/config.json (%USERPROFILE% when HOME
// is unset, as on Windows). When a variable appears more than once the last
// one wins, as with exec.Cmd.Env. Path returns "" when none of them is set.
func Path(env []string) string {
	if dir := environ.Get(env, "DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, FileName)
	}
	home := environ.Get(env, "HOME")
	if home == "" {
		home = environ.Get(env, "USERPROFILE")
	}
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".docker", FileName)
}

// Change is one edit of the credHelpers map.
type Change struct {
	Host string // normalized registry host, the credHelpers key
	Old  string // helper before; "" when the entry is added
	New  string // helper after; "" when the entry is removed
}

func (c Change) String() string {
	switch {
	case c.Old == "":
		return fmt.Sprintf("add credHelpers[%q] = %q", c.Host, c.New)
	case c.New == "":
		return fmt.Sprintf("remove credHelpers[%q] (was %q)", c.Host, c.Old)
	default:
		return fmt.Sprintf("replace credHelpers[%q]: %q -> %q", c.Host, c.Old, c.New)
	}
}

// Plan is the outcome of reading the config file and computing an edit.
// Nothing is written until Apply.
type Plan struct {
	Path    string   // the config file path as given
	Target  string   // the regular file Apply replaces: Path, or where the symlink Path resolves to
	Exists  bool     // whether the file existed when the plan was made
	Before  []byte   // content when the plan was made (nil when it did not exist)
	After   []byte   // content Apply writes; equal to Before when there are no changes
	Changes []Change // sorted by host; empty when the file already says what was asked

	now func() time.Time // clock for backup names; time.Now when nil
}

// PlanCredHelpers computes what setting credHelpers[host] = helper for every
// host would do. helper is the suffix of the helper binary's name: "ecrgate"
// for docker-credential-ecrgate. Hosts are normalized with NormalizeHost. A
// host already mapped to helper is no change; a host mapped to another helper
// is replaced, reported as a Change with Old set.
//
// A file that is not valid JSON gives an error naming the file, line and
// column; the file is never touched while planning.
func PlanCredHelpers(path, helper string, hosts []string) (*Plan, error) {
	return PlanCredHelpersDropping(path, helper, hosts, nil)
}

// PlanCredHelpersDropping is PlanCredHelpers that also removes every entry
// mapped to helper whose host drop reports true (entries an earlier
// version wrote that must go, such as local proxy hosts), unless the host
// is one of hosts.
func PlanCredHelpersDropping(path, helper string, hosts []string, drop func(host string) bool) (*Plan, error) {
	p, err := plan(path, helper, hosts, func(helpers map[string]string, host string) (Change, bool) {
		old, ok := helpers[host]
		if ok && old == helper {
			return Change{}, false
		}
		helpers[host] = helper
		return Change{Host: host, Old: old, New: helper}, true
	}, drop)
	return p, err
}

// PlanRemoveCredHelpers computes what removing credHelpers[host] would do for
// every host mapped to helper. Hosts mapped to another helper, and hosts not
// in the map, are left alone and are no change. When the removal leaves
// credHelpers empty, the key itself is removed.
func PlanRemoveCredHelpers(path, helper string, hosts []string) (*Plan, error) {
	return plan(path, helper, hosts, func(helpers map[string]string, host string) (Change, bool) {
		old, ok := helpers[host]
		if !ok || old != helper {
			return Change{}, false
		}
		delete(helpers, host)
		return Change{Host: host, Old: old}, true
	}, nil)
}

// NormalizeHost turns a registry as users write it into the key Docker looks
// up in credHelpers: scheme and anything from the first "/" on are dropped
// (so a trailing slash goes too), and the host is lower-cased.
// "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/" becomes
// "123456789012.dkr.ecr.us-east-1.amazonaws.com".
func NormalizeHost(host string) (string, error) {
	h := strings.TrimSpace(host)
	for _, scheme := range []string{"https://", "http://"} {
		if len(h) >= len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) {
			h = h[len(scheme):]
			break
		}
	}
	other := strings.Contains(h, "://") // a scheme other than http(s)
	h, _, _ = strings.Cut(h, "/")
	h = strings.ToLower(h)
	switch {
	case h == "":
		return "", fmt.Errorf("registry host %q is empty; give a host such as 123456789012.dkr.ecr.us-east-1.amazonaws.com", host)
	case other || strings.ContainsAny(h, " \t\r\n\"\\@?#"):
		return "", fmt.Errorf("registry host %q is not a host name; give a host such as 123456789012.dkr.ecr.us-east-1.amazonaws.com", host)
	}
	return h, nil
}

func checkHelper(helper string) error {
	switch {
	case helper == "":
		return errors.New("credential helper name is empty")
	case strings.HasPrefix(helper, "docker-credential-"):
		return fmt.Errorf("credential helper %q must be given without the docker-credential- prefix", helper)
	case strings.ContainsAny(helper, "/\\ \t\r\n\""):
		return fmt.Errorf("credential helper %q is not a valid name; give the suffix of docker-credential-<name>", helper)
	}
	return nil
}

// edit applies one host's edit to helpers and reports the change, if any.
type edit func(helpers map[string]string, host string) (Change, bool)

func plan(path, helper string, hosts []string, fn edit, drop func(host string) bool) (*Plan, error) {
	if path == "" {
		return nil, errors.New("cannot locate the docker config file; set DOCKER_CONFIG or HOME")
	}
	if err := checkHelper(helper); err != nil {
		return nil, err
	}
	var norm []string
	for _, h := range hosts {
		n, err := NormalizeHost(h)
		if err != nil {
			return nil, err
		}
		norm = append(norm, n)
	}
	slices.Sort(norm)
	norm = slices.Compact(norm)

	target, info, err := resolve(path)
	if err != nil {
		return nil, err
	}
	p := &Plan{Path: path, Target: target, Exists: info != nil}
	if p.Exists {
		if p.Before, err = readFile(target, info); err != nil {
			return nil, err
		}
	}
	doc, err := parseDocument(path, p.Before)
	if err != nil {
		return nil, err
	}
	helpers, err := doc.credHelpers(path)
	if err != nil {
		return nil, err
	}
	next := maps.Clone(helpers)
	if next == nil {
		next = map[string]string{}
	}
	for _, h := range norm {
		if c, ok := fn(next, h); ok {
			p.Changes = append(p.Changes, c)
		}
	}
	if drop != nil {
		for _, h := range slices.Sorted(maps.Keys(next)) {
			if next[h] == helper && drop(h) && !slices.Contains(norm, h) {
				delete(next, h)
				p.Changes = append(p.Changes, Change{Host: h, Old: helper})
			}
		}
		slices.SortFunc(p.Changes, func(a, b Change) int { return strings.Compare(a.Host, b.Host) })
	}
	if len(p.Changes) == 0 {
		p.After = p.Before
		return p, nil
	}
	after, err := doc.withCredHelpers(next)
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", path, err)
	}
	if !json.Valid(after) {
		// A bug here must never reach the disk.
		return nil, fmt.Errorf("update %s: internal error: the edited file is not valid JSON", path)
	}
	p.After = after
	return p, nil
}

// resolve returns the regular file path stands for, following a symlink, and
// its FileInfo; info is nil when the file does not exist.
func resolve(path string) (target string, info fs.FileInfo, err error) {
	info, err = os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("inspect docker config: %w", err)
	}
	target = path
	if info.Mode()&fs.ModeSymlink != 0 {
		target, err = filepath.EvalSymlinks(path)
		if err != nil {
			return "", nil, fmt.Errorf("%s is a symlink that does not resolve to a file (%w); create its target or remove the link, then run again", path, err)
		}
		if info, err = os.Lstat(target); err != nil {
			return "", nil, fmt.Errorf("inspect docker config: %w", err)
		}
	}
	if !info.Mode().IsRegular() {
		what := "not a regular file"
		switch {
		case info.IsDir():
			what = "a directory"
		case info.Mode()&fs.ModeDevice != 0:
			what = "a device"
		case info.Mode()&fs.ModeNamedPipe != 0:
			what = "a named pipe"
		case info.Mode()&fs.ModeSocket != 0:
			what = "a socket"
		}
		if target != path {
			return "", nil, fmt.Errorf("%s is a symlink to %s, which is %s; point DOCKER_CONFIG at a directory with a regular config.json", path, target, what)
		}
		return "", nil, fmt.Errorf("%s is %s, not a regular file; move it away or point DOCKER_CONFIG elsewhere", path, what)
	}
	return target, info, nil
}

func readFile(path string, info fs.FileInfo) ([]byte, error) {
	if info.Size() > maxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, larger than a docker config can sensibly be; check the path", path, info.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than a docker config can sensibly be; check the path", path)
	}
	return data, nil
}

// member is one top-level key/value pair, located by byte offsets.
type member struct {
	name     string
	keyStart int // offset of the key's opening quote
	valStart int // offset of the value's first byte
	valEnd   int // offset just past the value
}

// document is a config file's top-level object, with enough offsets to
// splice in a new credHelpers value and keep every other byte.
type document struct {
	data        []byte
	blank       bool // missing, empty or whitespace-only file: treated as {}
	open, close int  // offsets of the top-level '{' and '}'
	members     []member
	helpers     int // index of credHelpers in members, -1 when absent
}

func parseDocument(path string, data []byte) (*document, error) {
	d := &document{data: data, helpers: -1}
	if len(bytes.TrimSpace(data)) == 0 {
		d.blank = true
		return d, nil
	}
	// Validate the whole file first: it gives errors with an exact offset
	// and guarantees the token walk below sees well-formed input.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, parseError(path, data, err)
	}
	if top == nil { // the file is "null"
		return nil, fmt.Errorf("%s: the top level is null, not a JSON object; fix the file and run again", path)
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, parseError(path, data, err)
	}
	d.open = int(dec.InputOffset()) - 1
	pos := d.open + 1
	for dec.More() {
		m := member{keyStart: skipSpaceAndCommas(data, pos)}
		tok, err := dec.Token()
		if err != nil {
			return nil, parseError(path, data, err)
		}
		m.name, _ = tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, parseError(path, data, err)
		}
		m.valEnd = int(dec.InputOffset())
		m.valStart = m.valEnd - len(raw)
		if m.valStart < 0 || !bytes.Equal(data[m.valStart:m.valEnd], raw) || data[m.keyStart] != '"' {
			return nil, fmt.Errorf("%s: internal error locating key %q", path, m.name)
		}
		// Docker decodes the file into a struct, where encoding/json matches
		// keys case-insensitively: "CredHelpers" is credHelpers too.
		if strings.EqualFold(m.name, credHelpersKey) {
			if d.helpers >= 0 {
				return nil, fmt.Errorf("%s: %q appears twice at the top level (as %q and %q); merge them by hand and run again",
					path, credHelpersKey, d.members[d.helpers].name, m.name)
			}
			d.helpers = len(d.members)
		}
		d.members = append(d.members, m)
		pos = m.valEnd
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, parseError(path, data, err)
	}
	d.close = int(dec.InputOffset()) - 1
	if data[d.open] != '{' || data[d.close] != '}' {
		return nil, fmt.Errorf("%s: internal error locating the top-level object", path)
	}
	return d, nil
}

// skipSpaceAndCommas returns the offset of the first byte at or after i
// that is neither JSON whitespace nor a comma.
func skipSpaceAndCommas(data []byte, i int) int {
	for i < len(data) && strings.IndexByte(" \t\r\n,", data[i]) >= 0 {
		i++
	}
	return i
}

// parseError turns a decoding error into one naming the file and position.
func parseError(path string, data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Errorf("%s is not valid JSON: line %d, column %d (byte %d): %w; fix the file and run again", path, line, col, syn.Offset, err)
	case errors.As(err, &typ):
		return fmt.Errorf("%s: the top level is a JSON %s, not an object; fix the file and run again", path, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		line := 1 + bytes.Count(data, []byte("\n"))
		col := len(data) - bytes.LastIndexByte(data, '\n')
		return fmt.Errorf("%s is not valid JSON: line %d, column %d: unexpected end of input; fix the file and run again", path, line, col)
	}
	return fmt.Errorf("%s is not valid JSON: %w; fix the file and run again", path, err)
}

// syntaxOffsetPastByte reports whether a *json.SyntaxError's Offset counts
// the offending byte (encoding/json v1: "after reading Offset bytes") or
// points at it (the v2-based implementation, GOEXPERIMENT=jsonv2).
var syntaxOffsetPastByte = sync.OnceValue(func() bool {
	var syn *json.SyntaxError
	return errors.As(json.Unmarshal([]byte("x"), new(any)), &syn) && syn.Offset == 1
})

// position converts an encoding/json error offset into the 1-based line and
// column of the offending byte.
func position(data []byte, offset int64) (line, col int) {
	if syntaxOffsetPastByte() {
		offset--
	}
	i := int(min(max(offset, 0), int64(len(data))))
	lineStart := bytes.LastIndexByte(data[:i], '\n') + 1
	return 1 + bytes.Count(data[:i], []byte("\n")), i - lineStart + 1
}

// credHelpers decodes the current credHelpers map (nil when absent or null).
func (d *document) credHelpers(path string) (map[string]string, error) {
	if d.helpers < 0 {
		return nil, nil
	}
	m := d.members[d.helpers]
	var helpers map[string]string
	if err := json.Unmarshal(d.data[m.valStart:m.valEnd], &helpers); err != nil {
		line := 1 + bytes.Count(d.data[:m.valStart], []byte("\n"))
		return nil, fmt.Errorf("%s: line %d: %q must map registry hosts to helper names (%w); fix it and run again", path, line, credHelpersKey, err)
	}
	return helpers, nil
}

// style returns how top-level members are separated and indented: the
// whitespace before the first key (e.g. "\n\t") and one indentation unit,
// or compact when the file puts its members on one line.
func (d *document) style() (sep, indent string, compact bool) {
	if d.blank || len(d.members) == 0 {
		return "\n\t", "\t", false
	}
	ws := string(d.data[d.open+1 : d.members[0].keyStart])
	nl := strings.LastIndexByte(ws, '\n')
	if nl < 0 {
		return "", "", true
	}
	indent = ws[nl+1:]
	if indent == "" || strings.Trim(indent, " \t") != "" {
		indent = "\t"
	}
	return ws, indent, false
}

// withCredHelpers returns the file content with credHelpers set to helpers,
// or without the key when helpers is empty.
func (d *document) withCredHelpers(helpers map[string]string) ([]byte, error) {
	sep, indent, compact := d.style()
	var val []byte
	var err error
	if compact {
		val, err = json.Marshal(helpers)
	} else {
		val, err = json.MarshalIndent(helpers, indent, indent)
	}
	if err != nil {
		return nil, err
	}
	key, _ := json.Marshal(credHelpersKey)
	var out []byte
	switch {
	case len(helpers) == 0 && d.helpers < 0:
		return d.data, nil
	case len(helpers) == 0: // drop the member with the comma that joins it
		i := d.helpers
		m := d.members[i]
		switch {
		case len(d.members) == 1:
			out = concat(d.data[:d.open+1], d.data[d.close:])
		case i > 0:
			out = concat(d.data[:d.members[i-1].valEnd], d.data[m.valEnd:])
		default:
			out = concat(d.data[:m.keyStart], d.data[d.members[1].keyStart:])
		}
	case d.helpers >= 0:
		m := d.members[d.helpers]
		out = concat(d.data[:m.valStart], val, d.data[m.valEnd:])
	case d.blank:
		out = concat([]byte("{\n\t"), key, []byte(": "), val, []byte("\n}"))
	case len(d.members) == 0: // "{}" or "{ }": lay it out as docker would
		out = concat(d.data[:d.open], []byte("{\n\t"), key, []byte(": "), val, []byte("\n}"), d.data[d.close+1:])
	default: // append after the last member
		last := d.members[len(d.members)-1].valEnd
		colon := ": "
		if compact {
			colon = ":"
		}
		out = concat(d.data[:last], []byte(","+sep), key, []byte(colon), val, d.data[last:])
	}
	return out, nil
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}
