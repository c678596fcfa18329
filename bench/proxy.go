package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// pushTimeout caps one push in the proxy table.
const pushTimeout = 5 * time.Minute

// path is one way of reaching the emulator's registry: directly, through
// `ecrgate serve` (registry mode, or intercept mode as dockerd's
// HTTPS_PROXY), or through nginx.
type path struct {
	name   string
	host   string              // host[:port] the client pushes to
	auth   authn.Authenticator // the client's credentials (none through ecrgate's registry mode)
	header string              // Authorization for raw requests ("" through ecrgate's registry mode)
	// secure: the reference is an ordinary https one (intercept mode: the
	// real ECR host name, reached through tr's CONNECT proxy); otherwise
	// plain http (name.Insecure).
	secure bool
	tr     *http.Transport // the client's transport for this path; nil: proxyBench.tr
	// precreate: the repository is created (untimed) before the push,
	// since the emulator, like ECR, refuses a push to a missing one;
	// ecrgate creates it itself, inside the timed push.
	precreate bool
	srv       *server // the process in between, if any
}

// proxyBench holds what the proxy table's measurements share.
type proxyBench struct {
	o         options
	e         *ecrfake.Emulator
	api       *ecr.Client
	tr        *http.Transport // the client's, shared by every path
	ecrgate   *server
	intercept *server // a second ecrgate serve, with the intercept listener
	nginx     *server
	paths     []*path // direct, ecrgate, intercept[, nginx], passthrough
	nginxErr  error   // why there is no nginx path
	createLat []float64
	tlsMu     sync.Mutex
	tlsSeen   map[string]int // intercept mode: TLS version and cipher suite of each handshake the client made
}

