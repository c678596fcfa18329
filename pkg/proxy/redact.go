package proxy

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// redacted stands in for a credential cut out of an upstream's words.
const redacted = "[redacted]"

// minSecretPart is the shortest part of a credential redacted on its own;
// the whole Authorization value is redacted at any length.
const minSecretPart = 8

// credentialForms returns every form of the Authorization value auth that
// an upstream could echo: the value, its credential part, the decoded
// "user:password" and the password of a Basic credential, each also
// URL-escaped and with JSON's escaped slash; longest first, so a longer
// form is cut out before a shorter one inside it.
func credentialForms(auth string) []string {
	if auth == "" {
		return nil
	}
	seen := map[string]bool{}
	var forms []string
	add := func(s string, always bool) {
		if len(s) < minSecretPart && !always {
			return
		}
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), strings.ReplaceAll(s, "/", `\/`)} {
			if f != "" && !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	add(auth, true)
	_, cred, found := strings.Cut(strings.TrimSpace(auth), " ")
	if !found {
		cred = auth
	}
	cred = strings.TrimSpace(cred)
	add(cred, false)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		raw, err := enc.DecodeString(cred)
		if err != nil {
			continue
		}
		add(string(raw), false)
		if _, pw, ok := strings.Cut(string(raw), ":"); ok {
			add(pw, false)
		}
		break
	}
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return forms
}

// redact cuts every form of forms out of s.
func redact(s string, forms []string) string {
	for _, f := range forms {
		if strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, redacted)
		}
	}
	return s
}
