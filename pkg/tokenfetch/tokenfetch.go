// Package tokenfetch is ecrgate-fetch-token, the program
// docker-credential-ecrgate runs when its token cache cannot answer: it
// gets a token with the AWS SDK (ecrauth, with the cache lock, so
// concurrent misses make one call), writes the cache and prints the token
// as JSON on stdout, which is a pipe private to the helper. It exists so
// that the helper itself links no AWS SDK and a warm get starts fast.
package tokenfetch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/ecrgate/ecrgate/pkg/credhelper"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/environ"
)

// Run fetches a token for args[0] and returns the exit code. Failures are
// one sentence on stdout (the helper passes it to Docker).
func Run(args, env []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stdout, "usage: %s <registry host>\n", credhelper.FetcherName)
		return 2
	}
	cfg, warning, err := credhelper.LoadConfig(credhelper.FetcherName, env, stderr)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	log, closeLog, err := credhelper.OpenLog(credhelper.FetcherName, env, stderr)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	defer closeLog()
	if warning != nil && environ.Map(env)["ECRGATE_LOG"] != "" {
		log.Warn(warning.Error())
	}
	src := ecrauth.New(ecrauth.Options{
		CacheDir:   credhelper.CacheDir(env),
		NoCache:    credhelper.NoCache(env),
		Env:        env,
		Logger:     log,
		Identities: credhelper.Identities(cfg),
	})
	ctx, cancel := context.WithTimeout(context.Background(), credhelper.Timeout)
	defer cancel()
	start := time.Now()
	tok, err := src.Token(ctx, args[0])
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	log.Debug("fetched", "registry", tok.Registry, "duration", time.Since(start))
	if err := json.NewEncoder(stdout).Encode(tok); err != nil {
		return 1
	}
	return 0
}
