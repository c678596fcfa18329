// Command bench measures ecrgate against the ECR emulator and prints five
// tables (run with `make bench`): the emulator's own figures;
// docker-credential-ecrgate against awslabs' docker-credential-ecr-login,
// run alternately in one run; `ecrgate serve` against pushing directly
// to the emulator and through nginx, also alternately; and one replica of
// a shared team proxy (allow_remote, TLS, each client's own token) under
// a few hundred concurrent pushes, against the same pushes direct; and a
// push whose base layers live in another repository, which ecrgate mounts
// instead of letting the client upload them (#16), direct and through it,
// at loopback speed and over a 12.5 MB/s uplink. Figures
// come from repeated runs (medians, percentiles), never from a timed test.
//
// Every process the bench starts talks to loopback only: AWS endpoints point
// at the emulator on 127.0.0.1, and instance metadata is either disabled or
// pointed at a loopback listener that accepts and never answers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 7, "repetitions of each emulator measurement")
	flag.IntVar(&o.sizeMiB, "size", 64, "image size in MiB for push/pull throughput")
	flag.StringVar(&o.tables, "tables", "emulator,credhelper,proxy,team,mount", "tables to print, comma-separated: emulator, credhelper, proxy, team, mount")
	flag.IntVar(&o.helperRuns, "helper-runs", 21, "gets per helper per credential-helper scenario")
	flag.IntVar(&o.noCredsRuns, "nocreds-runs", 2, "gets per helper in the no-credentials scenario (slow for awslabs)")
	flag.DurationVar(&o.noCredsCap, "nocreds-cap", 90*time.Second, "longest wait for one get in the no-credentials scenario")
	flag.IntVar(&o.parallelRounds, "parallel-rounds", 10, "rounds of 8 parallel cold gets per helper")
	flag.DurationVar(&o.latency, "latency", 20*time.Millisecond, "emulator latency added to every call in the credential-helper table")
	flag.StringVar(&o.ours, "ours", "bin/docker-credential-ecrgate", "our helper binary (make build)")
	flag.StringVar(&o.awslabs, "awslabs", "", "awslabs' docker-credential-ecr-login binary (default: build its latest release once into the user cache dir)")
	flag.BoolVar(&o.rebuildAwslabs, "rebuild-awslabs", false, "rebuild awslabs' helper even if a cached build exists")
	flag.StringVar(&o.ecrgate, "ecrgate", "bin/ecrgate", "the ecrgate binary whose `serve` the proxy table measures (make build)")
	flag.StringVar(&o.nginx, "nginx", "", "nginx binary for the proxy table's pass-through baseline (default: nginx on PATH or in /usr/sbin)")
	flag.IntVar(&o.proxyPairs, "proxy-rounds", 11, "rounds of the proxy table's push comparison (each pushes once per path: direct, through ecrgate in registry and in intercept mode, through nginx and through the Go passthrough)")
	flag.IntVar(&o.proxyImageMiB, "proxy-size", 1024, "image size in MiB for the proxy table's throughput comparison")
	flag.IntVar(&o.proxyLayers, "proxy-layers", 8, "layers of that image")
	flag.IntVar(&o.proxyRSSMiB, "proxy-rss-size", 2048, "image size in MiB of the push during which the proxy's peak RSS is measured")
	flag.IntVar(&o.headRequests, "head-requests", 2000, "HEAD blob requests per path for the proxy's added latency")
	flag.StringVar(&o.proxyEnv, "proxy-env", "", "extra KEY=VALUE settings (space-separated) for ecrgate serve and the Go passthrough, for experiments such as GOMAXPROCS=1")
	flag.IntVar(&o.concurrentPushes, "concurrent-pushes", 64, "concurrent pushes to as many new repositories through the proxy")
	flag.IntVar(&o.teamPushes, "team-pushes", 200, "concurrent pushes through one shared-proxy replica in the team table (half to new repositories)")
	flag.IntVar(&o.teamRounds, "team-rounds", 3, "batches per path (direct, through ecrgate) in the team table")
	flag.IntVar(&o.teamSequential, "team-sequential", 60, "pushes one at a time per path in the team table, for the latency ecrgate adds without queueing")
	flag.IntVar(&o.teamClients, "team-clients", 8, "identities, each with its own token, that the team table's pushes take in turn")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	runs, sizeMiB  int
	tables         string
	helperRuns     int
	noCredsRuns    int
	noCredsCap     time.Duration
	parallelRounds int
	latency        time.Duration
	ours, awslabs  string
	rebuildAwslabs bool

	ecrgate, nginx   string
	proxyEnv         string
	proxyPairs       int
	proxyImageMiB    int
	proxyLayers      int
	proxyRSSMiB      int
	headRequests     int
	concurrentPushes int

	teamPushes, teamRounds, teamClients, teamSequential int
}

func (o options) table(name string) bool {
	for _, t := range strings.Split(o.tables, ",") {
		if strings.TrimSpace(t) == name {
			return true
		}
	}
	return false
}

func run(ctx context.Context, o options) error {
	if o.table("emulator") {
		if err := emulatorTable(ctx, o.runs, o.sizeMiB); err != nil {
			return fmt.Errorf("emulator table: %w", err)
		}
	}
	if o.table("credhelper") {
		if o.table("emulator") {
			fmt.Println()
			runtime.GC() // return the emulator table's images before timing helpers
			debug.FreeOSMemory()
		}
		if err := credHelperTable(ctx, o); err != nil {
			return fmt.Errorf("credential-helper table: %w", err)
		}
	}
	if o.table("proxy") {
		if o.table("emulator") || o.table("credhelper") {
			fmt.Println()
			runtime.GC()
			debug.FreeOSMemory()
		}
		if err := proxyTable(ctx, o); err != nil {
			return fmt.Errorf("proxy table: %w", err)
		}
	}
	if o.table("team") {
		if o.table("emulator") || o.table("credhelper") || o.table("proxy") {
			fmt.Println()
			runtime.GC()
			debug.FreeOSMemory()
		}
		if err := teamTable(ctx, o); err != nil {
			return fmt.Errorf("team table: %w", err)
		}
	}
	if o.table("mount") {
		if o.table("emulator") || o.table("credhelper") || o.table("proxy") || o.table("team") {
			fmt.Println()
			runtime.GC()
			debug.FreeOSMemory()
		}
		if err := mountTable(ctx, o); err != nil {
			return fmt.Errorf("mount table: %w", err)
		}
	}
	return nil
}
