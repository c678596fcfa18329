package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// The mount table (#16): a client with no local state (a fresh CI runner)
// pushes an image whose three 64 MiB base layers already live in another
// repository of the registry, plus an 8 MiB layer of its own, to a new
// repository: directly to the emulator, and through `ecrgate serve`, whose
// template names that repository in mount_from. Measured: the bytes that
// reached the emulator's layer-upload handlers and the wall time of the
// push, at loopback speed and with the emulator reading uploads at
// 12.5 MB/s (100 Mbit/s, a pusher's internet uplink).
const (
	mountBaseLayers  = 3
	mountBaseMiB     = 64
	mountOwnMiB      = 8
	mountBandwidth   = 12_500_000 // bytes per second
	mountGoalBytes   = 10.0       // at least this many times fewer bytes through ecrgate
	mountGoalTime    = 5.0        // at least this many times less time at mountBandwidth
	mountBaseRepo    = "base/runtime"
	mountPushTimeout = 10 * time.Minute
)

type mountRow struct {
	path      string
	bandwidth int64
	runs      int
	bytes     []int64
	times     []time.Duration
}

func mountTable(ctx context.Context, o options) error {
	bin, err := filepath.Abs(o.ecrgate)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s is missing; run `make build` first: %w", o.ecrgate, err)
	}
	root, err := os.MkdirTemp("", "ecrgate-bench-mount-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	e, stopEmu, err := serveEmulator(ctx, ecrfake.Options{})
	if err != nil {
		return err
	}
	defer stopEmu()
	if err := e.SetAccountSetting("", "BLOB_MOUNTING", "ENABLED"); err != nil {
		return err
	}
	api := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	tok, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		return err
	}
	basic := &authn.Basic{Username: "AWS", Password: strings.TrimPrefix(string(raw), "AWS:")}

	srv, err := startEcrgateWith(ctx, bin, filepath.Join(root, "ecrgate"), e, strings.Fields(o.proxyEnv), false,
		"templates:\n  - prefix: ROOT\n    mount_from: ["+mountBaseRepo+"]\n")
	if err != nil {
		return err
	}
	defer srv.stop()

	fmt.Fprintf(os.Stderr, "bench: mount: generating %d base layers of %d MiB and layers of %d MiB ...\n", mountBaseLayers, mountBaseMiB, mountOwnMiB)
	base := randomLayers(mountBaseLayers, mountBaseMiB<<20, 7)
	baseImg, err := mutate.AppendLayers(empty.Image, base...)
	if err != nil {
		return err
	}
	if _, err := api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(mountBaseRepo)}); err != nil {
		return err
	}
	if err := mountPush(ctx, e.Host(), mountBaseRepo+":1", baseImg, basic); err != nil {
		return fmt.Errorf("push the base image: %w", err)
	}

	rows := []*mountRow{
		{path: "direct", runs: 3}, {path: "ecrgate", runs: 3},
		{path: "direct", bandwidth: mountBandwidth, runs: 1}, {path: "ecrgate", bandwidth: mountBandwidth, runs: 2},
	}
	n := 0
	for _, r := range rows {
		e.SetUploadBandwidth(r.bandwidth)
		for range r.runs {
			n++
			// Every push is a new image (its own layer differs) to a new
			// repository, from a client with no state: a fresh transport.
			own := randomLayers(1, mountOwnMiB<<20, byte(100+n))
			img, err := mutate.AppendLayers(empty.Image, append(slices.Clone(base), own...)...)
			if err != nil {
				return err
			}
			repo := fmt.Sprintf("svc/app-%d", n)
			host, auth := srv.addr, authn.Authenticator(authn.Anonymous)
			if r.path == "direct" {
				// The emulator, like ECR, refuses a push to a missing
				// repository: created first, untimed (ecrgate creates it
				// inside its timed push).
				if _, err := api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)}); err != nil {
					return err
				}
				host, auth = e.Host(), basic
			}
			before := e.UploadBytes()
			start := time.Now()
			if err := mountPush(ctx, host, repo+":1", img, auth); err != nil {
				return fmt.Errorf("%s push: %w", r.path, err)
			}
			r.times = append(r.times, time.Since(start))
			r.bytes = append(r.bytes, e.UploadBytes()-before)
		}
	}
	e.SetUploadBandwidth(0)

	fmt.Printf("Shared layers mounted instead of uploaded (#16): a client with no local state pushes %d×%d MiB base layers that live in %s plus one %d MiB layer of its own to a new repository\n",
		mountBaseLayers, mountBaseMiB, mountBaseRepo, mountOwnMiB)
	fmt.Println("ecrgate: " + ecrgateVersion(ctx, bin) + " (" + o.ecrgate + " serve, registry mode, template mount_from: [" + mountBaseRepo + "]); emulator: pkg/ecrfake in the bench process, BLOB_MOUNTING ENABLED")
	fmt.Println("client: go-containerregistry remote.Write (HEADs each layer before uploading, as crane, ko and BuildKit do), a fresh transport per push; direct pushes get their repository created first, untimed")
	fmt.Println("upload bytes: what the emulator's layer-upload handlers read (bodies of upload POSTs, PATCHes and PUTs); median of the runs")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "uplink\tpath\truns\tupload MiB\twall s\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.2f\t\n", uplink(r.bandwidth), r.path, r.runs, float64(medianInt(r.bytes))/(1<<20), median(r.times).Seconds())
	}
	tw.Flush()
	dBytes, gBytes := medianInt(rows[2].bytes), medianInt(rows[3].bytes)
	dTime, gTime := median(rows[2].times), median(rows[3].times)
	byteRatio := float64(dBytes) / float64(max(gBytes, 1))
	timeRatio := dTime.Seconds() / max(gTime.Seconds(), 1e-9)
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	fmt.Printf("%s  bytes at 12.5 MB/s: %.1f× fewer through ecrgate (goal ≥ %.0f×)\n", verdict(byteRatio >= mountGoalBytes), byteRatio, mountGoalBytes)
	fmt.Printf("%s  time at 12.5 MB/s: %.1f× less through ecrgate (goal ≥ %.0f×)\n", verdict(timeRatio >= mountGoalTime), timeRatio, mountGoalTime)
	return nil
}

func uplink(bw int64) string {
	if bw == 0 {
		return "loopback"
	}
	return fmt.Sprintf("%.1f MB/s", float64(bw)/1e6)
}

func medianInt(xs []int64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// mountPush pushes img to host/ref over plain HTTP with a transport of
// its own (no connections or state from earlier pushes).
func mountPush(ctx context.Context, host, ref string, img v1.Image, auth authn.Authenticator) error {
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, mountPushTimeout)
	defer cancel()
	return remote.Write(r, img, remote.WithAuth(auth), remote.WithTransport(tr), remote.WithContext(ctx))
}
