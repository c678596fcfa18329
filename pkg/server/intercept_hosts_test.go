package server_test

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// Which CONNECT hosts intercept mode decrypts: the configured registries,
// and with hosts: all-ecr every private ECR host of the configured
// accounts, never another account's (issue 11: a mutation that dropped
// the account filter went unnoticed).
func TestInterceptHosts(t *testing.T) {
	const (
		configured   = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
		otherRegion  = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
		fips         = "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"
		otherAccount = "999999999999.dkr.ecr.us-east-1.amazonaws.com"
	)
	for _, tc := range []struct {
		name string
		yaml string
		want map[string]bool
	}{
		{"configured", "default_registry: " + configured + "\n", map[string]bool{
			configured: true, strings.ToUpper(configured): true, otherRegion: false, fips: false, otherAccount: false,
			"public.ecr.aws": false, "sts.us-east-1.amazonaws.com": false, "example.com": false}},
		{"all-ecr with an account", "default_registry: " + configured + "\nintercept: {hosts: all-ecr}\n", map[string]bool{
			configured: true, otherRegion: true, fips: true, otherAccount: false,
			"888888888888.dkr.ecr.eu-west-1.amazonaws.com": false,
			"public.ecr.aws": false, "sts.us-east-1.amazonaws.com": false, "example.com": false,
			otherRegion + ".evil.example": false}},
		{"all-ecr, two accounts", "default_registry: " + configured + "\nregistries:\n  - host: 222222222222.dkr.ecr.eu-west-1.amazonaws.com\nintercept: {hosts: all-ecr}\n", map[string]bool{
			otherRegion: true, "222222222222.dkr.ecr.us-west-2.amazonaws.com": true, otherAccount: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tc.yaml), "x.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			allow := server.InterceptHosts(cfg)
			for host, want := range tc.want {
				if got := allow(host); got != want {
					t.Errorf("decrypt %s = %v, want %v", host, got, want)
				}
			}
		})
	}
}

// With hosts: all-ecr, a registry host in a region this CA's name
// constraints do not cover (one AWS opened after the CA was made) is not
// decrypted, which could only fail the TLS handshake: tunnel_others decides
// (here off: refused with 403, no certificate). A configured registry in
// such a region stays intercepted.
func TestInterceptLeavesHostsTheCACannotServe(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	caDir := filepath.Join(t.TempDir(), "ca")
	ca, err := localca.Init(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const uncovered = "123456789012.dkr.ecr.nz-north-1.amazonaws.com"
	if ca.Permits(uncovered) {
		t.Skipf("the CA covers %s: pick a region it does not", uncovered)
	}
	ours := x509.NewCertPool()
	ours.AddCert(ca.Certificate())
	env := secEnv(t, e)
	s := secStart(t, secOptions{env: env, caDir: caDir, yaml: fmt.Sprintf(
		"default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\nintercept: {hosts: all-ecr, tunnel_others: false}\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"), registry, e.URL())})
	code, certs, _ := connectTLS(t, s.intercept, uncovered+":443", uncovered, ours)
	if code != http.StatusForbidden || certs != nil {
		t.Errorf("CONNECT %s (a region the CA does not cover): %d, %d certificates; want 403 and no TLS", uncovered, code, len(certs))
	}
	// The configured registry is still decrypted.
	if code, certs, err := connectTLS(t, s.intercept, registry+":443", registry, ours); code != http.StatusOK || err != nil || len(certs) == 0 {
		t.Errorf("CONNECT %s: %d, %v; want a leaf of the local CA", registry, code, err)
	}
}
