package ecrhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
)

// stubResolver answers LookupHost from a table and records what it was asked;
// no test reaches real DNS.
type stubResolver struct {
	answers map[string]error // host → nil (resolves) or the lookup error
	asked   []string
}

func (s *stubResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	s.asked = append(s.asked, host)
	err, ok := s.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if err != nil {
		return nil, err
	}
	return []string{"192.0.2.1"}, nil
}

func nxdomain(host string) error {
	return &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var _ Resolver = (*net.Resolver)(nil)

func TestCheckResolvable(t *testing.T) {
	tests := []struct {
		host    string
		answers map[string]error
		asks    string // the host looked up; "" for none
		errHas  string // "" when the registry is accepted
		suggest string
	}{
		// Known regions are never looked up.
		{host: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
		{host: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"},
		{host: "public.ecr.aws"},
		// A region opened after this release: its endpoint resolves.
		{host: "123456789012.dkr.ecr.eu-south-3.amazonaws.com", answers: map[string]error{"api.ecr.eu-south-3.amazonaws.com": nil}, asks: "api.ecr.eu-south-3.amazonaws.com"},
		{host: "123456789012.dkr.ecr-fips.us-gov-north-2.amazonaws.com", answers: map[string]error{"ecr-fips.us-gov-north-2.amazonaws.com": nil}, asks: "ecr-fips.us-gov-north-2.amazonaws.com"},
		{host: "123456789012.dkr-ecr.ap-southeast-9.on.aws", answers: map[string]error{"ecr.ap-southeast-9.api.aws": nil}, asks: "ecr.ap-southeast-9.api.aws"},
		// A well-formed region that does not exist: NXDOMAIN gives the suggestion.
		{host: "123456789012.dkr.ecr.ap-southeast-22.amazonaws.com", asks: "api.ecr.ap-southeast-22.amazonaws.com",
			errHas:  `unknown region "ap-southeast-22" for partition aws: api.ecr.ap-southeast-22.amazonaws.com does not resolve (did you mean ap-southeast-2?)`,
			suggest: "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com"},
		{host: "123456789012.dkr-ecr.ap-southeast-22.on.aws", asks: "ecr.ap-southeast-22.api.aws",
			errHas: "(did you mean ap-southeast-2?)", suggest: "123456789012.dkr-ecr.ap-southeast-2.on.aws"},
		{host: "123456789012.dkr.ecr.us-gov-north-9.amazonaws.com", asks: "api.ecr.us-gov-north-9.amazonaws.com",
			errHas: `unknown region "us-gov-north-9" for partition aws-us-gov: api.ecr.us-gov-north-9.amazonaws.com does not resolve`},
		{host: "123456789012.dkr.ecr.us-foo-1.amazonaws.com", asks: "api.ecr.us-foo-1.amazonaws.com",
			errHas: `unknown region "us-foo-1" for partition aws: api.ecr.us-foo-1.amazonaws.com does not resolve`},
		{host: "123456789012.dkr.ecr.eusc-de-east-2.amazonaws.eu", asks: "api.ecr.eusc-de-east-2.amazonaws.eu",
			errHas: "(did you mean eusc-de-east-1?)", suggest: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"},
		// Nothing learnt (no network, a timeout, a server failure): accepted.
		{host: "123456789012.dkr.ecr.eu-south-3.amazonaws.com", answers: map[string]error{"api.ecr.eu-south-3.amazonaws.com": &net.DNSError{Err: "i/o timeout", Name: "api.ecr.eu-south-3.amazonaws.com", IsTimeout: true}}, asks: "api.ecr.eu-south-3.amazonaws.com"},
		{host: "123456789012.dkr.ecr.eu-south-3.amazonaws.com", answers: map[string]error{"api.ecr.eu-south-3.amazonaws.com": errors.New("network is unreachable")}, asks: "api.ecr.eu-south-3.amazonaws.com"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			r, err := Parse(tt.host)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.host, err)
			}
			res := &stubResolver{answers: tt.answers}
			err = CheckResolvable(context.Background(), r, res)
			var want []string
			if tt.asks != "" {
				want = []string{tt.asks}
			}
			if !slices.Equal(res.asked, want) {
				t.Errorf("looked up %q, want %q", res.asked, want)
			}
			if tt.errHas == "" {
				if err != nil {
					t.Errorf("CheckResolvable(%s) = %v, want nil", tt.host, err)
				}
				return
			}
			var he *HostError
			if !errors.As(err, &he) {
				t.Fatalf("CheckResolvable(%s) = %v (%T), want a *HostError", tt.host, err, err)
			}
			if !strings.Contains(he.Error(), tt.errHas) {
				t.Errorf("error %q\nwant it to contain %q", he, tt.errHas)
			}
			if he.Input != r.Host || he.Suggestion != tt.suggest {
				t.Errorf("Input %q, Suggestion %q; want %q, %q", he.Input, he.Suggestion, r.Host, tt.suggest)
			}
			checkReason(t, he)
		})
	}
}

// The typo path end to end: a well-formed unknown region is accepted by
// Parse, then either works (its endpoint resolves) or gets its "did you mean".
func TestUnknownRegionTypoPath(t *testing.T) {
	r, err := Parse("123456789012.dkr.ecr.us-east-7.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	if KnownRegion(r.Region) {
		t.Fatalf("us-east-7 is in the table; pick another unknown region")
	}
	err = CheckResolvable(context.Background(), r, &stubResolver{})
	if err == nil || !strings.Contains(err.Error(), "did you mean us-east-1?") {
		t.Errorf("NXDOMAIN: %v, want a suggestion of us-east-1", err)
	}
	resolves := &stubResolver{answers: map[string]error{"api.ecr.us-east-7.amazonaws.com": nil}}
	if err := CheckResolvable(context.Background(), r, resolves); err != nil {
		t.Errorf("resolves: %v, want nil", err)
	}
}

func TestNotFoundHint(t *testing.T) {
	newRegion, _ := Parse("123456789012.dkr.ecr.us-east-7.amazonaws.com")
	known, _ := Parse("123456789012.dkr.ecr.us-east-1.amazonaws.com")
	fips, _ := Parse("123456789012.dkr.ecr-fips.us-east-7.amazonaws.com")
	// As the SDK wraps it: operation error → request send failed → *url.Error → *net.OpError → *net.DNSError.
	sdkErr := func(host string) error {
		return fmt.Errorf("operation error ECR: GetAuthorizationToken, https response error StatusCode: 0, RequestID: , request send failed, Post %q: %w",
			"https://"+host+"/", &net.OpError{Op: "dial", Net: "tcp", Err: nxdomain(host)})
	}
	tests := []struct {
		name   string
		r      Registry
		err    error
		errHas string // "" when err must come back unchanged
	}{
		{"nil", newRegion, nil, ""},
		{"unknown region, endpoint NXDOMAIN", newRegion, sdkErr("api.ecr.us-east-7.amazonaws.com"), `unknown region "us-east-7" for partition aws: api.ecr.us-east-7.amazonaws.com does not resolve (did you mean us-east-1?): operation error ECR`},
		{"unknown region, FIPS endpoint NXDOMAIN", fips, sdkErr("ecr-fips.us-east-7.amazonaws.com"), "ecr-fips.us-east-7.amazonaws.com does not resolve (did you mean us-east-1?)"},
		{"unknown region, DNS name with a trailing dot", newRegion, nxdomain("api.ecr.us-east-7.amazonaws.com."), "(did you mean us-east-1?)"},
		{"unknown region, SDK's FIPS spelling", fips, sdkErr("api.ecr-fips.us-east-7.amazonaws.com"), "api.ecr-fips.us-east-7.amazonaws.com does not resolve (did you mean us-east-1?)"},
		{"unknown region, another name failed", newRegion, sdkErr("sts.us-east-7.amazonaws.com"), ""},
		{"unknown region, another region's endpoint failed", newRegion, sdkErr("api.ecr.us-east-8.amazonaws.com"), ""},
		{"unknown region, timeout", newRegion, &net.DNSError{Err: "i/o timeout", Name: "api.ecr.us-east-7.amazonaws.com", IsTimeout: true}, ""},
		{"unknown region, other error", newRegion, errors.New("access denied"), ""},
		{"known region", known, sdkErr("api.ecr.us-east-1.amazonaws.com"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NotFoundHint(tt.r, tt.err)
			if tt.errHas == "" {
				if got != tt.err {
					t.Errorf("NotFoundHint = %v, want the error unchanged (%v)", got, tt.err)
				}
				return
			}
			if got == nil || !strings.Contains(got.Error(), tt.errHas) {
				t.Fatalf("NotFoundHint = %v\nwant it to contain %q", got, tt.errHas)
			}
			var he *HostError
			var de *net.DNSError
			if !errors.As(got, &he) || !errors.As(got, &de) {
				t.Errorf("NotFoundHint = %v: want both the *HostError and the *net.DNSError in its chain", got)
			}
		})
	}
}
