// Command ecrgate is the ECR push proxy and its tools (see pkg/cli).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ecrgate/ecrgate/pkg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
