package ecrfake

import "testing"

func TestIAMPrincipal(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:sts::123456789012:assumed-role/ci/session-1": "arn:aws:iam::123456789012:role/ci",
		"arn:aws:sts::123456789012:assumed-role/path/ci/s":    "arn:aws:iam::123456789012:role/path/ci",
		"arn:aws-cn:sts::123456789012:assumed-role/ci/s":      "arn:aws-cn:iam::123456789012:role/ci",
		"arn:aws:iam::123456789012:user/ecrfake":              "arn:aws:iam::123456789012:user/ecrfake",
		"arn:aws:sts::123456789012:federated-user/someone":    "arn:aws:sts::123456789012:federated-user/someone",
	} {
		if got := iamPrincipal(in); got != want {
			t.Errorf("iamPrincipal(%q) = %q, want %q", in, got, want)
		}
	}
}
