package repocreate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// Caller is who asked for a repository: recorded in the audit line and the
// log line of its creation. The proxy puts it in the request's context
// (WithCaller); Ensure reads it from there.
type Caller struct {
	// Addr is the client's address as the listener saw it (host:port).
	Addr string
	// Token is TokenFingerprint of the Authorization the client sent
	// upstream (allow_remote and intercept mode), or "" when ecrgate's own
	// token went upstream (registry mode on loopback).
	Token string
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller in ctx, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// TokenFingerprint names a credential without revealing it: the first 12
// hex digits of the SHA-256 of the whole Authorization value ("Basic …").
// Twelve digits (48 bits) tell one team's tokens apart in an audit file,
// and are far too few to find a token from; a token is a 12-hour secret of
// some 1,500 random bytes, so the hash cannot be reversed by guessing.
func TokenFingerprint(authorization string) string {
	if authorization == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(authorization))
	return hex.EncodeToString(sum[:6])
}
