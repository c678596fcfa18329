package ecrhost

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/editdist"
)

// Partition is an AWS partition: a group of regions that share DNS suffixes and
// credentials. Its value is the SDK's partition ID.
type Partition string

// The partitions Parse knows.
//
// Left out on purpose: aws-iso-e (cloud.adc-e.uk) and aws-iso-f (csp.hci.ic.gov).
// The SDK lists ECR API endpoints for them, but ecrgate has no use for them yet
// and their registry host forms are not documented publicly beyond a pattern;
// add a row to partitions when that changes.
const (
	PartitionAWS      Partition = "aws"
	PartitionAWSCN    Partition = "aws-cn"
	PartitionAWSUSGov Partition = "aws-us-gov"
	PartitionAWSISO   Partition = "aws-iso"
	PartitionAWSISOB  Partition = "aws-iso-b"
	// PartitionAWSEUSC is the AWS European Sovereign Cloud.
	PartitionAWSEUSC Partition = "aws-eusc"
)

// partition describes how ECR names its hosts in one partition.
//
// Source: aws-sdk-go-v2 service/ecr v1.67.5, internal/endpoints/endpoints.go
// (regions, FIPS and dual-stack API host names), cross-checked with the AWS
// General Reference page "Amazon ECR endpoints and quotas" (dkr.ecr-fips and
// dkr-ecr-fips registry hosts for the four US commercial regions) and with the
// image patterns EKS gives kubelet's ecr-credential-provider (*.dkr.ecr.*.amazonaws.com,
// *.dkr-ecr.*.on.aws, *.dkr.ecr.*.amazonaws.com.cn, *.dkr-ecr.*.on.amazonwebservices.com.cn,
// *.dkr.ecr-fips.*.amazonaws.com, *.dkr-ecr-fips.*.on.aws, *.dkr.ecr.*.c2s.ic.gov,
// *.dkr.ecr.*.sc2s.sgov.gov).
type partition struct {
	id Partition
	// suffix ends registry hosts (<acct>.dkr.ecr.<region>.<suffix>) and API
	// endpoints (api.ecr.<region>.<suffix>).
	suffix string
	// dualStackSuffix ends dual-stack registry hosts (<acct>.dkr-ecr.<region>.<dualStackSuffix>);
	// empty when the partition has none.
	dualStackSuffix string
	// dualStackAPISuffix ends dual-stack API endpoints (ecr.<region>.<dualStackAPISuffix>).
	dualStackAPISuffix string
	// regionPattern matches, anchored, every well-formed region name of the
	// partition: the known ones and the ones AWS will open next. It is the
	// SDK's regionRegex for the partition with the middle label narrowed to
	// lower-case letters and the number to 1–99.
	regionPattern *regexp.Regexp
	// regions with ECR, sorted. Parse accepts other well-formed regions too;
	// this list feeds "did you mean" and the local CA's name constraints.
	regions []string
	// fipsRegions have dkr.ecr-fips registry hosts (and, with a dual-stack
	// suffix, dkr-ecr-fips ones), sorted.
	fipsRegions []string
	// newFIPSPrefix starts the names of regions not in the table that are
	// assumed to have FIPS registry hosts ("us-" in aws: every US region has
	// had them); empty when no new region is assumed to.
	newFIPSPrefix string
}

