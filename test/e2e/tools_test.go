//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Client tools that are not Debian packages, built from their Go modules
// through the module proxy on first use and cached under
// os.UserCacheDir()/ecrgate-e2e/<name>-<version>.
//
// buildx: the newest release builds with our Go and drives dockerd 20.10's
// BuildKit through the docker driver. nerdctl: the 1.7 line still supports
// containerd 1.6 (Debian 12's); 2.x needs containerd 1.7 or later.
//
// They are built with `go build` inside a throw-away module that requires
// the tool's module, not with `go install mod@version`: the module proxy
// refuses to list some modules' versions, which `go install` needs for its
// deprecation check.
var (
	buildxTool = goTool{Name: "docker-buildx", Module: "github.com/docker/buildx", Version: "v0.38.2",
		Package: "github.com/docker/buildx/cmd/buildx"}
	nerdctlTool = goTool{Name: "nerdctl", Module: "github.com/containerd/nerdctl", Version: "v1.7.7",
		Package: "github.com/containerd/nerdctl/cmd/nerdctl"}
)

// toolBuildTimeout bounds one tool build (a cold buildx build downloads
// a few hundred modules and took 8.5 minutes on a loaded 2-core machine).
const toolBuildTimeout = 20 * time.Minute

type goTool struct{ Name, Module, Version, Package string }

// toolBuild is one tool being built (or found in the cache) in the
// background.
type toolBuild struct {
	tool goTool
	done chan struct{}
	path string
	took time.Duration // 0 when it came from the cache
	err  error
}

// wait returns the binary's path, how long building it took (0 if cached),
// and why there is none.
func (b *toolBuild) wait() (string, time.Duration, error) {
	<-b.done
	return b.path, b.took, b.err
}

type toolBuilds struct{ buildx, nerdctl *toolBuild }

// startToolBuilds starts building every missing tool, one after the other
// in one goroutine (the machine has 2 cores), while the test goes on. The
// builds are cancelled and waited for when the test ends.
func startToolBuilds(t *testing.T) *toolBuilds {
	t.Helper()
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		cacheRoot = os.TempDir()
	}
	cacheDir := filepath.Join(cacheRoot, "ecrgate-e2e")
	tb := &toolBuilds{
		buildx:  &toolBuild{tool: buildxTool, done: make(chan struct{})},
		nerdctl: &toolBuild{tool: nerdctlTool, done: make(chan struct{})},
	}
	ctx, cancel := context.WithCancel(context.Background())
	all := make(chan struct{})
	go func() {
		defer close(all)
		for _, b := range []*toolBuild{tb.buildx, tb.nerdctl} {
			b.path, b.took, b.err = buildGoTool(ctx, b.tool, cacheDir)
			close(b.done)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-all
		for _, b := range []*toolBuild{tb.buildx, tb.nerdctl} {
			switch {
			case b.err != nil:
				t.Logf("tool %s@%s: %v", b.tool.Module, b.tool.Version, b.err)
			case b.took > 0:
				t.Logf("tool %s@%s built in %s, cached as %s", b.tool.Module, b.tool.Version, b.took.Round(time.Second), b.path)
			default:
				t.Logf("tool %s@%s: cached %s", b.tool.Module, b.tool.Version, b.path)
			}
		}
	})
	return tb
}

func buildGoTool(ctx context.Context, tool goTool, cacheDir string) (string, time.Duration, error) {
	cached := filepath.Join(cacheDir, tool.Name+"-"+tool.Version)
	if st, err := os.Stat(cached); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o100 != 0 {
		return cached, 0, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", 0, fmt.Errorf("the go command is needed to build %s: %w", tool.Name, err)
	}
	work, err := os.MkdirTemp("", "e2e-tool-")
	if err != nil {
		return "", 0, err
	}
	defer os.RemoveAll(work)
	files := map[string]string{
		"go.mod":   fmt.Sprintf("module ecrgate-e2e-tools\n\ngo 1.26\n\nrequire %s %s\n", tool.Module, tool.Version),
		"tools.go": fmt.Sprintf("//go:build tools\n\npackage tools\n\nimport _ %q\n", tool.Package),
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(work, n), []byte(body), 0o644); err != nil {
			return "", 0, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, toolBuildTimeout)
	defer cancel()
	start := time.Now()
	built := filepath.Join(work, tool.Name)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", built, tool.Package)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", 0, fmt.Errorf("go build %s@%s (%s): %w\n%s", tool.Package, tool.Version,
			time.Since(start).Round(time.Second), err, tailLines(out.String(), 30))
	}
	took := time.Since(start)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", took, fmt.Errorf("cache dir: %w", err)
	}
	if err := confCopyExecutable(built, cached); err != nil {
		return "", took, fmt.Errorf("cache %s: %w", tool.Name, err)
	}
	return cached, took, nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
