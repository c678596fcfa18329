package repocreate

import "testing"

// Forms of one policy that IAM takes as equal compare equal, so a service
// that hands a policy back in the other form is no update.
func TestCanonicalPolicy(t *testing.T) {
	a := canonicalPolicy(`{"Version":"2012-10-17","Statement":[{"Sid":"x","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:root"]},"Action":["ecr:BatchGetImage"]}]}`)
	b := canonicalPolicy(`{
  "Statement" : {"Action" : "ecr:BatchGetImage", "Effect" : "Allow", "Principal" : {"AWS" : "arn:aws:iam::222222222222:root"}, "Sid" : "x"},
  "Version" : "2012-10-17"
}`)
	if a != b {
		t.Errorf("equal policies differ:\n%s\n%s", a, b)
	}
	if c := canonicalPolicy(`{"Statement":[{"Sid":"x","Effect":"Deny","Principal":"*","Action":"ecr:*"}]}`); c == a {
		t.Error("different policies compare equal")
	}
	if canonicalPolicy("") != "" || canonicalPolicy("not json") != "not json" {
		t.Error("empty or unparsable text changed")
	}
}