// partitions is the authority for everything Parse accepts.
//
// Regions: the regionPattern of a partition decides; the regions lists are the
// regions known when this table was written (aws-sdk-go-v2 service/ecr
// v1.67.6) and serve suggestions for typos and the CA's name constraints. The
// aws pattern takes any two-letter area code but cn (the SDK's own pattern
// lists the nine area codes in use, so a region in a new country needs an SDK
// update there, not here).
//
// aws-eusc: the SDK gives eusc-de-east-1 the API endpoint
// api.ecr.eusc-de-east-1.amazonaws.eu; the registry host
// <account>.dkr.ecr.eusc-de-east-1.amazonaws.eu is the form the awslabs helper
// accepts since 0.11.0. Its FIPS and dual-stack API endpoints exist in the SDK
// but no dkr.ecr-fips or dkr-ecr registry host is documented, so none is
// accepted.
//
// FIPS: the SDK file names explicit FIPS endpoints only for us-east-1, us-east-2,
// us-west-1, us-west-2, us-gov-east-1 and us-gov-west-1, and the General
// Reference lists dkr.ecr-fips hosts for exactly those. ca-central-1 has been
// asked for (aws/containers-roadmap#501) but is not listed, so it is rejected.
// The dkr-ecr-fips.<region>.on.aws form is documented for the four commercial
// US regions; for the two GovCloud regions it is inferred from the SDK's
// ecr-fips.<region>.api.aws API endpoint.
//
// Dual-stack: accepted in every aws, aws-cn and aws-us-gov region. The SDK's
// rule-based resolver gives every region of those partitions a dual-stack API
// endpoint; its legacy table lists one explicitly for every aws region except
// ap-east-2 and ap-southeast-6 (both newer than the table's dual-stack rows).
// The GovCloud dkr-ecr.<region>.on.aws form is inferred from its
// ecr.<region>.api.aws API endpoint. The ISO partitions have no documented
// dual-stack registry host and get none.
var partitions = []partition{
	{
		id:                 PartitionAWS,
		suffix:             "amazonaws.com",
		dualStackSuffix:    "on.aws",
		dualStackAPISuffix: "api.aws",
		regionPattern:      regexp.MustCompile(`^[a-z]{2}-[a-z]+-[1-9][0-9]?$`),
		regions: []string{
			"af-south-1",
			"ap-east-1",
			"ap-east-2",
			"ap-northeast-1",
			"ap-northeast-2",
			"ap-northeast-3",
			"ap-south-1",
			"ap-south-2",
			"ap-southeast-1",
			"ap-southeast-2",
			"ap-southeast-3",
			"ap-southeast-4",
			"ap-southeast-5",
			"ap-southeast-6",
			"ap-southeast-7",
			"ca-central-1",
			"ca-west-1",
			"eu-central-1",
			"eu-central-2",
			"eu-north-1",
			"eu-south-1",
			"eu-south-2",
			"eu-west-1",
			"eu-west-2",
			"eu-west-3",
			"il-central-1",
			"me-central-1",
			"me-south-1",
			"mx-central-1",
			"sa-east-1",
			"us-east-1",
			"us-east-2",
			"us-west-1",
			"us-west-2",
		},
		fipsRegions:   []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2"},
		newFIPSPrefix: "us-",
	},
	{
		id:                 PartitionAWSCN,
		suffix:             "amazonaws.com.cn",
		dualStackSuffix:    "on.amazonwebservices.com.cn",
		dualStackAPISuffix: "api.amazonwebservices.com.cn",
		regionPattern:      regexp.MustCompile(`^cn-[a-z]+-[1-9][0-9]?$`),
		regions:            []string{"cn-north-1", "cn-northwest-1"},
	},
	{
		id:                 PartitionAWSUSGov,
		suffix:             "amazonaws.com",
		dualStackSuffix:    "on.aws",
		dualStackAPISuffix: "api.aws",
		regionPattern:      regexp.MustCompile(`^us-gov-[a-z]+-[1-9][0-9]?$`),
		regions:            []string{"us-gov-east-1", "us-gov-west-1"},
		fipsRegions:        []string{"us-gov-east-1", "us-gov-west-1"},
		newFIPSPrefix:      "us-gov-",
	},
	{
		id:            PartitionAWSISO,
		suffix:        "c2s.ic.gov",
		regionPattern: regexp.MustCompile(`^us-iso-[a-z]+-[1-9][0-9]?$`),
		regions:       []string{"us-iso-east-1", "us-iso-west-1"},
	},
	{
		id:            PartitionAWSISOB,
		suffix:        "sc2s.sgov.gov",
		regionPattern: regexp.MustCompile(`^us-isob-[a-z]+-[1-9][0-9]?$`),
		regions:       []string{"us-isob-east-1", "us-isob-west-1"},
	},
	{
		id:            PartitionAWSEUSC,
		suffix:        "amazonaws.eu",
		regionPattern: regexp.MustCompile(`^eusc-[a-z]{2}-[a-z]+-[1-9][0-9]?$`),
		regions:       []string{"eusc-de-east-1"},
	},
}