// proxyTable measures `ecrgate serve` (a separate process, as users run it)
// in front of the in-process emulator, in registry mode and, from a second
// process, in intercept mode (CONNECT + TLS with a local CA), against
// pushing directly to the emulator and through nginx as a plain
// pass-through proxy, alternating the paths in one run.
func proxyTable(ctx context.Context, o options) error {
	bin, err := filepath.Abs(o.ecrgate)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s is missing; run `make build` first: %w", o.ecrgate, err)
	}
	if o.proxyLayers < 1 || o.proxyImageMiB < o.proxyLayers || o.proxyPairs < 1 || o.headRequests < 1 || o.concurrentPushes < 1 {
		return errors.New("-proxy-layers, -proxy-rounds, -head-requests and -concurrent-pushes must be positive, -proxy-size at least 1 MiB per layer")
	}
	root, err := os.MkdirTemp("", "ecrgate-bench-proxy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	storage := os.Getenv("BENCH_STORAGE")
	e, stopEmu, err := serveEmulator(ctx, ecrfake.Options{StorageDir: storage})
	if err != nil {
		return err
	}
	defer stopEmu()

	b := &proxyBench{o: o, e: e}
	b.api = ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	tok, err := b.api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		return err
	}
	basic := &authn.Basic{Username: "AWS", Password: strings.TrimPrefix(string(raw), "AWS:")}
	header := "Basic " + base64.StdEncoding.EncodeToString(raw)
	b.tr = http.DefaultTransport.(*http.Transport).Clone()
	b.tr.MaxIdleConnsPerHost = 128
	defer b.tr.CloseIdleConnections()

	header0 := []string{"ecrgate: " + ecrgateVersion(ctx, bin) + " (" + o.ecrgate + " serve, a separate process)"}
	storageNote := "in-memory storage"
	if storage != "" {
		storageNote = "storage in " + storage + " (BENCH_STORAGE)"
	}
	header0 = append(header0, "emulator: pkg/ecrfake in the bench process, "+storageNote)
	if o.proxyEnv != "" {
		header0 = append(header0, "extra environment of ecrgate serve and the Go passthrough: "+o.proxyEnv)
	}
	if b.ecrgate, err = startEcrgate(ctx, bin, filepath.Join(root, "ecrgate"), e, strings.Fields(o.proxyEnv), false); err != nil {
		return err
	}
	defer b.ecrgate.stop()
	// Intercept mode runs in a process of its own, so that the registry-mode
	// figures (CPU per GiB, peak RSS) stay those of a process serving only
	// registry mode, and the intercept figures those of intercept mode alone.
	if b.intercept, err = startEcrgate(ctx, bin, filepath.Join(root, "intercept"), e, strings.Fields(o.proxyEnv), true); err != nil {
		return err
	}
	defer b.intercept.stop()
	itr, err := b.interceptTransport(b.intercept)
	if err != nil {
		return err
	}
	defer itr.CloseIdleConnections()
	header0 = append(header0, "intercept: a second "+o.ecrgate+" serve with a CA from `ecrgate ca init` and an intercept listener; the client (go-containerregistry) pushes to the real name "+
		registryHost(e.Account())+"/…, which never resolves, through it as HTTPS proxy (CONNECT host:443), trusting the CA, authenticating to the emulator's Basic challenge as AWS with a GetAuthorizationToken password")
	b.paths = []*path{
		{name: "direct", host: e.Host(), auth: basic, header: header, precreate: true},
		{name: "ecrgate", host: b.ecrgate.addr, auth: authn.Anonymous, srv: b.ecrgate},
		{name: "intercept", host: registryHost(e.Account()), auth: basic, header: header, secure: true, tr: itr, srv: b.intercept},
	}
	nginxBin, nerr := findNginx(o.nginx)
	if nerr == nil {
		b.nginx, nerr = startNginx(ctx, nginxBin, filepath.Join(root, "nginx"), e.Host())
	}
	if nerr != nil {
		b.nginxErr = nerr
		header0 = append(header0, "nginx: "+oneLine(nerr.Error()))
	} else {
		defer b.nginx.stop()
		header0 = append(header0, "nginx: "+nginxVersion(ctx, nginxBin)+" ("+nginxBin+"), plain pass-through: proxy_request_buffering off, proxy_buffering off, client_max_body_size 0, HTTP/1.1 keepalive upstream")
		b.paths = append(b.paths, &path{name: "nginx", host: b.nginx.addr, auth: basic, header: header, precreate: true, srv: b.nginx})
	}
	go1, err := startPassthrough(ctx, filepath.Join(root, "passthrough"), e.Host(), strings.Fields(o.proxyEnv))
	if err != nil {
		return err
	}
	defer go1.stop()
	header0 = append(header0, "passthrough: bench/passthrough, the standard library's httputil.ReverseProxy alone (Rewrite, FlushInterval -1), as a reference for what Go's net/http costs")
	b.paths = append(b.paths, &path{name: "passthrough", host: go1.addr, auth: basic, header: header, precreate: true, srv: go1})

	layerSize := int64(o.proxyImageMiB) << 20 / int64(o.proxyLayers)
	bigLayers := int((int64(o.proxyRSSMiB)<<20 + layerSize - 1) / layerSize)
	fmt.Fprintf(os.Stderr, "bench: proxy: generating %d random layers of %d MiB ...\n", max(bigLayers, o.proxyLayers), layerSize>>20)
	layers := randomLayers(max(bigLayers, o.proxyLayers), layerSize, 1)
	img, err := mutate.AppendLayers(empty.Image, layers[:o.proxyLayers]...)
	if err != nil {
		return err
	}
	big, err := mutate.AppendLayers(empty.Image, layers[:bigLayers]...)
	if err != nil {
		return err
	}
	small, err := mutate.AppendLayers(empty.Image, randomLayers(3, 256<<10, 2)...)
	if err != nil {
		return err
	}
	for _, im := range []v1.Image{img, big, small} { // digests once, outside every timing
		if _, err := im.Digest(); err != nil {
			return err
		}
	}

	// Warm-up: every path once (ecrgate fetches its token and identity here).
	for _, p := range b.paths {
		if _, err := b.push(ctx, p, "bench/warm-"+p.name, small); err != nil {
			return fmt.Errorf("warm-up push %s: %w", p.name, err)
		}
	}

	var r proxyResults
	// 2. Peak RSS of ecrgate serve during the big push (the first big one it sees).
	fmt.Fprintf(os.Stderr, "bench: proxy: %d MiB push through ecrgate for its peak RSS ...\n", bigLayers*int(layerSize>>20))
	r.bigMiB, r.bigLayers = bigLayers*int(layerSize>>20), bigLayers
	pid := b.ecrgate.cmd.Process.Pid
	if r.hwmBefore, err = statusKiB(pid, "VmHWM"); err != nil {
		return err
	}
	if r.bigDur, err = b.push(ctx, b.paths[1], "bench/rss", big); err != nil {
		return fmt.Errorf("%d MiB push through ecrgate: %w", r.bigMiB, err)
	}
	if r.hwmBig, err = statusKiB(pid, "VmHWM"); err != nil {
		return err
	}
	// One untimed push of the throughput image brings the emulator's heap
	// to its steady state (the first one after the big push ran at a third
	// of the speed of the rest).
	if _, err := b.push(ctx, b.paths[0], "bench/warm-image", img); err != nil {
		return fmt.Errorf("warm-up push of the %d MiB image: %w", o.proxyImageMiB, err)
	}
	b.settle()
	r.heap0 = heapInUse()

	// 1. Throughput, rounds rotating the order of the paths.
	r.tput = make([][]float64, len(b.paths))
	r.selfCPU = make([][]float64, len(b.paths))
	r.midCPU = make([][]float64, len(b.paths))
	mib := float64(o.proxyLayers) * float64(layerSize) / (1 << 20)
	r.imageMiB = mib
	for round := range o.proxyPairs {
		fmt.Fprintf(os.Stderr, "bench: proxy: push round %d/%d ...\n", round+1, o.proxyPairs)
		for _, i := range rotate(len(b.paths), round) {
			p := b.paths[i]
			self0, mid0, err := b.cpu(p)
			if err != nil {
				return err
			}
			d, err := b.push(ctx, p, fmt.Sprintf("bench/tput-%s-%d", p.name, round), img)
			if err != nil {
				return fmt.Errorf("round %d, push %s: %w", round+1, p.name, err)
			}
			self1, mid1, err := b.cpu(p)
			if err != nil {
				return err
			}
			r.tput[i] = append(r.tput[i], mib/d.Seconds())
			r.selfCPU[i] = append(r.selfCPU[i], (self1-self0).Seconds()*1024/mib)
			r.midCPU[i] = append(r.midCPU[i], (mid1-mid0).Seconds()*1024/mib)
			b.settle()
			r.heaps = append(r.heaps, heapInUse())
		}
	}

	// 3. Added latency: HEAD of an existing blob, paths alternating.
	fmt.Fprintf(os.Stderr, "bench: proxy: %d HEAD blob requests per path ...\n", o.headRequests)
	d0, err := layers[0].Digest()
	if err != nil {
		return err
	}
	if r.head, err = b.heads(ctx, "bench/rss", d0.String(), o.headRequests); err != nil {
		return err
	}

	if r.hwmHeads, err = statusKiB(pid, "VmHWM"); err != nil {
		return err
	}

	// 4. Concurrent pushes to new repositories through ecrgate.
	fmt.Fprintf(os.Stderr, "bench: proxy: %d concurrent pushes through ecrgate ...\n", o.concurrentPushes)
	r.conc = b.concurrent(ctx, small, o.concurrentPushes)

	if err := b.ecrgate.alive(); err != nil {
		return err
	}
	if err := b.intercept.alive(); err != nil {
		return err
	}
	if r.hwmEnd, err = statusKiB(pid, "VmHWM"); err != nil {
		return err
	}
	if r.hwmIntercept, err = statusKiB(b.intercept.cmd.Process.Pid, "VmHWM"); err != nil {
		return err
	}
	b.print(header0, &r)
	return nil
}

