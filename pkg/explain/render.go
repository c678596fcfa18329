package explain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteJSON writes r as one indented JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for a person: one "label  value" line per fact, the
// template's settings indented below it, the verdict last.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	line("name", "%s", r.Input)
	switch r.Mode {
	case ModeRegistry:
		how := "registry mode: default_registry"
		switch {
		case r.Route != "":
			how = fmt.Sprintf("registry mode: route %q (prefix removed)", r.Route)
		case r.Via != "" && !strings.HasPrefix(r.Via, "default_registry"):
			how = "registry mode: " + r.Via
		}
		line("mode", "%s", how)
	case ModeIntercept:
		line("mode", "intercept mode: the real ECR name, decrypted by ecrgate")
	case ModeDirect:
		line("mode", "direct: not intercepted by ecrgate")
	case ModeBare:
		how := "a name without a host, mapped like localhost:5000/<name>"
		if r.Route != "" {
			how += fmt.Sprintf(" (route %q, prefix removed)", r.Route)
		}
		line("mode", "%s", how)
	}
	line("registry", "%s", r.Registry)
	line("repository", "%s", r.Repository)
	for _, n := range r.Notes {
		line("note", "%s", n)
	}
	if !r.Valid {
		line("valid", "no: %s", r.InvalidReason)
	} else {
		line("valid", "yes")
	}
	if r.Rule != nil {
		where := r.Rule.Key
		if r.Rule.Line > 0 {
			where = fmt.Sprintf("%s, %s:%d", where, r.Rule.File, r.Rule.Line)
		} else if r.Rule.File != "" && where != "" {
			where = fmt.Sprintf("%s in %s", where, r.Rule.File)
		}
		if where != "" {
			where = " (" + where + ")"
		}
		verb := "may create it"
		if !r.Rule.Allowed {
			verb = "may not create it"
		}
		line("rule", "%s%s: ecrgate %s", r.Rule.Rule, where, verb)
	}
	if r.Identity != "" {
		line("identity", "%s", r.Identity)
	}
	switch {
	case r.Exists != nil && *r.Exists:
		line("exists", "yes")
	case r.Exists != nil:
		line("exists", "no")
	case r.ExistsError != "":
		line("exists", "unknown: %s", r.ExistsError)
	case r.Valid && r.Verdict != VerdictUnsupported:
		line("exists", "unknown (not asked)")
	}
	switch {
	case r.NativeTemplate != "":
		line("native", "ECR's creation template %q (CREATE_ON_PUSH) covers it", r.NativeTemplate)
		if r.Native != nil {
			writeTemplate(&b, r.Native)
		}
	case r.NativeError != "":
		line("native", "unknown: %s", r.NativeError)
	case r.NativeNote != "":
		line("native", "%s", r.NativeNote)
	case r.Exists != nil && !*r.Exists:
		line("native", "no CREATE_ON_PUSH template of ECR covers it")
	}
	if r.Template != nil && r.Verdict != VerdictNative && r.Verdict != VerdictExists {
		switch {
		case r.Template.Source == "builtin":
			line("template", "built-in default (no local template matches, and there is no ROOT template)")
		case r.Template.Line > 0:
			line("template", "local %q (%s:%d)", r.Template.Prefix, r.Template.File, r.Template.Line)
		default:
			line("template", "local %q", r.Template.Prefix)
		}
		writeTemplate(&b, r.Template)
	}
	if r.DryRun {
		line("dry run", "on: ecrgate creates nothing")
	}
	switch m := r.Mounts; {
	case m == nil:
	case !m.Enabled:
		line("mounts", "off (mount_shared_layers: false): pushers upload every layer the repository lacks")
	default:
		where := "repositories of this registry ecrgate saw holding it"
		if len(m.From) > 0 {
			where += ", then mount_from: " + strings.Join(m.From, ", ")
		}
		line("mounts", "on (mount_shared_layers): a layer the repository lacks is mounted from %s, when the registry's BLOB_MOUNTING is ENABLED and the encryption matches; the pusher skips its upload", where)
	}
	line("verdict", "%s: %s", r.Verdict, r.Summary)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTemplate writes t's settings, indented.
func writeTemplate(b *strings.Builder, t *Template) {
	set := func(k, format string, args ...any) {
		fmt.Fprintf(b, "  %-38s %s\n", k, fmt.Sprintf(format, args...))
	}
	set("image_tag_mutability", "%s", t.ImageTagMutability)
	if len(t.ExclusionFilters) > 0 {
		set("image_tag_mutability_exclusion_filters", "%s", strings.Join(t.ExclusionFilters, ", "))
	}
	if t.ScanOnPush != nil {
		set("scan_on_push", "%t", *t.ScanOnPush)
	}
	if t.KMSKey != "" {
		set("encryption", "%s, key %s", t.EncryptionType, t.KMSKey)
	} else {
		set("encryption", "%s", t.EncryptionType)
	}
	set("lifecycle_policy", "%s", compactJSON(t.LifecyclePolicy))
	set("repository_policy", "%s", compactJSON(t.RepositoryPolicy))
	if len(t.Tags) == 0 {
		set("tags", "none")
		return
	}
	var tags []string
	for _, k := range slices.Sorted(maps.Keys(t.Tags)) {
		tags = append(tags, k+"="+t.Tags[k])
	}
	set("tags", "%s", strings.Join(tags, ", "))
}

// compactJSON puts a policy on one line ("none" when empty).
func compactJSON(s string) string {
	if s == "" {
		return "none"
	}
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}
