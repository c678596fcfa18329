package awsconf

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// TestECROptionsEndpoints checks, without any network, which API host the
// SDK's own endpoint resolver picks for a registry once ECROptions has been
// applied: regions opened after this release and the European Sovereign
// Cloud included, FIPS and dual-stack as for known regions.
func TestECROptionsEndpoints(t *testing.T) {
	tests := []struct {
		host string
		want string
	}{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", "https://api.ecr.us-east-1.amazonaws.com"},
		{"123456789012.dkr.ecr.eu-south-3.amazonaws.com", "https://api.ecr.eu-south-3.amazonaws.com"},
		{"123456789012.dkr.ecr.ap-southeast-9.amazonaws.com", "https://api.ecr.ap-southeast-9.amazonaws.com"},
		{"123456789012.dkr-ecr.eu-south-3.on.aws", "https://ecr.eu-south-3.api.aws"},
		{"123456789012.dkr.ecr-fips.us-north-1.amazonaws.com", "https://api.ecr-fips.us-north-1.amazonaws.com"},
		{"123456789012.dkr.ecr.us-gov-north-2.amazonaws.com", "https://api.ecr.us-gov-north-2.amazonaws.com"},
		{"123456789012.dkr.ecr-fips.us-gov-north-2.amazonaws.com", "https://api.ecr-fips.us-gov-north-2.amazonaws.com"},
		{"123456789012.dkr.ecr.cn-south-1.amazonaws.com.cn", "https://api.ecr.cn-south-1.amazonaws.com.cn"},
		{"123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", "https://api.ecr.eusc-de-east-1.amazonaws.eu"},
		{"123456789012.dkr.ecr.us-isob-south-1.sc2s.sgov.gov", "https://api.ecr.us-isob-south-1.sc2s.sgov.gov"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			reg, err := ecrhost.Parse(tt.host)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			o := ecr.New(ecr.Options{Region: reg.Region}, ECROptions(reg, Identity{}, nil)).Options()
			ep, err := o.EndpointResolverV2.ResolveEndpoint(context.Background(), ecr.EndpointParameters{
				Region:       aws.String(o.Region),
				UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
				UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
				Endpoint:     o.BaseEndpoint,
			})
			if err != nil {
				t.Fatalf("ResolveEndpoint: %v", err)
			}
			if got := ep.URI.String(); got != tt.want {
				t.Errorf("API endpoint = %s, want %s", got, tt.want)
			}
		})
	}
}

// dnsStub plays the network for an ECR client: names in resolves answer
// GetAuthorizationToken, every other name does not exist. No real DNS.
type dnsStub struct{ resolves map[string]bool }

func (d dnsStub) Do(req *http.Request) (*http.Response, error) {
	host := req.URL.Hostname()
	if !d.resolves[host] {
		return nil, &url.Error{Op: "Post", URL: req.URL.String(), Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}}
	}
	body := `{"authorizationData":[{"authorizationToken":"QVdTOnRva2Vu","expiresAt":1.9e9,"proxyEndpoint":"https://x"}]}`
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// TestECROptionsRegionHint: an unknown region whose API endpoint does not
// exist gets "did you mean"; one whose endpoint answers works; a known
// region's DNS failure is left as it is.
func TestECROptionsRegionHint(t *testing.T) {
	tests := []struct {
		host     string
		resolves string // the API host that exists, if any
		env      []string
		errHas   string // "" for success
		errLacks string
	}{
		{host: "123456789012.dkr.ecr.ap-southeast-22.amazonaws.com", errHas: `unknown region "ap-southeast-22" for partition aws: api.ecr.ap-southeast-22.amazonaws.com does not resolve (did you mean ap-southeast-2?)`},
		{host: "123456789012.dkr.ecr-fips.us-east-7.amazonaws.com", errHas: "(did you mean us-east-1?)"},
		{host: "123456789012.dkr.ecr.eusc-de-east-2.amazonaws.eu", errHas: "(did you mean eusc-de-east-1?)"},
		{host: "123456789012.dkr.ecr.eu-south-3.amazonaws.com", resolves: "api.ecr.eu-south-3.amazonaws.com"},
		{host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", errHas: "no such host", errLacks: "did you mean"},
		// An endpoint override is not AWS's name for the region: no hint.
		{host: "123456789012.dkr.ecr.ap-southeast-22.amazonaws.com", env: []string{"AWS_ENDPOINT_URL_ECR=https://ecr.internal.example"}, errHas: "no such host", errLacks: "did you mean"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			reg, err := ecrhost.Parse(tt.host)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			id := Identity{}
			if len(tt.env) > 0 {
				id.APIEndpoint = "https://ecr.internal.example"
			}
			c := ecr.New(ecr.Options{
				Region:           reg.Region,
				Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
				HTTPClient:       dnsStub{resolves: map[string]bool{tt.resolves: true}},
				RetryMaxAttempts: 1,
			}, ECROptions(reg, id, tt.env))
			_, err = c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("GetAuthorizationToken: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || (tt.errLacks != "" && strings.Contains(err.Error(), tt.errLacks)) {
				t.Fatalf("error %v\nwant it to contain %q and not %q", err, tt.errHas, tt.errLacks)
			}
			var de *net.DNSError
			if !errors.As(err, &de) {
				t.Errorf("error %v lost its *net.DNSError", err)
			}
			var he *ecrhost.HostError
			if errors.As(err, &he) != strings.Contains(tt.errHas, "did you mean") {
				t.Errorf("error %v: *ecrhost.HostError in chain = %v", err, errors.As(err, &he))
			}
		})
	}
}
