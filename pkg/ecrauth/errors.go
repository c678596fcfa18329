package ecrauth

import (
	"fmt"

	"github.com/ecrgate/ecrgate/pkg/awserr"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// Error is a failure to get a token, explained in one sentence that says
// what to do (Error()); the cause stays available through Unwrap.
type Error struct {
	Registry ecrhost.Registry
	Identity Identity
	Err      error
}

func (e *Error) Unwrap() error { return e.Err }

// Kind classifies the failure: "no-credentials", "sso-expired",
// "profile-missing", "access-denied", "bad-key", "bad-secret",
// "expired-credentials", "throttled" or "other".
func (e *Error) Kind() string { k, _ := e.explain(); return k }

func (e *Error) Error() string { _, msg := e.explain(); return msg }

func (e *Error) profile() string {
	if e.Identity.Profile != "" {
		return e.Identity.Profile
	}
	return "<name>"
}

func (e *Error) who() string {
	if e.Identity.Profile != "" {
		return fmt.Sprintf("AWS profile %q", e.Identity.Profile)
	}
	return "the default AWS credentials"
}

// explain classifies the failure with awserr.Classify (the SDK's error
// types) and says what to do about it.
func (e *Error) explain() (kind, msg string) {
	host := e.Registry.Host
	action := "ecr:GetAuthorizationToken"
	if e.Registry.Public {
		action = "ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken"
	}
	switch awserr.Classify(e.Err) {
	case awserr.AccessDenied:
		who := awserr.Principal(e.Err)
		if who == "" {
			who = e.who()
		}
		return "access-denied", fmt.Sprintf("%s may not call %s for %s: attach a policy that allows it (for example the managed policy AmazonEC2ContainerRegistryPowerUser)", who, action, host)
	case awserr.UnknownKey:
		return "bad-key", fmt.Sprintf("AWS does not recognise the access key of %s: check AWS_ACCESS_KEY_ID or the profile's aws_access_key_id, or run `aws configure`", e.who())
	case awserr.BadSignature:
		return "bad-secret", fmt.Sprintf("the secret access key of %s does not match its access key id: check AWS_SECRET_ACCESS_KEY or run `aws configure`", e.who())
	case awserr.ExpiredCredentials:
		return "expired-credentials", fmt.Sprintf("the temporary AWS credentials of %s have expired: refresh them (`aws sso login --profile %s`, or assume the role again)", e.who(), e.profile())
	case awserr.Throttled:
		return "throttled", fmt.Sprintf("AWS is throttling GetAuthorizationToken for %s: wait a moment and try again", host)
	case awserr.SSOExpired:
		return "sso-expired", fmt.Sprintf("the AWS SSO session for %s has expired or is missing: run `aws sso login --profile %s`", e.who(), e.profile())
	case awserr.ProfileMissing:
		return "profile-missing", fmt.Sprintf("AWS profile %q is not in ~/.aws/config or ~/.aws/credentials: create it with `aws configure --profile %s` or fix the profile name in ecrgate's config", e.profile(), e.profile())
	case awserr.NoCredentials:
		return "no-credentials", fmt.Sprintf("no AWS credentials found for %s (tried AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile %s in ~/.aws/credentials and ~/.aws/config with SSO and role profiles, web identity, container and instance metadata): run `aws configure` or `aws sso login --profile %s`",
			host, profileForMsg(e.Identity.Profile), e.profile())
	}
	return "other", fmt.Sprintf("could not get an ECR token for %s: %v", host, e.Err)
}

func profileForMsg(p string) string {
	if p == "" {
		return "default (or AWS_PROFILE)"
	}
	return fmt.Sprintf("%q", p)
}
