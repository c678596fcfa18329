package ecrhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Resolver looks up host names. *net.Resolver (net.DefaultResolver) is one;
// tests pass a stub, so that no test asks real DNS.
type Resolver interface {
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

// CheckResolvable tells a region AWS opened after this release from a
// mistyped one. For a registry in a region the table knows, or ECR Public, it
// returns nil without a lookup. For another region it looks up the host of
// r's API endpoint with res: if DNS answers that the name does not exist, it
// returns a *HostError saying the region is unknown, with the nearest known
// region as "did you mean"; if the name resolves, or the lookup fails for
// another reason (no network, a timeout: nothing is learnt), it returns nil and
// the caller goes on, so a new region works without a release.
//
// Call it before the first request to the API endpoint (the helper's cache
// miss, setup), or use NotFoundHint on the error of a request that failed.
func CheckResolvable(ctx context.Context, r Registry, res Resolver) error {
	host := apiHost(r)
	if host == "" || KnownRegion(r.Region) {
		return nil
	}
	_, err := res.LookupHost(ctx, host)
	if !isNotFound(err) {
		return nil
	}
	return notFound(r, host)
}

// NotFoundHint returns err with the unknown-region error of CheckResolvable
// in front when err says that the API endpoint of r, in a region the table
// does not know, does not resolve (a *net.DNSError with IsNotFound, anywhere
// in err's chain, as the SDK's request-send error carries it, for an ECR API
// host of r's region in any of its spellings); otherwise it
// returns err unchanged. The result matches both the *HostError and err with
// errors.As.
func NotFoundHint(r Registry, err error) error {
	host := apiHost(r)
	if err == nil || host == "" || KnownRegion(r.Region) || !isNotFound(err) {
		return err
	}
	var de *net.DNSError
	errors.As(err, &de)
	if name := strings.ToLower(strings.TrimSuffix(de.Name, ".")); name != "" && name != host {
		// The SDK's rule-based resolver may spell the endpoint its own way
		// (api.ecr-fips.<region>… for ecr-fips.<region>…); any ECR API host
		// of r's region counts, any other name (a proxy, STS) does not.
		m := apiPattern().FindStringSubmatch(name)
		if m == nil || m[1] != r.Region {
			return err
		}
		host = name
	}
	return fmt.Errorf("%w: %w", notFound(r, host), err)
}

// apiHost returns the host name of r's API endpoint, or "".
func apiHost(r Registry) string {
	if r.Public {
		return ""
	}
	u, err := url.Parse(r.APIEndpoint())
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// isNotFound reports whether err is DNS saying a name does not exist.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// notFound is the error for r, in an unknown region whose API endpoint host
// does not resolve.
func notFound(r Registry, host string) *HostError {
	p := partitionByID[r.Partition]
	suffix := ""
	if p != nil {
		suffix = p.suffix
		if r.DualStack {
			suffix = p.dualStackSuffix
		}
	}
	return suggestRegion(r.Host, host+" does not resolve", r.Account, r.Region, suffix, r.FIPS, r.DualStack)
}
