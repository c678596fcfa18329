package repocreate

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/config"
)

// This file exports, read-only, the pieces of the ensurer that `ecrgate
// explain` and `ecrgate doctor` reuse so that they tell what Ensure would do
// without a second copy of its rules.

// SDKClients returns the default Options.Clients: an ECR client per registry
// built with awsconf from cfg's registries: entry and env, exactly as the
// proxy's ensurer builds it, and the identity (ARN) it acts as ("unknown"
// when STS GetCallerIdentity fails).
func SDKClients(cfg *config.Config, env []string) func(ctx context.Context, registry string) (ECR, string, error) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	return newSDKClients(cfg, env).get
}

// ListCreateOnPush returns the prefixes of the registry's repository creation
// templates that apply to CREATE_ON_PUSH ("ROOT" for the fallback), reading
// every page of DescribeRepositoryCreationTemplates of the caller's own
// registry. It calls nothing else.
func ListCreateOnPush(ctx context.Context, client ecr.DescribeRepositoryCreationTemplatesAPIClient) ([]string, error) {
	return listCreateOnPush(ctx, templatesOnly{c: client})
}

// templatesOnly lets listCreateOnPush use a client that can only describe
// creation templates; any other ECR method would panic, and none is called.
type templatesOnly struct {
	ECR
	c ecr.DescribeRepositoryCreationTemplatesAPIClient
}

func (t templatesOnly) DescribeRepositoryCreationTemplates(ctx context.Context, in *ecr.DescribeRepositoryCreationTemplatesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeRepositoryCreationTemplatesOutput, error) {
	return t.c.DescribeRepositoryCreationTemplates(ctx, in, optFns...)
}

// MatchNative returns the creation-template prefix ECR applies to
// repository among prefixes, as Ensure decides whether to leave a creation
// to ECR: the longest prefix p with repository under p + "/", else "ROOT"
// when present, else "".
func MatchNative(prefixes []string, repository string) string {
	return matchNative(prefixes, repository)
}

// AccountOf returns the 12-digit account id in an IAM or STS ARN, or "".
// Ensure reads ECR's creation templates only when the identity's account is
// the registry's: DescribeRepositoryCreationTemplates answers about the
// caller's own registry.
func AccountOf(arn string) string { return accountOf(arn) }

// APICode returns the AWS error code of err ("AccessDeniedException",
// "RepositoryNotFoundException", …), or "".
func APICode(err error) string {
	code, _ := apiCode(err)
	return code
}

// ExplainError is the one-sentence message Ensure would give the push client
// when ECR operation op fails with err for plan p, acting as identity, under
// cfg (nil: all defaults).
func ExplainError(cfg *config.Config, op string, p Plan, identity string, err error) string {
	if cfg == nil {
		cfg = &config.Config{}
	}
	return mapError(op, p, identity, configName(cfg), err).Message
}

// NativeLookupFails reports whether Ensure fails a push when
// DescribeRepositoryCreationTemplates fails with err (throttling, server or
// network trouble). Otherwise — access denied, say — it carries on as if the
// registry had no CREATE_ON_PUSH templates.
func NativeLookupFails(err error) bool {
	return transient(err) && !isAccessDenied(APICode(err))
}
