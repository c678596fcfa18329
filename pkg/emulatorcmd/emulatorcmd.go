// Package emulatorcmd is the ecrgate-emulator command line: it starts
// pkg/ecrfake's emulator on one port, prints the environment a client needs
// and serves until its context ends. It lives apart from pkg/cli so that the
// ecrgate daemon links none of the emulator's registry code; `ecrgate
// emulator` runs this program instead.
package emulatorcmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/atomicfile"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/version"
)

// Name is the program's name, as `make build` names it.
const Name = "ecrgate-emulator"

// Execute runs the emulator command line with args (without the program
// name) until ctx ends; errors are printed to stderr.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCommand()
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Name, err)
	}
	return err
}

func newCommand() *cobra.Command {
	var (
		listen, region, accessKey, secretKey, storage, envFile, logLevel string
		accounts, faults                                                 []string
		latency                                                          time.Duration
		uploadBandwidth                                                  int64
		blobRedirect                                                     bool
	)
	cmd := &cobra.Command{
		Use:   Name,
		Short: "Run a local Amazon ECR emulator (API, registry, STS, SSO) for demos and tests",
		Long: `Run an Amazon ECR emulator on one local port: the ECR API (SigV4-checked),
a registry that behaves like ECR's (tokens, NAME_UNKNOWN, immutable tags,
creation templates with CREATE_ON_PUSH), STS and the SSO portal.

It prints the environment a client needs (AWS_ENDPOINT_URL_ECR and friends)
and runs until interrupted. Test controls live under /_ecrfake/:
  GET  /_ecrfake/calls                      call counts per operation
  GET  /_ecrfake/upload-bytes               bytes the layer-upload handlers read
  POST /_ecrfake/fail?op=CreateRepository&n=2&fault=throttle|500|drop|cut:<bytes>
  POST /_ecrfake/latency?d=250ms
  POST /_ecrfake/expire-tokens
  POST /_ecrfake/reset
  POST /_ecrfake/lifecycle?repository=team/app   apply lifecycle policies now

"ecrgate emulator" runs this program with the same arguments.`,
		Example: `  ecrgate-emulator --listen 127.0.0.1:5080
  ecrgate-emulator --accounts 123456789012,222222222222 --storage /tmp/ecr --env-file /tmp/ecr.env
  ecrgate-emulator --latency 80ms --fail CreateRepository=2:throttle`,
		Version:       version.Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			e, err := ecrfake.New(ecrfake.Options{Accounts: accounts, Region: region, AccessKey: accessKey,
				SecretKey: secretKey, StorageDir: storage, Latency: latency, Logger: log, BlobRedirect: blobRedirect,
				UploadBandwidth: uploadBandwidth})
			if err != nil {
				return fmt.Errorf("emulator: %w", err)
			}
			for _, f := range faults {
				op, n, kind, err := ecrfake.ParseFaultSpec(f)
				if err != nil {
					e.Close()
					return fmt.Errorf("--fail: %w", err)
				}
				e.FailNext(op, n, kind)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				e.Close()
				return fmt.Errorf("emulator: listen on %s: %w", listen, err)
			}
			if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
				log.Warn("the emulator listens beyond loopback; anyone who can reach it can use it", "addr", ln.Addr().String())
			}
			url := "http://" + ln.Addr().String()
			env := exportLines(url, e)
			fmt.Fprintf(cmd.OutOrStdout(), "# ecrgate emulator: ECR for %s in %s on %s\n%s",
				strings.Join(e.Accounts(), ", "), e.Region(), url, env)
			if envFile != "" {
				if err := atomicfile.WriteFile(envFile, []byte(env), 0o600, false); err != nil {
					ln.Close()
					e.Close()
					return fmt.Errorf("--env-file: %w", err)
				}
			}
			log.Info("emulator ready", "url", url, "accounts", strings.Join(e.Accounts(), ","), "region", e.Region(), "storage", storage)
			return e.Serve(cmd.Context(), ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:5080", "address to serve the emulator on")
	f.StringSliceVar(&accounts, "accounts", []string{ecrfake.DefaultAccount}, "registry ids (12 digits) to serve; the first is the default")
	f.StringVar(&region, "region", ecrfake.DefaultRegion, "default region")
	f.StringVar(&accessKey, "access-key", ecrfake.DefaultAccessKey, "access key id the emulator accepts")
	f.StringVar(&secretKey, "secret-key", ecrfake.DefaultSecretKey, "secret access key for --access-key")
	f.StringVar(&storage, "storage", "", "directory to keep images and state in (default: memory)")
	f.StringVar(&envFile, "env-file", "", "also write the export lines to this file (mode 0600)")
	f.DurationVar(&latency, "latency", 0, "delay every call by this much, like a real AWS round trip")
	f.StringArrayVar(&faults, "fail", nil, "fail the next N calls of an operation: Operation=N:500|throttle|drop|cut:<bytes> (cut: drop the connection after that many body bytes; repeatable)")
	f.StringVar(&logLevel, "log-level", "info", "debug logs every request")
	f.Int64Var(&uploadBandwidth, "upload-bandwidth", 0, "limit layer uploads, all together, to this many bytes per second, like a pusher's internet uplink (12500000 is 100 Mbit/s); 0: unlimited")
	f.BoolVar(&blobRedirect, "blob-redirect", false, "answer blob downloads with a redirect to a presigned URL on a second local port, as ECR redirects to S3")
	return cmd
}

// newLogger returns a text slog logger writing to w at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// exportLines is the shell environment a client needs to use the emulator.
func exportLines(url string, e *ecrfake.Emulator) string {
	var b strings.Builder
	for _, kv := range e.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_ENDPOINT_URL_") {
			v = url
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
