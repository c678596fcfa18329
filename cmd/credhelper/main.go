// Command docker-credential-ecrgate is a Docker credential helper for Amazon ECR.
//
// The helper itself is built in issue #3; until then it answers as a helper
// that knows no credentials, so Docker falls back to its own store.
package main

import (
	"github.com/docker/docker-credential-helpers/credentials"
)

type noCreds struct{}

func (noCreds) Add(*credentials.Credentials) error { return credentials.NewErrCredentialsNotFound() }
func (noCreds) Delete(string) error                { return credentials.NewErrCredentialsNotFound() }
func (noCreds) Get(string) (string, string, error) {
	return "", "", credentials.NewErrCredentialsNotFound()
}
func (noCreds) List() (map[string]string, error) { return map[string]string{}, nil }

func main() { credentials.Serve(noCreds{}) }
