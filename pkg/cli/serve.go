package cli

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/listen"
	"github.com/ecrgate/ecrgate/pkg/sdnotify"
	"github.com/ecrgate/ecrgate/pkg/server"
)

func newServeCmd() *cobra.Command {
	var configPath, listenAddr, adminAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the push proxy: docker push localhost:5000/<name> creates missing ECR repositories",
		Long: `Serve the registry API on listen: (default 127.0.0.1:5000). A name
localhost:5000/<name> maps to default_registry (or a routes: entry). Before
the first write of a push, ecrgate makes sure the repository exists,
creating it from the template with the longest matching prefix unless an
ECR CREATE_ON_PUSH creation template covers it; then the push is streamed
to ECR with your AWS identity's token. /healthz and /metrics are on
admin_listen: (default 127.0.0.1:5002). SIGINT/SIGTERM let in-flight pushes
finish. Under systemd it reports readiness (Type=notify) and takes
socket-activated listeners named "registry" and "admin".`,
		Example: `  ecrgate serve
  ecrgate serve --config ./ecrgate.yaml
  docker push localhost:5000/team/new-app:1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			cfg, err := config.Load(configPath, env)
			if err != nil {
				return err
			}
			if listenAddr != "" {
				cfg.Listen = listenAddr
			}
			if adminAddr != "" {
				cfg.AdminListen = adminAddr
			}
			log, err := newLogger(cmd.ErrOrStderr(), cfg.LogLevel, cfg.LogFormat)
			if err != nil {
				return err
			}
			if cfg.DefaultRegistry == "" && len(cfg.Routes) == 0 {
				log.Warn("no default_registry and no routes: every push will be refused until the config names a registry", "config", cfg.Path)
			}
			activated, err := listen.Listeners(env)
			if err != nil {
				return fmt.Errorf("socket activation: %w", err)
			}
			return server.Run(cmd.Context(), server.Options{Config: cfg, Env: env, Logger: log, Listeners: activated,
				Ready: func(reg, admin net.Addr) {
					if err := errors.Join(sdnotify.Ready(), sdnotify.Status("serving on "+reg.String())); err != nil {
						log.Warn("could not tell systemd that ecrgate is ready (NOTIFY_SOCKET); a Type=notify unit will time out", "err", err)
					}
				},
				Stopping: func() {
					if err := sdnotify.Stopping(); err != nil {
						log.Warn("could not tell systemd that ecrgate is stopping", "err", err)
					}
				}})
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "config file (default $ECRGATE_CONFIG or ~/.config/ecrgate/config.yaml)")
	f.StringVar(&listenAddr, "listen", "", "override listen: (registry address)")
	f.StringVar(&adminAddr, "admin-listen", "", "override admin_listen: (/healthz, /metrics)")
	return cmd
}