// proxyResults is everything the table prints.
type proxyResults struct {
	bigMiB, bigLayers         int
	bigDur                    time.Duration
	hwmBefore, hwmBig, hwmEnd int64 // KiB
	hwmHeads                  int64 // KiB, after the throughput rounds and the HEAD requests
	hwmIntercept              int64 // KiB, the intercept-mode process at the end
	imageMiB                  float64
	tput                      [][]float64 // per path, MiB/s per round
	selfCPU, midCPU           [][]float64 // per path, CPU seconds per GiB: bench process, process in between
	heap0                     uint64
	heaps                     []uint64 // bench heap after each throughput push
	head                      [][]float64
	conc                      concResult
}

type concResult struct {
	ok, n        int
	firstErr     error
	creates      int
	otherCalls   map[string]int
	wall         time.Duration
	missingRepos int
}

// randomLayers makes n layers of size random bytes (ChaCha8, seeded: the
// same bytes every run). They are not gzip; the registry does not care, and
// compressing on every push would measure gzip, not the proxy.
func randomLayers(n int, size int64, seed byte) []v1.Layer {
	rng := rand.NewChaCha8([32]byte{seed, 'e', 'c', 'r', 'g', 'a', 't', 'e'})
	out := make([]v1.Layer, n)
	for i := range out {
		buf := make([]byte, size)
		_, _ = rng.Read(buf) // never fails
		out[i] = static.NewLayer(buf, types.DockerLayer)
	}
	return out
}

