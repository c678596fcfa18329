package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
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

// teamServerName is the shared proxy's DNS name in its certificate; the
// clients dial it on loopback.
const teamServerName = "ecrgate.team.bench"

// teamBench holds what the team table's measurements share.
type teamBench struct {
	o       options
	e       *ecrfake.Emulator
	api     *ecr.Client
	ecrgate *server
	pool    *x509.CertPool
	clients []teamClient // the team's identities, each with its own token
}

// teamClient is one identity of the team with its own ECR token.
type teamClient struct {
	name string
	auth authn.Authenticator
}

// teamBatch is one batch of concurrent pushes through one path.
type teamBatch struct {
	lat      []float64 // ms per push that succeeded, all repositories
	latNew   []float64 // … to repositories that did not exist
	latOld   []float64 // … to repositories that existed
	ok, n    int
	firstErr error
	wall     time.Duration
	calls    map[string]int // emulator calls during the batch
}

// teamTable is issue #15's load figure: one `ecrgate serve` replica of a
// shared team proxy (allow_remote: true, TLS) in front of the emulator,
// o.teamPushes concurrent pushes at once, each from a client of its own
// (its own connections and TLS handshakes) with its own identity's token,
// half to repositories that exist and half to new ones that ecrgate
// creates after checking the client's token with the registry; against the
// same batch pushed directly to the emulator (every repository created
// beforehand, untimed, as the emulator refuses a push to a missing one).
// Batches alternate between the two paths, o.teamRounds each.
func teamTable(ctx context.Context, o options) error {
	bin, err := filepath.Abs(o.ecrgate)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s is missing; run `make build` first: %w", o.ecrgate, err)
	}
	if o.teamPushes < 2 || o.teamRounds < 1 || o.teamClients < 1 {
		return errors.New("-team-pushes must be at least 2, -team-rounds and -team-clients positive")
	}
	root, err := os.MkdirTemp("", "ecrgate-bench-team-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	var users []ecrfake.User
	for i := range o.teamClients {
		users = append(users, ecrfake.User{Name: fmt.Sprintf("dev-%d", i), AccessKey: fmt.Sprintf("AKIABENCHTEAM%07d", i), SecretKey: fmt.Sprintf("bench-team-secret-%d", i)})
	}
	e, stopEmu, err := serveEmulator(ctx, ecrfake.Options{Users: users})
	if err != nil {
		return err
	}
	defer stopEmu()
	b := &teamBench{o: o, e: e, api: teamAPI(e, e.AccessKey(), e.SecretKey())}
	for _, u := range users {
		c, err := teamClientToken(ctx, teamAPI(e, u.AccessKey, u.SecretKey), u.Name)
		if err != nil {
			return err
		}
		b.clients = append(b.clients, c)
	}

	certFile, keyFile, pool, err := teamCertificate(filepath.Join(root, "tls"))
	if err != nil {
		return err
	}
	b.pool = pool
	if b.ecrgate, err = startTeamEcrgate(ctx, bin, filepath.Join(root, "ecrgate"), e, certFile, keyFile); err != nil {
		return err
	}
	defer b.ecrgate.stop()
	pid := b.ecrgate.cmd.Process.Pid

	// The repositories that exist, for both paths; created untimed.
	half := o.teamPushes / 2
	for i := range o.teamPushes - half {
		for _, prefix := range []string{"team/existing", "direct/existing"} {
			if err := b.create(ctx, fmt.Sprintf("%s-%03d", prefix, i)); err != nil {
				return err
			}
		}
	}
	// Warm-up: one push per path (ecrgate's own token and identity).
	warm := teamImage(1)[0]
	if err := b.create(ctx, "direct/warm"); err != nil {
		return err
	}
	for _, host := range []string{e.Host(), b.ecrgate.addr} {
		repo := "team/warm"
		if host == e.Host() {
			repo = "direct/warm"
		}
		if _, err := b.push(ctx, host, repo+":1", warm, b.clients[0]); err != nil {
			return fmt.Errorf("warm-up push to %s: %w", host, err)
		}
	}
	hwmStart, err := statusKiB(pid, "VmHWM")
	if err != nil {
		return err
	}
	cpu0, err := b.ecrgate.cpu()
	if err != nil {
		return err
	}

	// One push at a time, paths alternating: the latency ecrgate adds
	// when nothing queues.
	fmt.Fprintf(os.Stderr, "bench: team: %d pushes one at a time per path ...\n", o.teamSequential)
	seq, err := b.sequential(ctx, o.teamSequential)
	if err != nil {
		return err
	}

	var direct, proxied []*teamBatch
	for round := range o.teamRounds {
		order := []string{"direct", "ecrgate"}
		if round%2 == 1 {
			order = []string{"ecrgate", "direct"}
		}
		for _, p := range order {
			fmt.Fprintf(os.Stderr, "bench: team: round %d/%d, %d concurrent pushes %s ...\n", round+1, o.teamRounds, o.teamPushes, p)
			bt, err := b.batch(ctx, p, round)
			if err != nil {
				return err
			}
			if p == "direct" {
				direct = append(direct, bt)
			} else {
				proxied = append(proxied, bt)
			}
		}
	}
	if err := b.ecrgate.alive(); err != nil {
		return err
	}
	hwmEnd, err := statusKiB(pid, "VmHWM")
	if err != nil {
		return err
	}
	cpu1, err := b.ecrgate.cpu()
	if err != nil {
		return err
	}
	missing := 0
	for round := range o.teamRounds {
		for i := range half {
			if _, ok := e.Repository("", fmt.Sprintf("team/new-r%d-%03d", round, i)); !ok {
				missing++
			}
		}
	}
	b.print(bin, seq, direct, proxied, hwmStart, hwmEnd, cpu1-cpu0, missing)
	return nil
}

