package ecrfake

import "testing"

func TestPolicyEvaluate(t *testing.T) {
	const (
		user    = "arn:aws:iam::222222222222:user/ci"
		session = "arn:aws:sts::222222222222:assumed-role/puller/i-0abc"
		other   = "arn:aws:iam::333333333333:user/x"
		repo    = "arn:aws:ecr:us-east-1:111111111111:repository/team/app"
	)
	tests := []struct {
		name, policy, principal, action, resource string
		want                                      effect
	}{
		{"account root allows its users", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"ecr:BatchGetImage"}]}`, user, "ecr:BatchGetImage", repo, effectAllow},
		{"account root allows its role sessions", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"ecr:BatchGetImage"}]}`, session, "ecr:BatchGetImage", repo, effectAllow},
		{"bare account id", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":["222222222222"]},"Action":"ecr:BatchGetImage"}]}`, user, "ecr:BatchGetImage", repo, effectAllow},
		{"other account", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"ecr:BatchGetImage"}]}`, other, "ecr:BatchGetImage", repo, effectNone},
		{"role covers its sessions", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/puller"},"Action":"ecr:*"}]}`, session, "ecr:GetDownloadUrlForLayer", repo, effectAllow},
		{"role is not another role", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/pusher"},"Action":"ecr:*"}]}`, session, "ecr:GetDownloadUrlForLayer", repo, effectNone},
		{"exact user", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::999999999999:root","arn:aws:iam::222222222222:user/ci"]},"Action":"ecr:PutImage"}]}`, user, "ecr:PutImage", repo, effectAllow},
		{"star principal", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}}`, other, "ecr:BatchGetImage", repo, effectAllow},
		{"AWS star", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"ecr:BatchGetImage"}}`, other, "ecr:BatchGetImage", repo, effectAllow},
		{"service principal is no user", `{"Statement":{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"ecr:BatchGetImage"}}`, user, "ecr:BatchGetImage", repo, effectNone},
		{"action not listed", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`, user, "ecr:PutImage", repo, effectNone},
		{"action wildcard", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:Batch*"}]}`, user, "ecr:BatchCheckLayerAvailability", repo, effectAllow},
		{"action ?", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:PutImag?"}]}`, user, "ecr:PutImage", repo, effectAllow},
		{"actions are case-insensitive", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ECR:batchgetimage"}]}`, user, "ecr:BatchGetImage", repo, effectAllow},
		{"other service", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*"}]}`, user, "ecr:BatchGetImage", repo, effectNone},
		{"NotAction", `{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":"ecr:PutImage"}]}`, user, "ecr:BatchGetImage", repo, effectAllow},
		{"NotAction excludes", `{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":["ecr:Put*"]}]}`, user, "ecr:PutImage", repo, effectNone},
		{"resource matches", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:111111111111:repository/team/*"}]}`, user, "ecr:PutImage", repo, effectAllow},
		{"resource does not match", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":["arn:aws:ecr:us-east-1:111111111111:repository/prod/*"]}]}`, user, "ecr:PutImage", repo, effectNone},
		{"deny wins", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*"},{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"ecr:BatchGetImage"}]}`, user, "ecr:BatchGetImage", repo, effectDeny},
		{"deny before allow still wins", `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage"},{"Effect":"Allow","Principal":"*","Action":"ecr:*"}]}`, user, "ecr:BatchGetImage", repo, effectDeny},
		{"deny of another action", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*"},{"Effect":"Deny","Principal":"*","Action":"ecr:PutImage"}]}`, user, "ecr:BatchGetImage", repo, effectAllow},
		{"NotPrincipal deny spares the named", `{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::222222222222:user/ci"},"Action":"ecr:*"}]}`, user, "ecr:PutImage", repo, effectNone},
		{"NotPrincipal deny hits the rest", `{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::222222222222:user/ci"},"Action":"ecr:*"}]}`, other, "ecr:PutImage", repo, effectDeny},
		{"condition never applies", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}}]}`, user, "ecr:BatchGetImage", repo, effectNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := parsePolicy(tt.policy)
			if err != nil {
				t.Fatalf("parsePolicy: %v", err)
			}
			if got := doc.evaluate(tt.principal, tt.action, tt.resource); got != tt.want {
				t.Errorf("evaluate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParsePolicyRejects(t *testing.T) {
	for _, p := range []string{
		``,
		`[]`,
		`{}`,
		`{"Statement":[]}`,
		`{"Statement":"x"}`,
		`{"Statement":[{"Effect":"allow","Principal":"*","Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","NotAction":"ecr:PutImage"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"arn:aws:iam::222222222222:root","Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":{"Robot":"x"},"Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":{"AWS":7},"Action":"ecr:*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":[1]}]}`,
	} {
		if _, err := parsePolicy(p); err == nil {
			t.Errorf("parsePolicy(%s) accepted it", p)
		}
	}
}

func TestIAMWildcard(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"ecr:*", "ecr:PutImage", true},
		{"ecr:*Image", "ecr:BatchGetImage", true},
		{"ecr:*Image", "ecr:BatchGetImages", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "abcabc", true},
		{"a*b*c", "acb", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"exact", "exact", true},
		{"exact", "exacter", false},
	} {
		if got := iamWildcard(tt.pattern, tt.s); got != tt.want {
			t.Errorf("iamWildcard(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestPrincipalAccount(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:iam::222222222222:user/ci":          "222222222222",
		"arn:aws:sts::222222222222:assumed-role/r/s": "222222222222",
		"arn:aws-cn:iam::222222222222:role/path/r":   "222222222222",
		"not an arn":               "",
		"arn:aws:iam::2222:user/x": "",
		"arn:aws:ecr:us-east-1:111111111111:repository/a/b": "111111111111",
	} {
		if got := principalAccount(arn); got != want {
			t.Errorf("principalAccount(%q) = %q, want %q", arn, got, want)
		}
	}
}
