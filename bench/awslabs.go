package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

const (
	awslabsModule = "github.com/awslabs/amazon-ecr-credential-helper/ecr-login/cli/docker-credential-ecr-login"
	awslabsBinary = "docker-credential-ecr-login"
	// awslabsModuleRoot is the Go module the binary's version is recorded under.
	awslabsModuleRoot = "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
)

// awslabsHelper returns the path and version of awslabs' helper: the given
// binary, else a build cached under the user cache dir, else a fresh
// `go install <module>@latest` into that dir (from a temporary directory,
// so this module's go.mod is untouched).
func awslabsHelper(ctx context.Context, given string, rebuild bool) (path, version string, err error) {
	if given != "" {
		v, err := helperVersion(ctx, given)
		return given, v, err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", "", fmt.Errorf("find the user cache dir for awslabs' helper: %w", err)
	}
	dir := filepath.Join(cache, "ecrgate-bench", "bin")
	path = filepath.Join(dir, awslabsBinary)
	if _, err := os.Stat(path); err == nil && !rebuild {
		v, err := helperVersion(ctx, path)
		return path, v + ", cached build; -rebuild-awslabs fetches the latest again", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp("", "ecrgate-bench-build-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", "", fmt.Errorf("build awslabs' helper: the go command is not on PATH: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: building awslabs' helper once: go install %s@latest (into %s)\n", awslabsModule, dir)
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, goBin, "install", awslabsModule+"@latest")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GO111MODULE=on")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("go install %s@latest failed (is the Go module proxy reachable?): %w\n%s", awslabsModule, err, strings.TrimSpace(out.String()))
	}
	v, err := helperVersion(ctx, path)
	return path, v, err
}

// helperVersion is the module version a binary was built from (what
// `go install <module>@<version>` records), else the binary's own `-v`.
func helperVersion(ctx context.Context, bin string) (string, error) {
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
			if m.Path == awslabsModuleRoot && m.Version != "" && m.Version != "(devel)" {
				return m.Version, nil
			}
		}
	}
	home, err := os.MkdirTemp("", "ecrgate-bench-version-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(home)
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(vctx, bin, "-v")
	cmd.Env = []string{"HOME=" + home, "AWS_EC2_METADATA_DISABLED=true"}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s -v: %w", bin, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Version:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return strings.TrimSpace(string(out)), nil
}
