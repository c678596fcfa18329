package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPullKeys(t *testing.T) {
	in := `templates:
  - prefix: flyte
    pull_accounts: ["222222222222", 333333333333]
    pull_principals: [arn:aws:iam::444444444444:role/data-plane/node]
    custom_role_arn: arn:aws:iam::123456789012:role/ecr-templates
`
	c, err := Parse([]byte(in), "c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tpl := c.TemplateFor("flyte/app")
	if !slices.Equal(tpl.PullAccounts, []string{"222222222222", "333333333333"}) ||
		!slices.Equal(tpl.PullPrincipals, []string{"arn:aws:iam::444444444444:role/data-plane/node"}) ||
		tpl.CustomRoleARN != "arn:aws:iam::123456789012:role/ecr-templates" {
		t.Fatalf("template = %+v", tpl)
	}
	tpl.PullAccounts[0] = "x"
	if c.Templates[0].PullAccounts[0] != "222222222222" {
		t.Error("TemplateFor's pull_accounts share memory with the Config")
	}
}

// Bad pull_accounts and pull_principals are errors naming file, line and
// key; so is a repository_policy that already uses the pull statement's Sid.
func TestPullErrors(t *testing.T) {
	dir := t.TempDir()
	sidPolicy := `{"Statement": {"Sid": "ecrgate-pull-accounts", "Effect": "Allow", "Principal": "*", "Action": "ecr:*"}}`
	if err := os.WriteFile(filepath.Join(dir, "sid.json"), []byte(sidPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	var many []string
	for i := range 400 {
		many = append(many, fmt.Sprintf("%012d", 100000000000+i))
	}
	tests := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"11 digits", "    pull_accounts:\n      - \"222222222222\"\n      - \"11112222333\"\n", 5, "templates[0].pull_accounts[1]", `"11112222333" is not an AWS account id (12 digits`},
		{"letters", "    pull_accounts: [prod]\n", 3, "templates[0].pull_accounts[0]", `"prod" is not an AWS account id`},
		{"not a list", "    pull_accounts: 222222222222\n", 3, "templates[0].pull_accounts", "want a list"},
		{"principal not an ARN", "    pull_principals: [data-plane]\n", 3, "templates[0].pull_principals[0]", `"data-plane" is not an IAM role or user ARN`},
		{"principal of another service", "    pull_principals: [\"arn:aws:s3:::bucket\"]\n", 3, "templates[0].pull_principals[0]", "is not an IAM role or user ARN"},
		{"custom role", "    custom_role_arn: arn:aws:iam::123456789012:user/u\n", 3, "templates[0].custom_role_arn", "is not an IAM role ARN"},
		{"Sid taken inline", "    pull_accounts: [\"222222222222\"]\n    repository_policy: '" + sidPolicy + "'\n", 4, "templates[0].repository_policy",
			`already has a statement with Sid "ecrgate-pull-accounts"`},
		{"Sid taken in a file", "    pull_accounts: [\"222222222222\"]\n    repository_policy: \"@sid.json\"\n", 4, "templates[0].repository_policy",
			"in " + filepath.Join(dir, "sid.json") + `: repository_policy already has a statement with Sid "ecrgate-pull-accounts"`},
		{"merged too long", "    pull_accounts: [" + strings.Join(many, ", ") + "]\n", 3, "templates[0].pull_accounts", "with the pull statement is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(dir, "config.yaml")
			_, err := Parse([]byte("templates:\n  - prefix: team\n"+tt.yaml), name, nil)
			want := fmt.Sprintf("%s:%d: %s: ", name, tt.line, tt.key)
			if err == nil {
				t.Fatalf("Parse succeeded; want %s…%s", want, tt.msg)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, want) && strings.Contains(line, tt.msg) {
					return
				}
			}
			t.Errorf("Parse error:\n%v\nwant a line starting %q containing %q", err, want, tt.msg)
		})
	}
}
