package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHeaderTimeout: requests without a body (other than PUT) wait d for
// response headers, the others the inner transport's longer wait; a body
// in transit is never cut; every error names the upstream and says what to
// do.
func TestHeaderTimeout(t *testing.T) {
	const d, slow = 100 * time.Millisecond, time.Second
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/hang": // takes the request, never answers
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "/late": // answers after 3d, in the slow wait
			time.Sleep(3 * d)
			_, _ = io.WriteString(w, "late")
		case "/trickle": // headers at once, the body over 4d
			w.(http.Flusher).Flush()
			for range 4 {
				time.Sleep(d)
				_, _ = io.WriteString(w, "chunk")
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	inner := http.DefaultTransport.(*http.Transport).Clone()
	inner.ResponseHeaderTimeout = slow
	t.Cleanup(inner.CloseIdleConnections)
	rt := newHeaderTimeout(inner, d, slow)
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}()

	tests := []struct {
		name, method, url, body string
		wantBody                string        // the whole body, when it answers
		wantTimeout             time.Duration // the wait it names, when it times out
		wantErr                 string        // part of another error
	}{
		{name: "GET without headers: cut after d", method: http.MethodGet, url: srv.URL + "/hang", wantTimeout: d},
		{name: "GET whose body trickles: not cut", method: http.MethodGet, url: srv.URL + "/trickle", wantBody: "chunkchunkchunkchunk"},
		{name: "POST with a body: the slow wait", method: http.MethodPost, url: srv.URL + "/late", body: "layer", wantBody: "late"},
		{name: "PUT without a body: the slow wait", method: http.MethodPut, url: srv.URL + "/late", wantBody: "late"},
		{name: "POST with a body, no headers: cut after the slow wait", method: http.MethodPost, url: srv.URL + "/hang", body: "layer", wantTimeout: slow},
		{name: "nothing listening: advice", method: http.MethodGet, url: dead + "/v2/", wantErr: "check the network and the registry's endpoint: setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, tt.url, body)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			took := time.Since(start)
			switch {
			case tt.wantTimeout > 0:
				var te *upstreamTimeoutError
				if !errors.As(err, &te) || te.d != tt.wantTimeout || !strings.Contains(err.Error(), req.URL.Host) {
					t.Fatalf("error %v, want an upstreamTimeoutError naming %s and %v", err, req.URL.Host, tt.wantTimeout)
				}
				if took < tt.wantTimeout || took > tt.wantTimeout+25*time.Second { // an upper bound only against a hang
					t.Errorf("timed out after %v, want about %v", took, tt.wantTimeout)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != tt.wantBody {
					t.Errorf("body %q (%v), want %q", b, err, tt.wantBody)
				}
			}
		})
	}
}
