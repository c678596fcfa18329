package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/sibling"
)

// emulatorName is the program `ecrgate emulator` runs (cmd/emulator,
// pkg/emulatorcmd): the emulator's registry code stays out of ecrgate.
const emulatorName = "ecrgate-emulator"

func newEmulatorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "emulator [flags]",
		Short: "Run a local Amazon ECR emulator (API, registry, STS, SSO) for demos and tests",
		Long: `Run an Amazon ECR emulator on one local port: the ECR API (SigV4-checked),
a registry that behaves like ECR's (tokens, NAME_UNKNOWN, immutable tags,
creation templates with CREATE_ON_PUSH), STS and the SSO portal.

The emulator is its own program, ecrgate-emulator, installed beside ecrgate
(make install); this command runs it with the same arguments, standard input
and output, signals and exit status. ECRGATE_EMULATOR names another copy.
"ecrgate emulator --help" lists its flags.`,
		Example: `  ecrgate emulator --listen 127.0.0.1:5080
  ecrgate emulator --accounts 123456789012,222222222222 --storage /tmp/ecr --env-file /tmp/ecr.env
  ecrgate emulator --latency 80ms --fail CreateRepository=2:throttle`,
		// Every argument, --help included, belongs to ecrgate-emulator.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := emulatorPath(os.Environ())
			if err != nil {
				if wantsHelp(args) {
					// Say what the command is even where the emulator is not installed.
					fmt.Fprintf(cmd.ErrOrStderr(), "ecrgate: %v\n\n", err)
					return cmd.Help()
				}
				return err
			}
			return runEmulator(cmd.Context(), path, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
		ValidArgsFunction: completeEmulator,
	}
}

// emulatorPath finds ecrgate-emulator: $ECRGATE_EMULATOR, else beside the
// running ecrgate, else on PATH.
func emulatorPath(env []string) (string, error) {
	p, err := sibling.Find(emulatorName, "ECRGATE_EMULATOR", env)
	if err != nil {
		return "", fmt.Errorf("%s is not next to ecrgate nor on PATH: install it with make install, or set ECRGATE_EMULATOR to its path", emulatorName)
	}
	return p, nil
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--help":
			return true
		}
	}
	return false
}

// runEmulator runs the emulator at path with args and the given standard
// streams until it exits, forwarding SIGINT and SIGTERM to it; when ctx ends
// without a signal it interrupts the emulator. A failed emulator's error
// wraps its *exec.ExitError, whose ExitCode is the emulator's.
func runEmulator(ctx context.Context, path string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := exec.Command(path, args...)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := c.Start(); err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	ctxDone := ctx.Done()
	for {
		select {
		case s := <-sigs:
			_ = c.Process.Signal(s) // it may have exited already; Wait tells
		case <-ctxDone:
			ctxDone = nil
			if c.Process.Signal(os.Interrupt) != nil {
				_ = c.Process.Kill() // Windows has no interrupt to send
			}
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%s: %w", emulatorName, err)
			}
			return nil
		}
	}
}

// completeEmulator completes "ecrgate emulator …" by asking ecrgate-emulator
// itself (cobra's hidden __complete command), so its flags complete as
// before it became its own program.
func completeEmulator(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	path, err := emulatorPath(os.Environ())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	out, err := exec.CommandContext(ctx, path, append(append([]string{cobra.ShellCompRequestCmd}, args...), toComplete)...).Output()
	if err != nil {
		return nil, cobra.ShellCompDirectiveDefault
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	last, ok := strings.CutPrefix(lines[len(lines)-1], ":")
	d, err := strconv.Atoi(last)
	if !ok || err != nil {
		return nil, cobra.ShellCompDirectiveDefault
	}
	return lines[:len(lines)-1], cobra.ShellCompDirective(d)
}
