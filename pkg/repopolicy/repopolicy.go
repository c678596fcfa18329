// Package repopolicy builds the repository policy a template gives a
// repository: the template's own repository_policy, merged with the
// statement that its pull_accounts and pull_principals need to pull.
//
// It is the one home of that merge: the configuration checks with it that
// the result is a policy ECR accepts, and repocreate's Plan (which serve,
// explain and templates export render or act on) carries its result.
package repopolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
)

// PullSid is the Sid of the statement Merge adds. A repository_policy that
// already has a statement with this Sid cannot be merged with
// pull_accounts or pull_principals.
const PullSid = "ecrgate-pull-accounts"

// PullActions are the actions a client needs to pull an image: the
// manifest, the layers' download URLs, and the layer existence checks.
var PullActions = []string{"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}

// DefaultPartition is the partition of account principals when none is
// given.
const DefaultPartition = "aws"

var (
	accountRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{12}$`) })
	principalRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws[-a-z]*:iam::[0-9]{12}:(?:role|user)/(?:[\x21-\x7e]+/)?[A-Za-z0-9+=,.@_-]{1,64}$`)
	})
)

// AccountProblem says what is wrong with an AWS account id, or "".
func AccountProblem(id string) string {
	if accountRE().MatchString(id) {
		return ""
	}
	return fmt.Sprintf("%q is not an AWS account id (12 digits, such as \"111122223333\")", truncate(id, 40))
}

// PrincipalProblem says what is wrong with a pull principal (an IAM role or
// user ARN), or "".
func PrincipalProblem(arn string) string {
	if principalRE().MatchString(arn) {
		return ""
	}
	return fmt.Sprintf("%q is not an IAM role or user ARN (arn:aws:iam::<12-digit account>:role/<name> or :user/<name>)", truncate(arn, 140))
}

// Principals returns the principals of the pull statement: the root of each
// account (arn:<partition>:iam::<id>:root), then each principal ARN, each
// once, in the order given.
func Principals(partition string, accounts, principals []string) []string {
	if partition == "" {
		partition = DefaultPartition
	}
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, a := range accounts {
		add("arn:" + partition + ":iam::" + a + ":root")
	}
	for _, p := range principals {
		add(p)
	}
	return out
}

// statement is the pull statement, with its fields in IAM's usual order.
type statement struct {
	Sid       string              `json:"Sid"`
	Effect    string              `json:"Effect"`
	Principal map[string][]string `json:"Principal"`
	Action    []string            `json:"Action"`
}

// Merge returns the repository policy of a template: policy (its
// repository_policy text, "" for none) with a statement of Sid PullSid
// added that allows the accounts (in partition, "" for "aws") and
// principals PullActions. Without accounts and principals, policy comes
// back unchanged. The policy's other top-level keys (Version, Id) and its
// statements are kept; a policy without Version gets 2012-10-17. It is an
// error for policy not to be a JSON object with a Statement (an object or a
// list), or to hold a statement with Sid PullSid already. Accounts and
// principals are not checked here: see AccountProblem and PrincipalProblem.
func Merge(policy, partition string, accounts, principals []string) (string, error) {
	if len(accounts) == 0 && len(principals) == 0 {
		return policy, nil
	}
	doc := map[string]json.RawMessage{}
	var statements []json.RawMessage
	if policy != "" {
		if err := json.Unmarshal([]byte(policy), &doc); err != nil || doc == nil {
			return "", errors.New("repository_policy is not a JSON object")
		}
		raw := bytes.TrimSpace(doc["Statement"])
		switch {
		case len(raw) == 0 || string(raw) == "null":
			return "", errors.New(`repository_policy has no "Statement"`)
		case raw[0] == '[':
			if err := json.Unmarshal(raw, &statements); err != nil {
				return "", fmt.Errorf("repository_policy Statement: %w", err)
			}
		default:
			statements = []json.RawMessage{raw}
		}
		for i, s := range statements {
			var st struct{ Sid any }
			if err := json.Unmarshal(s, &st); err != nil {
				return "", fmt.Errorf("repository_policy Statement[%d] is not an object", i)
			}
			if st.Sid == PullSid {
				return "", fmt.Errorf("repository_policy already has a statement with Sid %q, the one pull_accounts and pull_principals add; rename it, or grant the pull in one place", PullSid)
			}
		}
	}
	if _, ok := doc["Version"]; !ok {
		doc["Version"] = json.RawMessage(`"2012-10-17"`)
	}
	pull, err := json.Marshal(statement{
		Sid:       PullSid,
		Effect:    "Allow",
		Principal: map[string][]string{"AWS": Principals(partition, accounts, principals)},
		Action:    PullActions,
	})
	if err != nil {
		return "", err
	}
	statements = append(statements, pull)
	if doc["Statement"], err = json.Marshal(statements); err != nil {
		return "", err
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
