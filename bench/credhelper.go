package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// The emulator's accounts for the credential-helper table: the first is the
// default; all eight serve the "8 parallel cold gets" scenario.
var benchAccounts = []string{
	"123456789012", "210987654321", "111111111111", "222222222222",
	"333333333333", "444444444444", "555555555555", "666666666666",
}

const (
	caBundle   = "/etc/ssl/certs/ca-certificates.crt"
	ssoToken   = "ecrgate-bench-sso-access-token"
	ssoURL     = "https://ecrgate-bench.awsapps.com/start"
	getTimeout = 60 * time.Second // cap for a get that should succeed
)

// helper is one credential helper under test and how to inspect its cache.
type helper struct {
	name    string
	bin     string
	clear   func(home string) error        // empty its token cache
	entries func(home string) (int, error) // count its token cache entries
}

func oursHelper(bin string) *helper {
	return &helper{
		name: "ours", bin: bin,
		clear: func(home string) error { return os.RemoveAll(filepath.Join(home, ".cache", "ecrgate")) },
		entries: func(home string) (int, error) {
			des, err := os.ReadDir(filepath.Join(home, ".cache", "ecrgate", "tokens"))
			if errors.Is(err, fs.ErrNotExist) {
				return 0, nil
			}
			n := 0
			for _, de := range des { // one <hash>.json per entry; .lock files are not entries
				if de.Type().IsRegular() && strings.HasSuffix(de.Name(), ".json") && !strings.HasPrefix(de.Name(), ".") {
					n++
				}
			}
			return n, err
		},
	}
}

