package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

func newTemplatesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "templates",
		Short: "Work with the configuration's templates and ECR's own creation templates",
		Long: `Commands about the templates: of the configuration file, that ecrgate creates
repositories from, and ECR's own repository creation templates.`,
		Example: "  ecrgate templates export --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTemplatesExportCmd())
	return cmd
}

func newTemplatesExportCmd() *cobra.Command {
	var (
		configPath, registry, roleARN string
		apply, offline                bool
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Turn the local templates into ECR's own CREATE_ON_PUSH creation templates",
		Long: `Prints, for each template of the configuration file, the repository creation
template ECR needs to create a missing repository on push by itself with the
settings ecrgate would give it, compared with the one ECR has for the prefix:
"create", "update" with the settings that change (- what ECR has, + what it
gets), or "unchanged". --apply then creates or updates them
(CreateRepositoryCreationTemplate, UpdateRepositoryCreationTemplate); a
second --apply changes nothing. ECR's templates of other prefixes are listed
and left alone. Start with ecrgate, graduate to ECR's native create on push.

Each exported template is applied for CREATE_ON_PUSH (and keeps what ECR's
template of the prefix was applied for besides), with the same prefix: ECR
picks a template as ecrgate picks a local one, the longest prefix with an
implied trailing '/', then ROOT. It carries the tag mutability and exclusion
filters, encryption, tags (as resource tags), lifecycle policy and the
repository policy merged with pull_accounts and pull_principals. ECR needs a
custom role for KMS encryption and tags: custom_role_arn: in the template, or
--role-arn for every template without one; --apply refuses without it.

Warnings name what ECR's templates cannot do as ecrgate does: scan_on_push
(scanning is a registry setting: the warning gives the
put-registry-scanning-configuration command), allow:/deny: and dry_run:
(ECR creates every name under a prefix), names under no prefix without a
ROOT template (ecrgate creates them from its built-in default, ECR does not).

Once ECR has a CREATE_ON_PUSH template for a name, ecrgate leaves the
creation to ECR: "ecrgate explain NAME" says "native", and "ecrgate doctor"
reports the overlap. The AWS identity and endpoint are the proxy's for the
registry (registries: profile, role_arn, api_endpoint; AWS_ENDPOINT_URL_ECR);
templates belong to the registry's account, so the identity must be of it.`,
		Example: `  ecrgate templates export
  ecrgate templates export --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com --role-arn arn:aws:iam::123456789012:role/ecr-templates
  ecrgate templates export --apply
  ecrgate templates export --offline --config ./ecrgate.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			cfg, err := config.Load(configPath, env)
			if err != nil {
				return err
			}
			if apply && offline {
				return errors.New("--apply needs ECR's templates: drop --offline")
			}
			if registry == "" {
				registry = cfg.DefaultRegistry
			}
			if registry == "" {
				if hosts := cfg.RegistryHosts(); len(hosts) == 1 {
					registry = hosts[0]
				}
			}
			if registry == "" {
				return errors.New("which registry? pass --registry <account>.dkr.ecr.<region>.amazonaws.com or set default_registry")
			}
			if len(cfg.Templates) == 0 {
				return fmt.Errorf("%s has no templates: to export", orDefault(cfg.Path, "the configuration"))
			}
			x, err := repocreate.ExportTemplates(cmd.Context(), repocreate.ExportOptions{Config: cfg, Registry: registry, RoleARN: roleARN, Env: env, Offline: offline})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := writeExport(out, x, cfg.Path); err != nil {
				return err
			}
			if !apply {
				return summary(out, x, false)
			}
			if _, err := x.Apply(cmd.Context()); err != nil {
				return err
			}
			return summary(out, x, true)
		},
	}
	f := cmd.Flags()
	f.StringVar(&registry, "registry", "", "ECR registry host whose templates to compare and write (default: default_registry)")
	f.StringVar(&roleARN, "role-arn", "", "custom role ECR assumes for templates without custom_role_arn (needed for KMS encryption and tags)")
	f.BoolVar(&apply, "apply", false, "create and update ECR's templates")
	f.BoolVar(&offline, "offline", false, "ask ECR nothing: print every template as one to create")
	f.StringVar(&configPath, "config", "", "ecrgate config file (default $ECRGATE_CONFIG or ~/.config/ecrgate/config.yaml)")
	return cmd
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// writeExport prints x: one block per template, its change and its
// settings, then ECR's other templates and the warnings.
func writeExport(w io.Writer, x *repocreate.Export, file string) error {
	var b strings.Builder
	as := ""
	if x.Identity != "" {
		as = " as " + x.Identity
	}
	fmt.Fprintf(&b, "registry %s%s\n", x.Registry, as)
	for _, et := range x.Templates {
		where := et.Key
		if et.Line > 0 {
			where = fmt.Sprintf("%s, %s:%d", et.Key, file, et.Line)
		}
		fmt.Fprintf(&b, "\n%s %s (%s)\n", et.Change, et.Prefix, where)
		for _, f := range et.Fields {
			switch {
			case et.Change == repocreate.ChangeCreate:
				if f.Want != "" {
					fmt.Fprintf(&b, "  + %-38s %s\n", f.Name, f.Want)
				}
			case f.Have == f.Want:
				if f.Want != "" {
					fmt.Fprintf(&b, "    %-38s %s\n", f.Name, f.Want)
				}
			default:
				fmt.Fprintf(&b, "  - %-38s %s\n", f.Name, orNone(f.Have))
				fmt.Fprintf(&b, "  + %-38s %s\n", f.Name, orNone(f.Want))
			}
		}
		for _, warn := range et.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", warn)
		}
	}
	for _, p := range x.OnlyInECR {
		fmt.Fprintf(&b, "\nonly in ECR %s (no local template; left as it is)\n", p)
	}
	if len(x.Warnings) > 0 {
		b.WriteString("\n")
	}
	for _, warn := range x.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", warn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// summary prints the count of each change, and what was applied.
func summary(w io.Writer, x *repocreate.Export, applied bool) error {
	n := map[repocreate.Change]int{}
	for _, et := range x.Templates {
		n[et.Change]++
	}
	counts := fmt.Sprintf("%d to create, %d to update, %d unchanged", n[repocreate.ChangeCreate], n[repocreate.ChangeUpdate], n[repocreate.ChangeUnchanged])
	var line string
	switch {
	case applied:
		line = fmt.Sprintf("\napplied: %d created, %d updated, %d unchanged\n", n[repocreate.ChangeCreate], n[repocreate.ChangeUpdate], n[repocreate.ChangeUnchanged])
	case x.Identity == "":
		line = "\n" + counts + " (offline: ECR's templates not read)\n"
	case n[repocreate.ChangeCreate]+n[repocreate.ChangeUpdate] == 0:
		line = "\n" + counts + ": ECR's templates match\n"
	default:
		line = "\n" + counts + ": run with --apply to write them\n"
	}
	_, err := io.WriteString(w, line)
	return err
}