func teamAPI(e *ecrfake.Emulator, key, secret string) *ecr.Client {
	return ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
}

// teamClientToken is an identity's own token, from GetAuthorizationToken.
func teamClientToken(ctx context.Context, api *ecr.Client, who string) (teamClient, error) {
	tok, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return teamClient{}, fmt.Errorf("GetAuthorizationToken as %s: %w", who, err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		return teamClient{}, err
	}
	return teamClient{name: who, auth: &authn.Basic{Username: "AWS", Password: strings.TrimPrefix(string(raw), "AWS:")}}, nil
}

func (b *teamBench) create(ctx context.Context, repo string) error {
	if _, err := b.api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)}); err != nil {
		return fmt.Errorf("create %s: %w", repo, err)
	}
	return nil
}

// teamImage makes n small distinct images: one 64 KiB random layer each.
func teamImage(n int) []v1.Image {
	out := make([]v1.Image, n)
	for i := range out {
		buf := make([]byte, 64<<10)
		_, _ = rand.Read(buf) // never fails
		img, err := mutate.AppendLayers(empty.Image, static.NewLayer(buf, types.DockerLayer))
		if err != nil {
			panic(err) // a static layer in memory does not fail
		}
		out[i] = img
	}
	return out
}

// batch pushes o.teamPushes images at once through path ("direct" or
// "ecrgate"): even pushes to repositories that exist, odd ones to new
// repositories (created beforehand, untimed, for the direct path).
func (b *teamBench) batch(ctx context.Context, path string, round int) (*teamBatch, error) {
	n := b.o.teamPushes
	imgs := teamImage(n)
	host, prefix := b.ecrgate.addr, "team"
	if path == "direct" {
		host, prefix = b.e.Host(), "direct"
	}
	repos := make([]string, n)
	isNew := make([]bool, n)
	for i := range n {
		if i%2 == 0 {
			repos[i] = fmt.Sprintf("%s/existing-%03d:r%d", prefix, i/2, round)
		} else {
			repos[i], isNew[i] = fmt.Sprintf("%s/new-r%d-%03d", prefix, round, i/2), true
			if path == "direct" {
				if err := b.create(ctx, repos[i]); err != nil {
					return nil, err
				}
			}
			repos[i] += ":1"
		}
	}
	runtime.GC()
	before := b.e.CallCounts()
	durs := make([]time.Duration, n)
	errs := make([]error, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-gate
			durs[i], errs[i] = b.push(ctx, host, repos[i], imgs[i], b.clients[i%len(b.clients)])
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	bt := &teamBatch{n: n, wall: time.Since(start), calls: map[string]int{}}
	addCalls(bt.calls, b.e.CallCounts(), before)
	for i, err := range errs {
		if err != nil {
			if bt.firstErr == nil {
				bt.firstErr = fmt.Errorf("%s: %w", repos[i], err)
			}
			continue
		}
		bt.ok++
		d := ms(durs[i])
		bt.lat = append(bt.lat, d)
		if isNew[i] {
			bt.latNew = append(bt.latNew, d)
		} else {
			bt.latOld = append(bt.latOld, d)
		}
	}
	return bt, nil
}

// teamSequential is the one-push-at-a-time measurement: ms per push, per
// path, to existing and to new repositories.
type teamSequential struct {
	directOld, directNew, proxiedOld, proxiedNew []float64
}

// sequential pushes n images per path one at a time, alternating paths,
// every other one to a new repository (created beforehand, untimed, for
// the direct path).
func (b *teamBench) sequential(ctx context.Context, n int) (*teamSequential, error) {
	r := &teamSequential{}
	imgs := teamImage(2 * n)
	for i := range n {
		isNew := i%2 == 1
		for k, path := range rotatePaths(i) {
			host, repo := b.ecrgate.addr, fmt.Sprintf("team/seq-existing-%03d:1", i)
			if path == "direct" {
				host, repo = b.e.Host(), fmt.Sprintf("direct/seq-existing-%03d:1", i)
			}
			if isNew {
				repo = strings.Replace(repo, "-existing-", "-new-", 1)
			}
			if path == "direct" || !isNew {
				if err := b.create(ctx, strings.TrimSuffix(repo, ":1")); err != nil {
					return nil, err
				}
			}
			d, err := b.push(ctx, host, repo, imgs[2*i+k], b.clients[i%len(b.clients)])
			if err != nil {
				return nil, fmt.Errorf("push %s through %s: %w", repo, path, err)
			}
			switch {
			case path == "direct" && isNew:
				r.directNew = append(r.directNew, ms(d))
			case path == "direct":
				r.directOld = append(r.directOld, ms(d))
			case isNew:
				r.proxiedNew = append(r.proxiedNew, ms(d))
			default:
				r.proxiedOld = append(r.proxiedOld, ms(d))
			}
		}
	}
	return r, nil
}

func rotatePaths(i int) []string {
	if i%2 == 0 {
		return []string{"direct", "ecrgate"}
	}
	return []string{"ecrgate", "direct"}
}

// push is one client's push: a transport of its own (its own connections
// and, through ecrgate, its own TLS handshakes), its identity's token.
func (b *teamBench) push(ctx context.Context, host, repoTag string, img v1.Image, c teamClient) (time.Duration, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	var opts []name.Option
	if host == b.e.Host() {
		opts = append(opts, name.Insecure)
	} else {
		_, port, _ := net.SplitHostPort(host)
		host = teamServerName + ":" + port
		tr.TLSClientConfig = &tls.Config{RootCAs: b.pool, MinVersion: tls.VersionTLS12}
		dialer := &net.Dialer{Timeout: 30 * time.Second}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if h, p, err := net.SplitHostPort(addr); err == nil && h == teamServerName {
				addr = net.JoinHostPort("127.0.0.1", p)
			}
			return dialer.DialContext(ctx, network, addr)
		}
	}
	ref, err := name.ParseReference(host+"/"+repoTag, opts...)
	if err != nil {
		return 0, err
	}
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	start := time.Now()
	err = remote.Write(ref, img, remote.WithAuth(c.auth), remote.WithContext(pctx), remote.WithTransport(tr))
	return time.Since(start), err
}

