package ecrfake_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// TestFaultCut: a connection lost in the middle of a blob upload gets no
// answer, leaves no blob behind under the digest, and the next upload of
// the same content succeeds.
func TestFaultCut(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	if _, err := ecrClient(e).CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("cut/app")}); err != nil {
		t.Fatal(err)
	}
	pass := registryPassword(t, ecrClient(e))
	do := func(method, url string, body []byte) (*http.Response, error) {
		t.Helper()
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, url, r)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("AWS", pass)
		// A fresh connection per request: the cut one must not be reused.
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	start := func() string {
		t.Helper()
		resp, err := do(http.MethodPost, e.URL()+"/v2/cut/app/blobs/uploads/", nil)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("upload start: %v %v", resp, err)
		}
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = e.URL() + loc
		}
		return loc
	}
	blob := make([]byte, 256<<10)
	_, _ = rand.Read(blob)
	dg := fmt.Sprintf("sha256:%x", sha256.Sum256(blob))
	head := func() int {
		t.Helper()
		resp, err := do(http.MethodHead, e.URL()+"/v2/cut/app/blobs/"+dg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}

	for _, n := range []int64{0, 64 << 10, 1 << 30} { // at once, mid-body, at the body's end
		e.FailNext(ecrfake.OpUploadChunk, 1, ecrfake.FaultCut(n))
		before := e.Calls(ecrfake.OpUploadChunk)
		if resp, err := do(http.MethodPatch, start(), blob); err == nil {
			t.Fatalf("cut after %d bytes: answered %d, want a dropped connection", n, resp.StatusCode)
		}
		if got := e.Calls(ecrfake.OpUploadChunk) - before; got != 1 {
			t.Errorf("cut after %d bytes: %d PATCH calls counted, want 1", n, got)
		}
		if code := head(); code != http.StatusNotFound {
			t.Fatalf("cut after %d bytes: HEAD of the blob = %d, want 404 (a partial upload must not be visible)", n, code)
		}
	}

	// The retried upload, on a new session, stores the whole blob.
	loc := start()
	resp, err := do(http.MethodPatch, loc, blob)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH after the cuts: %v %v", resp, err)
	}
	loc = resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = e.URL() + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if resp, err := do(http.MethodPut, loc+sep+"digest="+dg, nil); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT after the cuts: %v %v", resp, err)
	}
	if code := head(); code != http.StatusOK {
		t.Fatalf("HEAD of the blob after the retried upload = %d", code)
	}
}

func TestParseFaultSpecCut(t *testing.T) {
	op, n, f, err := ecrfake.ParseFaultSpec("Registry.UploadChunk=2:cut:65536")
	if err != nil || op != ecrfake.OpUploadChunk || n != 2 || f != ecrfake.FaultCut(65536) {
		t.Fatalf("ParseFaultSpec = %q %d %q %v", op, n, f, err)
	}
	for _, bad := range []string{"X=1:cut:", "X=1:cut:-1", "X=1:cut:ten", "X=1:cut"} {
		if _, _, _, err := ecrfake.ParseFaultSpec(bad); err == nil || !strings.Contains(err.Error(), "cut:<bytes>") {
			t.Errorf("ParseFaultSpec(%q) = %v, want an error naming cut:<bytes>", bad, err)
		}
	}
	// The admin endpoint takes the same form.
	e := ecrfake.Start(t, ecrfake.Options{})
	resp, err := http.Post(e.URL()+"/_ecrfake/fail?op=Registry.UploadChunk&n=1&fault=cut:10", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("admin fail with cut:10: %d", resp.StatusCode)
	}
}
