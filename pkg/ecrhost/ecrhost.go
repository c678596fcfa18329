// Package ecrhost parses and classifies Amazon ECR registry host names.
//
// Parse accepts what users type or paste — a bare host, a URL with a scheme, a
// port or a path, a trailing dot, any letter case — and returns the registry's
// account, region, partition and endpoint flavour (FIPS, dual-stack, ECR
// Public), or a *HostError that says in one sentence why the input is not an
// ECR registry host and, for a near miss, which host was probably meant.
//
// The accepted forms are:
//
//	<account>.dkr.ecr.<region>.amazonaws.com          aws, aws-us-gov
//	<account>.dkr.ecr-fips.<region>.amazonaws.com     FIPS (US and GovCloud regions)
//	<account>.dkr-ecr.<region>.on.aws                 dual-stack (IPv4 and IPv6)
//	<account>.dkr-ecr-fips.<region>.on.aws            dual-stack FIPS
//	<account>.dkr.ecr.<region>.amazonaws.com.cn       aws-cn
//	<account>.dkr-ecr.<region>.on.amazonwebservices.com.cn
//	<account>.dkr.ecr.<region>.c2s.ic.gov             aws-iso
//	<account>.dkr.ecr.<region>.sc2s.sgov.gov          aws-iso-b
//	<account>.dkr.ecr.<region>.amazonaws.eu           aws-eusc (European Sovereign Cloud)
//	public.ecr.aws                                    ECR Public
//
// <region> is any well-formed region name of the partition, known or not: a
// region AWS opens after this release works without a new one. The region
// table in regions.go only helps a person who mistyped: Parse refuses an
// unknown region that is not built like a region name ("us-eas-1": no region
// word, and a typo away from us-east-1), and CheckResolvable, given a
// resolver, turns a well-formed unknown region whose API endpoint does not
// resolve into the same kind of "did you mean" error. Parse itself does no
// I/O.
package ecrhost

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// PublicHost is the registry host of Amazon ECR Public.
const PublicHost = "public.ecr.aws"

// publicRegion is the only region ECR Public's API is served from.
const publicRegion = "us-east-1"

// Registry is a parsed Amazon ECR registry host.
type Registry struct {
	Host      string    // normalized host: lower case, no scheme, port, path or trailing dot
	Account   string    // 12-digit registry id; empty for ECR Public
	Region    string    // e.g. "us-east-1"; "us-east-1" for ECR Public
	Partition Partition // e.g. "aws"
	FIPS      bool      // <account>.dkr.ecr-fips.<region>… or <account>.dkr-ecr-fips.<region>…
	DualStack bool      // <account>.dkr-ecr.<region>.on.aws (IPv4 and IPv6)
	Public    bool      // public.ecr.aws
}

// HostError reports why Parse rejected its input.
type HostError struct {
	Input  string // the string given to Parse
	Reason string // one lower-case sentence saying what is wrong
	// Suggestion is a registry host that Parse accepts and that the input
	// probably meant (a region typo fixed, the partition's suffix put right);
	// empty when there is no likely candidate.
	Suggestion string
}

func (e *HostError) Error() string { return e.Reason }

// wantHint ends the reason given for hosts that are not ECR hosts at all.
const wantHint = "(want <account>.dkr.ecr.<region>.amazonaws.com)"

// hostPattern matches every private registry host form, anchored, on the
// normalized host name only. Its groups are loose on purpose (any label for
// the account and region, any pairing of form and suffix) so that Parse can
// say which part is wrong instead of only "no match".
var hostPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:([^.]+)\.)?(dkr\.ecr|dkr\.ecr-fips|dkr-ecr|dkr-ecr-fips)\.([^.]+)\.(amazonaws\.com|amazonaws\.com\.cn|on\.aws|on\.amazonwebservices\.com\.cn|c2s\.ic\.gov|sc2s\.sgov\.gov|amazonaws\.eu)$`)
})

// apiPattern matches ECR control-plane host names, which users sometimes give
// where a registry host belongs.
var apiPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:api\.)?ecr(?:-fips|-public)?\.([^.]+)\.(?:amazonaws\.com(?:\.cn)?|api\.aws|api\.amazonwebservices\.com\.cn|c2s\.ic\.gov|sc2s\.sgov\.gov|amazonaws\.eu)$`)
})

// dualStackSuffixes are the host suffixes of dual-stack registry hosts.
var dualStackSuffixes = map[string]bool{"on.aws": true, "on.amazonwebservices.com.cn": true}

