// Command ecrgate-emulator is the offline Amazon ECR for demos and tests
// (see pkg/emulatorcmd); `ecrgate emulator` runs it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ecrgate/ecrgate/pkg/emulatorcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := emulatorcmd.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