// regionWords are the words AWS region names have used between the area
// code and the number. An unknown region built from one of them is taken for
// a region this table does not know yet; one that is not ("us-eas-1") and lies
// within a typo of a known region is refused with a suggestion.
var regionWords = map[string]bool{
	"east": true, "west": true, "north": true, "south": true, "central": true,
	"northeast": true, "northwest": true, "southeast": true, "southwest": true,
}

// wellFormed returns the partition whose region pattern region matches, or
// nil. The specific partitions are tried before aws, whose pattern is the
// broadest.
func wellFormed(region string) *partition {
	if p := partitionByRegion[region]; p != nil {
		return p
	}
	for i := len(partitions) - 1; i >= 0; i-- {
		if p := &partitions[i]; p.regionPattern.MatchString(region) {
			if p.id == PartitionAWS && strings.HasPrefix(region, "cn-") {
				continue
			}
			return p
		}
	}
	return nil
}

// likelyTypo reports whether region, well-formed but not in the table, is
// more likely a mistyped known region than a new one: its word is not one
// region names use and a known region is within a typo of it.
func likelyTypo(region string) bool {
	parts := strings.Split(region, "-")
	if len(parts) >= 2 && regionWords[parts[len(parts)-2]] {
		return false
	}
	_, near := nearestRegion(region, nil)
	return near
}

// hasFIPS reports whether region of p has FIPS registry hosts.
func (p *partition) hasFIPS(region string) bool {
	if slices.Contains(p.fipsRegions, region) {
		return true
	}
	return partitionByRegion[region] == nil && p.newFIPSPrefix != "" && strings.HasPrefix(region, p.newFIPSPrefix)
}

var (
	partitionByID     = map[Partition]*partition{}
	partitionByRegion = map[string]*partition{}
	// areaCodes are the first labels of region names: "us", "eu", "cn"…
	areaCodes = map[string]bool{}
)

func init() {
	for i := range partitions {
		p := &partitions[i]
		partitionByID[p.id] = p
		for _, r := range p.regions {
			partitionByRegion[r] = p
			area, _, _ := strings.Cut(r, "-")
			areaCodes[area] = true
		}
	}
}

// Partitions returns the partitions Parse knows, "aws" first.
func Partitions() []Partition {
	out := make([]Partition, len(partitions))
	for i, p := range partitions {
		out[i] = p.id
	}
	return out
}

// Regions returns the regions of p in the table (those with Amazon ECR when it
// was written), sorted, or nil for an unknown partition. Parse also accepts
// newer well-formed regions. The caller may modify the returned slice.
func Regions(p Partition) []string {
	if pp := partitionByID[p]; pp != nil {
		return slices.Clone(pp.regions)
	}
	return nil
}

// FIPSRegions returns the regions of p with FIPS registry hosts
// (<account>.dkr.ecr-fips.<region>…), sorted; nil if there are none.
func FIPSRegions(p Partition) []string {
	if pp := partitionByID[p]; pp != nil && len(pp.fipsRegions) > 0 {
		return slices.Clone(pp.fipsRegions)
	}
	return nil
}

// PartitionOf returns the partition of a known ECR region.
func PartitionOf(region string) (Partition, bool) {
	if p := partitionByRegion[region]; p != nil {
		return p.id, true
	}
	return "", false
}

// KnownRegion reports whether region is in this package's region table. Parse
// also accepts well-formed regions that are not; for those, CheckResolvable
// tells a region opened since the table was written from a typo.
func KnownRegion(region string) bool { return partitionByRegion[region] != nil }

// RegistryDomains returns the parent domain of every registry host Parse
// accepts in a known region (such as "dkr.ecr.us-east-1.amazonaws.com" and
// "dkr-ecr.us-east-1.on.aws"), followed by "public.ecr.aws". Every accepted host
// in a region of the table is either "public.ecr.aws" or "<account>." followed
// by one of these domains, which makes the list usable as X.509 permitted DNS
// name constraints. Hosts in regions the table does not know are not covered:
// a name constraint cannot wildcard the region label, and the parent domain
// that would cover them ("amazonaws.com") covers every AWS service too.
func RegistryDomains() []string {
	var out []string
	for _, p := range partitions {
		for _, r := range p.regions {
			out = append(out, p.domains(r)...)
		}
	}
	return append(out, PublicHost)
}

