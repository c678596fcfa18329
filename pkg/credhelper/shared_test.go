package credhelper_test

// A shared team proxy (issue #15) needs the caller's own token: the helper
// hands the token of the registry a shared_proxies host serves to that
// host, and still none to loopback and local_hosts hosts (B1).

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

func TestSharedProxyGetsTheCallersToken(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	h, _ := newHelper(t, e)
	h.LocalHosts = map[string]string{"host.docker.internal:5000": reg}
	// A shared proxy that is also local (a Helper built in code; the
	// config refuses it) stays local: B1 wins.
	h.SharedProxies = map[string]string{"ecrgate.example.internal:5000": reg, "localhost:5000": reg, "host.docker.internal:5000": reg}

	code, out := run(h, "get", "https://ECRGATE.example.internal:5000/v2/")
	if code != 0 {
		t.Fatalf("get for the shared proxy: exit %d %q", code, redactOut(out))
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Username != "AWS" || c.Secret == "" {
		t.Fatalf("get for the shared proxy: %q (%v)", redactOut(out), err)
	}
	// The same token as the registry's own.
	if code, out := run(h, "get", reg); code != 0 || !strings.Contains(out, c.Secret) {
		t.Errorf("the shared proxy got another token than %s's", reg)
	}
	for _, local := range []string{"localhost:5000", "host.docker.internal:5000", "127.0.0.1:5000"} {
		if code, out := run(h, "get", local); code != 1 || strings.TrimSpace(out) != "credentials not found in native keychain" {
			t.Errorf("get %s: exit %d, %q; want credentials not found (B1)", local, code, redactOut(out))
		}
	}
	// A host in neither list: not found, as before.
	if code, out := run(h, "get", "other.example.internal:5000"); code != 1 || !strings.Contains(out, "credentials not found") {
		t.Errorf("get for an unknown host: exit %d %q", code, redactOut(out))
	}
}
