package config

import (
	"unicode/utf8"

	"github.com/ecrgate/ecrgate/pkg/repopolicy"
)

// pull checks a template's pull_accounts, pull_principals and
// custom_role_arn, and that its repository policy merged with the pull
// statement (repopolicy.Merge, as the ensurer merges them) is one ECR
// accepts.
func (v *validator) pull(k string, t Template) {
	if t.CustomRoleARN != "" && !roleARN().MatchString(t.CustomRoleARN) {
		v.errf(joinKey(k, "custom_role_arn"), "%q is not an IAM role ARN (want arn:aws:iam::<12-digit account>:role/<name>)", truncate(t.CustomRoleARN, 140))
	}
	ok := true
	for i, a := range t.PullAccounts {
		if p := repopolicy.AccountProblem(a); p != "" {
			v.errf(indexKey(joinKey(k, "pull_accounts"), i), "%s", p)
			ok = false
		}
	}
	for i, a := range t.PullPrincipals {
		if p := repopolicy.PrincipalProblem(a); p != "" {
			v.errf(indexKey(joinKey(k, "pull_principals"), i), "%s", p)
			ok = false
		}
	}
	if !ok || len(t.PullAccounts)+len(t.PullPrincipals) == 0 ||
		(t.RepositoryPolicy != "" && repositoryPolicyProblem(t.RepositoryPolicy) != "") {
		return
	}
	merged, err := repopolicy.Merge(t.RepositoryPolicy, "", t.PullAccounts, t.PullPrincipals)
	if err != nil {
		v.errf(joinKey(k, "repository_policy"), "%v", err)
		return
	}
	if n := utf8.RuneCountInString(merged); n > maxRepoPolicyChars {
		key := joinKey(k, "pull_accounts")
		if len(t.PullAccounts) == 0 {
			key = joinKey(k, "pull_principals")
		}
		v.errf(key, "the repository policy with the pull statement is %d characters long; ECR accepts at most %d", n, maxRepoPolicyChars)
	}
}