// teamCertificate writes a CA and a server certificate for teamServerName
// and 127.0.0.1 (ECDSA P-256) into dir; it returns the pair's files and a
// pool with the CA.
func teamCertificate(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ecrgate bench team CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return "", "", nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: teamServerName},
		DNSNames: []string{teamServerName}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, key.Public(), caKey)
	if err != nil {
		return "", "", nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", nil, err
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, pool, nil
}

// startTeamEcrgate runs `ecrgate serve` as one replica of a shared team
// proxy: allow_remote: true, TLS from certFile and keyFile on loopback,
// the default registry sent to the emulator, the emulator's default user
// as its own identity (for CreateRepository only); the same environment
// rules as startEcrgate.
func startTeamEcrgate(ctx context.Context, bin, dir string, e *ecrfake.Emulator, certFile, keyFile string) (*server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	registry := registryHost(e.Account())
	cfg := fmt.Sprintf(`listen: %s
admin_listen: %s
allow_remote: true
tls: {cert_file: %s, key_file: %s}
log_level: warn
audit_log: %s
default_registry: %s
registries:
  - host: %s
    endpoint: %s
    api_endpoint: %s
`, listen, admin, certFile, keyFile, filepath.Join(dir, "audit.jsonl"), registry, registry, e.URL(), e.URL())
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_CACHE_HOME=" + filepath.Join(dir, ".cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"),
		"XDG_STATE_HOME=" + filepath.Join(dir, ".local", "state"),
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "aws-credentials"),
	}
	env = append(env, e.Env()...)
	if err := checkLoopback(env); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "ecrgate.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	s := &server{name: "ecrgate serve (team)", cmd: cmd, addr: listen, log: logPath, stopSig: syscall.SIGTERM}
	if err := s.start(); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, "http://"+admin+"/healthz", http.StatusOK); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// --- printing ----------------------------------------------------------------