// Parse parses s as an Amazon ECR registry host. s may carry an http:// or
// https:// scheme, a port, a path (such as /v2/ or /team/app), a trailing dot
// and upper-case letters; only the host name is looked at. Every error is a
// *HostError.
func Parse(s string) (Registry, error) {
	host, err := hostname(s)
	if err != nil {
		return Registry{}, err
	}
	if host == PublicHost {
		return Registry{Host: PublicHost, Region: publicRegion, Partition: PartitionAWS, Public: true}, nil
	}
	m := hostPattern().FindStringSubmatch(host)
	if m == nil {
		if am := apiPattern().FindStringSubmatch(host); am != nil {
			return Registry{}, &HostError{Input: s, Reason: fmt.Sprintf(
				"%q is an Amazon ECR API endpoint, not a registry host (want <account>.dkr.ecr.%s.amazonaws.com)", host, am[1])}
		}
		return Registry{}, &HostError{Input: s, Reason: fmt.Sprintf("%q is not an Amazon ECR registry host %s", host, wantHint)}
	}
	account, form, region, suffix := m[1], m[2], m[3], m[4]
	fips := strings.HasSuffix(form, "-fips")
	dualStack := strings.HasPrefix(form, "dkr-ecr")

	if account == "" {
		return Registry{}, &HostError{Input: s, Reason: fmt.Sprintf("%q has no account id (want <account>.%s)", host, host)}
	}
	if !isAccount(account) {
		return Registry{}, &HostError{Input: s, Reason: fmt.Sprintf("account %q must be 12 digits", account)}
	}

	p := wellFormed(region)
	if p == nil || (!KnownRegion(region) && likelyTypo(region)) {
		return Registry{}, unknownRegion(s, account, region, suffix, fips, dualStack)
	}
	r := Registry{Account: account, Region: region, Partition: p.id, FIPS: fips, DualStack: dualStack}

	if dualStack && p.dualStackSuffix == "" {
		return Registry{}, &HostError{Input: s, Reason: fmt.Sprintf("partition %s has no dual-stack registry endpoint", p.id)}
	}
	if fips && !p.hasFIPS(region) {
		reason := fmt.Sprintf("region %s has no FIPS registry endpoint", region)
		if len(p.fipsRegions) > 0 {
			reason += fmt.Sprintf(" (FIPS registries exist in %s)", strings.Join(p.fipsRegions, ", "))
		}
		return Registry{}, &HostError{Input: s, Reason: reason}
	}
	want := p.suffix
	if dualStack {
		want = p.dualStackSuffix
	}
	if suffix != want {
		r.Host = r.String()
		var reason string
		switch {
		case dualStackSuffixes[suffix] && !dualStack:
			reason = fmt.Sprintf("hosts ending in .%s are dual-stack and start <account>.dkr-ecr, not <account>.dkr.ecr", suffix)
		case !dualStackSuffixes[suffix] && dualStack:
			reason = fmt.Sprintf("dkr-ecr hosts are dual-stack and end in .%s, not .%s", want, suffix)
		default:
			reason = fmt.Sprintf("region %s is in partition %s, whose registry hosts end in .%s, not .%s", region, p.id, want, suffix)
		}
		return Registry{}, &HostError{Input: s, Reason: reason, Suggestion: r.Host}
	}
	r.Host = r.String()
	return r, nil
}

// hostname returns the normalized host name in s: lower case, without scheme,
// user information, port, path or a trailing dot. Like the awslabs credential
// helper's ExtractRegistry, it lets net/url split the input and keeps only
// Hostname().
func hostname(s string) (string, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return "", &HostError{Input: in, Reason: "empty registry host " + wantHint}
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok && isScheme(scheme) {
		switch strings.ToLower(scheme) {
		case "https", "http":
			s = rest
		default:
			return "", &HostError{Input: in, Reason: fmt.Sprintf("scheme %q is not supported (want https:// or no scheme)", scheme)}
		}
	}
	u, err := url.Parse("https://" + s)
	if err != nil {
		return "", &HostError{Input: in, Reason: fmt.Sprintf("%q is not a host name or url %s", s, wantHint)}
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if host == "" {
		return "", &HostError{Input: in, Reason: fmt.Sprintf("%q has no host name %s", s, wantHint)}
	}
	// Lower-case ASCII only: strings.ToLower would also fold look-alikes such
	// as the Kelvin sign into "k" and accept a host DNS would never resolve.
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return "", &HostError{Input: in, Reason: fmt.Sprintf("%q is not an Amazon ECR registry host %s", host, wantHint)}
		}
	}
	return strings.ToLower(host), nil
}

