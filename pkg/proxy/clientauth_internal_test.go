package proxy

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"testing"
	"time"
)

// ecrShapedAuth is an Authorization value shaped like a real ECR token: the
// password is base64 of a JSON envelope with "expiration" in Unix seconds.
func ecrShapedAuth(exp int64) string {
	envelope := fmt.Sprintf(`{"payload":"cGF5bG9hZA==","datakey":"ZGF0YWtleQ==","version":"2","type":"DATA_KEY","expiration":%d}`, exp)
	password := base64.StdEncoding.EncodeToString([]byte(envelope))
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:"+password))
}

func TestTokenExpiry(t *testing.T) {
	for _, tc := range []struct {
		name, auth string
		want       time.Time
	}{
		{"ECR token", ecrShapedAuth(1_800_000_000), time.Unix(1_800_000_000, 0)},
		{"milliseconds", ecrShapedAuth(1_800_000_000_123), time.UnixMilli(1_800_000_000_123)},
		{"random password (the emulator's)", "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:"+base64.StdEncoding.EncodeToString([]byte{1, 2, 3, 250}))), time.Time{}},
		{"not Basic", "Bearer abc", time.Time{}},
		{"not base64", "Basic !!!", time.Time{}},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS")), time.Time{}},
		{"negative", ecrShapedAuth(-5), time.Time{}},
	} {
		if got := tokenExpiry(tc.auth); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A check is remembered for the TTL, never past the token's own expiry,
// and per repository.
func TestVerifiedIsBoundedByTheTokenExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := newVerified(5*time.Minute, func() time.Time { return now })
	up := &url.URL{Scheme: "https", Host: "r"}
	a := fingerprint(Target{Registry: "r", Repository: "team/a", Upstream: up}, "x")
	b := fingerprint(Target{Registry: "r", Repository: "team/b", Upstream: up}, "x")
	if a == b {
		t.Fatal("two repositories share a fingerprint")
	}
	v.remember(a, now.Add(time.Minute))
	v.remember(b, time.Time{})
	now = now.Add(time.Minute - time.Second)
	if !v.known(a) || !v.known(b) {
		t.Fatal("forgotten too early")
	}
	now = now.Add(2 * time.Second)
	if v.known(a) {
		t.Error("trusted past the token's expiry")
	}
	if !v.known(b) {
		t.Error("a token without a readable expiry lost the TTL")
	}
	now = now.Add(5 * time.Minute)
	if v.known(b) {
		t.Error("trusted past the TTL")
	}
	v.remember(a, now.Add(-time.Second))
	if v.known(a) {
		t.Error("an expired token was remembered")
	}
}
