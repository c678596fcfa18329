// Package awsconf builds the AWS SDK configuration ecrgate uses for one ECR
// registry: the SDK's default credential chain in the registry's region,
// the registry's configured profile or role, its API endpoint override, and
// the FIPS or dual-stack API endpoint when the registry host is one. The
// token source and the repository ensurer share it, so both reach AWS as
// the same identity in the same way.
package awsconf

import (
	"context"
	"fmt"
	"os/user"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// Identity says which AWS identity to use for a registry, as configured for
// it (all fields optional).
type Identity = tokencache.Identity

// Options tune Load.
type Options struct {
	// Env is the environment (os.Environ()); the SDK itself reads the
	// process environment, this decides endpoint and metadata settings.
	Env []string
	// HTTPClient, if set, is used for every AWS call (tests).
	HTTPClient aws.HTTPClient
	// MaxAttempts bounds attempts per AWS call (0: the SDK's default, 3).
	MaxAttempts int
}

// Load returns the SDK configuration for reg as id.
func Load(ctx context.Context, reg ecrhost.Registry, id Identity, o Options) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(reg.Region),
		config.WithEC2RoleCredentialOptions(func(eo *ec2rolecreds.Options) { eo.Client = newBoundedIMDS(environ.Map(o.Env)) }),
	}
	if id.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(id.Profile))
	}
	if o.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(o.HTTPClient))
	}
	if o.MaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(o.MaxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if id.RoleARN != "" {
		stsClient := sts.NewFromConfig(cfg)
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, id.RoleARN, func(ao *stscreds.AssumeRoleOptions) {
			ao.RoleSessionName = SessionName()
		}))
	}
	return cfg, nil
}

// ECROptions points an ECR client at the API endpoint that matches reg: the
// override if one is configured or set in the environment, else the FIPS or
// dual-stack endpoint for FIPS or dual-stack registry hosts. When that
// endpoint is AWS's own and its name does not exist (a region newer than
// ecrhost's table is accepted, a mistyped one only fails here), the call's
// error starts with ecrhost's "unknown region … (did you mean …?)".
func ECROptions(reg ecrhost.Registry, id Identity, env []string) func(*ecr.Options) {
	overridden := EndpointOverridden(reg, id, env)
	return func(o *ecr.Options) {
		if id.APIEndpoint != "" {
			o.BaseEndpoint = aws.String(id.APIEndpoint)
		}
		if !overridden {
			if reg.FIPS {
				o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
			}
			if reg.DualStack {
				o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
			}
			if !ecrhost.KnownRegion(reg.Region) {
				// Clipped: o.APIOptions shares its array with the aws.Config
				// other clients are built from.
				o.APIOptions = append(slices.Clip(o.APIOptions), regionHint(reg))
			}
		}
	}
}

// regionHint adds ecrhost.NotFoundHint to every ECR call's error, outside
// the SDK's retries.
func regionHint(reg ecrhost.Registry) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("ecrgateRegionHint",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				return out, md, ecrhost.NotFoundHint(reg, err)
			}), middleware.Before)
	}
}

// EndpointOverridden reports whether the user pointed the ECR (or ECR
// Public) API somewhere else, in which case FIPS and dual-stack endpoint
// selection must not be combined with it (the SDK refuses both at once).
func EndpointOverridden(reg ecrhost.Registry, id Identity, env []string) bool {
	return tokencache.Endpoint(reg.Host, id, environ.Map(env)) != ""
}

// SessionName names assumed-role sessions after the local user, so
// CloudTrail shows who pushed.
func SessionName() string {
	name := "ecrgate"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name += "-" + u.Username
	}
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("=,.@-_", r) {
			return r
		}
		return '-'
	}, name)
	return clean[:min(len(clean), 64)]
}
