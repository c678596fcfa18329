package ecrfake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// sdkOperations lists the operations of the ECR API as the SDK knows them:
// one *ecr.Client method per operation.
func sdkOperations() []string {
	var ops []string
	t := reflect.TypeOf(&ecr.Client{})
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		// An operation is func(ctx, *<Op>Input, ...func(*Options)) (*<Op>Output, error).
		if m.Type.NumIn() == 4 && m.Type.In(2).String() == "*ecr."+m.Name+"Input" {
			ops = append(ops, m.Name)
		}
	}
	sort.Strings(ops)
	return ops
}

// readmeOperations parses the README's ECR operations table: operation ->
// [emulator, moto, notes].
func readmeOperations(t *testing.T) map[string][3]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "<!-- ecr-operations")
	end := strings.Index(s, "<!-- /ecr-operations -->")
	if start < 0 || end < start {
		t.Fatal("README.md has no <!-- ecr-operations --> table")
	}
	rows := map[string][3]string{}
	for _, line := range strings.Split(s[start:end], "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 4 || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") || strings.TrimSpace(cells[0]) == "ECR API operation" {
			continue
		}
		op := strings.TrimSpace(cells[0])
		if _, dup := rows[op]; dup {
			t.Errorf("README lists %s twice", op)
		}
		rows[op] = [3]string{strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])}
	}
	return rows
}

// TestReadmeOperationsTable keeps the README's table true: it names every
// operation of the SDK once, and an operation marked "yes" for the emulator
// is answered (with anything but UnknownOperationException or
// UnsupportedOperationException), one marked "no" is not.
func TestReadmeOperationsTable(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	rows := readmeOperations(t)
	ops := sdkOperations()
	if len(ops) < 50 {
		t.Fatalf("found %d SDK operations; the reflection no longer sees them", len(ops))
	}
	for _, op := range ops {
		row, ok := rows[op]
		if !ok {
			t.Errorf("README's table does not list %s", op)
			continue
		}
		delete(rows, op)
		if row[1] != "yes" && row[1] != "no" && row[1] != "not listed" {
			t.Errorf("%s: moto column %q, want yes, no or not listed", op, row[1])
		}
		code := callRaw(t, e, op)
		answered := code != "UnknownOperationException" && code != "UnsupportedOperationException"
		switch row[0] {
		case "yes":
			if !answered {
				t.Errorf("README says the emulator answers %s; it says %s", op, code)
			}
		case "no":
			if answered {
				t.Errorf("README says the emulator does not answer %s; it answers (%q): mark it yes", op, code)
			}
		default:
			t.Errorf("%s: emulator column %q, want yes or no", op, row[0])
		}
	}
	for op := range rows {
		t.Errorf("README lists %s, which the SDK does not have", op)
	}
}

// callRaw sends op with an empty JSON body, signed with the emulator's
// key, and returns the exception name ("" on success).
func callRaw(t *testing.T, e *ecrfake.Emulator, op string) string {
	t.Helper()
	body := []byte("{}")
	req, err := http.NewRequest(http.MethodPost, e.URL()+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921."+op)
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: e.AccessKey(), SecretAccessKey: e.SecretKey()}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ecr", e.Region(), time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	var out struct {
		Type string `json:"__type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: HTTP %d with an unreadable error: %v", op, resp.StatusCode, err)
	}
	if i := strings.LastIndex(out.Type, "#"); i >= 0 {
		out.Type = out.Type[i+1:]
	}
	return out.Type
}