// push pushes img to repo through p and times it. For paths that need it,
// the repository is created first, outside the timing.
func (b *proxyBench) push(ctx context.Context, p *path, repo string, img v1.Image) (time.Duration, error) {
	if p.precreate {
		start := time.Now()
		if _, err := b.api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)}); err != nil {
			return 0, fmt.Errorf("create %s: %w", repo, err)
		}
		b.createLat = append(b.createLat, ms(time.Since(start)))
	}
	var opts []name.Option
	if !p.secure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(p.host+"/"+repo+":1", opts...)
	if err != nil {
		return 0, err
	}
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	start := time.Now()
	err = remote.Write(ref, img, remote.WithAuth(p.auth), remote.WithContext(pctx), remote.WithTransport(b.transport(p)))
	return time.Since(start), err
}

// transport is the client's transport for p.
func (b *proxyBench) transport(p *path) *http.Transport {
	if p.tr != nil {
		return p.tr
	}
	return b.tr
}

// interceptTransport is what dockerd does with HTTPS_PROXY pointing at
// ecrgate's intercept listener and ecrgate's CA in certs.d: every request
// to the ECR host goes through CONNECT to srv, and the TLS inside is
// verified against that CA alone (no system roots, no AWS_CA_BUNDLE).
// Each handshake's version and cipher suite are counted for the table.
func (b *proxyBench) interceptTransport(srv *server) (*http.Transport, error) {
	pem, err := os.ReadFile(srv.caCert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", srv.caCert)
	}
	b.tlsSeen = map[string]int{}
	tr := b.tr.Clone()
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: srv.addr})
	tr.TLSClientConfig = &tls.Config{
		RootCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			k := tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)
			b.tlsMu.Lock()
			b.tlsSeen[k]++
			b.tlsMu.Unlock()
			return nil
		},
	}
	return tr, nil
}

// cpu is the CPU time used so far by the bench process and by p's process in between.
func (b *proxyBench) cpu(p *path) (self, mid time.Duration, err error) {
	if p.srv != nil {
		if mid, err = p.srv.cpu(); err != nil {
			return 0, 0, err
		}
	}
	return selfCPU(), mid, nil
}

