package server_test

import (
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/config"
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
