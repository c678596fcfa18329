package awsconf

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
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
