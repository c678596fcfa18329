package cli

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/atomicfile"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

func newEmulatorCmd() *cobra.Command {
	var (
		listen, region, accessKey, secretKey, storage, envFile, logLevel string
		accounts, faults                                                 []string
		latency                                                          time.Duration
		blobRedirect                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Run a local Amazon ECR emulator (API, registry, STS, SSO) for demos and tests",
		Long: `Run an Amazon ECR emulator on one local port: the ECR API (SigV4-checked),
a registry that behaves like ECR's (tokens, NAME_UNKNOWN, immutable tags,
creation templates with CREATE_ON_PUSH), STS and the SSO portal.

It prints the environment a client needs (AWS_ENDPOINT_URL_ECR and friends)
and runs until interrupted. Test controls live under /_ecrfake/:
  GET  /_ecrfake/calls                      call counts per operation
  POST /_ecrfake/fail?op=CreateRepository&n=2&fault=throttle|500|drop|cut:<bytes>
  POST /_ecrfake/latency?d=250ms
  POST /_ecrfake/expire-tokens
  POST /_ecrfake/reset`,
		Example: `  ecrgate emulator --listen 127.0.0.1:5080
  ecrgate emulator --accounts 123456789012,222222222222 --storage /tmp/ecr --env-file /tmp/ecr.env
  ecrgate emulator --latency 80ms --fail CreateRepository=2:throttle`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel, "text")
			if err != nil {
				return err
			}
			e, err := ecrfake.New(ecrfake.Options{Accounts: accounts, Region: region, AccessKey: accessKey,
				SecretKey: secretKey, StorageDir: storage, Latency: latency, Logger: log, BlobRedirect: blobRedirect})
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
				if err := writePrivateFile(envFile, []byte(env)); err != nil {
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
	f.BoolVar(&blobRedirect, "blob-redirect", false, "answer blob downloads with a redirect to a presigned URL on a second local port, as ECR redirects to S3")
	return cmd
}

// exportLines is the shell environment a client needs to use the emulator.
func exportLines(url string, e *ecrfake.Emulator) string {
	var b strings.Builder
	for _, kv := range envFor(url, e) {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	return b.String()
}

func envFor(url string, e *ecrfake.Emulator) []string {
	out := []string{}
	for _, kv := range e.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_ENDPOINT_URL_") {
			v = url
		}
		out = append(out, k+"="+v)
	}
	return out
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writePrivateFile writes data atomically with mode 0600.
func writePrivateFile(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600, false)
}
