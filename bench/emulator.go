package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

type row struct {
	name, unit   string
	median, p90  float64
	samples      int
	higherBetter bool
}

func summarize(name, unit string, xs []float64, higherBetter bool) row {
	sort.Float64s(xs)
	p90 := xs[(len(xs)*9+9)/10-1]
	if higherBetter {
		p90 = xs[len(xs)/10] // the slowest tenth, for throughput
	}
	return row{name: name, unit: unit, median: xs[len(xs)/2], p90: p90, samples: len(xs), higherBetter: higherBetter}
}

// emulatorTable measures the emulator itself (no added latency): its
// control-plane calls through the SDK and push/pull throughput.
func emulatorTable(ctx context.Context, runs, sizeMiB int) error {
	e, err := ecrfake.New(ecrfake.Options{StorageDir: os.Getenv("BENCH_STORAGE")})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = e.Serve(sctx, ln) }()
	url := "http://" + ln.Addr().String()
	api := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})

	var rows []row
	var lat []float64
	var token string
	for range runs * 5 {
		start := time.Now()
		out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
		if err != nil {
			return err
		}
		lat = append(lat, ms(time.Since(start)))
		token = aws.ToString(out.AuthorizationData[0].AuthorizationToken)
	}
	rows = append(rows, summarize("emulator GetAuthorizationToken (SDK)", "ms", lat, false))

	lat = nil
	for i := range runs * 5 {
		start := time.Now()
		if _, err := api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(fmt.Sprintf("bench/r%d", i))}); err != nil {
			return err
		}
		lat = append(lat, ms(time.Since(start)))
	}
	rows = append(rows, summarize("emulator CreateRepository (SDK)", "ms", lat, false))

	raw, _ := base64.StdEncoding.DecodeString(token)
	auth := &authn.Basic{Username: "AWS", Password: strings.TrimPrefix(string(raw), "AWS:")}
	var push, pull []float64
	for i := range runs {
		img, err := random.Image(int64(sizeMiB)<<20, 1)
		if err != nil {
			return err
		}
		ref, _ := name.ParseReference(fmt.Sprintf("%s/bench/r%d:1", ln.Addr(), i), name.Insecure)
		start := time.Now()
		if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
			return fmt.Errorf("push: %w", err)
		}
		push = append(push, float64(sizeMiB)/time.Since(start).Seconds())
		start = time.Now()
		got, err := remote.Image(ref, remote.WithAuth(auth))
		if err != nil {
			return err
		}
		layers, _ := got.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				return err
			}
			rc.Close()
		}
		pull = append(pull, float64(sizeMiB)/time.Since(start).Seconds())
	}
	rows = append(rows, summarize(fmt.Sprintf("push %d MiB direct to emulator", sizeMiB), "MiB/s", push, true))
	rows = append(rows, summarize(fmt.Sprintf("pull %d MiB direct from emulator", sizeMiB), "MiB/s", pull, true))

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "measurement\tmedian\tp90 (worst tenth)\tunit\truns\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%s\t%d\t\n", r.name, r.median, r.p90, r.unit, r.samples)
	}
	return tw.Flush()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
