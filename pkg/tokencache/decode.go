package tokencache

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Decode turns GetAuthorizationToken's authorizationToken (base64 of
// "user:password") and expiry into a Token for host.
func Decode(host, b64 string, expires time.Time) (Token, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Token{}, fmt.Errorf("token is not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return Token{}, errors.New("token is not <user>:<password>")
	}
	if expires.IsZero() {
		return Token{}, errors.New("token has no expiry")
	}
	return Token{Registry: host, Username: user, Password: pass, ExpiresAt: expires}, nil
}
