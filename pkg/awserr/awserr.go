// Package awserr classifies the errors of AWS SDK calls, once for every
// package that explains them to a person: the credential helper's token
// source (pkg/ecrauth), the repository ensurer (pkg/repocreate) and
// `ecrgate doctor`.
//
// Classify looks at the SDK's own error types with errors.As: the API error
// code of smithy.APIError (which is what *types.RepositoryNotFoundException
// and every other modelled exception report), *types.RepositoryNotFoundException
// and *types.RepositoryAlreadyExistsException, ssocreds.InvalidTokenError,
// config.SharedConfigProfileNotExistError, credentials.StaticCredentialsEmptyError,
// the *smithy.OperationError of the SSO, SSO OIDC and instance-metadata
// clients nested in a failed credential lookup, retry.MaxAttemptsError,
// smithyhttp.RequestSendError and the HTTP status of a response.
//
// One thing the SDK leaves without a type: a credential provider chain that
// found nothing, and the sso-session token provider, wrap their failures
// with fmt.Errorf only. For those, and only those, sdkWording below matches
// the SDK's fixed wording; each entry names where the SDK writes it.
package awserr

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/sso"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Kind is what went wrong with an AWS call, as far as ecrgate tells a
// person what to do about it.
type Kind int

// The kinds. Classify returns Other for anything it does not recognise.
const (
	Other              Kind = iota
	NotFound                // RepositoryNotFoundException
	AlreadyExists           // RepositoryAlreadyExistsException
	AccessDenied            // AccessDeniedException, AccessDenied: IAM refuses the action
	UnknownKey              // UnrecognizedClientException, InvalidClientTokenId: AWS does not know the access key
	BadSignature            // InvalidSignatureException, SignatureDoesNotMatch: wrong secret key
	ExpiredCredentials      // ExpiredTokenException, ExpiredToken, RequestExpired
	SSOExpired              // the AWS SSO session has expired or was never started
	ProfileMissing          // the AWS profile named is in no shared config file
	NoCredentials           // the SDK's credential chain found no credentials
	Throttled               // ThrottlingException and the like
	Unavailable             // server errors, no answer, or every retry failed
	Canceled                // the caller's context was canceled or its deadline passed
	QuotaExceeded           // LimitExceededException
	InvalidParameter        // InvalidParameterException
	InvalidTags             // InvalidTagParameterException, TooManyTagsException
	KMS                     // KmsException
)

var kindNames = [...]string{
	Other: "other", NotFound: "not-found", AlreadyExists: "already-exists", AccessDenied: "access-denied",
	UnknownKey: "unknown-key", BadSignature: "bad-signature", ExpiredCredentials: "expired-credentials",
	SSOExpired: "sso-expired", ProfileMissing: "profile-missing", NoCredentials: "no-credentials",
	Throttled: "throttled", Unavailable: "unavailable", Canceled: "canceled", QuotaExceeded: "quota-exceeded",
	InvalidParameter: "invalid-parameter", InvalidTags: "invalid-tags", KMS: "kms",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "other"
}

// Credentials reports whether k says the caller's AWS credentials are
// missing, unknown, wrong or expired.
func (k Kind) Credentials() bool {
	switch k {
	case UnknownKey, BadSignature, ExpiredCredentials, SSOExpired, ProfileMissing, NoCredentials:
		return true
	}
	return false
}

// Transient reports whether retrying later may help: throttling, server or
// network trouble that outlived the SDK's retries, or a caller that stopped
// waiting.
func (k Kind) Transient() bool {
	return k == Throttled || k == Unavailable || k == Canceled
}

// codes maps AWS API error codes to kinds.
var codes = map[string]Kind{
	"RepositoryNotFoundException":      NotFound,
	"RepositoryAlreadyExistsException": AlreadyExists,
	"AccessDeniedException":            AccessDenied,
	"AccessDenied":                     AccessDenied,
	"UnrecognizedClientException":      UnknownKey,
	"InvalidClientTokenId":             UnknownKey,
	"InvalidSignatureException":        BadSignature,
	"SignatureDoesNotMatch":            BadSignature,
	"ExpiredTokenException":            ExpiredCredentials,
	"ExpiredToken":                     ExpiredCredentials,
	"RequestExpired":                   ExpiredCredentials,
	"ThrottlingException":              Throttled,
	"Throttling":                       Throttled,
	"ThrottledException":               Throttled,
	"TooManyRequestsException":         Throttled,
	"RequestLimitExceeded":             Throttled,
	"ServerException":                  Unavailable,
	"InternalFailure":                  Unavailable,
	"ServiceUnavailable":               Unavailable,
	"ServiceUnavailableException":      Unavailable,
	"LimitExceededException":           QuotaExceeded,
	"InvalidParameterException":        InvalidParameter,
	"InvalidTagParameterException":     InvalidTags,
	"TooManyTagsException":             InvalidTags,
	"KmsException":                     KMS,
}

