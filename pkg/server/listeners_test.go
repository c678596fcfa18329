package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// G2 of issue 11: the admin listener applies the registry listener's
// checks, so a page (DNS rebinding, or a cross-origin fetch) cannot read
// /metrics, which names accounts, regions and activity.
func TestAdminRefusesBrowsersAndForeignHosts(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := secEnv(t, e)
	s := secStart(t, secOptions{env: env, yaml: fmt.Sprintf("default_registry: %s\naudit_log: %s\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"))})
	_, port, _ := net.SplitHostPort(s.admin)
	for _, tc := range []struct {
		name, req string
		refused   bool
	}{
		{"DNS rebinding", "GET /metrics HTTP/1.1\r\nHost: rebind.evil.example.com:" + port + "\r\n\r\n", true},
		{"cross-origin fetch", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nOrigin: http://evil.example.com\r\n\r\n", true},
		{"no-cors fetch", "GET /metrics HTTP/1.1\r\nHost: localhost:" + port + "\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\n\r\n", true},
		{"healthz by a page", "GET /healthz HTTP/1.1\r\nHost: evil.example.com\r\n\r\n", true},
		{"127.0.0.1", "GET /metrics HTTP/1.1\r\nHost: " + s.admin + "\r\n\r\n", false},
		{"localhost", "GET /metrics HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n", false},
		{"::1", "GET /healthz HTTP/1.1\r\nHost: [::1]:" + port + "\r\n\r\n", false},
	} {
		resp, body := rawRequest(t, s.admin, tc.req)
		refused := resp.StatusCode == http.StatusForbidden && strings.Contains(body, "ecrgate refuses this request")
		if refused != tc.refused {
			t.Errorf("%s: %d %.200s; refused = %v, want %v", tc.name, resp.StatusCode, body, refused, tc.refused)
		}
		if refused && strings.Contains(body, "ecrgate_") {
			t.Errorf("%s: a refusal carries metrics: %.200s", tc.name, body)
		}
	}
}

// G4 of issue 11: idle keep-alive connections are closed on the registry
// and the admin listener, so idle clients cannot pile up.
func TestIdleConnectionsAreClosed(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := secEnv(t, e)
	s := secStart(t, secOptions{env: env, idle: 200 * time.Millisecond, yaml: fmt.Sprintf("default_registry: %s\naudit_log: %s\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"))})
	for name, tc := range map[string]struct{ addr, path string }{
		"registry": {s.proxy, "/v2/"},
		"admin":    {s.admin, "/healthz"},
	} {
		c, err := net.DialTimeout("tcp", tc.addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", tc.path, tc.addr)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("%s: %d, close %v; want 200 on a kept-alive connection", name, resp.StatusCode, resp.Close)
		}
		// Idle now: the server must hang up well before this deadline.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = br.ReadByte()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: an idle keep-alive connection was still open after 20 s (idle timeout 200 ms)", name)
		} else if err == nil {
			t.Errorf("%s: the server sent bytes on an idle connection", name)
		}
	}
}
