package proxy_test

// An upstream that echoes the Authorization header it got (issue #11, G5):
// the credential ecrgate sent reaches neither its log nor the client, in
// any form, whatever the upstream puts it in.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/proxy"
)

// credentialForms returns every form in which the Authorization value
// auth could show up: the header value, its base64 part, the decoded
// "user:password", the password, their URL escapes, and the start and end
// of each (a message cut short).
func credentialForms(auth string) map[string]string {
	out := map[string]string{}
	add := func(what, s string) {
		if len(s) < 12 {
			return
		}
		for w, v := range map[string]string{what: s, what + ", query-escaped": url.QueryEscape(s), what + ", path-escaped": url.PathEscape(s),
			what + ", JSON-escaped": strings.ReplaceAll(s, "/", `\/`)} {
			out[v] = w
			out[v[:12]+"…"] = w + " (first 12)"
		}
		out[s[:len(s)/2]] = what + " (first half)"
		out[s[len(s)/2:]] = what + " (second half)"
	}
	add("the Authorization value", auth)
	cred := strings.TrimPrefix(auth, "Basic ")
	add("the base64 credential", cred)
	if raw, err := base64.StdEncoding.DecodeString(cred); err == nil {
		add("the decoded credential", string(raw))
		_, pw, _ := strings.Cut(string(raw), ":")
		add("the password", pw)
	}
	// The prefix forms were only keys to find cut messages; keep the
	// cut themselves without the marker.
	for k, v := range out {
		if strings.HasSuffix(k, "…") {
			delete(out, k)
			out[strings.TrimSuffix(k, "…")] = v
		}
	}
	return out
}

// echo is everything an upstream could say about the Authorization header
// it got: the value, the decoded credential and the URL-escaped password.
func echo(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
	_, pw, _ := strings.Cut(string(raw), ":")
	return fmt.Sprintf("Authorization: %s | decoded %s | password %s | escaped %s | path %s", auth, raw, pw, url.QueryEscape(pw), url.PathEscape(string(raw)))
}

func TestUpstreamEchoOfCredentialsIsRedacted(t *testing.T) {
	f := badStart(t)
	// The repositories the cases talk about exist.
	for _, repo := range []string{"echo/html", "echo/json", "echo/unauth", "echo/cut", "echo/status", "echo/header"} {
		resp, _ := f.raw(t, "POST /v2/"+repo+"/blobs/uploads/ HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("upload start in %s: %d", repo, resp.StatusCode)
		}
	}
	f.front.setAnswer(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/v2/echo/") || r.Method != http.MethodGet {
			return false
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v2/echo/html/"): // (a) a load balancer's HTML page
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "<html><body><h1>500</h1><pre>%s</pre></body></html>", echo(r))
		case strings.HasPrefix(r.URL.Path, "/v2/echo/json/"): // (b) a registry error echoing it
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":%q}]}`, echo(r))
		case strings.HasPrefix(r.URL.Path, "/v2/echo/unauth/"): // (c) a 401 body
			w.Header().Set("WWW-Authenticate", `Basic realm="https://`+badRegistry+`/",service="ecr.amazonaws.com"`)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "Not Authorized: %s\n", echo(r))
		case strings.HasPrefix(r.URL.Path, "/v2/echo/cut/"): // the password where the log cuts the body
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "%s%s", strings.Repeat(".", 170), strings.TrimPrefix(echo(r), "Authorization: Basic "))
		case strings.HasPrefix(r.URL.Path, "/v2/echo/status/"): // not HTTP: the client's error names the line
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return false
			}
			fmt.Fprintf(conn, "HTTP/1.1 %s\r\n\r\n", echo(r))
			conn.Close()
		case strings.HasPrefix(r.URL.Path, "/v2/echo/header/"): // in a response header
			w.Header().Set("X-Debug-Authorization", echo(r))
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"denied"}]}`)
		}
		return true
	})
	answers := &strings.Builder{}
	get := func(h http.Handler, repo string) {
		t.Helper()
		srv := httptest.NewServer(h)
		defer srv.Close()
		resp, b := badRaw(t, srv.Listener.Addr().String(), "GET /v2/"+repo+"/manifests/1 HTTP/1.1\r\nHost: localhost:5000\r\nConnection: close\r\n\r\n", nil)
		if resp.StatusCode < 400 {
			t.Errorf("GET %s: %d, want the upstream's error", repo, resp.StatusCode)
		}
		fmt.Fprintf(answers, "%s: %d\n", repo, resp.StatusCode)
		_ = resp.Header.Write(answers)
		answers.Write(b)
		answers.WriteString("\n")
	}
	before := len(f.front.registry())
	for _, repo := range []string{"echo/html", "echo/json", "echo/unauth", "echo/cut", "echo/status", "echo/header"} {
		get(f.mkProxy(proxy.RegistryMode), repo)
	}
	sent := map[string]bool{}
	for _, s := range f.front.registry()[before:] {
		if s.auth == "" {
			t.Fatalf("%s %s reached the upstream without the proxy's token", s.method, s.path)
		}
		sent[s.auth] = true
	}
	if len(sent) < 2 {
		t.Errorf("the proxy sent %d tokens; the 401 should have made it refresh its token", len(sent))
	}
	logs := f.logs.String()
	for _, want := range []string{"upstream error is not a registry error", "upstream unreachable", "refreshing"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q: a path of the test did not run\n%s", want, logs)
		}
	}
	for auth := range sent {
		for form, what := range credentialForms(auth) {
			if strings.Contains(logs, form) {
				t.Errorf("%s of the proxy's token is in the log", what)
			}
			if strings.Contains(answers.String(), form) {
				t.Errorf("%s of the proxy's token is in an answer to the client", what)
			}
		}
	}
	if t.Failed() {
		t.Logf("answers:\n%s\nlogs:\n%s", answers, logs)
	}
}