// settle collects the emulator's garbage between pushes, outside the
// timing, so every push starts from the same heap. The memory stays
// mapped (no debug.FreeOSMemory): returning it made every push pay for
// page faults on a gigabyte of fresh pages in the emulator.
func (b *proxyBench) settle() { runtime.GC() }

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// rotate is the order of n paths in round: 0 1 2, 1 2 0, 2 0 1, …, so each
// path takes each position in turn.
func rotate(n, round int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = (i + round) % n
	}
	return idx
}

// heads times n HEAD requests of an existing blob per path, alternating.
func (b *proxyBench) heads(ctx context.Context, repo, digest string, n int) ([][]float64, error) {
	one := func(p *path) (time.Duration, error) {
		c := &http.Client{Transport: b.transport(p), Timeout: 30 * time.Second}
		scheme := "http://"
		if p.secure {
			scheme = "https://"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, scheme+p.host+"/v2/"+repo+"/blobs/"+digest, nil)
		if err != nil {
			return 0, err
		}
		if p.header != "" {
			req.Header.Set("Authorization", p.header)
		}
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("HEAD %s blob through %s: %s", repo, p.name, resp.Status)
		}
		return d, nil
	}
	for range 100 { // warm connections and caches
		for _, p := range b.paths {
			if _, err := one(p); err != nil {
				return nil, err
			}
		}
	}
	out := make([][]float64, len(b.paths))
	for i := range n {
		for _, j := range rotate(len(b.paths), i) {
			d, err := one(b.paths[j])
			if err != nil {
				return nil, err
			}
			out[j] = append(out[j], float64(d.Nanoseconds())/1e6)
		}
	}
	return out, nil
}

// concurrent pushes img to n new repositories through ecrgate at once.
func (b *proxyBench) concurrent(ctx context.Context, img v1.Image, n int) concResult {
	before := b.e.CallCounts()
	p := b.paths[1]
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			_, errs[i] = b.push(ctx, p, fmt.Sprintf("bench/concurrent-%02d", i), img)
		})
	}
	wg.Wait()
	r := concResult{n: n, wall: time.Since(start), otherCalls: map[string]int{}}
	for _, err := range errs {
		if err == nil {
			r.ok++
		} else if r.firstErr == nil {
			r.firstErr = err
		}
	}
	addCalls(r.otherCalls, b.e.CallCounts(), before)
	r.creates = r.otherCalls["CreateRepository"]
	delete(r.otherCalls, "CreateRepository")
	for i := range n {
		if _, ok := b.e.Repository("", fmt.Sprintf("bench/concurrent-%02d", i)); !ok {
			r.missingRepos++
		}
	}
	return r
}

// --- printing ----------------------------------------------------------------

func percentile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func medianOf(xs []float64) float64 { return percentile(xs, 0.5) }

// ratios are the per-round ratios a[i]/b[i].
func ratios(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}

func fmtMiB(bytes uint64) string { return fmt.Sprintf("%.0f MiB", float64(bytes)/(1<<20)) }

// nginxWhy says why the nginx rows are missing, in a few words.
func (b *proxyBench) nginxWhy() string {
	if errors.Is(b.nginxErr, errNoNginx) {
		return errNoNginx.Error()
	}
	return "nginx did not start (see above)"
}

// at is the index of the named path, or -1.
func (b *proxyBench) at(name string) int {
	return slices.IndexFunc(b.paths, func(p *path) bool { return p.name == name })
}

var pathLabel = map[string]string{
	"direct":      "direct to emulator",
	"ecrgate":     "through ecrgate",
	"intercept":   "through ecrgate intercept mode (CONNECT + TLS)",
	"nginx":       "through nginx",
	"passthrough": "through Go httputil.ReverseProxy",
}

