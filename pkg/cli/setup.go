package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/dockerconfig"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// helperName is the credHelpers value: Docker runs docker-credential-<name>.
const helperName = "ecrgate"

func newSetupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Configure other programs to use ecrgate",
		Long: `Changes other programs' configuration so they use ecrgate, keeping everything
else in their files and a backup of the old file. Each change can be undone
with --undo.`,
		Example: `  ecrgate setup docker --dry-run
  ecrgate setup docker --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com`,
	}
	cmd.AddCommand(newSetupDockerCmd())
	return cmd
}

func newSetupDockerCmd() *cobra.Command {
	var (
		registries     []string
		dryRun, undo   bool
		configPath     string
		dockerConfPath string
	)
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Make Docker use docker-credential-ecrgate for your ECR registries",
		Long: `Adds credHelpers entries to Docker's config.json ($DOCKER_CONFIG/config.json,
default ~/.docker/config.json) so Docker asks docker-credential-ecrgate for
the tokens of the given registries, or, without --registry, of every registry
in ecrgate's config (default_registry, routes, registries, local_hosts).

Every other key of config.json is kept byte for byte; the old file is
backed up next to it; running it twice changes nothing. --undo removes the
entries again.`,
		Example: `  ecrgate setup docker --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com
  ecrgate setup docker --dry-run
  ecrgate setup docker --undo --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			hosts, err := setupHosts(registries, configPath, env)
			if err != nil {
				return err
			}
			path := dockerConfPath
			if path == "" {
				path = dockerconfig.Path(env)
			}
			var plan *dockerconfig.Plan
			if undo {
				plan, err = dockerconfig.PlanRemoveCredHelpers(path, helperName, hosts)
			} else {
				plan, err = dockerconfig.PlanCredHelpers(path, helperName, hosts)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(plan.Changes) == 0 {
				fmt.Fprintf(out, "%s already %s; nothing to do\n", plan.Path, map[bool]string{false: "uses docker-credential-ecrgate for " + strings.Join(hosts, ", "), true: "has no ecrgate entries for these registries"}[undo])
				return nil
			}
			if dryRun {
				fmt.Fprintf(out, "would change %s:\n%s", plan.Path, plan.Diff())
				return nil
			}
			backup, err := plan.Apply()
			if err != nil {
				return err
			}
			for _, c := range plan.Changes {
				fmt.Fprintln(out, c.String())
			}
			if backup != "" {
				fmt.Fprintf(out, "updated %s (previous version saved as %s)\n", plan.Path, backup)
			} else {
				fmt.Fprintf(out, "created %s\n", plan.Path)
			}
			if _, err := exec.LookPath("docker-credential-" + helperName); err != nil && !undo {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: docker-credential-%s is not on PATH, so Docker cannot run it yet: run `make install` or put bin/ on PATH\n", helperName)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&registries, "registry", nil, "ECR registry host to set up (repeatable); default: every registry in the config")
	f.BoolVar(&dryRun, "dry-run", false, "show the change to config.json without writing it")
	f.BoolVar(&undo, "undo", false, "remove the ecrgate entries instead of adding them")
	f.StringVar(&configPath, "config", "", "ecrgate config file (default $ECRGATE_CONFIG or ~/.config/ecrgate/config.yaml)")
	f.StringVar(&dockerConfPath, "docker-config", "", "Docker config.json to change (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	return cmd
}

// setupHosts returns the registry hosts to set up: the flags, else every
// registry the config names.
func setupHosts(flags []string, configPath string, env []string) ([]string, error) {
	if len(flags) > 0 {
		var errs []error
		for _, h := range flags {
			if _, err := ecrhost.Parse(h); err != nil && !isLocalHost(h) {
				errs = append(errs, fmt.Errorf("--registry %s: %w", h, err))
			}
		}
		return flags, errors.Join(errs...)
	}
	cfg, err := config.Load(configPath, env)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	if cfg.DefaultRegistry != "" {
		set[cfg.DefaultRegistry] = true
	}
	for _, r := range cfg.Routes {
		set[r.Registry] = true
	}
	for _, r := range cfg.Registries {
		set[r.Host] = true
	}
	for local := range cfg.LocalHosts {
		set[local] = true
	}
	if len(set) == 0 {
		where := cfg.Path
		if where == "" {
			where = config.DefaultPath(env) + " (not found)"
		}
		return nil, fmt.Errorf("no registries to set up: pass --registry <account>.dkr.ecr.<region>.amazonaws.com, or set default_registry in %s", where)
	}
	hosts := make([]string, 0, len(set))
	for h := range set {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts, nil
}

// isLocalHost reports whether h is a loopback proxy host such as localhost:5000.
func isLocalHost(h string) bool {
	host := strings.ToLower(h)
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "[::1]"
}