func awslabsKind(bin string) *helper {
	return &helper{
		name: "awslabs", bin: bin,
		clear: func(home string) error {
			if err := os.Remove(filepath.Join(home, ".ecr", "cache.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		},
		entries: func(home string) (int, error) {
			b, err := os.ReadFile(filepath.Join(home, ".ecr", "cache.json"))
			if errors.Is(err, fs.ErrNotExist) {
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
			var c struct{ Registries map[string]json.RawMessage }
			if err := json.Unmarshal(b, &c); err != nil {
				return 0, fmt.Errorf("awslabs' cache.json: %w", err)
			}
			return len(c.Registries), nil
		},
	}
}

// scenario is one row of the table.
type scenario struct {
	name     string
	short    string // for the goals
	runs     int
	warm     bool // one untimed get fills the cache first
	cold     bool // the cache is emptied before every get
	failing  bool // no credentials: every get must fail
	parallel bool // 8 parallel cold gets for 8 registries
	timeout  time.Duration
	// files are written into every helper's fresh home (path relative to home).
	files map[string]string
	// drop removes these variables from the emulator's environment; set adds.
	drop []string
	set  func(home string) []string
}

// bench holds what every scenario shares.
type bench struct {
	o       options
	e       *ecrfake.Emulator
	imds    *blackhole
	root    string
	spawn   *spawner
	floor   int64     // peak RSS the launcher passes on to a trivial child, KiB
	helpers []*helper // ours first; awslabs second when available
}

// sideStats is one helper's measurements in one scenario.
type sideStats struct {
	samples  []sample
	calls    map[string]int // emulator calls, summed over every get
	imds     int            // connections to the metadata blackhole, summed
	gets     int
	batch    []time.Duration // parallel: wall time of each batch
	kept     []int           // parallel: cache entries kept after each batch
	fails    []string        // unexpected outcomes, for the notes
	prefill  string          // a failed warm-up get
	entryErr error
}

type result struct {
	sc    *scenario
	sides []*sideStats // index as bench.helpers
}

func credHelperTable(ctx context.Context, o options) error {
	ours, err := filepath.Abs(o.ours)
	if err != nil {
		return err
	}
	if _, err := os.Stat(ours); err != nil {
		return fmt.Errorf("our helper %s is missing; run `make build` first: %w", o.ours, err)
	}
	b := &bench{o: o, helpers: []*helper{oursHelper(ours)}}
	header := []string{"ours: docker-credential-ecrgate " + oursVersion(ctx, ours) + " (" + o.ours + ")"}
	awsPath, awsVersion, err := awslabsHelper(ctx, o.awslabs, o.rebuildAwslabs)
	if err != nil {
		fmt.Printf("awslabs' helper is not available, so only our own rows are measured: %v\n\n", err)
		header = append(header, "awslabs: not available")
	} else {
		b.helpers = append(b.helpers, awslabsKind(awsPath))
		header = append(header, fmt.Sprintf("awslabs: docker-credential-ecr-login %s (%s)", awsVersion, awsPath))
	}

	b.e, err = ecrfake.New(ecrfake.Options{Accounts: benchAccounts, Latency: o.latency, SSOTokens: []string{ssoToken}})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { _ = b.e.Serve(sctx, ln); close(served) }()
	defer func() { stop(); <-served }()
	if b.imds, err = newBlackhole(); err != nil {
		return err
	}
	defer b.imds.Close()
	if b.root, err = os.MkdirTemp("", "ecrgate-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.root)
	if b.spawn, err = buildSpawner(ctx, b.root); err != nil {
		return err
	}
	if b.floor, err = b.spawn.floor(ctx); err != nil {
		return fmt.Errorf("measure the launcher's RSS floor: %w", err)
	}

	if err := b.warmUp(ctx); err != nil {
		return err
	}
	var results []*result
	for _, sc := range b.scenarios() {
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", sc.name)
		r, err := b.runScenario(ctx, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		results = append(results, r)
	}
	b.print(header, results)
	return nil
}

// warmUp runs a few untimed gets of each helper, so the first scenario
// does not pay for cold page caches and the bench's own start-up.
func (b *bench) warmUp(ctx context.Context) error {
	sc := &scenario{name: "warm-up"}
	for _, h := range b.helpers {
		home, err := b.home(sc, h, 0)
		if err != nil {
			return err
		}
		env, err := b.env(sc, home)
		if err != nil {
			return err
		}
		for range 3 {
			if _, err := b.spawn.getOnce(ctx, h.bin, env, registryHost(benchAccounts[0]), getTimeout); err != nil {
				return err
			}
		}
	}
	return nil
}

func oursVersion(ctx context.Context, bin string) string {
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(vctx, bin, "version")
	cmd.Env = []string{"HOME=" + os.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}
	out, err := cmd.Output()
	if err != nil {
		return "(version unknown)"
	}
	f := strings.Fields(string(out)) // "docker-credential-ecrgate (github.com/ecrgate/ecrgate) <version>"
	if len(f) == 0 {
		return "(version unknown)"
	}
	return f[len(f)-1]
}

func (b *bench) scenarios() []*scenario {
	n := b.o.helperRuns
	static := []string{}
	noKeys := []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
	baseCreds := fmt.Sprintf("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n", b.e.AccessKey(), b.e.SecretKey())
	ssoExpiry := time.Now().Add(8 * time.Hour).UTC().Format(time.RFC3339)
	ssoSum := sha1.Sum([]byte(ssoURL))
	return []*scenario{
		{name: "static keys, warm", short: "static warm", runs: n, warm: true, drop: static},
		{name: "static keys, cold", short: "static cold", runs: n, cold: true, drop: static},
		{name: "role_arn profile (AssumeRole), warm", short: "role warm", runs: n, warm: true, drop: noKeys,
			files: map[string]string{
				".aws/config":      "[profile pusher]\nrole_arn = arn:aws:iam::123456789012:role/pusher\nsource_profile = base\n\n[profile base]\n",
				".aws/credentials": baseCreds,
			},
			set: func(string) []string { return []string{"AWS_PROFILE=pusher"} }},
		{name: "web identity (AssumeRoleWithWebIdentity), warm", short: "web identity warm", runs: n, warm: true, drop: noKeys,
			files: map[string]string{"web-identity-token": "ecrgate-bench-oidc-token"},
			set: func(home string) []string {
				return []string{"AWS_WEB_IDENTITY_TOKEN_FILE=" + filepath.Join(home, "web-identity-token"),
					"AWS_ROLE_ARN=arn:aws:iam::123456789012:role/ci", "AWS_ROLE_SESSION_NAME=bench"}
			}},
		{name: "SSO profile (GetRoleCredentials), warm", short: "SSO warm", runs: n, warm: true, drop: noKeys,
			files: map[string]string{
				".aws/config": "[profile dev]\nsso_start_url = " + ssoURL + "\nsso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = Developer\n",
				".aws/sso/cache/" + hex.EncodeToString(ssoSum[:]) + ".json": fmt.Sprintf(
					`{"accessToken":%q,"expiresAt":%q,"region":"us-east-1","startUrl":%q}`, ssoToken, ssoExpiry, ssoURL),
			},
			set: func(string) []string { return []string{"AWS_PROFILE=dev"} }},
		{name: "no credentials, metadata endpoint hangs", short: "no credentials", runs: b.o.noCredsRuns, failing: true,
			timeout: b.o.noCredsCap, drop: []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"}},
		{name: "static keys + AWS_CA_BUNDLE, warm", short: "CA bundle warm", runs: n, warm: true, drop: static,
			set: func(string) []string { return []string{"AWS_CA_BUNDLE=" + caBundle} }},
		{name: "8 parallel cold gets, 8 registries (batch)", short: "parallel", runs: b.o.parallelRounds, parallel: true, drop: static},
	}
}

func registryHost(account string) string {
	return account + ".dkr.ecr." + ecrfake.DefaultRegion + ".amazonaws.com"
}

// env is exactly the environment of a helper process in sc: no variable
// of the bench's own environment leaks in except PATH.
func (b *bench) env(sc *scenario, home string) ([]string, error) {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		// Belt and braces: even where metadata is disabled, its endpoint is loopback.
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + b.imds.URL(),
	}
	for _, kv := range b.e.Env() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(sc.drop, k) {
			env = append(env, kv)
		}
	}
	if sc.set != nil {
		env = append(env, sc.set(home)...)
	}
	return env, checkLoopback(env)
}

// home makes a fresh home directory for one helper in one scenario.
func (b *bench) home(sc *scenario, h *helper, round int) (string, error) {
	dir := filepath.Join(b.root, fmt.Sprintf("%s-%s-%d", slug(sc.name), h.name, round))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for rel, content := range sc.files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

func (b *bench) runScenario(ctx context.Context, sc *scenario) (*result, error) {
	r := &result{sc: sc}
	for range b.helpers {
		r.sides = append(r.sides, &sideStats{calls: map[string]int{}})
	}
	if sc.parallel {
		return r, b.runParallel(ctx, sc, r)
	}
	timeout := getTimeout
	if sc.timeout > 0 {
		timeout = sc.timeout
	}
	host := registryHost(benchAccounts[0])
	homes := make([]string, len(b.helpers))
	envs := make([][]string, len(b.helpers))
	for i, h := range b.helpers {
		var err error
		if homes[i], err = b.home(sc, h, 0); err != nil {
			return nil, err
		}
		if envs[i], err = b.env(sc, homes[i]); err != nil {
			return nil, err
		}
		if sc.warm {
			s, err := b.spawn.getOnce(ctx, h.bin, envs[i], host, timeout)
			if err != nil {
				return nil, err
			}
			if !s.ok {
				r.sides[i].prefill = s.out
			}
		}
	}
	for run := range sc.runs {
		for _, i := range order(len(b.helpers), run) {
			h, side := b.helpers[i], r.sides[i]
			if sc.cold {
				if err := h.clear(homes[i]); err != nil {
					return nil, err
				}
			}
			before, imds := b.e.CallCounts(), b.imds.Accepted()
			s, err := b.spawn.getOnce(ctx, h.bin, envs[i], host, timeout)
			if err != nil {
				return nil, err
			}
			addCalls(side.calls, b.e.CallCounts(), before)
			side.imds += b.imds.Accepted() - imds
			side.gets++
			side.samples = append(side.samples, s)
			if s.ok == sc.failing {
				side.fails = append(side.fails, s.out)
			}
		}
	}
	return r, nil
}

// order alternates which helper goes first (ABBA), so neither always runs
// right after the other.
func order(n, run int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if run%2 == 1 {
		slices.Reverse(idx)
	}
	return idx
}

func (b *bench) runParallel(ctx context.Context, sc *scenario, r *result) error {
	hosts := make([]string, len(benchAccounts))
	for i, a := range benchAccounts {
		hosts[i] = registryHost(a)
	}
	for round := range sc.runs {
		for _, i := range order(len(b.helpers), round) {
			h, side := b.helpers[i], r.sides[i]
			home, err := b.home(sc, h, round) // fresh home: cold caches
			if err != nil {
				return err
			}
			env, err := b.env(sc, home)
			if err != nil {
				return err
			}
			before, imds := b.e.CallCounts(), b.imds.Accepted()
			samples, wall, err := b.spawn.run(ctx, h.bin, "get", env, hosts, getTimeout)
			if err != nil {
				return err
			}
			addCalls(side.calls, b.e.CallCounts(), before)
			side.imds += b.imds.Accepted() - imds
			side.gets += len(samples)
			side.samples = append(side.samples, samples...)
			side.batch = append(side.batch, wall)
			for _, s := range samples {
				if !s.ok {
					side.fails = append(side.fails, s.out)
				}
			}
			n, err := h.entries(home)
			if err != nil && side.entryErr == nil {
				side.entryErr = err
			}
			side.kept = append(side.kept, n)
		}
	}
	return nil
}

func addCalls(sum, after, before map[string]int) {
	for op, n := range after {
		if d := n - before[op]; d > 0 {
			sum[op] += d
		}
	}
}

// --- statistics and printing -------------------------------------------------

func (s *sideStats) medianWall(sc *scenario) (time.Duration, bool) {
	if sc.parallel {
		return median(s.batch), false
	}
	xs := slices.Clone(s.samples)
	if len(xs) == 0 {
		return 0, false
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].wall < xs[j].wall })
	m := xs[len(xs)/2]
	return m.wall, m.timedOut
}

func (s *sideStats) maxWall() time.Duration {
	var m time.Duration
	for _, x := range s.samples {
		m = max(m, x.wall)
	}
	return m
}

func (s *sideStats) rss() (medianKiB, maxKiB int64) {
	var xs []int64
	for _, x := range s.samples {
		xs = append(xs, x.rssKiB)
	}
	if len(xs) == 0 {
		return 0, 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2], xs[len(xs)-1]
}

func (s *sideStats) callsPerGet() float64 {
	total := 0
	for _, n := range s.calls {
		total += n
	}
	if s.gets == 0 {
		return 0
	}
	return float64(total) / float64(s.gets)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	xs := slices.Clone(ds)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func fmtDur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func fmtNum(x float64) string { return strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64) }

func fmtRSS(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

var opShort = map[string]string{
	"GetAuthorizationToken":   "ECR",
	ecrfake.OpAssumeRole:      "STS",
	ecrfake.OpAssumeRoleWebID: "STS-web",
	ecrfake.OpGetRoleCreds:    "SSO",
	ecrfake.OpGetCallerID:     "STS-id",
}

func (s *sideStats) fmtCalls() string {
	total := s.callsPerGet()
	var parts []string
	ops := make([]string, 0, len(s.calls))
	for op := range s.calls {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		name := opShort[op]
		if name == "" {
			name = op
		}
		parts = append(parts, name+" "+fmtNum(float64(s.calls[op])/float64(s.gets)))
	}
	if s.imds > 0 {
		parts = append(parts, "IMDS conns "+fmtNum(float64(s.imds)/float64(s.gets)))
	}
	if len(parts) == 0 {
		return fmtNum(total)
	}
	return fmtNum(total) + " (" + strings.Join(parts, ", ") + ")"
}

func (b *bench) print(header []string, results []*result) {
	fmt.Printf("credential helpers, `get` against the emulator with %v added to every call; helpers run alternately\n", b.o.latency)
	for _, h := range header {
		fmt.Println("  " + h)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "scenario\t ours median\t awslabs median\t ratio (awslabs/ours)\t ours peak RSS\t awslabs peak RSS\t ours calls/get\t awslabs calls/get\t runs\t")
	var notes []string
	for _, r := range results {
		cols := []string{r.sc.name}
		walls := make([]time.Duration, 2)
		for i := range 2 {
			if i >= len(r.sides) {
				cols = append(cols, "n/a")
				continue
			}
			w, timedOut := r.sides[i].medianWall(r.sc)
			walls[i] = w
			c := fmtDur(w)
			if timedOut {
				c = ">" + fmtDur(r.sc.timeout)
			}
			cols = append(cols, c)
		}
		ratio := "n/a"
		if len(r.sides) > 1 && walls[0] > 0 {
			_, to := r.sides[1].medianWall(r.sc)
			ratio = fmt.Sprintf("%.2f×", float64(walls[1])/float64(walls[0]))
			if to {
				ratio = ">" + ratio
			}
		}
		cols = append(cols, ratio)
		for i := range 2 {
			if i >= len(r.sides) {
				cols = append(cols, "n/a")
				continue
			}
			med, mx := r.sides[i].rss()
			cols = append(cols, fmt.Sprintf("%s (max %s)", fmtRSS(med), fmtRSS(mx)))
		}
		for i := range 2 {
			if i >= len(r.sides) {
				cols = append(cols, "n/a")
				continue
			}
			cols = append(cols, r.sides[i].fmtCalls())
		}
		runs := fmt.Sprint(r.sc.runs)
		if r.sc.parallel {
			runs += " batches of 8"
		}
		cols = append(cols, runs)
		fmt.Fprintln(tw, strings.Join(cols, "\t ")+"\t")
		if r.sc.parallel {
			kept := []string{"8 parallel cold gets: cache entries kept of 8 (min–max)"}
			for i := range 2 {
				if i >= len(r.sides) {
					kept = append(kept, "n/a")
					continue
				}
				lo, hi := slices.Min(r.sides[i].kept), slices.Max(r.sides[i].kept)
				kept = append(kept, fmt.Sprintf("%d–%d", lo, hi))
			}
			kept = append(kept, "", "", "", "", "", fmt.Sprint(r.sc.runs))
			fmt.Fprintln(tw, strings.Join(kept, "\t ")+"\t")
		}
		for i, side := range r.sides {
			name := b.helpers[i].name
			if side.prefill != "" {
				notes = append(notes, fmt.Sprintf("%s, %s: the warm-up get failed: %s", r.sc.name, name, oneLine(side.prefill)))
			}
			if len(side.fails) > 0 {
				what := "failed"
				if r.sc.failing {
					what = "unexpectedly succeeded"
				}
				notes = append(notes, fmt.Sprintf("%s, %s: %d of %d gets %s; first: %s", r.sc.name, name, len(side.fails), side.gets, what, oneLine(side.fails[0])))
			}
			if side.entryErr != nil {
				notes = append(notes, fmt.Sprintf("%s, %s: counting cache entries: %v", r.sc.name, name, side.entryErr))
			}
			if r.sc.failing && len(side.samples) > 0 {
				notes = append(notes, fmt.Sprintf("no credentials, %s: times %s; says: %s", name, fmtWalls(side.samples, r.sc.timeout), oneLine(side.samples[0].out)))
			}
		}
	}
	tw.Flush()
	fmt.Printf("  peak RSS: median over gets of each helper process's ru_maxrss (max in brackets), measured by a small launcher whose own floor is %s\n", fmtRSS(b.floor))
	fmt.Println("  calls/get: emulator calls per get by API (ECR = GetAuthorizationToken); IMDS conns: connections to the hanging metadata listener")
	for _, n := range notes {
		fmt.Println("  note: " + n)
	}
	fmt.Println()
	b.printGoals(results)
}

func fmtWalls(xs []sample, limit time.Duration) string {
	var parts []string
	for _, s := range xs {
		if s.timedOut {
			parts = append(parts, ">"+fmtDur(limit)+" (killed)")
		} else {
			parts = append(parts, fmtDur(s.wall))
		}
	}
	return strings.Join(parts, ", ")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func (b *bench) printGoals(results []*result) {
	fmt.Println("goals (issue #3, item 6):")
	find := func(short string) *result {
		for _, r := range results {
			if r.sc.short == short {
				return r
			}
		}
		return nil
	}
	line := func(pass bool, goal, detail string) {
		verdict := "FAIL"
		if pass {
			verdict = "PASS"
		}
		fmt.Printf("  %s  %s: %s\n", verdict, goal, detail)
	}
	both := len(b.helpers) > 1
	clean := func(r *result, i int) bool { return r.sides[i].prefill == "" && len(r.sides[i].fails) == 0 }
	compare := func(short, goal string) {
		r := find(short)
		if !both {
			fmt.Printf("  n/a   %s: awslabs' helper not available\n", goal)
			return
		}
		o, _ := r.sides[0].medianWall(r.sc)
		a, _ := r.sides[1].medianWall(r.sc)
		line(o <= a && clean(r, 0), goal, fmt.Sprintf("ours %s, awslabs %s", fmtDur(o), fmtDur(a)))
	}
	compare("static warm", "warm get no slower than awslabs' (static keys)")
	if r := find("role warm"); both {
		o, _ := r.sides[0].medianWall(r.sc)
		a, _ := r.sides[1].medianWall(r.sc)
		x := float64(a) / float64(o)
		line(x >= 10 && clean(r, 0), "≥ 10× faster with a role_arn profile, warm", fmt.Sprintf("%.1f× (ours %s, awslabs %s)", x, fmtDur(o), fmtDur(a)))
	} else {
		fmt.Println("  n/a   ≥ 10× faster with a role_arn profile, warm: awslabs' helper not available")
	}
	compare("static cold", "cold get no slower than awslabs' (static keys)")
	if both {
		var worse []string
		for _, r := range results {
			o, _ := r.sides[0].rss()
			a, _ := r.sides[1].rss()
			if o > a {
				worse = append(worse, fmt.Sprintf("%s: ours %s > awslabs %s", r.sc.short, fmtRSS(o), fmtRSS(a)))
			}
		}
		detail := "ours ≤ awslabs (median) in every scenario"
		if len(worse) > 0 {
			detail = "higher in " + strings.Join(worse, "; ")
		}
		line(len(worse) == 0, "peak RSS no higher than awslabs'", detail)
	} else {
		fmt.Println("  n/a   peak RSS no higher than awslabs': awslabs' helper not available")
	}
	if r := find("no credentials"); r != nil {
		s := r.sides[0]
		detail := "slowest of ours " + fmtDur(s.maxWall())
		if both {
			a, to := r.sides[1].medianWall(r.sc)
			if to {
				detail += fmt.Sprintf(", awslabs >%s", fmtDur(r.sc.timeout))
			} else {
				detail += ", awslabs " + fmtDur(a)
			}
		}
		if len(s.fails) > 0 {
			detail += " (but a get succeeded)"
		}
		line(s.maxWall() < 2*time.Second && len(s.fails) == 0, "no credentials: ours fails in < 2 s", detail)
	}
	if r := find("parallel"); r != nil {
		s := r.sides[0]
		detail := fmt.Sprintf("ours kept %d–%d of 8 over %d rounds", slices.Min(s.kept), slices.Max(s.kept), len(s.kept))
		if both {
			a := r.sides[1]
			detail += fmt.Sprintf(", awslabs %d–%d", slices.Min(a.kept), slices.Max(a.kept))
		}
		line(slices.Min(s.kept) == 8 && s.entryErr == nil, "8 parallel cold gets keep 8/8 cache entries, every time", detail)
	}
	var warm []string
	zero := true
	for _, r := range results {
		if !r.sc.warm {
			continue
		}
		c := r.sides[0].callsPerGet()
		warm = append(warm, fmt.Sprintf("%s %s", r.sc.short, fmtNum(c)))
		zero = zero && c == 0 && r.sides[0].imds == 0 && clean(r, 0)
	}
	line(zero, "warm get makes zero network calls for every credential source", "ours calls/get: "+strings.Join(warm, ", "))
}
