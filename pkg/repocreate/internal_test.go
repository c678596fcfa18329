package repocreate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
)

func TestMatchNative(t *testing.T) {
	tests := []struct {
		prefixes []string
		repo     string
		want     string
	}{
		{nil, "team/app", ""},
		{[]string{"team"}, "team/app", "team"},
		{[]string{"team/"}, "team/app", "team"},
		{[]string{"team"}, "team", ""},
		{[]string{"team"}, "teamx/app", ""},
		{[]string{"team", "team/app"}, "team/app/api", "team/app"},
		{[]string{"team/app", "team"}, "team/app-2", "team"},
		{[]string{"ROOT", "team"}, "other/app", "ROOT"},
		{[]string{"ROOT", "team"}, "team/app", "team"},
		{[]string{"ROOT"}, "x", "ROOT"},
	}
	for _, tt := range tests {
		if got := matchNative(tt.prefixes, tt.repo); got != tt.want {
			t.Errorf("matchNative(%q, %q) = %q, want %q", tt.prefixes, tt.repo, got, tt.want)
		}
	}
}

func TestAccountOf(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:iam::123456789012:user/ecrfake":                   "123456789012",
		"arn:aws:sts::222222222222:assumed-role/pusher/ecrgate-me": "222222222222",
		"arn:aws-cn:iam::333333333333:role/x":                      "333333333333",
		"unknown":                                                  "",
		"":                                                         "",
	} {
		if got := accountOf(arn); got != want {
			t.Errorf("accountOf(%q) = %q, want %q", arn, got, want)
		}
	}
}

// opError wraps an API error the way the SDK does.
func opError(op string, err error) error {
	return &smithy.OperationError{ServiceID: "ECR", OperationName: op, Err: err}
}

// TestMapError covers the AWS errors the emulator does not produce.
func TestMapError(t *testing.T) {
	p := Plan{
		Registry:   "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		Repository: "team/app",
		Template:   config.Template{Prefix: "team", Encryption: config.Encryption{Type: "KMS", KMSKey: "alias/ecr"}},
	}
	const who = "arn:aws:sts::123456789012:assumed-role/dev/me"
	tests := []struct {
		name     string
		op       string
		identity string
		err      error
		code     errcode.ErrorCode
		contains []string
	}{
		{"kms", "CreateRepository", who,
			opError("CreateRepository", &types.KmsException{Message: ptr("KMS key is disabled")}),
			errcode.ErrorCodeDenied, []string{`KMS key "alias/ecr"`, `template "team"`, "KMS key is disabled", who, "kms:CreateGrant"}},
		{"name", "CreateRepository", who,
			opError("CreateRepository", &types.InvalidParameterException{Message: ptr("Invalid parameter at 'repositoryName' failed to satisfy constraint")}),
			errcode.ErrorCodeNameInvalid, []string{`"team/app"`, "repositoryName"}},
		{"denied, identity from the message", "CreateRepository", "unknown",
			opError("CreateRepository", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: ecr:CreateRepository"}),
			errcode.ErrorCodeDenied, []string{"arn:aws:iam::123456789012:user/bob may not create repositories (ecr:CreateRepository)", "arn:aws:ecr:eu-west-1:123456789012:repository/team/app"}},
		{"denied, identity unknown", "CreateRepository", "unknown",
			opError("CreateRepository", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "no"}),
			errcode.ErrorCodeDenied, []string{"ecrgate's AWS identity may not create repositories"}},
		{"expired credentials", "DescribeRepositories", who,
			opError("DescribeRepositories", &smithy.GenericAPIError{Code: "ExpiredTokenException", Message: "The security token included in the request is expired"}),
			errcode.ErrorCodeDenied, []string{"no usable AWS credentials", "aws sso login"}},
		{"no credentials", "DescribeRepositories", "unknown",
			opError("DescribeRepositories", errors.New("get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found")),
			errcode.ErrorCodeDenied, []string{"no usable AWS credentials", "aws configure"}},
		{"deadline", "CreateRepository", who,
			opError("CreateRepository", context.DeadlineExceeded),
			errcode.ErrorCodeUnavailable, []string{"retry the push"}},
		{"unknown API error", "CreateRepository", who,
			opError("CreateRepository", &smithy.GenericAPIError{Code: "SomethingNewException", Message: "surprise"}),
			errcode.ErrorCodeUnknown, []string{"SomethingNewException: surprise", "team/app"}},
		{"already a registry error", "CreateRepository", who,
			fmt.Errorf("wrapped: %w", errcode.ErrorCodeDenied.WithMessage("kept")),
			errcode.ErrorCodeDenied, []string{"kept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.op, p, tt.identity, "/etc/ecrgate.yaml", tt.err)
			if got.Code != tt.code {
				t.Fatalf("code %v, want %v: %s", got.Code, tt.code, got.Message)
			}
			for _, s := range tt.contains {
				if !strings.Contains(got.Message, s) {
					t.Errorf("message %q lacks %q", got.Message, s)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestReadOnlyHidesWrites: the client planning code holds is a ReadECR by
// its type, and cannot be turned back into one that writes.
func TestReadOnlyHidesWrites(t *testing.T) {
	var full ECR = ecr.New(ecr.Options{})
	clients := readOnlyClients(func(context.Context, string) (ECR, string, error) { return full, "arn", nil })
	c, id, err := clients(context.Background(), "123456789012.dkr.ecr.us-east-1.amazonaws.com")
	if err != nil || id != "arn" {
		t.Fatalf("%v %q", err, id)
	}
	if _, ok := c.(ECR); ok {
		t.Fatal("a planner's client can be asserted to ECR: it could write")
	}
	if _, ok := c.(interface {
		CreateRepository(context.Context, *ecr.CreateRepositoryInput, ...func(*ecr.Options)) (*ecr.CreateRepositoryOutput, error)
	}); ok {
		t.Fatal("a planner's client has CreateRepository")
	}
}