func concat(bs []*teamBatch, f func(*teamBatch) []float64) []float64 {
	var out []float64
	for _, b := range bs {
		out = append(out, f(b)...)
	}
	return out
}

func (b *teamBench) print(bin string, seq *teamSequential, direct, proxied []*teamBatch, hwmStart, hwmEnd int64, cpu time.Duration, missing int) {
	n := b.o.teamPushes
	fmt.Printf("shared team proxy (issue #15): %d concurrent pushes through one ecrgate serve replica (allow_remote, TLS, each client's own token checked before creating) against the same pushes direct to the emulator; %d rounds, paths alternating, on %d CPUs\n",
		n, b.o.teamRounds, runtime.NumCPU())
	fmt.Printf("  ecrgate: %s (%s serve, a separate process)\n", ecrgateVersion(context.Background(), bin), b.o.ecrgate)
	fmt.Println("  emulator: pkg/ecrfake in the bench process, in-memory storage")
	fmt.Printf("  clients: go-containerregistry remote.Write, one http.Transport per push (its own connections and TLS handshakes, trusting the test CA), %d identities' GetAuthorizationToken tokens in turn; one 64 KiB layer + config per image\n", len(b.clients))
	fmt.Printf("  each batch: %d pushes to repositories that exist, %d to new ones (through ecrgate: created by it, after its HEAD check of the client's token; direct: created beforehand, untimed)\n", n-n/2, n/2)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "measurement\tp50\tp99\tunit\tpushes\t")
	row := func(label string, xs []float64) {
		if len(xs) == 0 {
			fmt.Fprintf(tw, "%s\tn/a\tn/a\tms\t0\t\n", label)
			return
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\tms\t%d\t\n", label, percentile(xs, 0.5), percentile(xs, 0.99), len(xs))
	}
	addedRow := func(label string, p, d []float64) {
		if len(p) == 0 || len(d) == 0 {
			return
		}
		fmt.Fprintf(tw, "%s\t%+.1f\t%+.1f\tms\t%d\t\n", label, percentile(p, 0.5)-percentile(d, 0.5), percentile(p, 0.99)-percentile(d, 0.99), len(p))
	}
	row("one push at a time, direct, existing repository", seq.directOld)
	row("one push at a time, through ecrgate, existing repository", seq.proxiedOld)
	addedRow("  added by ecrgate", seq.proxiedOld, seq.directOld)
	row("one push at a time, direct, new repository (created beforehand)", seq.directNew)
	row("one push at a time, through ecrgate, new repository (it creates it)", seq.proxiedNew)
	addedRow("  added by ecrgate", seq.proxiedNew, seq.directNew)
	all := func(x *teamBatch) []float64 { return x.lat }
	olds := func(x *teamBatch) []float64 { return x.latOld }
	news := func(x *teamBatch) []float64 { return x.latNew }
	row("push latency, direct to emulator", concat(direct, all))
	row("push latency, through ecrgate (TLS, token check)", concat(proxied, all))
	row("  to existing repositories", concat(proxied, olds))
	row("  to new repositories (created by ecrgate)", concat(proxied, news))
	added := func(label string, f, g func(*teamBatch) []float64) {
		addedRow(label, concat(proxied, f), concat(direct, g))
	}
	added("added latency, all pushes", all, all)
	added("  existing repositories (vs direct, existing)", olds, olds)
	added("  new repositories (vs direct, created beforehand)", news, news)
	okD, okP, ops := 0, 0, 0
	var wallD, wallP []float64
	calls := map[string]int{}
	for _, x := range direct {
		okD += x.ok
		wallD = append(wallD, x.wall.Seconds())
	}
	for _, x := range proxied {
		okP += x.ok
		ops += x.n
		wallP = append(wallP, x.wall.Seconds())
		for k, v := range x.calls {
			calls[k] += v
		}
	}
	fmt.Fprintf(tw, "pushes that succeeded, direct\t%d\t\tpushes\t%d\t\n", okD, ops)
	fmt.Fprintf(tw, "pushes that succeeded, through ecrgate\t%d\t\tpushes\t%d\t\n", okP, ops)
	fmt.Fprintf(tw, "batch wall time, direct (median, worst)\t%.2f\t%.2f\ts\t%d\t\n", medianOf(wallD), maxOf(wallD), len(wallD))
	fmt.Fprintf(tw, "batch wall time, through ecrgate (median, worst)\t%.2f\t%.2f\ts\t%d\t\n", medianOf(wallP), maxOf(wallP), len(wallP))
	fmt.Fprintf(tw, "ecrgate serve peak RSS (VmHWM) after the warm-up push\t%.1f\t\tMiB\t1\t\n", float64(hwmStart)/1024)
	fmt.Fprintf(tw, "ecrgate serve peak RSS (VmHWM) at the end of the table\t%.1f\t\tMiB\t1\t\n", float64(hwmEnd)/1024)
	fmt.Fprintf(tw, "ecrgate serve CPU for the %d pushes through it\t%.2f\t\ts\t%d\t\n", ops, cpu.Seconds(), ops)
	fmt.Fprintf(tw, "CreateRepository calls during ecrgate's batches\t%d\t\tcalls\t%d\t\n", calls["CreateRepository"], b.o.teamRounds*(n/2))
	tw.Flush()
	var parts []string
	for _, op := range sortedKeys(calls) {
		parts = append(parts, fmt.Sprintf("%s %d", op, calls[op]))
	}
	fmt.Printf("  emulator calls during ecrgate's batches: %s\n", strings.Join(parts, ", "))
	dcalls := map[string]int{}
	for _, x := range direct {
		for k, v := range x.calls {
			dcalls[k] += v
		}
	}
	parts = parts[:0]
	for _, op := range sortedKeys(dcalls) {
		parts = append(parts, fmt.Sprintf("%s %d", op, dcalls[op]))
	}
	fmt.Printf("  emulator calls during the direct batches: %s\n", strings.Join(parts, ", "))
	fmt.Printf("  so ecrgate's checks of client tokens (HEAD of a blob per repository and token) were about %d blob HEADs for %d pushes\n",
		calls[ecrfake.OpBlobHead]-dcalls[ecrfake.OpBlobHead], ops)
	for _, x := range append(append([]*teamBatch{}, direct...), proxied...) {
		if x.firstErr != nil {
			fmt.Printf("  note: first failed push: %s\n", oneLine(x.firstErr.Error()))
			break
		}
	}
	if missing > 0 {
		fmt.Printf("  note: %d new repositories do not exist in the emulator afterwards\n", missing)
	}
	fmt.Println()
	fmt.Println("goals (issue #15, load):")
	verdict := func(pass bool) string {
		if pass {
			return "PASS"
		}
		return "FAIL"
	}
	fmt.Printf("  %s  %d concurrent pushes through one replica with the token check all succeed: %d/%d in %d rounds, %d CreateRepository calls for %d new repositories, %d missing\n",
		verdict(okP == ops && missing == 0 && calls["CreateRepository"] == b.o.teamRounds*(n/2)), n, okP, ops, b.o.teamRounds, calls["CreateRepository"], b.o.teamRounds*(n/2), missing)
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
