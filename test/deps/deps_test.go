// Package deps checks the import graph of the binaries: what must never be
// linked into them.
package deps

import (
	"os/exec"
	"strings"
	"testing"
)

func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	m := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		m[p] = true
	}
	return m
}

const mod = "github.com/ecrgate/ecrgate/"

func TestBinariesDoNotLinkTestCode(t *testing.T) {
	for _, cmd := range []string{mod + "cmd/proxy", mod + "cmd/credhelper", mod + "cmd/tokenfetch", mod + "cmd/emulator"} {
		d := deps(t, cmd)
		for _, banned := range []string{"testing", "net/http/httptest", "github.com/google/go-containerregistry/pkg/v1/random"} {
			if d[banned] {
				t.Errorf("%s links %s", cmd, banned)
			}
		}
	}
}

// The credential helper runs on every docker push and pull: it must start
// fast, so it links neither the emulator nor the registry implementation,
// nor the AWS SDK's clients and config loading (whose package init alone
// costs more than a warm get; ecrgate-fetch-token has them). Only the SigV4
// signer and its core packages are allowed, for pkg/envtoken's cold path.
func TestCredentialHelperStaysSmall(t *testing.T) {
	d := deps(t, mod+"cmd/credhelper")
	for p := range d {
		if strings.HasPrefix(p, mod+"pkg/ecrfake") || strings.HasPrefix(p, "github.com/distribution/distribution/") ||
			strings.HasPrefix(p, "github.com/spf13/cobra") || p == mod+"pkg/ecrauth" || sdkHeavy(p) {
			t.Errorf("docker-credential-ecrgate links %s", p)
		}
	}
}

// sdkHeavy reports whether p is a part of the AWS SDK beyond the signer:
// service clients, config and credential loading, IMDS.
func sdkHeavy(p string) bool {
	for _, pre := range []string{"service/", "config", "credentials", "feature/"} {
		if strings.HasPrefix(p, "github.com/aws/aws-sdk-go-v2/"+pre) {
			return true
		}
	}
	return false
}

// The daemon runs ecrgate-emulator for `ecrgate emulator` rather than link
// it: the emulator's registry brings distribution's storage drivers, redis
// and OpenTelemetry, near half of what ecrgate would otherwise link.
func TestDaemonLinksNoEmulator(t *testing.T) {
	d := deps(t, mod+"cmd/proxy")
	for p := range d {
		if strings.HasPrefix(p, mod+"pkg/ecrfake") || strings.HasPrefix(p, mod+"pkg/emulatorcmd") ||
			strings.HasPrefix(p, "github.com/distribution/distribution/v3/registry/storage/driver") ||
			strings.HasPrefix(p, "github.com/redis/") || strings.HasPrefix(p, "go.opentelemetry.io/") {
			t.Errorf("ecrgate links %s", p)
		}
	}
	// The check must be able to fail: the emulator's own program links them.
	e := deps(t, mod+"cmd/emulator")
	for _, p := range []string{mod + "pkg/ecrfake", "github.com/distribution/distribution/v3/registry/storage/driver"} {
		if !e[p] {
			t.Errorf("ecrgate-emulator does not link %s: the check above proves nothing", p)
		}
	}
}

// Only the emulator's command line (cmd/emulator through pkg/emulatorcmd)
// may import the emulator; the proxy, ensurer and token source must never
// know they talk to a fake.
func TestOnlyEmulatorCommandImportsEmulator(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"pkg/...", mod+"cmd/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == mod+"pkg/emulatorcmd" || strings.HasPrefix(f[0], mod+"pkg/ecrfake") {
			continue
		}
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod+"pkg/ecrfake") || imp == mod+"pkg/emulatorcmd" && f[0] != mod+"cmd/emulator" {
				t.Errorf("%s imports %s", f[0], imp)
			}
		}
	}
}
