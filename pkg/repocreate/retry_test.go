package repocreate_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// TestDefaultClientRetries: the ECR clients the ensurer builds itself (as
// `ecrgate serve` uses them) retry 500s, throttling and dropped connections
// on CreateRepository and DescribeRepositories a bounded number of times
// with a bounded wait, so a fault that clears within the bound is survived,
// and one that does not ends in UNAVAILABLE saying what failed and what to
// do, well before a push could be said to hang.
func TestDefaultClientRetries(t *testing.T) {
	const max = repocreate.APIMaxAttempts
	if max < 3 || repocreate.APIMaxRetryWait > 10*time.Second {
		t.Fatalf("retry bound %d attempts, %v of waiting: want at least 3 attempts and at most 10s", max, repocreate.APIMaxRetryWait)
	}
	tests := []struct {
		name     string
		op       string
		n        int
		fault    ecrfake.Fault
		code     errcode.ErrorCode // 0: the ensure succeeds
		contains []string
		describe int // DescribeRepositories calls
		create   int // CreateRepository calls
	}{
		{name: "CreateRepository 500s clear before the bound", op: "CreateRepository", n: max - 1, fault: ecrfake.FaultServerError,
			describe: 1, create: max},
		{name: "CreateRepository throttled before the bound", op: "CreateRepository", n: max - 1, fault: ecrfake.FaultThrottle,
			describe: 1, create: max},
		{name: "CreateRepository connections cut", op: "CreateRepository", n: 2, fault: ecrfake.FaultCut(0),
			describe: 1, create: 3},
		{name: "DescribeRepositories 500s clear before the bound", op: "DescribeRepositories", n: max - 1, fault: ecrfake.FaultServerError,
			describe: max, create: 1},
		{name: "DescribeRepositories throttled before the bound", op: "DescribeRepositories", n: max - 1, fault: ecrfake.FaultThrottle,
			describe: max, create: 1},
		{name: "CreateRepository throttled throughout", op: "CreateRepository", n: max, fault: ecrfake.FaultThrottle,
			code:     errcode.ErrorCodeUnavailable,
			contains: []string{"ECR is throttling or unavailable", `CreateRepository of "team/app" in ` + reg, "on all 5 attempts", "ThrottlingException", "retry the push"},
			describe: 1, create: max},
		{name: "CreateRepository 500s throughout", op: "CreateRepository", n: max, fault: ecrfake.FaultServerError,
			code:     errcode.ErrorCodeUnavailable,
			contains: []string{`CreateRepository of "team/app"`, "on all 5 attempts", "ServerException", "retry the push"},
			describe: 1, create: max},
		{name: "DescribeRepositories 500s throughout", op: "DescribeRepositories", n: max, fault: ecrfake.FaultServerError,
			code:     errcode.ErrorCodeUnavailable,
			contains: []string{`DescribeRepositories of "team/app" in ` + reg, "on all 5 attempts", "ServerException", "retry the push"},
			describe: max, create: 0},
		{name: "DescribeRepositories throttled throughout", op: "DescribeRepositories", n: max, fault: ecrfake.FaultThrottle,
			code:     errcode.ErrorCodeUnavailable,
			contains: []string{`DescribeRepositories of "team/app"`, "ThrottlingException", "retry the push"},
			describe: max, create: 0},
		{name: "DescribeRepositories connections dropped throughout", op: "DescribeRepositories", n: max, fault: ecrfake.FaultDrop,
			code:     errcode.ErrorCodeUnavailable,
			contains: []string{`DescribeRepositories of "team/app"`, "retry the push"},
			describe: max, create: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ecrfake.Start(t, ecrfake.Options{})
			env := useEmulator(t, e)
			cfg := parseConfig(t, "templates:\n  - prefix: team\n    scan_on_push: true\n")
			cfg.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
			ens, err := repocreate.New(repocreate.Options{Config: cfg, Env: env})
			if err != nil {
				t.Fatal(err)
			}
			defer ens.Close()
			e.FailNext(tt.op, tt.n, tt.fault)
			start := time.Now()
			err = ens.Ensure(context.Background(), reg, "team/app")
			took := time.Since(start)
			t.Logf("%d× %s on %s: %v after %v (Describe %d, Create %d calls)", tt.n, tt.fault, tt.op, err, took.Round(time.Millisecond),
				e.Calls("DescribeRepositories"), e.Calls("CreateRepository"))
			// The waits are bounded by APIMaxRetryWait per call; the rest
			// is slack for a loaded machine, far below anything that hangs.
			if limit := 2*repocreate.APIMaxRetryWait + 30*time.Second; took > limit {
				t.Errorf("ensure took %v, more than %v", took, limit)
			}
			_, exists := e.Repository(account, "team/app")
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("fault within the retry bound not survived: %v", err)
				}
				if !exists {
					t.Fatal("repository not created")
				}
			} else {
				code, msg := errCode(t, err)
				if code != tt.code {
					t.Fatalf("code %v, want %v: %s", code, tt.code, msg)
				}
				for _, s := range tt.contains {
					if !strings.Contains(msg, s) {
						t.Errorf("message %q lacks %q", msg, s)
					}
				}
				if exists {
					t.Errorf("repository exists after %v", code)
				}
			}
			if got := e.Calls("DescribeRepositories"); got != tt.describe {
				t.Errorf("DescribeRepositories calls = %d, want %d", got, tt.describe)
			}
			if got := e.Calls("CreateRepository"); got != tt.create {
				t.Errorf("CreateRepository calls = %d, want %d", got, tt.create)
			}
		})
	}
}