// Service ids of the clients a credential lookup calls on its own.
const (
	ssoService     = sso.ServiceID  // "SSO": GetRoleCredentials
	ssoOIDCService = "SSO OIDC"     // ssooidc.ServiceID: CreateToken, refreshing an sso-session token
	imdsService    = imds.ServiceID // "ec2imds": the last resort of the default credential chain
)

// sdkWording is the SDK's own wording of the failures it gives no type to
// (see the package documentation), by kind.
var sdkWording = []struct {
	kind Kind
	text string
}{
	// credentials/ssocreds/sso_token_provider.go and sso_cached_token.go:
	// "refresh cached SSO token failed, …", "cached SSO token is expired, or
	// not present, and cannot be refreshed", "failed to read cached SSO
	// token file, …".
	{SSOExpired, "cached SSO token"},
	// config/shared_config.go: "failed to find SSO session section, <name>".
	{SSOExpired, "SSO session section"},
	// aws/credential_cache.go: "failed to refresh cached credentials, …",
	// around every provider of the default chain.
	{NoCredentials, "failed to refresh cached credentials"},
	// aws/signer/v4/middleware.go and credentials/stscreds: "failed to
	// retrieve credentials…".
	{NoCredentials, "failed to retrieve credentials"},
	// service/*/auth.go, every client's identity step: "get identity: …".
	{NoCredentials, "get identity: "},
}

// Classify says what kind of failure err is. API error codes come first,
// then failures of the credential lookup (SSO, profile, chain), then the
// caller's context, then server and network trouble.
func Classify(err error) Kind {
	if err == nil {
		return Other
	}
	var nf *types.RepositoryNotFoundException
	if errors.As(err, &nf) {
		return NotFound
	}
	var ae *types.RepositoryAlreadyExistsException
	if errors.As(err, &ae) {
		return AlreadyExists
	}
	if code, _ := Code(err); code != "" {
		if k, ok := codes[code]; ok {
			return k
		}
	}
	var invalidToken *ssocreds.InvalidTokenError
	if errors.As(err, &invalidToken) || nestedService(err, ssoService, ssoOIDCService) {
		return SSOExpired
	}
	var noProfile config.SharedConfigProfileNotExistError
	if errors.As(err, &noProfile) {
		return ProfileMissing
	}
	var empty *credentials.StaticCredentialsEmptyError
	if errors.As(err, &empty) || nestedService(err, imdsService) {
		return NoCredentials
	}
	text := err.Error()
	for _, w := range sdkWording {
		if strings.Contains(text, w.text) {
			return w.kind
		}
	}
	var canceled *smithy.CanceledError
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &canceled) {
		return Canceled
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() >= 500 {
		return Unavailable
	}
	var send *smithyhttp.RequestSendError
	var maxAttempts *retry.MaxAttemptsError
	var netErr net.Error
	if errors.As(err, &send) || errors.As(err, &maxAttempts) || errors.As(err, &netErr) {
		return Unavailable
	}
	return Other
}

// nestedService reports whether err holds a *smithy.OperationError of one
// of services: a call the SDK made on its own, looking for credentials.
func nestedService(err error, services ...string) bool {
	for err != nil {
		if op, ok := err.(*smithy.OperationError); ok {
			for _, s := range services {
				if op.ServiceID == s {
					return true
				}
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if nestedService(e, services...) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// Code returns the AWS error code of err and its message, or "" and "" if
// err carries no API error.
func Code(err error) (code, message string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

var principalRE = regexp.MustCompile(`User: (\S+) is not authorized`)

// Principal returns the AWS principal an access-denied error names ("User:
// arn:aws:iam::123456789012:user/bob is not authorized to perform: …"), or
// "" when err is no such error or names none.
func Principal(err error) string {
	if Classify(err) != AccessDenied {
		return ""
	}
	_, msg := Code(err)
	if m := principalRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

// Short is err in few words: the AWS code and message when there is an API
// error (the SDK's wrapping repeats the operation and the request id), what
// kept a request from being answered, or else err's text.
func Short(err error) string {
	if code, msg := Code(err); code != "" {
		if msg == "" {
			return code
		}
		return code + ": " + msg
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) && send.Err != nil {
		return "request not answered: " + send.Err.Error()
	}
	return err.Error()
}
