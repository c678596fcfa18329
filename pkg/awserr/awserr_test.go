package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ecrgate/ecrgate/pkg/awserr"
)

// op wraps err the way an SDK client's operation does.
func op(service, name string, err error) error {
	return &smithy.OperationError{ServiceID: service, OperationName: name, Err: err}
}

// api is an API error answered with HTTP status.
func api(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err}, RequestID: "r-1"}
}

func generic(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }

func ptr(s string) *string { return &s }

// credentialChain wraps a provider's failure as the SDK's identity step and
// credentials cache do (service/ecr/auth.go, aws/credential_cache.go).
func credentialChain(err error) error {
	return op("ECR", "GetAuthorizationToken", fmt.Errorf("get identity: %w",
		fmt.Errorf("get credentials: %w", fmt.Errorf("failed to refresh cached credentials, %w", err))))
}

func TestClassify(t *testing.T) {
	denied := generic("AccessDeniedException", "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ecr:CreateRepository on resource: x")
	tests := []struct {
		name string
		err  error
		want awserr.Kind
	}{
		{"repository not found, typed", op("ECR", "DescribeRepositories", api(400, &types.RepositoryNotFoundException{Message: ptr("no")})), awserr.NotFound},
		{"repository not found, by code", op("ECR", "DescribeRepositories", api(400, generic("RepositoryNotFoundException", "no"))), awserr.NotFound},
		{"already exists, typed", op("ECR", "CreateRepository", api(400, &types.RepositoryAlreadyExistsException{Message: ptr("dup")})), awserr.AlreadyExists},
		{"access denied", op("ECR", "CreateRepository", api(400, denied)), awserr.AccessDenied},
		{"access denied, STS spelling", op("STS", "AssumeRole", api(403, generic("AccessDenied", "no"))), awserr.AccessDenied},
		{"unknown key", op("ECR", "GetAuthorizationToken", api(400, generic("UnrecognizedClientException", "x"))), awserr.UnknownKey},
		{"bad secret", op("STS", "GetCallerIdentity", api(403, generic("SignatureDoesNotMatch", "x"))), awserr.BadSignature},
		{"expired", op("ECR", "GetAuthorizationToken", api(400, generic("ExpiredTokenException", "x"))), awserr.ExpiredCredentials},
		{"throttled after retries", op("ECR", "CreateRepository", &retry.MaxAttemptsError{Attempt: 5, Err: api(400, generic("ThrottlingException", "slow down"))}), awserr.Throttled},
		{"quota", op("ECR", "CreateRepository", api(400, &types.LimitExceededException{Message: ptr("too many")})), awserr.QuotaExceeded},
		{"invalid parameter", op("ECR", "CreateRepository", api(400, &types.InvalidParameterException{Message: ptr("bad")})), awserr.InvalidParameter},
		{"tags", op("ECR", "CreateRepository", api(400, &types.TooManyTagsException{Message: ptr("51")})), awserr.InvalidTags},
		{"kms", op("ECR", "CreateRepository", api(400, &types.KmsException{Message: ptr("disabled")})), awserr.KMS},
		{"server error code", op("ECR", "CreateRepository", api(500, &types.ServerException{Message: ptr("oops")})), awserr.Unavailable},
		{"5xx without a known code", op("ECR", "CreateRepository", api(503, generic("SomethingElse", "x"))), awserr.Unavailable},
		{"not answered", op("ECR", "CreateRepository", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}), awserr.Unavailable},
		{"canceled", op("ECR", "CreateRepository", &smithy.CanceledError{Err: context.Canceled}), awserr.Canceled},
		{"deadline", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), awserr.Canceled},
		{"legacy SSO token expired", credentialChain(&ssocreds.InvalidTokenError{}), awserr.SSOExpired},
		{"sso-session refresh refused", credentialChain(fmt.Errorf("refresh cached SSO token failed, unable to refresh SSO token, %w",
			op("SSO OIDC", "CreateToken", api(400, generic("InvalidGrantException", "expired"))))), awserr.SSOExpired},
		{"SSO role credentials refused", credentialChain(op("SSO", "GetRoleCredentials", api(401, generic("UnauthorizedException", "x")))), awserr.SSOExpired},
		{"never logged in to the sso session", credentialChain(errors.New("refresh cached SSO token failed, failed to read cached SSO token file, open x: no such file or directory")), awserr.SSOExpired},
		{"missing profile", fmt.Errorf("load AWS configuration: %w", config.SharedConfigProfileNotExistError{Profile: "nope"}), awserr.ProfileMissing},
		{"no credentials, metadata disabled", credentialChain(fmt.Errorf("no EC2 IMDS role found, %w", op("ec2imds", "GetMetadata", errors.New("access disabled to EC2 IMDS")))), awserr.NoCredentials},
		// The metadata probe timed out: still no credentials, not the caller giving up.
		{"no credentials, metadata silent", credentialChain(fmt.Errorf("no EC2 IMDS role found, %w", op("ec2imds", "GetMetadata", &smithy.CanceledError{Err: context.DeadlineExceeded}))), awserr.NoCredentials},
		{"empty static credentials", credentialChain(&credentials.StaticCredentialsEmptyError{}), awserr.NoCredentials},
		{"other credential provider", credentialChain(errors.New("process provider failed")), awserr.NoCredentials},
		{"anything else", errors.New("surprise"), awserr.Other},
		{"unknown API error", op("ECR", "CreateRepository", api(400, generic("SomethingNewException", "surprise"))), awserr.Other},
		{"nil", nil, awserr.Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := awserr.Classify(tt.err); got != tt.want {
				t.Fatalf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestKindGroups(t *testing.T) {
	for k := awserr.Other; k <= awserr.KMS; k++ {
		creds := k == awserr.UnknownKey || k == awserr.BadSignature || k == awserr.ExpiredCredentials ||
			k == awserr.SSOExpired || k == awserr.ProfileMissing || k == awserr.NoCredentials
		transient := k == awserr.Throttled || k == awserr.Unavailable || k == awserr.Canceled
		if k.Credentials() != creds || k.Transient() != transient {
			t.Errorf("%v: Credentials %v Transient %v", k, k.Credentials(), k.Transient())
		}
		if k != awserr.Other && k.String() == "other" {
			t.Errorf("kind %d has no name", k)
		}
	}
}

func TestPrincipalAndShort(t *testing.T) {
	denied := op("ECR", "CreateRepository", api(400, generic("AccessDeniedException",
		"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ecr:CreateRepository")))
	if got := awserr.Principal(denied); got != "arn:aws:iam::123456789012:user/ci" {
		t.Errorf("Principal = %q", got)
	}
	if got := awserr.Principal(op("ECR", "X", api(400, generic("AccessDeniedException", "no")))); got != "" {
		t.Errorf("Principal of a message without one = %q", got)
	}
	// Only an access-denied error names a principal.
	if got := awserr.Principal(op("ECR", "X", api(400, generic("ThrottlingException", "User: x is not authorized")))); got != "" {
		t.Errorf("Principal of throttling = %q", got)
	}
	for err, want := range map[error]string{
		denied: "AccessDeniedException: User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ecr:CreateRepository",
		op("ECR", "X", api(400, generic("ThrottlingException", ""))):                      "ThrottlingException",
		op("ECR", "X", &smithyhttp.RequestSendError{Err: errors.New("connection reset")}): "request not answered: connection reset",
		errors.New("plain"): "plain",
	} {
		if got := awserr.Short(err); got != want {
			t.Errorf("Short(%v) = %q, want %q", err, got, want)
		}
	}
	if code, msg := awserr.Code(denied); code != "AccessDeniedException" || msg == "" {
		t.Errorf("Code = %q %q", code, msg)
	}
}
