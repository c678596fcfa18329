package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/dockerconfig"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/listen"
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
in ecrgate's config (default_registry, routes, registries).

Local proxy hosts (localhost:5000, local_hosts:) get no entry: ecrgate's
registry mode answers them without credentials, and a token Docker sent
there would reach whatever listens on that port while ecrgate does not.
Entries for them that an earlier ecrgate wrote are removed. Shared team
proxies (shared_proxies:, another machine's ecrgate with allow_remote)
do get one: they pass the caller's own token to ECR.

Every other key of config.json is kept byte for byte; the old file is
backed up next to it; running it twice changes nothing. --undo removes the
entries again.`,
		Example: `  ecrgate setup docker --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com
  ecrgate setup docker --dry-run
  ecrgate setup docker --undo --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			hosts, local, err := setupHosts(registries, configPath, env)
			if err != nil {
				return err
			}
			path := dockerConfPath
			if path == "" {
				path = dockerconfig.Path(env)
			}
			var plan *dockerconfig.Plan
			if undo {
				plan, err = dockerconfig.PlanRemoveCredHelpers(path, helperName, append(hosts, local...))
			} else {
				plan, err = dockerconfig.PlanCredHelpersDropping(path, helperName, hosts, func(h string) bool {
					return listen.IsLoopbackHost(h) || slices.Contains(local, h)
				})
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

// setupHosts returns the hosts to set up: the flags, else every registry
// the config names and its shared proxies; and the config's local proxy
// hosts, which get no entry.
func setupHosts(flags []string, configPath string, env []string) (hosts, local []string, err error) {
	cfg, err := config.Load(configPath, env)
	if err != nil && len(flags) == 0 {
		return nil, nil, err
	}
	if err == nil {
		for h := range cfg.LocalHosts {
			local = append(local, strings.ToLower(h))
		}
		sort.Strings(local)
	}
	if len(flags) > 0 {
		// The flags name the registries; the config, when there is one,
		// only names the local hosts whose old entries go.
		var errs []error
		for _, h := range flags {
			n, _ := dockerconfig.NormalizeHost(h)
			shared := false
			if err == nil {
				_, shared = cfg.SharedProxyRegistry(n)
			}
			switch {
			case listen.IsLoopbackHost(n) || slices.Contains(local, n):
				errs = append(errs, fmt.Errorf("--registry %s is a local ecrgate proxy host: it needs no credential helper (registry mode answers without credentials, and a token sent there could reach whatever else listens on that port); give ECR registry hosts only", h))
			case shared: // a shared team proxy named in the config
			default:
				if _, err := ecrhost.Parse(h); err != nil {
					errs = append(errs, fmt.Errorf("--registry %s: %w", h, err))
				}
			}
		}
		return flags, local, errors.Join(errs...)
	}
	set := map[string]bool{}
	for _, h := range cfg.CredHelperHosts() {
		set[h] = true
	}
	if len(set) == 0 {
		where := cfg.Path
		if where == "" {
			where = config.DefaultPath(env) + " (not found)"
		}
		return nil, nil, fmt.Errorf("no registries to set up: pass --registry <account>.dkr.ecr.<region>.amazonaws.com, or set default_registry in %s", where)
	}
	hosts = make([]string, 0, len(set))
	for h := range set {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts, local, nil
}
