package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/explain"
)

// explainOptions lets tests replace explain's AWS clients; nil means the
// proxy's own.
var explainOptions func(*explain.Options)

func newExplainCmd() *cobra.Command {
	var (
		configPath, registry string
		asJSON, offline      bool
	)
	cmd := &cobra.Command{
		Use:   "explain NAME",
		Short: "Tell what a push of NAME would make ecrgate do, without doing it",
		Long: `Explains a push of NAME, given as you would push it:

  localhost:5000/team/app[:tag]       registry mode (routes: and default_registry)
  <account>.dkr.ecr.<region>.amazonaws.com/team/app[:tag|@digest]
                                      intercept mode (the real ECR name)
  team/app                            a bare name: default_registry, the only
                                      registry of the config, or --registry

It prints the registry and repository the name maps to, whether ECR accepts
the name (else the NAME_INVALID reason), the allow/deny rule that decides
whether ecrgate may create it (with its key and line in the config file),
whether the repository exists, whether one of ECR's own CREATE_ON_PUSH
creation templates covers it (ecrgate then leaves the creation to ECR), and
otherwise the local template ecrgate would create it from with every
setting: tag mutability, scanning, encryption, lifecycle and repository
policy, tags. The verdict comes last.

Nothing is created: the only AWS calls are GetCallerIdentity,
DescribeRepositories and DescribeRepositoryCreationTemplates, made as the
identity the proxy uses for that registry (--offline makes none).`,
		Example: `  ecrgate explain localhost:5000/team/new-app:1.0
  ecrgate explain 123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123
  ecrgate explain team/app --registry 222222222222.dkr.ecr.eu-west-1.amazonaws.com --json
  ecrgate explain prod/api --offline --config ./ecrgate.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env := os.Environ()
			cfg, err := config.Load(configPath, env)
			if err != nil {
				return err
			}
			o := explain.Options{Config: cfg, Env: env, Registry: registry, Offline: offline}
			if explainOptions != nil {
				explainOptions(&o)
			}
			r, err := explain.Explain(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				return r.WriteJSON(cmd.OutOrStdout())
			}
			return r.WriteText(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the explanation as JSON")
	f.BoolVar(&offline, "offline", false, "make no AWS call (existence and ECR's templates stay unknown)")
	f.StringVar(&registry, "registry", "", "ECR registry host for a name without a host (default: routes and default_registry)")
	f.StringVar(&configPath, "config", "", "ecrgate config file (default $ECRGATE_CONFIG or ~/.config/ecrgate/config.yaml)")
	return cmd
}
