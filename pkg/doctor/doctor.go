// Package doctor checks an ecrgate set-up end to end and says, for each
// thing that is wrong, how to fix it: the configuration file, the AWS
// identity and ECR access of every configured registry, whether that
// identity may create repositories (as far as can be told without creating
// one), Docker's credHelpers, the running proxy, and for intercept mode the
// local CA, its installation in Docker's certs.d and dockerd's proxy
// environment, and ECR's own CREATE_ON_PUSH templates that shadow local
// ones.
//
// Every check is a func(ctx) Result run in order with its own timeout;
// everything a check touches (configuration, environment, paths, AWS
// clients, HTTP client, dockerd's settings) comes in through Options, so
// tests run against pkg/ecrfake and temporary directories. No check changes
// anything: the AWS calls are GetCallerIdentity, GetAuthorizationToken,
// DescribeRepositories and DescribeRepositoryCreationTemplates.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the outcome of a check.
type Status string

// The statuses, from good to bad; Skip means the check did not apply or
// could not run because an earlier one failed.
const (
	OK   Status = "ok"
	Skip Status = "skip"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is what one check found. Field names in JSON are stable.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Check is one named check.
type Check struct {
	Name string
	Run  func(ctx context.Context) Result
}

// DefaultTimeout bounds each check.
const DefaultTimeout = 20 * time.Second

// RunChecks runs checks in order, each under its own timeout (DefaultTimeout
// when timeout <= 0), and returns their results. A check that overruns is a
// failure naming the timeout; Result.Name defaults to Check.Name.
func RunChecks(ctx context.Context, checks []Check, timeout time.Duration) []Result {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	out := make([]Result, 0, len(checks))
	for _, c := range checks {
		out = append(out, runOne(ctx, c, timeout))
	}
	return out
}

func runOne(ctx context.Context, c Check, timeout time.Duration) Result {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan Result, 1)
	go func() { done <- c.Run(cctx) }()
	var r Result
	select {
	case r = <-done:
	case <-cctx.Done():
		r = Result{Status: Fail, Detail: fmt.Sprintf("no answer within %s", timeout)}
		if errors.Is(ctx.Err(), context.Canceled) {
			r.Detail = "interrupted"
		} else {
			r.Fix = "check the network path to AWS and to the local ports, then run ecrgate doctor again"
		}
	}
	if r.Name == "" {
		r.Name = c.Name
	}
	return r
}

// Failed reports whether any result is a failure.
func Failed(results []Result) bool {
	return Count(results, Fail) > 0
}

// Count returns how many results have status s.
func Count(results []Result, s Status) int {
	n := 0
	for _, r := range results {
		if r.Status == s {
			n++
		}
	}
	return n
}

// WriteText writes one line per result, the status word first and the
// names aligned, and the fix on an indented line below each result that is
// not ok, then a summary line.
func WriteText(w io.Writer, results []Result) error {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", r.Status, width, r.Name, r.Detail)
		if r.Fix != "" && r.Status != OK {
			fmt.Fprintf(&b, "%-4s  %-*s  fix: %s\n", "", width, "", r.Fix)
		}
	}
	fmt.Fprintf(&b, "%d ok, %s, %s, %d skipped\n", Count(results, OK),
		plural(Count(results, Warn), "warning", "warnings"), plural(Count(results, Fail), "failure", "failures"), Count(results, Skip))
	_, err := io.WriteString(w, b.String())
	return err
}

// Report is the JSON form of a run.
type Report struct {
	OK      bool     `json:"ok"` // no check failed
	Results []Result `json:"checks"`
}

// WriteJSON writes the results as one indented JSON Report.
func WriteJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Report{OK: !Failed(results), Results: results})
}
