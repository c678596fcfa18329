package ecrauth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/smithy-go"

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

var principalRE = regexp.MustCompile(`User: (\S+) is not authorized`)

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

func (e *Error) explain() (kind, msg string) {
	host := e.Registry.Host
	text := e.Err.Error()
	action := "ecr:GetAuthorizationToken"
	if e.Registry.Public {
		action = "ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken"
	}
	var api smithy.APIError
	code := ""
	if errors.As(e.Err, &api) {
		code = api.ErrorCode()
	}
	switch {
	case code == "AccessDeniedException" || code == "AccessDenied":
		who := e.who()
		if m := principalRE.FindStringSubmatch(api.ErrorMessage()); m != nil {
			who = m[1]
		}
		return "access-denied", fmt.Sprintf("%s may not call %s for %s: attach a policy that allows it (for example the managed policy AmazonEC2ContainerRegistryPowerUser)", who, action, host)
	case code == "UnrecognizedClientException" || code == "InvalidClientTokenId":
		return "bad-key", fmt.Sprintf("AWS does not recognise the access key of %s: check AWS_ACCESS_KEY_ID or the profile's aws_access_key_id, or run `aws configure`", e.who())
	case code == "InvalidSignatureException" || code == "SignatureDoesNotMatch":
		return "bad-secret", fmt.Sprintf("the secret access key of %s does not match its access key id: check AWS_SECRET_ACCESS_KEY or run `aws configure`", e.who())
	case code == "ExpiredTokenException" || code == "ExpiredToken" || code == "RequestExpired":
		return "expired-credentials", fmt.Sprintf("the temporary AWS credentials of %s have expired: refresh them (`aws sso login --profile %s`, or assume the role again)", e.who(), e.profile())
	case code == "ThrottlingException" || code == "Throttling":
		return "throttled", fmt.Sprintf("AWS is throttling GetAuthorizationToken for %s: wait a moment and try again", host)
	case containsAny(text, "SSO session has expired", "SSO session", "refresh cached SSO token", "InvalidGrantException", "sso_session", "SSO OIDC", "SSO token", "GetRoleCredentials"):
		return "sso-expired", fmt.Sprintf("the AWS SSO session for %s has expired or is missing: run `aws sso login --profile %s`", e.who(), e.profile())
	case containsAny(text, "failed to get shared config profile", "SharedConfigProfileNotExist"):
		return "profile-missing", fmt.Sprintf("AWS profile %q is not in ~/.aws/config or ~/.aws/credentials: create it with `aws configure --profile %s` or fix the profile name in ecrgate's config", e.profile(), e.profile())
	case containsAny(text, "failed to refresh cached credentials", "failed to retrieve credentials", "no EC2 IMDS role found", "no valid providers", "static credentials are empty", "AnonymousCredentials"):
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

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
