package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect ecrgate's configuration file",
		Long: `ecrgate and docker-credential-ecrgate read one YAML file: --config, else
$ECRGATE_CONFIG, else $XDG_CONFIG_HOME/ecrgate/config.yaml (by default
~/.config/ecrgate/config.yaml). Every key is optional; the reference is
"go doc github.com/ecrgate/ecrgate/pkg/config".`,
		Example: `  ecrgate config check
  ECRGATE_CONFIG=./ecrgate.yaml ecrgate config check`,
	}
	cmd.AddCommand(newConfigCheckCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration file and name the line and key of every problem",
		Long: `Reads the configuration file (--config, else $ECRGATE_CONFIG, else
~/.config/ecrgate/config.yaml) the way ecrgate serve and
docker-credential-ecrgate do, and reports every problem at once, one per
line as file:line: key: message. A valid file prints "<file>: OK" and a
summary; a missing file at the default path means all defaults.

The exit status is 0 for a valid file and 1 otherwise, so it fits a
pre-commit hook or an ExecStartPre= line.`,
		Example: `  ecrgate config check
  ecrgate config check --config ./config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			path := configPath
			if path == "" {
				path = config.DefaultPath(env)
			}
			cfg, err := config.Load(configPath, env)
			if err != nil {
				if unreadable(err) || errors.Is(err, config.ErrOthersCanWrite) {
					return err // the file itself, not what is in it
				}
				problems := splitErrors(err)
				for _, p := range problems {
					fmt.Fprintln(cmd.ErrOrStderr(), p)
				}
				return fmt.Errorf("%s in %s", plural(len(problems), "problem"), path)
			}
			out := cmd.OutOrStdout()
			switch {
			case cfg.Path != "":
				fmt.Fprintf(out, "%s: OK\n", cfg.Path)
			case path != "":
				fmt.Fprintf(out, "%s: not found, so the defaults apply\n", path)
			default:
				fmt.Fprintln(out, "no configuration file (HOME is not set), so the defaults apply")
			}
			writeConfigSummary(out, cfg)
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "ecrgate config file (default $ECRGATE_CONFIG or ~/.config/ecrgate/config.yaml)")
	return cmd
}

// writeConfigSummary prints what the configuration amounts to, in a few
// indented lines.
func writeConfigSummary(w io.Writer, c *config.Config) {
	line := func(k, format string, args ...any) {
		fmt.Fprintf(w, "  %-17s %s\n", k, fmt.Sprintf(format, args...))
	}
	if c.DefaultRegistry != "" {
		line("default registry", "%s", c.DefaultRegistry)
	} else {
		line("default registry", "none (registry-mode names need a route)")
	}
	line("routes", "%d", len(c.Routes))
	line("registries", "%d", len(c.Registries))
	prefixes := make([]string, len(c.Templates))
	for i, t := range c.Templates {
		prefixes[i] = t.Prefix
	}
	if len(prefixes) > 0 {
		line("templates", "%d (%s)", len(c.Templates), strings.Join(prefixes, ", "))
	} else {
		line("templates", "0 (repositories get ECR's defaults)")
	}
	allow := plural(len(c.Allow), "glob")
	if len(c.Allow) == 0 {
		allow = "every name"
	}
	line("allow / deny", "%s / %s", allow, plural(len(c.Deny), "glob"))
	line("listen", "%s (admin %s, intercept %s)", c.Listen, c.AdminListen, c.Intercept.Listen)
	if c.DryRun {
		line("dry run", "yes: nothing is created")
	}
}

// splitErrors undoes errors.Join: config.Load reports each problem as one
// error of the join.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// unreadable reports whether err says the file itself could not be read
// (missing, a directory, no permission) rather than what is wrong inside it.
func unreadable(err error) bool {
	var ce *config.Error
	var pe *fs.PathError
	return len(splitErrors(err)) == 1 && errors.As(err, &ce) && ce.Line == 0 && ce.Key == "" && errors.As(err, &pe)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
