// Package cli is the ecrgate command line: one cobra command per
// subcommand, each a thin layer that parses flags and calls a package that
// does the work.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/version"
)

// Execute runs the ecrgate command line with args (without the program
// name) and reports whether it succeeded; errors are printed to stderr.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ecrgate: %v\n", err)
	}
	return err
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ecrgate",
		Short: "Push to Amazon ECR without creating repositories or logging in first",
		Long: `ecrgate makes docker push to Amazon ECR just work: a local proxy creates
missing repositories from a template, and docker-credential-ecrgate hands
Docker cached ECR tokens.

Start with "ecrgate config check" and "ecrgate serve"; "ecrgate help <command>"
shows each command's flags and examples.`,
		Example: `  ecrgate serve &
  docker push localhost:5000/team/new-app:1.0
  ecrgate setup docker --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com
  ecrgate completion bash > ~/.local/share/bash-completion/completions/ecrgate`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServeCmd(), newCACmd(), newConfigCmd(), newSetupCmd(), newEmulatorCmd())
	root.AddCommand(newDoctorCmd(), newExplainCmd(), newTemplatesCmd(), newVersionCmd())
	addHelpCommands(root) // after every AddCommand
	return root
}

// newVersionCmd is `ecrgate version`, the same line as --version (what a
// container's `docker run <image> version` and the helper's `version` print).
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Long:    "Prints the version ecrgate was built from, as ecrgate --version does.",
		Args:    cobra.NoArgs,
		Example: "  ecrgate version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "ecrgate version %s\n", version.Version)
			return err
		},
	}
}

// newLogger returns a slog logger writing to w at the named level.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
