package repopolicy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	pull := map[string]any{
		"Sid": PullSid, "Effect": "Allow",
		"Principal": map[string]any{"AWS": []any{"arn:aws:iam::222222222222:root", "arn:aws:iam::444444444444:role/node"}},
		"Action":    []any{"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"},
	}
	user := map[string]any{"Sid": "ci", "Effect": "Allow", "Principal": map[string]any{"AWS": "arn:aws:iam::555555555555:role/ci"}, "Action": "ecr:*"}
	tests := []struct {
		name, policy string
		want         map[string]any
	}{
		{"alone", "", map[string]any{"Version": "2012-10-17", "Statement": []any{pull}}},
		{"after a list", `{"Version":"2008-10-17","Id":"x","Statement":[{"Sid":"ci","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::555555555555:role/ci"},"Action":"ecr:*"}]}`,
			map[string]any{"Version": "2008-10-17", "Id": "x", "Statement": []any{user, pull}}},
		{"after one statement object", `{"Statement":{"Sid":"ci","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::555555555555:role/ci"},"Action":"ecr:*"}}`,
			map[string]any{"Version": "2012-10-17", "Statement": []any{user, pull}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Merge(tt.policy, "", []string{"222222222222", "222222222222"}, []string{"arn:aws:iam::444444444444:role/node"})
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Merge = %s\nwant %v", out, tt.want)
			}
		})
	}

	if out, _ := Merge(`{"Statement":[]}`, "aws", nil, nil); out != `{"Statement":[]}` {
		t.Errorf("without accounts the policy changes: %s", out)
	}
	if out, _ := Merge("", "aws-cn", []string{"222222222222"}, nil); !strings.Contains(out, `"arn:aws-cn:iam::222222222222:root"`) {
		t.Errorf("aws-cn root principal missing: %s", out)
	}
	for _, bad := range []string{`nope`, `{"Version":"2012-10-17"}`, `{"Statement":[{"Sid":"ecrgate-pull-accounts"}]}`, `{"Statement":{"Sid":"ecrgate-pull-accounts"}}`, `{"Statement":[1]}`} {
		if out, err := Merge(bad, "", []string{"222222222222"}, nil); err == nil {
			t.Errorf("Merge(%s) = %s, want an error", bad, out)
		}
	}
}

func TestProblems(t *testing.T) {
	for _, ok := range []string{"111122223333", "000000000000"} {
		if p := AccountProblem(ok); p != "" {
			t.Errorf("AccountProblem(%q) = %s", ok, p)
		}
	}
	for _, bad := range []string{"", "11112222333", "1111222233334", "11112222333a", " 111122223333", "arn:aws:iam::111122223333:root"} {
		if AccountProblem(bad) == "" {
			t.Errorf("AccountProblem(%q) = ok", bad)
		}
	}
	for _, ok := range []string{"arn:aws:iam::111122223333:role/x", "arn:aws-cn:iam::111122223333:user/path/to/u", "arn:aws-us-gov:iam::111122223333:role/a+b=c,d.e@f_g-h"} {
		if p := PrincipalProblem(ok); p != "" {
			t.Errorf("PrincipalProblem(%q) = %s", ok, p)
		}
	}
	for _, bad := range []string{"", "x", "arn:aws:iam::111122223333:root", "arn:aws:iam::11112222333:role/x", "arn:aws:sts::111122223333:assumed-role/x/y", "arn:aws:iam::111122223333:group/g"} {
		if PrincipalProblem(bad) == "" {
			t.Errorf("PrincipalProblem(%q) = ok", bad)
		}
	}
}
