// Package envtoken gets an ECR token inside the credential helper's own
// process for the commonest set-up: access keys in the environment and
// ECR's standard API endpoint (or an endpoint set in the environment or the
// ecrgate config). It signs one GetAuthorizationToken request with the AWS
// SDK's SigV4 signer and nothing more of the SDK, so a cold `get` costs one
// process start instead of two (the helper, then ecrgate-fetch-token).
//
// For is deliberately narrow: whenever the AWS SDK's default chain could
// choose differently — a profile or role for the registry, a shared config
// that sets endpoints, FIPS, dual-stack or a CA bundle, ECR Public — it
// declines, and the helper runs ecrgate-fetch-token, which has the SDK's
// whole credential chain and its actionable errors. Fetch errors are meant
// to be answered the same way: fall back, never report them as they are.
package envtoken

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"golang.org/x/net/http/httpproxy"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// Timeout bounds one Fetch: past it the helper falls back to the SDK.
const Timeout = 5 * time.Second

// maxResponse caps the response body read (a token response is ~2 KiB).
const maxResponse = 1 << 20

// target is the ECR API's name for GetAuthorizationToken.
const target = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"

// Request is one GetAuthorizationToken call For decided it can make.
type Request struct {
	Registry ecrhost.Registry
	Endpoint *url.URL // the ECR API endpoint
	creds    aws.Credentials
	caBundle string // AWS_CA_BUNDLE: the only roots trusted, as in the SDK
	proxy    func(*url.URL) (*url.URL, error)
}

// For returns the request for host's token, or "" and the reason the SDK
// must handle it instead. env is the process environment as a map.
func For(host string, id tokencache.Identity, env map[string]string) (*Request, string) {
	reg, err := ecrhost.Parse(host)
	switch {
	case err != nil:
		return nil, "not an ECR registry host"
	case reg.Public:
		return nil, "ECR Public uses its own API"
	case reg.FIPS || reg.DualStack:
		return nil, "FIPS and dual-stack endpoints are left to the SDK"
	case id.Profile != "" || id.RoleARN != "":
		return nil, "the registry has a profile or role in the ecrgate config"
	case env["AWS_ACCESS_KEY_ID"] == "" || env["AWS_SECRET_ACCESS_KEY"] == "":
		return nil, "no access keys in the environment"
	case isTrue(env["AWS_USE_FIPS_ENDPOINT"]) || isTrue(env["AWS_USE_DUALSTACK_ENDPOINT"]):
		return nil, "FIPS or dual-stack endpoints are switched on in the environment"
	case isTrue(env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]):
		return nil, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is set"
	}
	// The shared config can set endpoints (its services section outranks
	// AWS_ENDPOINT_URL), FIPS, dual-stack or the TLS roots.
	if why := sharedConfigMatters(env); why != "" {
		return nil, why
	}
	endpoint := tokencache.Endpoint(reg.Host, id, env)
	if endpoint == "" {
		endpoint = reg.APIEndpoint()
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		return nil, "the API endpoint is not a plain http(s) URL"
	}
	return &Request{
		Registry: reg,
		Endpoint: u,
		creds: aws.Credentials{
			AccessKeyID:     env["AWS_ACCESS_KEY_ID"],
			SecretAccessKey: env["AWS_SECRET_ACCESS_KEY"],
			SessionToken:    env["AWS_SESSION_TOKEN"],
		},
		caBundle: env["AWS_CA_BUNDLE"],
		proxy: (&httpproxy.Config{
			HTTPProxy:  envAny(env, "HTTP_PROXY", "http_proxy"),
			HTTPSProxy: envAny(env, "HTTPS_PROXY", "https_proxy"),
			NoProxy:    envAny(env, "NO_PROXY", "no_proxy"),
		}).ProxyFunc(),
	}, ""
}

// sharedConfigMatters says why the shared config file could make the SDK
// act differently from For, or "" when it cannot (no file, or one without
// endpoint, FIPS, dual-stack or CA bundle settings).
func sharedConfigMatters(env map[string]string) string {
	path := env["AWS_CONFIG_FILE"]
	if path == "" {
		home := env["HOME"]
		if home == "" {
			return "no HOME to find the shared AWS config in"
		}
		path = filepath.Join(home, ".aws", "config")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		return "the shared AWS config could not be read"
	}
	s := strings.ToLower(string(b))
	for _, k := range []string{"endpoint_url", "services", "use_fips_endpoint", "use_dualstack_endpoint", "ca_bundle"} {
		if strings.Contains(s, k) {
			return "the shared AWS config sets " + k
		}
	}
	return ""
}

// Fetch makes the call and returns the token. Any error means: ask the SDK.
func (r *Request) Fetch(ctx context.Context, now func() time.Time) (tokencache.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	client, err := r.client()
	if err != nil {
		return tokencache.Token{}, err
	}
	body, err := json.Marshal(map[string][]string{"registryIds": {r.Registry.Account}})
	if err != nil {
		return tokencache.Token{}, err
	}
	u := *r.Endpoint
	if u.Path == "" {
		u.Path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return tokencache.Token{}, fmt.Errorf("build GetAuthorizationToken request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, r.creds, req, hex.EncodeToString(sum[:]), "ecr", r.Registry.Region, now()); err != nil {
		return tokencache.Token{}, fmt.Errorf("sign GetAuthorizationToken: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return tokencache.Token{}, fmt.Errorf("call GetAuthorizationToken at %s: %w", r.Endpoint.Host, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return tokencache.Token{}, fmt.Errorf("read GetAuthorizationToken response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return tokencache.Token{}, fmt.Errorf("GetAuthorizationToken at %s: HTTP %d", r.Endpoint.Host, resp.StatusCode)
	}
	var out struct {
		AuthorizationData []struct {
			AuthorizationToken string   `json:"authorizationToken"`
			ExpiresAt          *float64 `json:"expiresAt"`
		} `json:"authorizationData"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return tokencache.Token{}, fmt.Errorf("decode GetAuthorizationToken response: %w", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].ExpiresAt == nil {
		return tokencache.Token{}, errors.New("GetAuthorizationToken returned no token")
	}
	ad := out.AuthorizationData[0]
	sec, frac := math.Modf(*ad.ExpiresAt)
	return tokencache.Decode(r.Registry.Host, ad.AuthorizationToken, time.Unix(int64(sec), int64(frac*1e9)).UTC())
}

// client is a one-request HTTP client with bounded connection set-up; the
// CA bundle is read only when TLS is about to be used.
func (r *Request) client() (*http.Client, error) {
	tr := &http.Transport{
		Proxy:                 func(req *http.Request) (*url.URL, error) { return r.proxy(req.URL) },
		DialContext:           (&net.Dialer{Timeout: Timeout}).DialContext,
		TLSHandshakeTimeout:   Timeout,
		ResponseHeaderTimeout: Timeout,
		ForceAttemptHTTP2:     true,
	}
	if r.Endpoint.Scheme == "https" && r.caBundle != "" {
		pem, err := os.ReadFile(r.caBundle)
		if err != nil {
			return nil, fmt.Errorf("read AWS_CA_BUNDLE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("AWS_CA_BUNDLE %s holds no certificates", r.caBundle)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: Timeout}, nil
}

func isTrue(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "true") }

func envAny(env map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := env[k]; v != "" {
			return v
		}
	}
	return ""
}
