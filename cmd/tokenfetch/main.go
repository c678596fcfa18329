// Command ecrgate-fetch-token gets an ECR token for docker-credential-ecrgate
// when its cache cannot answer (see pkg/tokenfetch).
package main

import (
	"os"

	"github.com/ecrgate/ecrgate/pkg/tokenfetch"
)

func main() { os.Exit(tokenfetch.Run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr)) }
