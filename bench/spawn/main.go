// Command spawn runs `<helper> get` once per host, all at once, and prints
// each process's wall time and peak RSS as JSON. The bench starts helpers
// through it because on Linux a child's ru_maxrss starts from its parent's
// peak RSS (Go's os/exec forks with CLONE_VM, and the peak survives exec):
// measured from the bench, which holds the emulator, every helper would
// seem as large as the bench. This launcher is small, so the figures it
// reports are the helper's own (above a floor the bench measures with
// /bin/true). Standard library only, to stay small.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Result is one process's outcome; the bench decodes the same fields.
type Result struct {
	WallNS   int64  `json:"wall_ns"`
	MaxRSS   int64  `json:"maxrss_kib"`
	Exit     int    `json:"exit"`
	TimedOut bool   `json:"timed_out"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Err      string `json:"err,omitempty"`
	StartErr string `json:"start_err,omitempty"`
}

// Report is what spawn prints.
type Report struct {
	BatchNS int64    `json:"batch_ns"`
	Results []Result `json:"results"`
}

func main() {
	bin := flag.String("bin", "", "helper binary")
	arg := flag.String("arg", "get", "helper argument")
	timeout := flag.Duration("timeout", time.Minute, "cap on each process")
	flag.Parse()
	// The bench stops a launcher with SIGTERM; its helpers go with it.
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sig, *timeout)
	defer cancel()
	hosts := flag.Args()
	type proc struct {
		cmd         *exec.Cmd
		out, errOut bytes.Buffer
		start       time.Time
	}
	procs := make([]*proc, len(hosts))
	for i, h := range hosts {
		p := &proc{cmd: exec.CommandContext(ctx, *bin, *arg)}
		p.cmd.Stdin = strings.NewReader(h + "\n")
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
		p.cmd.WaitDelay = 2 * time.Second
		procs[i] = p
	}
	rep := Report{Results: make([]Result, len(procs))}
	var wg sync.WaitGroup
	batch := time.Now()
	for i, p := range procs {
		p.start = time.Now()
		if err := p.cmd.Start(); err != nil {
			rep.Results[i] = Result{Exit: -1, StartErr: err.Error()}
			continue
		}
		wg.Go(func() {
			err := p.cmd.Wait()
			r := Result{WallNS: int64(time.Since(p.start)), Stdout: p.out.String(), Stderr: p.errOut.String(),
				TimedOut: errors.Is(ctx.Err(), context.DeadlineExceeded)}
			if ps := p.cmd.ProcessState; ps != nil {
				r.Exit = ps.ExitCode()
				r.MaxRSS = maxRSS(ps)
			}
			if err != nil {
				r.Err = err.Error()
			}
			rep.Results[i] = r
		})
	}
	wg.Wait()
	rep.BatchNS = int64(time.Since(batch))
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		os.Exit(1)
	}
}
