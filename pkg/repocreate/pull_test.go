package repocreate_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// A template's pull_accounts reach the plan's repository policy, merged
// with its repository_policy, with principals in the registry's partition.
func TestPlanMergesPullAccounts(t *testing.T) {
	cfg, err := config.Parse([]byte(`templates:
  - prefix: flyte
    pull_accounts: ["222222222222"]
    pull_principals: [arn:aws-cn:iam::444444444444:role/node]
    repository_policy: '{"Statement":[{"Sid":"ci","Effect":"Allow","Principal":{"AWS":"arn:aws-cn:iam::555555555555:role/ci"},"Action":"ecr:*"}]}'
  - prefix: plain
    repository_policy: '{"Statement": []}'
`), "c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := repocreate.Decide(cfg, "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "flyte/app")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Sid       string
			Principal struct{ AWS any }
			Action    any
		}
	}
	if err := json.Unmarshal([]byte(p.RepositoryPolicy), &doc); err != nil {
		t.Fatalf("policy %s: %v", p.RepositoryPolicy, err)
	}
	if len(doc.Statement) != 2 || doc.Statement[0].Sid != "ci" || doc.Statement[1].Sid != "ecrgate-pull-accounts" {
		t.Fatalf("policy %s: want the user's statement, then the pull statement", p.RepositoryPolicy)
	}
	principals, _ := json.Marshal(doc.Statement[1].Principal.AWS)
	if string(principals) != `["arn:aws-cn:iam::222222222222:root","arn:aws-cn:iam::444444444444:role/node"]` {
		t.Errorf("pull principals = %s", principals)
	}
	p, err = repocreate.Decide(cfg, "123456789012.dkr.ecr.us-east-1.amazonaws.com", "plain/app")
	if err != nil || p.RepositoryPolicy != `{"Statement": []}` {
		t.Errorf("without pull_accounts the policy is kept as written: %q (%v)", p.RepositoryPolicy, err)
	}

	// A Config built in code without Validate: the merge's error, not a
	// policy without the pull statement.
	bad := &config.Config{Templates: []config.Template{{Prefix: "x", PullAccounts: []string{"222222222222"},
		RepositoryPolicy: `{"Statement":{"Sid":"ecrgate-pull-accounts"}}`}}}
	if _, err := repocreate.Decide(bad, "123456789012.dkr.ecr.us-east-1.amazonaws.com", "x/app"); err == nil || !strings.Contains(err.Error(), "ecrgate-pull-accounts") {
		t.Errorf("Decide with a clashing Sid: %v", err)
	}
}
