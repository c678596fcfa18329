package tokencache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/environ"
)

// DefaultMargin is how much life a cached token must have left to be used
// without a refresh: docker asks once per push and uses the token for the
// whole push, so an hour covers long pushes of large images.
const DefaultMargin = time.Hour

// Token is a registry credential. Its LogValue redacts the password, so a
// token cannot be logged by accident.
type Token struct {
	Registry  string    `json:"registry"`
	Username  string    `json:"username"`
	Password  string    `json:"password"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("registry", t.Registry), slog.String("username", t.Username),
		slog.String("password", "REDACTED"), slog.Time("expires_at", t.ExpiresAt))
}

// String keeps fmt from printing the password either.
func (t Token) String() string {
	return fmt.Sprintf("token for %s (user %s, expires %s)", t.Registry, t.Username, t.ExpiresAt.Format(time.RFC3339))
}

// Usable reports whether t may be handed out at now without a refresh.
func (t Token) Usable(now time.Time, margin time.Duration) bool {
	return t.Password != "" && now.Add(margin).Before(t.ExpiresAt)
}

// Valid reports whether t has not expired at now.
func (t Token) Valid(now time.Time) bool { return t.Password != "" && now.Before(t.ExpiresAt) }

// Identity says which AWS identity to ask for a registry's token, as
// configured for that registry (all fields optional).
type Identity struct {
	Profile     string // AWS shared-config profile
	RoleARN     string // role to assume on top of the profile or default chain
	APIEndpoint string // control-plane endpoint override
}

// Key names a (registry, identity) pair without secrets and without
// resolving credentials. It follows the AWS SDK's own precedence: a
// configured profile, then access keys in the environment, then a web
// identity token, then AWS_PROFILE (or "default"). The control-plane
// endpoint is part of the key so an emulator's tokens never mix with AWS's.
func Key(host string, id Identity, env []string) string {
	e := environ.Map(env)
	var who string
	switch {
	case id.Profile != "":
		who = "profile=" + id.Profile
	case e["AWS_ACCESS_KEY_ID"] != "" && e["AWS_SECRET_ACCESS_KEY"] != "":
		sum := sha256.Sum256([]byte(e["AWS_ACCESS_KEY_ID"]))
		who = "akid-sha256=" + hex.EncodeToString(sum[:8])
	case e["AWS_WEB_IDENTITY_TOKEN_FILE"] != "":
		who = "web-identity=" + e["AWS_ROLE_ARN"]
	case e["AWS_PROFILE"] != "":
		who = "profile=" + e["AWS_PROFILE"]
	default:
		who = "profile=default"
	}
	return strings.Join([]string{"v1", host, who, "role=" + id.RoleARN, "endpoint=" + Endpoint(host, id, e)}, "|")
}

// Endpoint is the ECR API endpoint the user set for host, in the AWS SDK's
// order: the registry's api_endpoint in the ecrgate config, then
// AWS_ENDPOINT_URL_ECR (AWS_ENDPOINT_URL_ECR_PUBLIC for public.ecr.aws),
// then AWS_ENDPOINT_URL. "" means the SDK's default for the host.
func Endpoint(host string, id Identity, env map[string]string) string {
	if id.APIEndpoint != "" {
		return id.APIEndpoint
	}
	svc := "AWS_ENDPOINT_URL_ECR"
	if host == "public.ecr.aws" {
		svc = "AWS_ENDPOINT_URL_ECR_PUBLIC"
	}
	if v := env[svc]; v != "" {
		return v
	}
	return env["AWS_ENDPOINT_URL"]
}
