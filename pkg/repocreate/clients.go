package repocreate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ecrgate/ecrgate/pkg/awsconf"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// unknownIdentity stands for the AWS principal when GetCallerIdentity fails.
const unknownIdentity = "unknown"

// ReadECR is the read-only part of the ECR control-plane API: the calls a
// Plan makes. It has only Describe methods, so code that holds a ReadECR —
// the Planner, `ecrgate explain`, `ecrgate doctor` — cannot change anything
// in ECR. *ecr.Client fits, with the SDK's signatures.
type ReadECR interface {
	DescribeRepositories(ctx context.Context, in *ecr.DescribeRepositoriesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error)
	DescribeRepositoryCreationTemplates(ctx context.Context, in *ecr.DescribeRepositoryCreationTemplatesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeRepositoryCreationTemplatesOutput, error)
}

// ECR is ecrgate's ECR control-plane client: what a Plan reads, and the
// writes with which the Ensurer acts on it. *ecr.Client fits.
type ECR interface {
	ReadECR
	CreateRepository(ctx context.Context, in *ecr.CreateRepositoryInput, optFns ...func(*ecr.Options)) (*ecr.CreateRepositoryOutput, error)
	PutLifecyclePolicy(ctx context.Context, in *ecr.PutLifecyclePolicyInput, optFns ...func(*ecr.Options)) (*ecr.PutLifecyclePolicyOutput, error)
	SetRepositoryPolicy(ctx context.Context, in *ecr.SetRepositoryPolicyInput, optFns ...func(*ecr.Options)) (*ecr.SetRepositoryPolicyOutput, error)
}

// readOnly hides every method of a client but ReadECR's, so that planning
// code handed an ECR cannot reach its writes even with a type assertion.
type readOnly struct{ c ReadECR }

func (r readOnly) DescribeRepositories(ctx context.Context, in *ecr.DescribeRepositoriesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error) {
	return r.c.DescribeRepositories(ctx, in, optFns...)
}

func (r readOnly) DescribeRepositoryCreationTemplates(ctx context.Context, in *ecr.DescribeRepositoryCreationTemplatesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeRepositoryCreationTemplatesOutput, error) {
	return r.c.DescribeRepositoryCreationTemplates(ctx, in, optFns...)
}

// readOnlyClients turns an Options.Clients into a PlannerOptions.Clients.
func readOnlyClients(clients func(ctx context.Context, registry string) (ECR, string, error)) func(ctx context.Context, registry string) (ReadECR, string, error) {
	return func(ctx context.Context, registry string) (ReadECR, string, error) {
		c, id, err := clients(ctx, registry)
		if err != nil {
			return nil, id, err
		}
		return readOnly{c}, id, nil
	}
}

var (
	_ ReadECR = readOnly{}
	_ ReadECR = (*ecr.Client)(nil)
)

var _ ECR = (*ecr.Client)(nil)

// sdkClients is the default Options.Clients: one ECR client per registry,
// built with awsconf from the registry's configuration, acting as the
// identity STS GetCallerIdentity names.
type sdkClients struct {
	cfg *config.Config
	env []string

	mu sync.Mutex
	m  map[string]*sdkClient
}

type sdkClient struct {
	ecr *ecr.Client
	sts *sts.Client

	mu       sync.Mutex // held while asking STS, so one call per registry is in flight
	identity string     // "" until GetCallerIdentity succeeds
	retryAt  time.Time  // after a failure, STS is not asked again before this
}

// identityRetry is how long "unknown" stands after GetCallerIdentity fails,
// so a registry whose STS is unreachable does not slow every creation down.
const identityRetry = 5 * time.Minute

// identityTimeout bounds one GetCallerIdentity (with the SDK's retries).
const identityTimeout = 10 * time.Second

// Retries of one ECR API call by the default clients: throttling
// (ThrottlingException and the like), 5xx answers and connections that fail
// or drop are retried by the SDK's standard retryer, at most APIMaxAttempts
// attempts in all, waiting before retry i (1, 2, …) a random time in
// [0, min(apiBaseDelay·2^i, apiMaxBackoff)): at most 0.5s, 1s, 2s, 2s, so
// no more than 5.5s of waiting per call. Then the push gets UNAVAILABLE (see
// mapError). AWS_MAX_ATTEMPTS or max_attempts in the AWS config file, when
// set, replace the number of attempts. The SDK's retry quota (a token
// bucket per client) still applies: when ECR fails for long, retries stop
// early instead of piling up.
const (
	APIMaxAttempts = 5
	apiBaseDelay   = 250 * time.Millisecond
	apiMaxBackoff  = 2 * time.Second
)

// APIMaxRetryWait is the longest an ECR API call can spend waiting between
// its attempts with the default retry settings.
var APIMaxRetryWait = func() time.Duration {
	var total time.Duration
	for i := 1; i < APIMaxAttempts; i++ {
		total += min(apiBaseDelay<<i, apiMaxBackoff)
	}
	return total
}()

// apiBackoff is full-jitter exponential backoff, capped at apiMaxBackoff.
func apiBackoff(attempt int, _ error) (time.Duration, error) {
	limit := apiMaxBackoff
	if attempt < 16 {
		limit = min(apiBaseDelay<<attempt, apiMaxBackoff)
	}
	return rand.N(limit), nil
}

// apiRetryer is the retry policy of the default ECR clients.
func apiRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = APIMaxAttempts
		o.MaxBackoff = apiMaxBackoff
		o.Backoff = retry.BackoffDelayerFunc(apiBackoff)
	})
}

func newSDKClients(cfg *config.Config, env []string) *sdkClients {
	return &sdkClients{cfg: cfg, env: env, m: map[string]*sdkClient{}}
}

// get returns the client for registry and the identity it acts as
// ("unknown" if STS cannot tell; asked again after identityRetry).
func (s *sdkClients) get(ctx context.Context, registry string) (ECR, string, error) {
	c, err := s.client(ctx, registry)
	if err != nil {
		return nil, "", err
	}
	return c.ecr, c.whoAmI(ctx), nil
}

func (s *sdkClients) client(ctx context.Context, registry string) (*sdkClient, error) {
	key := strings.ToLower(registry)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.m[key]; c != nil {
		return c, nil
	}
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return nil, err
	}
	var id awsconf.Identity
	if rc, ok := s.cfg.RegistryConfig(reg.Host); ok {
		id = awsconf.Identity{Profile: rc.Profile, RoleARN: rc.RoleARN, APIEndpoint: rc.APIEndpoint}
	}
	// Loading reads the environment and shared config files only; the
	// credentials are resolved on the first call.
	awsCfg, err := awsconf.Load(ctx, reg, id, awsconf.Options{Env: s.env})
	if err != nil {
		return nil, fmt.Errorf("AWS configuration for %s: %w", reg.Host, err)
	}
	withRetries := func(o *ecr.Options) { o.Retryer = apiRetryer() }
	c := &sdkClient{
		// awsCfg.RetryMaxAttempts (AWS_MAX_ATTEMPTS) is applied on top.
		ecr: ecr.NewFromConfig(awsCfg, awsconf.ECROptions(reg, id, s.env), withRetries),
		sts: sts.NewFromConfig(awsCfg),
	}
	s.m[key] = c
	return c, nil
}

func (c *sdkClient) whoAmI(ctx context.Context) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.identity != "" {
		return c.identity
	}
	if time.Now().Before(c.retryAt) {
		return unknownIdentity
	}
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	out, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(out.Arn) == "" {
		c.retryAt = time.Now().Add(identityRetry)
		return unknownIdentity
	}
	c.identity = aws.ToString(out.Arn)
	return c.identity
}
