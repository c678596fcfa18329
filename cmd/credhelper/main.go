// Command docker-credential-ecrgate is a Docker credential helper for Amazon
// ECR (see pkg/credhelper).
package main

import (
	"fmt"
	"os"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/ecrgate/ecrgate/pkg/credhelper"
	"github.com/ecrgate/ecrgate/pkg/version"
)

func main() {
	credentials.Name = "docker-credential-ecrgate"
	credentials.Package = "github.com/ecrgate/ecrgate"
	credentials.Version = version.Version
	// version, help and completion need no config: a broken one must not stop them.
	if code, ok := credhelper.Info(os.Args[1:], os.Stdout); ok {
		os.Exit(code)
	}
	h, closeLog, err := credhelper.FromEnv(os.Environ(), os.Stderr)
	if err != nil {
		// Docker shows the helper's stdout when it fails.
		fmt.Fprintf(os.Stdout, "docker-credential-ecrgate: %v\n", err)
		fmt.Fprintf(os.Stderr, "docker-credential-ecrgate: %v\n", err)
		os.Exit(1)
	}
	code := credhelper.Run(h, os.Args[1:], os.Stdin, os.Stdout)
	closeLog()
	os.Exit(code)
}