// RegionDomains returns the parent domains of the registry hosts Parse
// accepts in region, known or not ("dkr.ecr.eu-south-3.amazonaws.com",
// "dkr-ecr.eu-south-3.on.aws"), or nil when Parse accepts no host in it.
func RegionDomains(region string) []string {
	p := wellFormed(region)
	if p == nil || (!KnownRegion(region) && likelyTypo(region)) {
		return nil
	}
	return p.domains(region)
}

// domains returns the parent domains of p's registry hosts in region.
func (p *partition) domains(region string) []string {
	fips := p.hasFIPS(region)
	out := []string{"dkr.ecr." + region + "." + p.suffix}
	if fips {
		out = append(out, "dkr.ecr-fips."+region+"."+p.suffix)
	}
	if p.dualStackSuffix != "" {
		out = append(out, "dkr-ecr."+region+"."+p.dualStackSuffix)
		if fips {
			out = append(out, "dkr-ecr-fips."+region+"."+p.dualStackSuffix)
		}
	}
	return out
}

// NextRegions returns the regions AWS most often opens next: for every
// prefix of the known regions ("eu-south-", "us-gov-west-"), the n numbers
// after the highest known one ("eu-south-3", "eu-south-4" for n 2), in table
// order. None of them is known; Parse accepts every one.
func NextRegions(n int) []string {
	var out []string
	for _, p := range partitions {
		highest := map[string]int{}
		var prefixes []string
		for _, r := range p.regions {
			i := strings.LastIndexByte(r, '-')
			num, err := strconv.Atoi(r[i+1:])
			if err != nil {
				continue
			}
			prefix := r[:i+1]
			if _, seen := highest[prefix]; !seen {
				prefixes = append(prefixes, prefix)
			}
			highest[prefix] = max(highest[prefix], num)
		}
		for _, prefix := range prefixes {
			for k := 1; k <= n; k++ {
				if r := prefix + strconv.Itoa(highest[prefix]+k); p.regionPattern.MatchString(r) && !KnownRegion(r) {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// SuggestRegion returns the known region (of any partition) nearest to s by
// edit distance, for "did you mean" messages: "us-eas-1" gives "us-east-1",
// "uswest2" gives "us-west-2". ok is false when no region is reasonably close.
// A known region is returned as is.
func SuggestRegion(s string) (region string, ok bool) {
	return nearestRegion(strings.ToLower(strings.TrimSpace(s)), nil)
}

// maxSuggestInput bounds the work SuggestRegion does on hostile input; no
// region name is close to a string this long.
const maxSuggestInput = 40

// nearestRegion returns the region nearest to s, looking only in the given
// partitions (all of them when ps is empty). Distances ignore hyphens first
// ("uswest2" is "us-west-2"), then count them; ties go to the earlier region
// in partition order.
func nearestRegion(s string, ps []*partition) (string, bool) {
	if s == "" || len(s) > maxSuggestInput {
		return "", false
	}
	if ps == nil {
		for i := range partitions {
			ps = append(ps, &partitions[i])
		}
	}
	// A known area code typed out ("us-", "eu-") is meant: "us-central-1"
	// is not a typo of "ca-central-1".
	area, _, hyphen := strings.Cut(s, "-")
	keepArea := hyphen && areaCodes[area]
	bare := strings.ReplaceAll(s, "-", "")
	best, bestBare, bestFull := "", 0, 0
	for _, p := range ps {
		for _, r := range p.regions {
			if keepArea && !strings.HasPrefix(r, area+"-") {
				continue
			}
			db := editdist.Distance(bare, strings.ReplaceAll(r, "-", ""))
			df := editdist.Distance(s, r)
			if best == "" || db < bestBare || (db == bestBare && df < bestFull) {
				best, bestBare, bestFull = r, db, df
			}
		}
	}
	// Two edits is what a typo looks like (a dropped, doubled or swapped
	// letter, a missing hyphen); more than that is a different word. Short
	// inputs must also keep most of their letters.
	if best == "" || bestBare > 2 || bestFull > 3 || 2*bestBare >= len(bare) {
		return "", false
	}
	return best, true
}
