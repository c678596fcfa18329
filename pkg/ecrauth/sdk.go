package ecrauth

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"

	"github.com/ecrgate/ecrgate/pkg/awsconf"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// SDKFetcher gets tokens with the AWS SDK's default credential chain
// (environment, shared config and credentials files, SSO, assume role, web
// identity, container and instance metadata), in the registry's region.
type SDKFetcher struct {
	// Env is the environment, used to decide whether an endpoint override
	// is set (the SDK itself reads the process environment).
	Env []string
	// HTTPClient, if set, is used for every AWS call (tests).
	HTTPClient aws.HTTPClient
	// MaxAttempts bounds attempts per AWS call (0: the SDK's default, 3).
	MaxAttempts int
}

var _ Fetcher = (*SDKFetcher)(nil)

// Fetch implements Fetcher.
func (f *SDKFetcher) Fetch(ctx context.Context, reg ecrhost.Registry, id Identity) (Token, error) {
	// Messages name the profile in use, configured or from AWS_PROFILE.
	named := id
	if named.Profile == "" {
		named.Profile = environ.Map(f.Env)["AWS_PROFILE"]
	}
	cfg, err := f.config(ctx, reg, id)
	if err != nil {
		return Token{}, &Error{Registry: reg, Identity: named, Err: err}
	}
	t, err := f.fetch(ctx, cfg, reg, id)
	if err != nil {
		return Token{}, &Error{Registry: reg, Identity: named, Err: err}
	}
	return t, nil
}

func (f *SDKFetcher) config(ctx context.Context, reg ecrhost.Registry, id Identity) (aws.Config, error) {
	return awsconf.Load(ctx, reg, id, awsconf.Options{Env: f.Env, HTTPClient: f.HTTPClient, MaxAttempts: f.MaxAttempts})
}

func (f *SDKFetcher) fetch(ctx context.Context, cfg aws.Config, reg ecrhost.Registry, id Identity) (Token, error) {
	overridden := awsconf.EndpointOverridden(reg, id, f.Env)
	if reg.Public {
		// ECR Public's API lives in us-east-1 only.
		cfg.Region = "us-east-1"
		c := ecrpublic.NewFromConfig(cfg, func(o *ecrpublic.Options) {
			if id.APIEndpoint != "" {
				o.BaseEndpoint = aws.String(id.APIEndpoint)
			}
			if !overridden && reg.DualStack {
				o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
			}
		})
		out, err := c.GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
		if err != nil {
			return Token{}, err
		}
		if out.AuthorizationData == nil {
			return Token{}, ErrNoToken
		}
		return decodeToken(reg.Host, aws.ToString(out.AuthorizationData.AuthorizationToken), out.AuthorizationData.ExpiresAt)
	}
	// The API endpoint follows the registry host: a dkr.ecr-fips host calls
	// ECR's FIPS endpoint, a dual-stack host the dual-stack one.
	c := ecr.NewFromConfig(cfg, awsconf.ECROptions(reg, id, f.Env))
	//lint:ignore SA1019 registryIds is deprecated but still names the registry whose proxyEndpoint ECR returns
	out, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{RegistryIds: []string{reg.Account}})
	if err != nil {
		return Token{}, err
	}
	if len(out.AuthorizationData) == 0 {
		return Token{}, ErrNoToken
	}
	ad := out.AuthorizationData[0]
	return decodeToken(reg.Host, aws.ToString(ad.AuthorizationToken), ad.ExpiresAt)
}

func decodeToken(host, b64 string, expires *time.Time) (Token, error) {
	var at time.Time
	if expires != nil {
		at = *expires
	}
	t, err := tokencache.Decode(host, b64, at)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrNoToken, err)
	}
	return t, nil
}
