package respwriter

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRecordsStatusAndBytes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter)
		status int
		bytes  int64
	}{
		{"nothing written", func(http.ResponseWriter) {}, 200, 0},
		{"body only", func(w http.ResponseWriter) { _, _ = io.WriteString(w, "hello") }, 200, 5},
		{"status then body", func(w http.ResponseWriter) { w.WriteHeader(404); _, _ = io.WriteString(w, "no") }, 404, 2},
		{"first status counts", func(w http.ResponseWriter) { w.WriteHeader(201); w.WriteHeader(500) }, 201, 0},
	} {
		rec := httptest.NewRecorder()
		w := New(rec)
		tc.handle(w)
		if w.Status() != tc.status || w.Bytes() != tc.bytes {
			t.Errorf("%s: status %d, bytes %d; want %d, %d", tc.name, w.Status(), w.Bytes(), tc.status, tc.bytes)
		}
	}
}

// Flush reaches the client while the handler still runs, and Hijack works
// through http.ResponseController (the emulator's faults drop connections).
func TestFlushAndHijackPassThrough(t *testing.T) {
	flushed := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = New(w)
		if r.URL.Path == "/hijack" {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack through the recorder: %v", err)
				return
			}
			c.Close()
			return
		}
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-flushed
		_, _ = io.WriteString(w, "second\n")
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	close(flushed)
	resp.Body.Close()
	if err != nil || line != "first\n" {
		t.Fatalf("first line before the handler finished: %q, %v", line, err)
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("hijacked connection: read %d bytes, %v; want it closed", n, err)
	}
}
