package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Upstream answers for TestTokenAuth. The upstream takes token-1 only:
// token-0 is the cached token it revoked or let expire.
var (
	// okAnswer accepts the request.
	okAnswer = func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}
	// unauthorized is ECR's answer to an unknown credential.
	unauthorized = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="https://`+chainRegistry+`/",service="ecr.amazonaws.com"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "Not Authorized\n")
	}
	// expired is ECR's answer to an expired token (no body for a HEAD).
	expired = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"Your authorization token has expired. Reauthenticate and try again."}]}`)
	}
	// denied is a denial of a good token: no refresh can help.
	denied = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"User: arn:aws:iam::123456789012:user/dev is not authorized to perform: ecr:PutImage"}]}`)
	}
)

// takesOnly answers token-1 with ok, anything else with refused.
func takesOnly(refused http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if password(r.Header.Get("Authorization")) == "token-1" {
			okAnswer(w, r)
			return
		}
		refused(w, r)
	}
}

// TestTokenAuth: in registry mode every request carries ecrgate's token,
// set on a copy of the request; a refused token (401, ECR's expired 403, a
// HEAD's bare 403 that /v2/ shows to be one) is dropped and the request
// sent once more with a new one, when it can be replayed; a denial is
// relayed as it came; intercept mode passes the client's own credentials
// and never asks for a token.
func TestTokenAuth(t *testing.T) {
	const (
		blob     = "/v2/team/app/blobs/sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		manifest = "/v2/team/app/manifests/1"
		upload   = "/v2/team/app/blobs/uploads/"
	)
	tests := []struct {
		name       string
		mode       Mode
		method     string
		path, body string
		oneShot    bool   // the body cannot be read twice
		clientAuth string // the Authorization the request comes with
		answer     http.HandlerFunc
		tokenErr   error
		wantStatus int
		wantBody   string   // part of the body the client gets
		wantSent   []string // "METHOD path password", in order
		wantGets   int
		wantForget int
	}{
		{name: "good token", method: http.MethodGet, path: manifest, answer: okAnswer,
			wantStatus: 201, wantSent: []string{"GET " + manifest + " token-0"}, wantGets: 1},
		{name: "401: refreshed once", method: http.MethodGet, path: manifest, answer: takesOnly(unauthorized),
			wantStatus: 201, wantSent: []string{"GET " + manifest + " token-0", "GET " + manifest + " token-1"}, wantGets: 2, wantForget: 1},
		{name: "403 expired: refreshed once", method: http.MethodPost, path: upload, answer: takesOnly(expired),
			wantStatus: 201, wantSent: []string{"POST " + upload + " token-0", "POST " + upload + " token-1"}, wantGets: 2, wantForget: 1},
		{name: "HEAD 403 that /v2/ calls expired: refreshed once", method: http.MethodHead, path: blob, answer: takesOnly(expired),
			wantStatus: 201, wantSent: []string{"HEAD " + blob + " token-0", "GET /v2/ token-0", "HEAD " + blob + " token-1"}, wantGets: 2, wantForget: 1},
		{name: "HEAD 403 that /v2/ calls a denial: relayed", method: http.MethodHead, path: blob, answer: denied,
			wantStatus: 403, wantSent: []string{"HEAD " + blob + " token-0", "GET /v2/ token-0"}, wantGets: 1},
		{name: "403 denied: relayed with its body", method: http.MethodGet, path: manifest, answer: denied,
			wantStatus: 403, wantBody: "not authorized to perform: ecr:PutImage", wantSent: []string{"GET " + manifest + " token-0"}, wantGets: 1},
		{name: "401 to the new token too: refreshed once only", method: http.MethodGet, path: manifest, answer: unauthorized,
			wantStatus: 401, wantBody: "Not Authorized", wantSent: []string{"GET " + manifest + " token-0", "GET " + manifest + " token-1"}, wantGets: 2, wantForget: 1},
		{name: "manifest PUT: replayed with its whole body", method: http.MethodPut, path: manifest, body: `{"schemaVersion":2}`, answer: takesOnly(unauthorized),
			wantStatus: 201, wantSent: []string{"PUT " + manifest + " token-0", "PUT " + manifest + " token-1"}, wantGets: 2, wantForget: 1},
		{name: "401 to a body read once: relayed", method: http.MethodPatch, path: upload + "uuid", body: "layer bytes", oneShot: true, answer: takesOnly(unauthorized),
			wantStatus: 401, wantSent: []string{"PATCH " + upload + "uuid token-0"}, wantGets: 1},
		{name: "no token: a tokenError, nothing sent", method: http.MethodGet, path: manifest, answer: okAnswer, tokenErr: errors.New("no AWS credentials"),
			wantGets: 1},
		{name: "intercept mode: the client's credentials, no token", mode: InterceptMode, clientAuth: "Basic " + "QVdTOmNsaWVudA==", method: http.MethodGet, path: manifest, answer: unauthorized,
			wantStatus: 401, wantSent: []string{"GET " + manifest + " client"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, upstream := startRecorder(t, tt.answer)
			tokens := &fakeTokens{err: tt.tokenErr}
			rt := newTokenAuth(http.DefaultTransport, tokens, discard)
			req, _ := upstreamRequest(t, upstream, tt.mode, false, tt.method, tt.path, tt.body)
			if tt.oneShot {
				req = oneShot(req)
			}
			if tt.clientAuth != "" {
				req.Header.Set("Authorization", tt.clientAuth)
			}
			resp, err := rt.RoundTrip(req)
			if tt.tokenErr != nil {
				var te *tokenError
				if !errors.As(err, &te) || !errors.Is(err, tt.tokenErr) {
					t.Errorf("error %v, want a tokenError wrapping %v", err, tt.tokenErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
					t.Errorf("got %d %q, want %d with %q", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
				}
			}
			var sent []string
			for _, s := range rec.requests() {
				sent = append(sent, s.String())
				if s.method != http.MethodGet && s.method != http.MethodHead && s.body != tt.body {
					t.Errorf("%s reached the upstream with body %q, want %q", s, s.body, tt.body)
				}
			}
			if !slices.Equal(sent, tt.wantSent) {
				t.Errorf("upstream got\n\t%s\nwant\n\t%s", strings.Join(sent, "\n\t"), strings.Join(tt.wantSent, "\n\t"))
			}
			if gets, forgets := tokens.counts(); gets != tt.wantGets || forgets != tt.wantForget {
				t.Errorf("Token asked %d times, Forget %d; want %d and %d", gets, forgets, tt.wantGets, tt.wantForget)
			}
			if got := req.Header.Get("Authorization"); got != tt.clientAuth {
				t.Errorf("the caller's request has Authorization %q after the round trip, want %q", got, tt.clientAuth)
			}
		})
	}
}

// TestTokenAuthWithoutCall: a request the handler did not send (no call in
// its context) goes through untouched.
func TestTokenAuthWithoutCall(t *testing.T) {
	rec, upstream := startRecorder(t, okAnswer)
	tokens := &fakeTokens{}
	req, err := http.NewRequest(http.MethodGet, upstream.String()+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newTokenAuth(http.DefaultTransport, tokens, discard).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := fmt.Sprint(rec.requests()); got != "[GET /v2/ ]" {
		t.Errorf("upstream got %s, want one GET /v2/ without credentials", got)
	}
	if gets, _ := tokens.counts(); gets != 0 {
		t.Errorf("Token asked %d times, want 0", gets)
	}
}
