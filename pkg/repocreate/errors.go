package repocreate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/awserr"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// What each ECR operation the ensurer calls does, for "may not …" messages.
var opVerb = map[string]string{
	"DescribeRepositories":                "look up repositories",
	"CreateRepository":                    "create repositories",
	"PutLifecyclePolicy":                  "set lifecycle policies",
	"SetRepositoryPolicy":                 "set repository policies",
	"DescribeRepositoryCreationTemplates": "read repository creation templates",
}

// templateOp marks the operations whose input comes from the template, so
// that ECR rejecting it means the template needs fixing.
var templateOp = map[string]bool{"CreateRepository": true, "PutLifecyclePolicy": true, "SetRepositoryPolicy": true}

// mapError turns the failure of ECR operation op for plan p into the
// registry error the push client gets. identity is the AWS principal
// ecrgate acts as ("unknown" if not known). The kind of failure is
// awserr.Classify's.
func mapError(op string, p Plan, identity, cfgName string, err error) errcode.Error {
	var ec errcode.Error
	if errors.As(err, &ec) {
		return ec
	}
	_, msg := awserr.Code(err)
	tmpl := describeTemplate(p.Template)
	kind := awserr.Classify(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf(
			"ecrgate gave up waiting for ECR (%s of %q in %s): %v; retry the push", op, p.Repository, p.Registry, err))

	case kind == awserr.AccessDenied:
		who := awserr.Principal(err)
		if who == "" {
			who = identityOr(identity)
		}
		verb := opVerb[op]
		if verb == "" {
			verb = "call " + op
		}
		advice := fmt.Sprintf("allow ecr:%s on %s in its IAM policy", op, repositoryARN(p))
		if op == "CreateRepository" {
			advice += ", or create the repository yourself"
		}
		return errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"%s may not %s (ecr:%s) in %s: %s (AWS said: %s)", who, verb, op, p.Registry, advice, msg))

	case kind.Credentials():
		return errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"ecrgate has no usable AWS credentials for %s (%s failed: %v): run `aws configure` or `aws sso login`, or set profile: or role_arn: for this registry in %s",
			p.Registry, op, err, cfgName))

	case kind == awserr.QuotaExceeded:
		return errcode.ErrorCodeTooManyRequests.WithMessage(fmt.Sprintf(
			"ECR refused %s of %q in %s because a service quota would be exceeded (AWS said: %s): delete unused repositories or ask AWS for a higher quota in the Service Quotas console, then retry the push",
			op, p.Repository, p.Registry, msg))

	case kind == awserr.InvalidParameter && op == "CreateRepository" && strings.Contains(strings.ToLower(msg), "repositoryname"):
		return errcode.ErrorCodeNameInvalid.WithMessage(fmt.Sprintf(
			"ECR rejected the repository name %q: %s", p.Repository, msg))

	case kind == awserr.InvalidParameter && templateOp[op]:
		return errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"ECR rejected the settings of %s for %q (%s: %s): fix that template in %s", tmpl, p.Repository, op, msg, cfgName))

	case kind == awserr.InvalidTags:
		return errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"ECR rejected the tags of %s for %q (%s): fix tags: of that template in %s", tmpl, p.Repository, msg, cfgName))

	case kind == awserr.KMS:
		key := p.Template.Encryption.KMSKey
		if key == "" {
			key = "alias/aws/ecr"
		}
		return errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"ECR could not use KMS key %q of %s to create %q (AWS said: %s): check that the key exists in the registry's region and that %s may use it (kms:DescribeKey, kms:CreateGrant), or fix encryption: of that template",
			key, tmpl, p.Repository, msg, identityOr(identity)))

	case kind.Transient():
		// UNAVAILABLE rather than TOOMANYREQUESTS for throttling too:
		// Docker retries a layer push on the former, not on the latter.
		tries := "after retries"
		var ma *retry.MaxAttemptsError
		if errors.As(err, &ma) {
			tries = fmt.Sprintf("on all %d attempts", ma.Attempt)
		}
		return errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf(
			"ECR is throttling or unavailable (%s of %q in %s failed %s: %s); retry the push in a minute",
			op, p.Repository, p.Registry, tries, awserr.Short(err)))
	}
	return errcode.ErrorCodeUnknown.WithMessage(fmt.Sprintf(
		"ECR %s of %q in %s failed: %s", op, p.Repository, p.Registry, awserr.Short(err)))
}

func identityOr(identity string) string {
	if identity == "" || identity == unknownIdentity {
		return "ecrgate's AWS identity"
	}
	return identity
}

// repositoryARN is the ARN an IAM policy must allow for p's repository.
func repositoryARN(p Plan) string {
	reg, err := ecrhost.Parse(p.Registry)
	if err != nil {
		return "arn:aws:ecr:*:*:repository/" + p.Repository
	}
	return fmt.Sprintf("arn:%s:ecr:%s:%s:repository/%s", reg.Partition, reg.Region, reg.Account, p.Repository)
}
