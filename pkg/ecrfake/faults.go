package ecrfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ecrgate/ecrgate/pkg/distpath"
)

// Fault is what an injected failure does to a call.
type Fault string

const (
	// FaultServerError answers 500 (ServerException on the control plane).
	FaultServerError Fault = "500"
	// FaultThrottle answers ThrottlingException (400) on the control plane and
	// 429 TOOMANYREQUESTS on the registry.
	FaultThrottle Fault = "throttle"
	// FaultDrop closes the connection without an answer.
	FaultDrop Fault = "drop"
)

// cutPrefix starts the faults FaultCut makes: "cut:<bytes>".
const cutPrefix = "cut:"

// FaultCut is a connection lost in the middle of a request body: the
// handler (the registry storing an upload, the control plane reading JSON)
// gets the first n bytes of the body as usual, then the connection is
// dropped without an answer, as if the network failed there. A body that
// ends before n bytes is cut at its end. Its spec form is "cut:<n>".
func FaultCut(n int64) Fault { return Fault(cutPrefix + strconv.FormatInt(n, 10)) }

// cutAfter returns n for a fault made by FaultCut(n).
func (f Fault) cutAfter() (int64, bool) {
	s, ok := strings.CutPrefix(string(f), cutPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func (f Fault) valid() bool {
	if _, ok := f.cutAfter(); ok {
		return true
	}
	return f == FaultServerError || f == FaultThrottle || f == FaultDrop
}

// cutBody makes r's body end the request with a dropped connection once n
// bytes were read (or at the body's end, if sooner). The handler reading
// the body is unwound with http.ErrAbortHandler, which net/http answers by
// closing the connection without a response and without logging.
func cutBody(r *http.Request, n int64) {
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	r.Body = &cutReader{r: body, left: n}
}

type cutReader struct {
	r    io.ReadCloser
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		panic(http.ErrAbortHandler)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		panic(http.ErrAbortHandler) // the body ended first: cut at its end
	}
	return n, err
}

func (c *cutReader) Close() error { return c.r.Close() }

// Operation names for the data plane, STS and SSO, so every call can be
// counted and failed like a control-plane operation (which go by their ECR
// names, e.g. "CreateRepository").
const (
	OpRegistryBase     = string(distpath.Base)
	OpBlobHead         = string(distpath.BlobHead)
	OpBlobGet          = string(distpath.BlobGet)
	OpBlobDelete       = string(distpath.BlobDelete)
	OpUploadStart      = string(distpath.UploadStart)
	OpUploadChunk      = string(distpath.UploadChunk)
	OpUploadComplete   = string(distpath.UploadComplete)
	OpUploadStatus     = string(distpath.UploadStatus)
	OpUploadCancel     = string(distpath.UploadCancel)
	OpManifestGet      = string(distpath.ManifestGet)
	OpManifestHead     = string(distpath.ManifestHead)
	OpManifestPut      = string(distpath.ManifestPut)
	OpManifestDelete   = string(distpath.ManifestDelete)
	OpTagsList         = string(distpath.TagsList)
	OpReferrers        = string(distpath.Referrers)
	OpCatalog          = string(distpath.Catalog)
	OpAssumeRole       = "STS.AssumeRole"
	OpAssumeRoleWebID  = "STS.AssumeRoleWithWebIdentity"
	OpGetCallerID      = "STS.GetCallerIdentity"
	OpGetRoleCreds     = "SSO.GetRoleCredentials"
	OpPublicGetAuthTok = "ECRPublic.GetAuthorizationToken"
)

// faults counts calls and holds the failures to inject. Safe for concurrent use.
type faults struct {
	mu      sync.Mutex
	calls   map[string]int
	pending map[string][]Fault
	latency time.Duration
}

func newFaults() *faults {
	return &faults{calls: map[string]int{}, pending: map[string][]Fault{}}
}

// begin records a call of op, waits the configured latency and returns the
// fault to inject, if any.
func (f *faults) begin(ctx context.Context, op string) (Fault, error) {
	f.mu.Lock()
	f.calls[op]++
	lat := f.latency
	var fault Fault
	if q := f.pending[op]; len(q) > 0 {
		fault, f.pending[op] = q[0], q[1:]
	}
	f.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return fault, nil
}

// FailNext makes the next n calls of op fail with fault (FaultServerError,
// FaultThrottle, FaultDrop or FaultCut(bytes)).
func (e *Emulator) FailNext(op string, n int, fault Fault) {
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	for range n {
		e.faults.pending[op] = append(e.faults.pending[op], fault)
	}
}

// SetLatency delays every call by d, to model a real AWS round trip.
func (e *Emulator) SetLatency(d time.Duration) {
	e.faults.mu.Lock()
	e.faults.latency = d
	e.faults.mu.Unlock()
}

// Calls returns how many calls of op the emulator has received.
func (e *Emulator) Calls(op string) int {
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	return e.faults.calls[op]
}

// CallCounts returns a copy of every operation's call count.
func (e *Emulator) CallCounts() map[string]int {
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	out := make(map[string]int, len(e.faults.calls))
	for k, v := range e.faults.calls {
		out[k] = v
	}
	return out
}

// ResetCalls sets every call count to zero and drops pending faults.
func (e *Emulator) ResetCalls() {
	e.faults.mu.Lock()
	e.faults.calls = map[string]int{}
	e.faults.pending = map[string][]Fault{}
	e.faults.mu.Unlock()
}

// ParseFaultSpec parses "Op=N:fault" (e.g. "CreateRepository=2:throttle",
// "Registry.UploadChunk=1:cut:65536"), the form the standalone emulator's
// --fail flag takes.
func ParseFaultSpec(s string) (op string, n int, f Fault, err error) {
	op, rest, ok := strings.Cut(s, "=")
	if !ok || op == "" {
		return "", 0, "", fmt.Errorf("fault %q: want Operation=N:fault, e.g. CreateRepository=2:throttle", s)
	}
	ns, fs, ok := strings.Cut(rest, ":")
	if !ok {
		return "", 0, "", fmt.Errorf("fault %q: want Operation=N:fault, e.g. CreateRepository=2:throttle", s)
	}
	n, err = strconv.Atoi(ns)
	if err != nil || n < 1 {
		return "", 0, "", fmt.Errorf("fault %q: count %q must be a positive integer", s, ns)
	}
	f = Fault(fs)
	if !f.valid() {
		return "", 0, "", fmt.Errorf("fault %q: kind %q must be one of 500, throttle, drop, cut:<bytes>", s, fs)
	}
	return op, n, f, nil
}

// adminPrefix is where the standalone emulator exposes its test controls.
const adminPrefix = "/_ecrfake/"

// serveAdmin handles the emulator's own endpoints:
//
//	GET  /_ecrfake/calls                      call counts as JSON
//	GET  /_ecrfake/upload-bytes               {"bytes": N}: bytes the upload handlers read
//	POST /_ecrfake/reset                      zero the counts, drop pending faults
//	POST /_ecrfake/fail?op=X&n=N&fault=F      fail the next N calls of X (F: 500, throttle, drop, cut:<bytes>)
//	POST /_ecrfake/latency?d=250ms            delay every call
//	POST /_ecrfake/expire-tokens              expire every issued token
//	POST /_ecrfake/lifecycle?account=A&region=R&repository=N
//	                                          apply lifecycle policies now (N or every
//	                                          repository with one); JSON {"expired": [...]}
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	what := strings.TrimPrefix(r.URL.Path, adminPrefix)
	if what == "calls" && r.Method == http.MethodGet {
		counts := e.CallCounts()
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(counts)
		return
	}
	if what == "upload-bytes" && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"bytes": e.UploadBytes()})
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if what == "lifecycle" {
		e.serveApplyLifecycle(w, r, q.Get("account"), q.Get("region"), q.Get("repository")) // lifecycle.go
		return
	}
	switch what {
	case "reset":
		e.ResetCalls()
	case "fail":
		op, n, f, err := ParseFaultSpec(q.Get("op") + "=" + q.Get("n") + ":" + q.Get("fault"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.FailNext(op, n, f)
	case "latency":
		d, err := time.ParseDuration(q.Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "latency: d must be a duration such as 250ms", http.StatusBadRequest)
			return
		}
		e.SetLatency(d)
	case "expire-tokens":
		e.ExpireTokens()
	default:
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
