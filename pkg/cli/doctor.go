package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/doctor"
)

// doctorOptions lets tests replace what `ecrgate doctor` reaches (AWS
// clients, dockerd, paths); nil means the real thing.
var doctorOptions func(*doctor.Options)

func newDoctorCmd() *cobra.Command {
	var (
		configPath, dockerConfPath, caDir string
		certsDirs                         []string
		asJSON                            bool
		timeout                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the whole set-up and say how to fix what is wrong",
		Long: `Runs every check of an ecrgate set-up and prints one line per check, the
status first (ok, warn, fail or skip), with the fix on the line below each
one that is not ok:

  config               the configuration file (problems with file, line and key)
  aws identity HOST    sts:GetCallerIdentity for each registry, as the proxy
                       would call it (profile:, role_arn:, api_endpoint:), with the ARN
  ecr token HOST       the ECR API answers and ecr:GetAuthorizationToken works
  create permission    what can be told without creating anything: ECR has no
                       dry run, so ecr:CreateRepository itself stays unverified (warn)
  native templates     ECR's own CREATE_ON_PUSH creation templates that overlap
                       local templates (ecrgate defers to them), unless one is
                       the local template as "ecrgate templates export" made it
  docker credHelpers   Docker's config.json names docker-credential-ecrgate for
                       every registry and local proxy host
  credential helper    docker-credential-ecrgate is on PATH
  proxy                ecrgate serve answers on listen: and admin_listen:
  intercept ca         the local CA (intercept mode; skipped without one)
  dockerd proxy        dockerd's HTTPS_PROXY is ecrgate's intercept listener (from
                       the docker API socket, else the systemd drop-in)
  intercept listener   a CONNECT and a TLS handshake against the local CA
  ca installed HOST    /etc/docker/certs.d/HOST/ca.crt (or ~/.docker/certs.d) is the CA

Nothing is changed: the only AWS calls are GetCallerIdentity,
GetAuthorizationToken, DescribeRepositories and
DescribeRepositoryCreationTemplates. The exit status is 1 when any check
fails (warnings do not count), else 0. --json prints
{"ok": bool, "checks": [{"name", "status", "detail", "fix"}]}.`,
		Example: `  ecrgate doctor
  ecrgate doctor --json | jq '.checks[] | select(.status != "ok")'
  ecrgate doctor --config ./ecrgate.yaml --timeout 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := doctor.Options{ConfigPath: configPath, Env: os.Environ(), DockerConfig: dockerConfPath,
				CADir: caDir, CertsDirs: certsDirs, Timeout: timeout}
			if doctorOptions != nil {
				doctorOptions(&o)
			}
			results := doctor.Run(cmd.Context(), o)
			out := cmd.OutOrStdout()
			var err error
			if asJSON {
				err = doctor.WriteJSON(out, results)
			} else {
				err = doctor.WriteText(out, results)
			}
			if err != nil {
				return err
			}
			if n := doctor.Count(results, doctor.Fail); n > 0 {
				return fmt.Errorf("%s failed", plural(n, "check"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	f.StringVar(&configPath, "config", "", "ecrgate config file (default $ECRGATE_CONFIG or ~/.config/ecrgate/config.yaml)")
	f.StringVar(&dockerConfPath, "docker-config", "", "Docker config.json to check (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	f.StringVar(&caDir, "ca-dir", "", "local CA directory (default $XDG_DATA_HOME/ecrgate/ca)")
	f.StringArrayVar(&certsDirs, "certs-dir", nil, "Docker's per-registry certificate directory (repeatable; default /etc/docker/certs.d and ~/.docker/certs.d)")
	f.DurationVar(&timeout, "timeout", doctor.DefaultTimeout, "time limit of each check")
	return cmd
}