func (b *proxyBench) print(header []string, r *proxyResults) {
	fmt.Printf("ecrgate serve (registry mode, intercept mode) against direct pushes to the emulator and nginx; paths alternate (rotating order) in one run on %d CPUs\n", runtime.NumCPU())
	for _, h := range header {
		fmt.Println("  " + h)
	}
	if len(b.tlsSeen) > 0 {
		var parts []string
		for _, k := range sortedKeys(b.tlsSeen) {
			parts = append(parts, fmt.Sprintf("%s (%d handshakes)", k, b.tlsSeen[k]))
		}
		fmt.Println("  intercept TLS, client to ecrgate: " + strings.Join(parts, ", ") + "; ecrgate to the emulator: plain http (its endpoint: override)")
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "measurement\tmedian\tworst\tunit\truns\t")
	direct, proxied, icept, nginx := b.at("direct"), b.at("ecrgate"), b.at("intercept"), b.at("nginx")
	for i, p := range b.paths {
		xs := r.tput[i]
		fmt.Fprintf(tw, "push %.0f MiB, %d layers, %s\t%.1f\t%.1f\tMiB/s\t%d\t\n", r.imageMiB, b.o.proxyLayers, pathLabel[p.name], medianOf(xs), slices.Min(xs), len(xs))
	}
	if nginx < 0 {
		fmt.Fprintf(tw, "push %.0f MiB, %d layers, through nginx: %s\tn/a\t\t\t\t\n", r.imageMiB, b.o.proxyLayers, b.nginxWhy())
	}
	ratioRow := func(a, over int) []float64 {
		xs := ratios(r.tput[a], r.tput[over])
		fmt.Fprintf(tw, "  %s / %s (median of per-round ratios)\t%.3f\t%.3f\t×\t%d\t\n", b.paths[a].name, b.paths[over].name, medianOf(xs), slices.Min(xs), len(xs))
		return xs
	}
	vsDirect := ratioRow(proxied, direct)
	iVsDirect := ratioRow(icept, direct)
	iVsRegistry := ratioRow(icept, proxied)
	var vsNginx []float64
	if nginx >= 0 {
		vsNginx = ratioRow(proxied, nginx)
		ratioRow(nginx, direct)
	}
	if g := b.at("passthrough"); g >= 0 {
		ratioRow(proxied, g)
		ratioRow(g, direct)
	}
	for i, p := range b.paths {
		if p.srv != nil {
			fmt.Fprintf(tw, "CPU per GiB pushed, %s process\t%.2f\t%.2f\ts\t%d\t\n", p.name, medianOf(r.midCPU[i]), slices.Max(r.midCPU[i]), len(r.midCPU[i]))
		}
	}
	for i, p := range b.paths {
		fmt.Fprintf(tw, "CPU per GiB pushed, bench process (client + emulator), %s\t%.2f\t%.2f\ts\t%d\t\n", pathLabel[p.name], medianOf(r.selfCPU[i]), slices.Max(r.selfCPU[i]), len(r.selfCPU[i]))
	}
	total := make([]float64, len(b.paths)) // median CPU per GiB of every process on the path
	for i, p := range b.paths {
		sum := make([]float64, len(r.selfCPU[i]))
		for k := range sum {
			sum[k] = r.selfCPU[i][k] + r.midCPU[i][k]
		}
		total[i] = medianOf(sum)
		fmt.Fprintf(tw, "CPU per GiB pushed, all processes, %s\t%.2f\t%.2f\ts\t%d\t\n", pathLabel[p.name], total[i], slices.Max(sum), len(sum))
	}
	fmt.Fprintf(tw, "  ecrgate / direct if CPU-bound (inverse CPU per GiB)\t%.3f\t\t×\t\t\n", total[direct]/total[proxied])
	fmt.Fprintf(tw, "  intercept / direct if CPU-bound (inverse CPU per GiB)\t%.3f\t\t×\t\t\n", total[direct]/total[icept])
	fmt.Fprintf(tw, "  intercept / ecrgate if CPU-bound (inverse CPU per GiB)\t%.3f\t\t×\t\t\n", total[proxied]/total[icept])
	if nginx >= 0 {
		fmt.Fprintf(tw, "  ecrgate / nginx if CPU-bound (inverse CPU per GiB)\t%.3f\t\t×\t\t\n", total[nginx]/total[proxied])
	}
	fmt.Fprintf(tw, "ecrgate serve peak RSS (VmHWM) after a %d MiB push\t%.1f\t\tMiB\t1\t\n", r.bigMiB, float64(r.hwmBig)/1024)
	fmt.Fprintf(tw, "  the same, at start-up (before the push)\t%.1f\t\tMiB\t1\t\n", float64(r.hwmBefore)/1024)
	fmt.Fprintf(tw, "  the same, after the throughput rounds and the HEAD requests\t%.1f\t\tMiB\t1\t\n", float64(r.hwmHeads)/1024)
	fmt.Fprintf(tw, "  the same, after the %d concurrent pushes (end of the table)\t%.1f\t\tMiB\t1\t\n", r.conc.n, float64(r.hwmEnd)/1024)
	fmt.Fprintf(tw, "ecrgate serve (intercept) peak RSS (VmHWM) at the end of the table\t%.1f\t\tMiB\t1\t\n", float64(r.hwmIntercept)/1024)
	for i, p := range b.paths {
		fmt.Fprintf(tw, "HEAD blob %s, p50 (p90 in worst)\t%.3f\t%.3f\tms\t%d\t\n", pathLabel[p.name], percentile(r.head[i], 0.5), percentile(r.head[i], 0.9), len(r.head[i]))
	}
	added := func(i int) (p50, p90 float64) {
		return percentile(r.head[i], 0.5) - percentile(r.head[direct], 0.5), percentile(r.head[i], 0.9) - percentile(r.head[direct], 0.9)
	}
	for i, p := range b.paths {
		if i != direct {
			a50, a90 := added(i)
			fmt.Fprintf(tw, "  added by %s, p50 (p90 in worst)\t%.3f\t%.3f\tms\t%d\t\n", p.name, a50, a90, len(r.head[i]))
		}
	}
	add50, add90 := added(proxied)
	c := r.conc
	fmt.Fprintf(tw, "%d concurrent pushes to new repositories via ecrgate: succeeded\t%d\t\tpushes\t%d\t\n", c.n, c.ok, c.n)
	fmt.Fprintf(tw, "  CreateRepository calls the emulator saw\t%d\t\tcalls\t1\t\n", c.creates)
	fmt.Fprintf(tw, "  wall time of the batch\t%.2f\t\ts\t1\t\n", c.wall.Seconds())
	tw.Flush()

	fmt.Printf("  ecrgate's pushes (both modes) go to a new repository each, so their timing includes its DescribeRepositories + CreateRepository (emulator CreateRepository via the SDK: median %.1f ms); the other paths push to repositories created beforehand, untimed\n", medianOf(b.createLat))
	fmt.Printf("  every throughput push sends the same %d layers (random bytes, not gzip) to a fresh repository; the %d MiB push (%.1f s) sent those and %d more, 4 layers at a time\n",
		b.o.proxyLayers, r.bigMiB, r.bigDur.Seconds(), r.bigLayers-b.o.proxyLayers)
	fmt.Printf("  per-round ratios, ecrgate/direct: %s; intercept/direct: %s", fmtList(vsDirect), fmtList(iVsDirect))
	if nginx >= 0 {
		fmt.Printf("; ecrgate/nginx: %s", fmtList(vsNginx))
	}
	fmt.Println()
	growth := int64(slices.Max(r.heaps)) - int64(r.heap0)
	fmt.Printf("  emulator memory: bench heap after GC %s before the throughput pushes, %s–%s after each of them (%+d MiB at most): each blob is stored once\n",
		fmtMiB(r.heap0), fmtMiB(slices.Min(r.heaps)), fmtMiB(slices.Max(r.heaps)), growth>>20)
	if len(c.otherCalls) > 0 {
		var parts []string
		for _, op := range sortedKeys(c.otherCalls) {
			parts = append(parts, fmt.Sprintf("%s %d", op, c.otherCalls[op]))
		}
		fmt.Printf("  other emulator calls during the concurrent pushes: %s\n", strings.Join(parts, ", "))
	}
	if c.firstErr != nil {
		fmt.Printf("  note: first failed concurrent push: %s\n", oneLine(c.firstErr.Error()))
	}
	if c.missingRepos > 0 {
		fmt.Printf("  note: %d of the %d repositories do not exist in the emulator afterwards\n", c.missingRepos, c.n)
	}
	fmt.Println()

	fmt.Println("goals (issue #4, performance):")
	line := func(pass bool, goal, detail string) {
		verdict := "FAIL"
		if pass {
			verdict = "PASS"
		}
		fmt.Printf("  %s  %s: %s\n", verdict, goal, detail)
	}
	rangeOf := func(xs []float64) string { return fmt.Sprintf("%.3f–%.3f", slices.Min(xs), slices.Max(xs)) }
	line(medianOf(vsDirect) >= 0.95, "proxied push throughput ≥ 0.95 of direct",
		fmt.Sprintf("%.3f× (median of %d per-round ratios, range %s)", medianOf(vsDirect), len(vsDirect), rangeOf(vsDirect)))
	if nginx >= 0 {
		line(medianOf(vsNginx) >= 1, "proxied push throughput not below nginx",
			fmt.Sprintf("%.3f× (median of %d per-round ratios, range %s)", medianOf(vsNginx), len(vsNginx), rangeOf(vsNginx)))
	} else {
		fmt.Printf("  n/a   proxied push throughput not below nginx: %s\n", b.nginxWhy())
	}
	line(r.hwmBig < 64<<10, fmt.Sprintf("proxy peak RSS < 64 MiB during a %d MiB push", r.bigMiB),
		fmt.Sprintf("VmHWM %.1f MiB (%.1f MiB at the end of the table, after %d concurrent pushes)", float64(r.hwmBig)/1024, float64(r.hwmEnd)/1024, r.conc.n))
	line(add50 < 0.5, "added latency per request (HEAD blob, p50) < 0.5 ms",
		fmt.Sprintf("%+.3f ms (p90 %+.3f ms) over %d requests per path", add50, add90, len(r.head[proxied])))
	line(c.ok == c.n && c.creates == c.n && c.missingRepos == 0, fmt.Sprintf("%d concurrent pushes to %d new repositories", c.n, c.n),
		fmt.Sprintf("%d/%d succeeded, %d CreateRepository calls", c.ok, c.n, c.creates))
	fmt.Println("goals (issue #5, performance):")
	line(medianOf(iVsDirect) >= 0.9, "intercept-mode push throughput ≥ 0.9 of direct",
		fmt.Sprintf("%.3f× (median of %d per-round ratios, range %s); %.3f× of registry mode (range %s)",
			medianOf(iVsDirect), len(iVsDirect), rangeOf(iVsDirect), medianOf(iVsRegistry), rangeOf(iVsRegistry)))
}

func fmtList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// serveEmulator creates an emulator with opts and serves it on a loopback
// port until the returned stop is called (stop waits for Serve to return).
func serveEmulator(ctx context.Context, opts ecrfake.Options) (*ecrfake.Emulator, func(), error) {
	e, err := ecrfake.New(opts)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { _ = e.Serve(sctx, ln); close(served) }()
	for e.URL() == "" { // Serve binds the URL (and Env) as it starts
		time.Sleep(time.Millisecond)
	}
	return e, func() { cancel(); <-served }, nil
}