// unknownRegion builds the error for a region no partition lists, suggesting
// the nearest region of the partitions the host's suffix belongs to.
func unknownRegion(input, account, region, suffix string, fips, dualStack bool) *HostError {
	return suggestRegion(input, "", account, region, suffix, fips, dualStack)
}

// suggestRegion builds an "unknown region" error whose reason, after the
// partition, carries detail (if any) and then the nearest known region.
func suggestRegion(input, detail, account, region, suffix string, fips, dualStack bool) *HostError {
	var candidates []*partition
	for i := range partitions {
		p := &partitions[i]
		if p.suffix == suffix || p.dualStackSuffix == suffix {
			candidates = append(candidates, p)
		}
	}
	name := PartitionAWS
	if len(candidates) > 0 {
		name = candidates[0].id
	}
	if len(candidates) > 1 && strings.HasPrefix(region, "us-gov-") {
		name = PartitionAWSUSGov
	}
	e := &HostError{Input: input, Reason: fmt.Sprintf("unknown region %q for partition %s", region, name)}
	if detail != "" {
		e.Reason += ": " + detail
	}
	// Prefer a region the host's suffix fits; else one of another partition
	// ("cn-nort-1" under amazonaws.com), whose suffix the suggestion then uses.
	near, ok := nearestRegion(region, candidates)
	if !ok {
		if near, ok = nearestRegion(region, nil); !ok {
			return e
		}
	}
	e.Reason += fmt.Sprintf(" (did you mean %s?)", near)
	p := partitionByRegion[near]
	r := Registry{Account: account, Region: near, Partition: p.id, FIPS: fips, DualStack: dualStack}
	// Offer a corrected host only if the fix needs nothing else changed.
	if (!fips || p.hasFIPS(near)) && (!dualStack || p.dualStackSuffix != "") {
		e.Suggestion = r.String()
	}
	return e
}

// String returns the registry's canonical host name, or "" for the zero
// Registry.
func (r Registry) String() string {
	if r.Public {
		return PublicHost
	}
	p := partitionByID[r.Partition]
	if p == nil || r.Account == "" || r.Region == "" {
		return ""
	}
	form, suffix := "dkr.ecr", p.suffix
	if r.DualStack {
		form, suffix = "dkr-ecr", p.dualStackSuffix
	}
	if r.FIPS {
		form += "-fips"
	}
	return r.Account + "." + form + "." + r.Region + "." + suffix
}

// APIEndpoint returns the URL of the ECR control-plane API that belongs with
// this registry host: the FIPS API for a FIPS host, the dual-stack API for a
// dual-stack host, the ECR Public API for public.ecr.aws. It returns "" for
// the zero Registry.
//
//	123456789012.dkr.ecr.us-east-1.amazonaws.com       https://api.ecr.us-east-1.amazonaws.com
//	123456789012.dkr.ecr-fips.us-east-1.amazonaws.com  https://ecr-fips.us-east-1.amazonaws.com
//	123456789012.dkr-ecr.us-east-1.on.aws              https://ecr.us-east-1.api.aws
//	123456789012.dkr-ecr-fips.us-east-1.on.aws         https://ecr-fips.us-east-1.api.aws
//	123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn   https://api.ecr.cn-north-1.amazonaws.com.cn
//	123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu   https://api.ecr.eusc-de-east-1.amazonaws.eu
//	public.ecr.aws                                     https://api.ecr-public.us-east-1.amazonaws.com
//
// The FIPS host names are the ones the SDK's endpoint table and the AWS
// General Reference list; the SDK's newer rule-based resolver picks
// api.ecr-fips.<region>.amazonaws.com instead, which serves the same API.
func (r Registry) APIEndpoint() string {
	if r.Public {
		return "https://api.ecr-public." + publicRegion + ".amazonaws.com"
	}
	p := partitionByID[r.Partition]
	if p == nil || r.Region == "" {
		return ""
	}
	switch {
	case r.DualStack && r.FIPS:
		return "https://ecr-fips." + r.Region + "." + p.dualStackAPISuffix
	case r.DualStack:
		return "https://ecr." + r.Region + "." + p.dualStackAPISuffix
	case r.FIPS:
		return "https://ecr-fips." + r.Region + "." + p.suffix
	default:
		return "https://api.ecr." + r.Region + "." + p.suffix
	}
}

// isAccount reports whether s is a 12-digit registry id.
func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isScheme reports whether s has the syntax of a URL scheme (RFC 3986 3.1).
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
