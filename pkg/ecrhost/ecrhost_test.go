package ecrhost

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

const acct = "123456789012"

// parseTests has one row per host form seen in the wild: what users type into
// docker, paste from the console, or find in configs and CI logs.
var parseTests = []struct {
	in   string
	want Registry // zero when the input must be rejected
	// errHas is a substring of the rejection reason.
	errHas string
	// suggest is the corrected host a rejection must offer ("" for none).
	suggest string
}{
	// Commercial partition, the standard form and its spellings.
	{in: "123456789012.dkr.ecr.us-east-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Account: acct, Region: "us-east-1", Partition: PartitionAWS}},
	{in: "https://123456789012.dkr.ecr.us-east-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Account: acct, Region: "us-east-1", Partition: PartitionAWS}},
	{in: "http://123456789012.dkr.ecr.us-east-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Account: acct, Region: "us-east-1", Partition: PartitionAWS}},
	{in: "HTTPS://123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM", want: Registry{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Account: acct, Region: "us-east-1", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", want: Registry{Host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", Account: acct, Region: "eu-west-1", Partition: PartitionAWS}},
	{in: "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com:443/v2/", want: Registry{Host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", Account: acct, Region: "eu-west-1", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/team/app", want: Registry{Host: "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com", Account: acct, Region: "ap-southeast-2", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/team/app:1.0", want: Registry{Host: "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com", Account: acct, Region: "ap-southeast-2", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.sa-east-1.amazonaws.com.", want: Registry{Host: "123456789012.dkr.ecr.sa-east-1.amazonaws.com", Account: acct, Region: "sa-east-1", Partition: PartitionAWS}},
	{in: "https://123456789012.dkr.ecr.sa-east-1.amazonaws.com.:443/v2/", want: Registry{Host: "123456789012.dkr.ecr.sa-east-1.amazonaws.com", Account: acct, Region: "sa-east-1", Partition: PartitionAWS}},
	{in: "  123456789012.dkr.ecr.us-west-2.amazonaws.com\n", want: Registry{Host: "123456789012.dkr.ecr.us-west-2.amazonaws.com", Account: acct, Region: "us-west-2", Partition: PartitionAWS}},
	{in: "https://AWS@123456789012.dkr.ecr.us-west-2.amazonaws.com/v2/team/app/manifests/latest?ns=x", want: Registry{Host: "123456789012.dkr.ecr.us-west-2.amazonaws.com", Account: acct, Region: "us-west-2", Partition: PartitionAWS}},
	{in: "000000000000.dkr.ecr.mx-central-1.amazonaws.com", want: Registry{Host: "000000000000.dkr.ecr.mx-central-1.amazonaws.com", Account: "000000000000", Region: "mx-central-1", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.ap-east-2.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.ap-east-2.amazonaws.com", Account: acct, Region: "ap-east-2", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.ap-southeast-7.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.ap-southeast-7.amazonaws.com", Account: acct, Region: "ap-southeast-7", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.il-central-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.il-central-1.amazonaws.com", Account: acct, Region: "il-central-1", Partition: PartitionAWS}},

	// FIPS.
	{in: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", Account: acct, Region: "us-east-1", Partition: PartitionAWS, FIPS: true}},
	{in: "https://123456789012.dkr.ecr-fips.us-west-2.amazonaws.com/v2/", want: Registry{Host: "123456789012.dkr.ecr-fips.us-west-2.amazonaws.com", Account: acct, Region: "us-west-2", Partition: PartitionAWS, FIPS: true}},
	{in: "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", Account: acct, Region: "us-gov-west-1", Partition: PartitionAWSUSGov, FIPS: true}},

	// Dual-stack.
	{in: "123456789012.dkr-ecr.us-east-1.on.aws", want: Registry{Host: "123456789012.dkr-ecr.us-east-1.on.aws", Account: acct, Region: "us-east-1", Partition: PartitionAWS, DualStack: true}},
	{in: "https://123456789012.DKR-ECR.EU-CENTRAL-1.ON.AWS:443/v2/", want: Registry{Host: "123456789012.dkr-ecr.eu-central-1.on.aws", Account: acct, Region: "eu-central-1", Partition: PartitionAWS, DualStack: true}},
	{in: "123456789012.dkr-ecr-fips.us-east-2.on.aws", want: Registry{Host: "123456789012.dkr-ecr-fips.us-east-2.on.aws", Account: acct, Region: "us-east-2", Partition: PartitionAWS, FIPS: true, DualStack: true}},
	{in: "123456789012.dkr-ecr.us-gov-east-1.on.aws", want: Registry{Host: "123456789012.dkr-ecr.us-gov-east-1.on.aws", Account: acct, Region: "us-gov-east-1", Partition: PartitionAWSUSGov, DualStack: true}},
	{in: "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn", want: Registry{Host: "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn", Account: acct, Region: "cn-northwest-1", Partition: PartitionAWSCN, DualStack: true}},

	// Other partitions.
	{in: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", want: Registry{Host: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", Account: acct, Region: "cn-north-1", Partition: PartitionAWSCN}},
	{in: "https://123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/v2/", want: Registry{Host: "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn", Account: acct, Region: "cn-northwest-1", Partition: PartitionAWSCN}},
	{in: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", Account: acct, Region: "us-gov-west-1", Partition: PartitionAWSUSGov}},
	{in: "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", want: Registry{Host: "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", Account: acct, Region: "us-iso-east-1", Partition: PartitionAWSISO}},
	{in: "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", want: Registry{Host: "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", Account: acct, Region: "us-isob-east-1", Partition: PartitionAWSISOB}},

	// Regions the table does not know: any well-formed region of a known
	// partition is accepted, so the first region AWS opens after a release
	// works without a new one.
	{in: "123456789012.dkr.ecr.eu-south-3.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.eu-south-3.amazonaws.com", Account: acct, Region: "eu-south-3", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.ap-southeast-9.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.ap-southeast-9.amazonaws.com", Account: acct, Region: "ap-southeast-9", Partition: PartitionAWS}},
	{in: "https://123456789012.dkr.ecr.AP-SOUTHEAST-9.amazonaws.com:443/v2/", want: Registry{Host: "123456789012.dkr.ecr.ap-southeast-9.amazonaws.com", Account: acct, Region: "ap-southeast-9", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.ap-southeast-22.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.ap-southeast-22.amazonaws.com", Account: acct, Region: "ap-southeast-22", Partition: PartitionAWS}},
	{in: "123456789012.dkr-ecr.ap-southeast-22.on.aws", want: Registry{Host: "123456789012.dkr-ecr.ap-southeast-22.on.aws", Account: acct, Region: "ap-southeast-22", Partition: PartitionAWS, DualStack: true}},
	{in: "123456789012.dkr.ecr.us-central-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.us-central-1.amazonaws.com", Account: acct, Region: "us-central-1", Partition: PartitionAWS}},
	{in: "123456789012.dkr.ecr.ca-east-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.ca-east-1.amazonaws.com", Account: acct, Region: "ca-east-1", Partition: PartitionAWS}},    // a typo away from ca-west-1, but built of region words
	{in: "123456789012.dkr.ecr.nz-north-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.nz-north-1.amazonaws.com", Account: acct, Region: "nz-north-1", Partition: PartitionAWS}}, // a new area code
	{in: "123456789012.dkr.ecr.us-foo-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.us-foo-1.amazonaws.com", Account: acct, Region: "us-foo-1", Partition: PartitionAWS}},       // no known region near: DNS decides (CheckResolvable)
	{in: "123456789012.dkr-ecr.eu-south-3.on.aws", want: Registry{Host: "123456789012.dkr-ecr.eu-south-3.on.aws", Account: acct, Region: "eu-south-3", Partition: PartitionAWS, DualStack: true}},
	{in: "123456789012.dkr.ecr-fips.us-north-1.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr-fips.us-north-1.amazonaws.com", Account: acct, Region: "us-north-1", Partition: PartitionAWS, FIPS: true}},
	{in: "123456789012.dkr-ecr-fips.us-north-1.on.aws", want: Registry{Host: "123456789012.dkr-ecr-fips.us-north-1.on.aws", Account: acct, Region: "us-north-1", Partition: PartitionAWS, FIPS: true, DualStack: true}},
	{in: "123456789012.dkr.ecr.us-gov-north-2.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr.us-gov-north-2.amazonaws.com", Account: acct, Region: "us-gov-north-2", Partition: PartitionAWSUSGov}},
	{in: "123456789012.dkr.ecr-fips.us-gov-north-2.amazonaws.com", want: Registry{Host: "123456789012.dkr.ecr-fips.us-gov-north-2.amazonaws.com", Account: acct, Region: "us-gov-north-2", Partition: PartitionAWSUSGov, FIPS: true}},
	{in: "123456789012.dkr-ecr.us-gov-north-2.on.aws", want: Registry{Host: "123456789012.dkr-ecr.us-gov-north-2.on.aws", Account: acct, Region: "us-gov-north-2", Partition: PartitionAWSUSGov, DualStack: true}},
	{in: "123456789012.dkr.ecr.cn-south-1.amazonaws.com.cn", want: Registry{Host: "123456789012.dkr.ecr.cn-south-1.amazonaws.com.cn", Account: acct, Region: "cn-south-1", Partition: PartitionAWSCN}},
	{in: "123456789012.dkr.ecr.us-isob-south-1.sc2s.sgov.gov", want: Registry{Host: "123456789012.dkr.ecr.us-isob-south-1.sc2s.sgov.gov", Account: acct, Region: "us-isob-south-1", Partition: PartitionAWSISOB}},
	{in: "123456789012.dkr.ecr.us-iso-south-1.c2s.ic.gov", want: Registry{Host: "123456789012.dkr.ecr.us-iso-south-1.c2s.ic.gov", Account: acct, Region: "us-iso-south-1", Partition: PartitionAWSISO}},
	{in: "123456789012.dkr.ecr.eu-south-3.amazonaws.eu", errHas: "region eu-south-3 is in partition aws, whose registry hosts end in .amazonaws.com, not .amazonaws.eu", suggest: "123456789012.dkr.ecr.eu-south-3.amazonaws.com"},
	{in: "123456789012.dkr.ecr.cn-south-1.amazonaws.com", errHas: "region cn-south-1 is in partition aws-cn, whose registry hosts end in .amazonaws.com.cn, not .amazonaws.com", suggest: "123456789012.dkr.ecr.cn-south-1.amazonaws.com.cn"},
	{in: "123456789012.dkr.ecr-fips.eu-south-3.amazonaws.com", errHas: "region eu-south-3 has no FIPS registry endpoint (FIPS registries exist in us-east-1, us-east-2, us-west-1, us-west-2)"},
	{in: "123456789012.dkr.ecr-fips.cn-south-1.amazonaws.com.cn", errHas: "region cn-south-1 has no FIPS registry endpoint"},
	{in: "123456789012.dkr-ecr.us-iso-south-1.on.aws", errHas: "partition aws-iso has no dual-stack registry endpoint"},

	// European Sovereign Cloud.
	{in: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", want: Registry{Host: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", Account: acct, Region: "eusc-de-east-1", Partition: PartitionAWSEUSC}},
	{in: "https://123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu/v2/", want: Registry{Host: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", Account: acct, Region: "eusc-de-east-1", Partition: PartitionAWSEUSC}},
	{in: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu.:443", want: Registry{Host: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", Account: acct, Region: "eusc-de-east-1", Partition: PartitionAWSEUSC}},
	{in: "123456789012.dkr.ecr.eusc-de-west-1.amazonaws.eu", want: Registry{Host: "123456789012.dkr.ecr.eusc-de-west-1.amazonaws.eu", Account: acct, Region: "eusc-de-west-1", Partition: PartitionAWSEUSC}},
	{in: "123456789012.dkr.ecr.eusc-fr-south-1.amazonaws.eu", want: Registry{Host: "123456789012.dkr.ecr.eusc-fr-south-1.amazonaws.eu", Account: acct, Region: "eusc-fr-south-1", Partition: PartitionAWSEUSC}},
	{in: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com", errHas: "region eusc-de-east-1 is in partition aws-eusc, whose registry hosts end in .amazonaws.eu, not .amazonaws.com", suggest: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"},
	{in: "123456789012.dkr.ecr.us-east-1.amazonaws.eu", errHas: "region us-east-1 is in partition aws, whose registry hosts end in .amazonaws.com, not .amazonaws.eu", suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr-fips.eusc-de-east-1.amazonaws.eu", errHas: "region eusc-de-east-1 has no FIPS registry endpoint"},
	{in: "123456789012.dkr-ecr.eusc-de-east-1.on.aws", errHas: "partition aws-eusc has no dual-stack registry endpoint"},
	{in: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu.evil.example", errHas: "is not an Amazon ECR registry host"},
	{in: "12345.dkr.ecr.eusc-de-east-1.amazonaws.eu", errHas: `account "12345" must be 12 digits`},
	{in: "api.ecr.eusc-de-east-1.amazonaws.eu", errHas: "is an Amazon ECR API endpoint"},

	// ECR Public.
	{in: "public.ecr.aws", want: Registry{Host: "public.ecr.aws", Region: "us-east-1", Partition: PartitionAWS, Public: true}},
	{in: "https://public.ecr.aws/v2/", want: Registry{Host: "public.ecr.aws", Region: "us-east-1", Partition: PartitionAWS, Public: true}},
	{in: "PUBLIC.ECR.AWS/nginx/nginx:latest", want: Registry{Host: "public.ecr.aws", Region: "us-east-1", Partition: PartitionAWS, Public: true}},
	{in: "public.ecr.aws.", want: Registry{Host: "public.ecr.aws", Region: "us-east-1", Partition: PartitionAWS, Public: true}},

	// Not ECR at all.
	{in: "", errHas: "empty registry host"},
	{in: "   ", errHas: "empty registry host"},
	{in: "docker.io", errHas: `"docker.io" is not an Amazon ECR registry host (want <account>.dkr.ecr.<region>.amazonaws.com)`},
	{in: "https://index.docker.io/v1/", errHas: `"index.docker.io" is not an Amazon ECR registry host`},
	{in: "ghcr.io/org/app", errHas: `"ghcr.io" is not an Amazon ECR registry host`},
	{in: "localhost:5000", errHas: `"localhost" is not an Amazon ECR registry host`},
	{in: "127.0.0.1:5000/team/app", errHas: `"127.0.0.1" is not an Amazon ECR registry host`},
	{in: "[::1]:5000", errHas: `"::1" is not an Amazon ECR registry host`},
	{in: "ecr.aws", errHas: "is not an Amazon ECR registry host"},
	{in: "gallery.ecr.aws", errHas: "is not an Amazon ECR registry host"},
	{in: "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example", errHas: "is not an Amazon ECR registry host"},
	{in: "evil.example/123456789012.dkr.ecr.us-east-1.amazonaws.com", errHas: `"evil.example" is not an Amazon ECR registry host`},
	{in: "x.123456789012.dkr.ecr.us-east-1.amazonaws.com", errHas: "is not an Amazon ECR registry host"},
	{in: "123456789012.dkr.ecr.us-east-1.amazonaws.com..", errHas: "is not an Amazon ECR registry host"},
	{in: "123456789012.dkr.ecr.us-east-1.amazonaws.co", errHas: "is not an Amazon ECR registry host"},
	{in: "123456789012.dkr.ecr.\u212a.amazonaws.com", errHas: "is not an Amazon ECR registry host"}, // Kelvin sign, not "k"
	{in: "ftp://123456789012.dkr.ecr.us-east-1.amazonaws.com", errHas: `scheme "ftp" is not supported`},
	{in: "oci://123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app", errHas: `scheme "oci" is not supported`},
	{in: "https://", errHas: "has no host name"},
	{in: "https://123456789012.dkr.ecr.us-east-1.amazonaws.com:abc/", errHas: "is not a host name or url"},

	// ECR, but the control plane instead of a registry.
	{in: "api.ecr.us-east-1.amazonaws.com", errHas: `"api.ecr.us-east-1.amazonaws.com" is an Amazon ECR API endpoint, not a registry host (want <account>.dkr.ecr.us-east-1.amazonaws.com)`},
	{in: "https://ecr-fips.us-west-2.amazonaws.com", errHas: "is an Amazon ECR API endpoint"},
	{in: "ecr.us-east-1.api.aws", errHas: "is an Amazon ECR API endpoint"},

	// Account problems.
	{in: "12345.dkr.ecr.us-east-1.amazonaws.com", errHas: `account "12345" must be 12 digits`},
	{in: "1234567890123.dkr.ecr.us-east-1.amazonaws.com", errHas: `account "1234567890123" must be 12 digits`},
	{in: "12345678901a.dkr.ecr.us-east-1.amazonaws.com", errHas: `account "12345678901a" must be 12 digits`},
	{in: "myaccount.dkr.ecr.us-east-1.amazonaws.com", errHas: `account "myaccount" must be 12 digits`},
	{in: "dkr.ecr.us-east-1.amazonaws.com", errHas: `"dkr.ecr.us-east-1.amazonaws.com" has no account id (want <account>.dkr.ecr.us-east-1.amazonaws.com)`},
	{in: "<aws_account_id>.dkr.ecr.<region>.amazonaws.com", errHas: `account "<aws_account_id>" must be 12 digits`},
	{in: "aws_account_id.dkr.ecr.region.amazonaws.com", errHas: `account "aws_account_id" must be 12 digits`},

	// Region problems.
	{in: "123456789012.dkr.ecr.us-eas-1.amazonaws.com", errHas: `unknown region "us-eas-1" for partition aws (did you mean us-east-1?)`, suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.eu-west1.amazonaws.com", errHas: `unknown region "eu-west1" for partition aws (did you mean eu-west-1?)`, suggest: "123456789012.dkr.ecr.eu-west-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.uswest2.amazonaws.com", errHas: "(did you mean us-west-2?)", suggest: "123456789012.dkr.ecr.us-west-2.amazonaws.com"},
	{in: "123456789012.dkr.ecr.cn-nort-1.amazonaws.com.cn", errHas: `unknown region "cn-nort-1" for partition aws-cn (did you mean cn-north-1?)`, suggest: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"},
	{in: "123456789012.dkr.ecr.us-gov-wets-1.amazonaws.com", errHas: `unknown region "us-gov-wets-1" for partition aws-us-gov (did you mean us-gov-west-1?)`, suggest: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.cn-nort-1.amazonaws.com", errHas: "(did you mean cn-north-1?)", suggest: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"},
	{in: "123456789012.dkr.ecr-fips.us-eas-1.amazonaws.com", errHas: "(did you mean us-east-1?)", suggest: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr-fips.eu-wst-1.amazonaws.com", errHas: "(did you mean eu-west-1?)"}, // eu-west-1 has no FIPS host: no suggestion
	{in: "123456789012.dkr.ecr.xyz.amazonaws.com", errHas: `unknown region "xyz" for partition aws`},
	{in: "123456789012.dkr.ecr.mars-north-1.amazonaws.com", errHas: `unknown region "mars-north-1" for partition aws`},
	{in: "123456789012.dkr.ecr.us-east-0.amazonaws.com", errHas: `unknown region "us-east-0" for partition aws (did you mean us-east-1?)`, suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.us-east-100.amazonaws.com", errHas: `unknown region "us-east-100" for partition aws`, suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.us-east-1a.amazonaws.com", errHas: `unknown region "us-east-1a" for partition aws (did you mean us-east-1?)`, suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"}, // a zone, not a region
	{in: "123456789012.dkr.ecr.usa-east-1.amazonaws.com", errHas: `unknown region "usa-east-1" for partition aws`, suggest: "123456789012.dkr.ecr.sa-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.us-east.amazonaws.com", errHas: `unknown region "us-east" for partition aws`, suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.us--1.amazonaws.com", errHas: `unknown region "us--1" for partition aws`},
	{in: "123456789012.dkr.ecr.us-east-1-1.amazonaws.com", errHas: `unknown region "us-east-1-1" for partition aws`, suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.us-east2-1.amazonaws.com", errHas: `unknown region "us-east2-1" for partition aws`, suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.eu-isoe-west-1.amazonaws.com", errHas: `unknown region "eu-isoe-west-1" for partition aws`}, // aws-iso-e: not a partition Parse knows
	{in: "123456789012.dkr.ecr.eu-isoe-west-1.c2s.ic.gov", errHas: `unknown region "eu-isoe-west-1" for partition aws-iso`},
	{in: "123456789012.dkr.ecr.eusc-east-1.amazonaws.eu", errHas: `unknown region "eusc-east-1" for partition aws-eusc`, suggest: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"},
	{in: "123456789012.dkr.ecr.eusc-de-eas-1.amazonaws.eu", errHas: `unknown region "eusc-de-eas-1" for partition aws-eusc (did you mean eusc-de-east-1?)`, suggest: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"},

	// Region in one partition, suffix of another.
	{in: "123456789012.dkr.ecr.cn-north-1.amazonaws.com", errHas: "region cn-north-1 is in partition aws-cn, whose registry hosts end in .amazonaws.com.cn, not .amazonaws.com", suggest: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"},
	{in: "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn", errHas: "region us-east-1 is in partition aws, whose registry hosts end in .amazonaws.com, not .amazonaws.com.cn", suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com.cn", errHas: "region us-gov-west-1 is in partition aws-us-gov", suggest: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"},
	{in: "123456789012.dkr.ecr.us-iso-east-1.amazonaws.com", errHas: "region us-iso-east-1 is in partition aws-iso, whose registry hosts end in .c2s.ic.gov", suggest: "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov"},
	{in: "123456789012.dkr.ecr.us-east-1.c2s.ic.gov", errHas: "region us-east-1 is in partition aws", suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr-ecr.cn-north-1.on.aws", errHas: "region cn-north-1 is in partition aws-cn, whose registry hosts end in .on.amazonwebservices.com.cn, not .on.aws", suggest: "123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn"},

	// Dual-stack spelled wrong.
	{in: "123456789012.dkr.ecr.us-east-1.on.aws", errHas: "hosts ending in .on.aws are dual-stack and start <account>.dkr-ecr, not <account>.dkr.ecr", suggest: "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	{in: "123456789012.dkr-ecr.us-east-1.amazonaws.com", errHas: "dkr-ecr hosts are dual-stack and end in .on.aws, not .amazonaws.com", suggest: "123456789012.dkr-ecr.us-east-1.on.aws"},
	{in: "123456789012.dkr-ecr.us-iso-east-1.on.aws", errHas: "partition aws-iso has no dual-stack registry endpoint"},

	// FIPS where there is none.
	{in: "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com", errHas: "region eu-west-1 has no FIPS registry endpoint (FIPS registries exist in us-east-1, us-east-2, us-west-1, us-west-2)"},
	{in: "123456789012.dkr.ecr-fips.ca-central-1.amazonaws.com", errHas: "region ca-central-1 has no FIPS registry endpoint"},
	{in: "123456789012.dkr-ecr-fips.ap-northeast-1.on.aws", errHas: "region ap-northeast-1 has no FIPS registry endpoint"},
	{in: "123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn", errHas: "region cn-north-1 has no FIPS registry endpoint"},
	{in: "123456789012.dkr.ecr-fips.us-iso-east-1.c2s.ic.gov", errHas: "region us-iso-east-1 has no FIPS registry endpoint"},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("Parse(%q) error: %v", tt.in, err)
				}
				if got != tt.want {
					t.Fatalf("Parse(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
				}
				if s := got.String(); s != tt.want.Host {
					t.Errorf("String() = %q, want %q", s, tt.want.Host)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error containing %q", tt.in, got, tt.errHas)
			}
			if got != (Registry{}) {
				t.Errorf("Parse(%q) returned %+v with its error, want the zero Registry", tt.in, got)
			}
			var he *HostError
			if !errors.As(err, &he) {
				t.Fatalf("Parse(%q) error %T is not a *HostError", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("Parse(%q) error\n  %q\nwant it to contain\n  %q", tt.in, err, tt.errHas)
			}
			if he.Input != tt.in {
				t.Errorf("HostError.Input = %q, want %q", he.Input, tt.in)
			}
			if he.Suggestion != tt.suggest {
				t.Errorf("HostError.Suggestion = %q, want %q", he.Suggestion, tt.suggest)
			}
			checkReason(t, he)
		})
	}
}

// checkReason checks the properties every rejection has: one lower-case
// sentence, and a suggestion (if any) that Parse accepts.
func checkReason(t *testing.T, he *HostError) {
	t.Helper()
	r := he.Reason
	if r == "" || r != he.Error() {
		t.Errorf("Reason %q, Error() %q: want the same non-empty sentence", r, he.Error())
	}
	if c := r[0]; 'A' <= c && c <= 'Z' {
		t.Errorf("reason %q starts with a capital letter", r)
	}
	if strings.ContainsAny(r, "\n\r") || strings.HasSuffix(r, ".") {
		t.Errorf("reason %q is not one sentence without a final period", r)
	}
	if he.Suggestion != "" {
		if _, err := Parse(he.Suggestion); err != nil {
			t.Errorf("suggestion %q does not parse: %v", he.Suggestion, err)
		}
	}
}

func TestAPIEndpoint(t *testing.T) {
	tests := []struct {
		host string
		want string
	}{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", "https://api.ecr.us-east-1.amazonaws.com"},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "https://api.ecr.eu-west-1.amazonaws.com"},
		{"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "https://ecr-fips.us-east-1.amazonaws.com"},
		{"123456789012.dkr-ecr.us-east-1.on.aws", "https://ecr.us-east-1.api.aws"},
		{"123456789012.dkr-ecr-fips.us-west-2.on.aws", "https://ecr-fips.us-west-2.api.aws"},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "https://api.ecr.cn-north-1.amazonaws.com.cn"},
		{"123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn", "https://ecr.cn-north-1.api.amazonwebservices.com.cn"},
		{"123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", "https://api.ecr.us-gov-west-1.amazonaws.com"},
		{"123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com", "https://ecr-fips.us-gov-east-1.amazonaws.com"},
		{"123456789012.dkr-ecr.us-gov-east-1.on.aws", "https://ecr.us-gov-east-1.api.aws"},
		{"123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", "https://api.ecr.us-iso-east-1.c2s.ic.gov"},
		{"123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", "https://api.ecr.us-isob-east-1.sc2s.sgov.gov"},
		{"123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", "https://api.ecr.eusc-de-east-1.amazonaws.eu"},
		{"123456789012.dkr.ecr.eu-south-3.amazonaws.com", "https://api.ecr.eu-south-3.amazonaws.com"},
		{"123456789012.dkr-ecr.eu-south-3.on.aws", "https://ecr.eu-south-3.api.aws"},
		{"123456789012.dkr.ecr-fips.us-north-1.amazonaws.com", "https://ecr-fips.us-north-1.amazonaws.com"},
		{"123456789012.dkr-ecr-fips.us-north-1.on.aws", "https://ecr-fips.us-north-1.api.aws"},
		{"123456789012.dkr.ecr-fips.us-gov-north-2.amazonaws.com", "https://ecr-fips.us-gov-north-2.amazonaws.com"},
		{"123456789012.dkr.ecr.cn-south-1.amazonaws.com.cn", "https://api.ecr.cn-south-1.amazonaws.com.cn"},
		{"public.ecr.aws", "https://api.ecr-public.us-east-1.amazonaws.com"},
	}
	for _, tt := range tests {
		r, err := Parse(tt.host)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.host, err)
		}
		if got := r.APIEndpoint(); got != tt.want {
			t.Errorf("Parse(%q).APIEndpoint() = %q, want %q", tt.host, got, tt.want)
		}
	}
	if got := (Registry{}).APIEndpoint(); got != "" {
		t.Errorf("zero Registry APIEndpoint() = %q, want empty", got)
	}
	if got := (Registry{}).String(); got != "" {
		t.Errorf("zero Registry String() = %q, want empty", got)
	}
}

func TestSuggestRegion(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"us-eas-1", "us-east-1", true},
		{"eu-west1", "eu-west-1", true},
		{"uswest2", "us-west-2", true},
		{"US-EAST-1", "us-east-1", true},
		{"us-east-1", "us-east-1", true},
		{"us-esat-1", "us-east-1", true},
		{"ap-south-east-1", "ap-southeast-1", true},
		{"apnortheast1", "ap-northeast-1", true},
		{"eu-centrl-1", "eu-central-1", true},
		{"us-gov-wst-1", "us-gov-west-1", true},
		{"cn-northwest1", "cn-northwest-1", true},
		{"us_east_1", "us-east-1", true},
		{"xyz", "", false},
		{"", "", false},
		{"mars-north-1", "", false},
		{"global", "", false},
		{"us", "", false},
		{"us-central-1", "", false}, // not ca-central-1: the area code is kept
		{strings.Repeat("us-east-1", 100), "", false},
	}
	for _, tt := range tests {
		got, ok := SuggestRegion(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("SuggestRegion(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRegions(t *testing.T) {
	aws := Regions(PartitionAWS)
	for _, r := range []string{"us-east-1", "ap-east-2", "ap-southeast-6", "ap-southeast-7", "ca-west-1", "mx-central-1", "il-central-1"} {
		if !slices.Contains(aws, r) {
			t.Errorf("Regions(aws) lacks %s", r)
		}
	}
	if len(aws) != 34 {
		t.Errorf("Regions(aws) has %d regions, want 34", len(aws))
	}
	if got := Regions(PartitionAWSCN); !slices.Equal(got, []string{"cn-north-1", "cn-northwest-1"}) {
		t.Errorf("Regions(aws-cn) = %v", got)
	}
	if got := Regions(PartitionAWSUSGov); !slices.Equal(got, []string{"us-gov-east-1", "us-gov-west-1"}) {
		t.Errorf("Regions(aws-us-gov) = %v", got)
	}
	if got := Regions("aws-mars"); got != nil {
		t.Errorf("Regions(aws-mars) = %v, want nil", got)
	}
	// The caller owns the returned slice.
	aws[0] = "changed"
	if Regions(PartitionAWS)[0] == "changed" {
		t.Error("Regions returns the package's own slice")
	}

	seen := map[string]Partition{}
	for _, p := range Partitions() {
		rs := Regions(p)
		if len(rs) == 0 || !slices.IsSorted(rs) {
			t.Errorf("Regions(%s) = %v: want a non-empty sorted list", p, rs)
		}
		for _, r := range rs {
			if q, dup := seen[r]; dup {
				t.Errorf("region %s is in both %s and %s", r, q, p)
			}
			seen[r] = p
			if got, ok := PartitionOf(r); !ok || got != p {
				t.Errorf("PartitionOf(%s) = %s, %v; want %s", r, got, ok, p)
			}
		}
		for _, r := range FIPSRegions(p) {
			if !slices.Contains(rs, r) {
				t.Errorf("FIPS region %s is not a region of %s", r, p)
			}
		}
	}
	if got := FIPSRegions(PartitionAWSCN); got != nil {
		t.Errorf("FIPSRegions(aws-cn) = %v, want nil", got)
	}
}

// TestRegistryDomains checks that the domain list and Parse agree: every
// "<account>.<domain>" parses, back to the same host.
func TestRegistryDomains(t *testing.T) {
	domains := RegistryDomains()
	if domains[len(domains)-1] != PublicHost {
		t.Errorf("RegistryDomains() does not end with %s", PublicHost)
	}
	seen := map[string]bool{}
	for _, d := range domains {
		if seen[d] {
			t.Errorf("domain %s listed twice", d)
		}
		seen[d] = true
		host := d
		if d != PublicHost {
			host = acct + "." + d
		}
		r, err := Parse(host)
		if err != nil {
			t.Errorf("Parse(%q): %v", host, err)
			continue
		}
		if r.Host != host {
			t.Errorf("Parse(%q).Host = %q", host, r.Host)
		}
	}
	for _, want := range []string{"dkr.ecr.us-east-1.amazonaws.com", "dkr.ecr-fips.us-gov-west-1.amazonaws.com", "dkr-ecr-fips.us-east-1.on.aws", "dkr.ecr.cn-north-1.amazonaws.com.cn", "dkr.ecr.us-isob-east-1.sc2s.sgov.gov"} {
		if !seen[want] {
			t.Errorf("RegistryDomains() lacks %s", want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	domains := RegistryDomains()
	for _, d := range domains {
		f.Add(acct + "." + d)
	}
	// Hostile hosts: header injection, control bytes, unicode look-alikes,
	// traversal, user info, very long labels.
	for _, s := range []string{"", "..", "%2e%2e", acct + ".dkr.ecr.us-east-1.amazonaws.com\r\nX-Injected: 1",
		acct + ".dkr.ecr.us-east-1.amazonaws.com\x00.evil.example", acct + ".dkr.ecr.us-east-1.amazonaws.com.evil.example",
		acct + ".dkr.ecr.us-east-1.amazonaws.com@evil.example", "evil.example/" + acct + ".dkr.ecr.us-east-1.amazonaws.com",
		acct + ".dkr.ecr.us-east-1.amаzonaws.com", acct + ".dkr.ecr.us-east-1.amazonaws.com:99999", acct + ".dkr.ecr.us-east-1.amazonaws.com:-1",
		"[::1]:5000", strings.Repeat("1", 300) + ".dkr.ecr.us-east-1.amazonaws.com", acct + ".dkr.ecr." + strings.Repeat("us-east-1", 64) + ".amazonaws.com",
		"https://" + acct + ".dkr.ecr.us-east-1.amazonaws.com/../../v2/", "HTTP://" + acct + ".DKR.ECR.US-EAST-1.AMAZONAWS.COM.", "public.ecr.aws\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			var he *HostError
			if !errors.As(err, &he) {
				t.Fatalf("Parse(%q) error %T is not a *HostError", s, err)
			}
			if r != (Registry{}) {
				t.Fatalf("Parse(%q) returned %+v with an error", s, r)
			}
			if he.Input != s {
				t.Fatalf("HostError.Input = %q, want %q", he.Input, s)
			}
			checkReason(t, he)
			return
		}
		if r.String() != r.Host {
			t.Fatalf("Parse(%q): String() %q != Host %q", s, r.String(), r.Host)
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v, %v", s, r, r.String(), again, err)
		}
		if r.Public {
			if r.Account != "" || r.Host != PublicHost {
				t.Fatalf("Parse(%q): public registry %+v", s, r)
			}
		} else {
			if !isAccount(r.Account) {
				t.Fatalf("Parse(%q): account %q is not 12 digits", s, r.Account)
			}
			if KnownRegion(r.Region) && !slices.ContainsFunc(domains, func(d string) bool { return r.Host == r.Account+"."+d }) {
				t.Fatalf("Parse(%q): host %q is under none of RegistryDomains()", s, r.Host)
			}
		}
		p := partitionByID[r.Partition]
		if p == nil || !p.regionPattern.MatchString(r.Region) {
			t.Fatalf("Parse(%q): region %q is not well-formed for partition %q", s, r.Region, r.Partition)
		}
		if KnownRegion(r.Region) != slices.Contains(Regions(r.Partition), r.Region) {
			t.Fatalf("Parse(%q): region %q is known, but not in Regions(%q)", s, r.Region, r.Partition)
		}
		if r.FIPS && KnownRegion(r.Region) && !slices.Contains(FIPSRegions(r.Partition), r.Region) {
			t.Fatalf("Parse(%q): FIPS host in region %q without FIPS", s, r.Region)
		}
		if !r.Public && !strings.HasSuffix(r.Host, "."+p.suffix) && (p.dualStackSuffix == "" || !strings.HasSuffix(r.Host, "."+p.dualStackSuffix)) {
			t.Fatalf("Parse(%q): host %q does not end in a suffix of partition %s", s, r.Host, p.id)
		}
		u, err := url.Parse(r.APIEndpoint())
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
			t.Fatalf("Parse(%q): APIEndpoint() = %q is not an https base URL", s, r.APIEndpoint())
		}
	})
}

func TestRegionDomains(t *testing.T) {
	tests := []struct {
		region string
		want   []string
	}{
		{"us-east-1", []string{"dkr.ecr.us-east-1.amazonaws.com", "dkr.ecr-fips.us-east-1.amazonaws.com", "dkr-ecr.us-east-1.on.aws", "dkr-ecr-fips.us-east-1.on.aws"}},
		{"eu-south-3", []string{"dkr.ecr.eu-south-3.amazonaws.com", "dkr-ecr.eu-south-3.on.aws"}},
		{"us-gov-north-2", []string{"dkr.ecr.us-gov-north-2.amazonaws.com", "dkr.ecr-fips.us-gov-north-2.amazonaws.com", "dkr-ecr.us-gov-north-2.on.aws", "dkr-ecr-fips.us-gov-north-2.on.aws"}},
		{"eusc-de-east-1", []string{"dkr.ecr.eusc-de-east-1.amazonaws.eu"}},
		{"us-isob-south-1", []string{"dkr.ecr.us-isob-south-1.sc2s.sgov.gov"}},
		{"us-eas-1", nil},
		{"mars-north-1", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got := RegionDomains(tt.region)
		if !slices.Equal(got, tt.want) {
			t.Errorf("RegionDomains(%q) = %q, want %q", tt.region, got, tt.want)
		}
		for _, d := range got {
			if r, err := Parse(acct + "." + d); err != nil || r.Region != tt.region {
				t.Errorf("Parse(%s) = %+v, %v", acct+"."+d, r, err)
			}
		}
	}
}

func TestNextRegions(t *testing.T) {
	next := NextRegions(3)
	for _, want := range []string{"eu-south-3", "eu-south-4", "eu-south-5", "ap-southeast-8", "ap-southeast-9", "ap-southeast-10", "us-east-3", "us-gov-west-2", "cn-north-2", "eusc-de-east-2"} {
		if !slices.Contains(next, want) {
			t.Errorf("NextRegions(3) lacks %s", want)
		}
	}
	seen := map[string]bool{}
	for _, r := range next {
		if KnownRegion(r) || seen[r] {
			t.Errorf("NextRegions(3) lists %s, known or twice", r)
		}
		seen[r] = true
		if RegionDomains(r) == nil {
			t.Errorf("NextRegions(3) lists %s, which Parse refuses", r)
		}
	}
	if got := NextRegions(0); got != nil {
		t.Errorf("NextRegions(0) = %v", got)
	}
}
