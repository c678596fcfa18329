//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
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

// Docker Engines and the docker CLI that goes with them, built from their
// source modules (see goTool.Source): Engine 28.5.2, Engine 29 (the module
// github.com/moby/moby/v2; v2.0.0-beta.24 is the 29.8 line with BuildKit
// 0.33, the newest the module proxy serves) and CLI 29.10.0. Their builds
// are cached under a name that also holds the Go version that built them.
var (
	dockerd28Tool = goTool{Name: "dockerd", Module: "github.com/docker/docker", Version: "v28.5.2+incompatible",
		Package: "./cmd/dockerd", Source: true,
		LDFlags: "-X github.com/docker/docker/dockerversion.Version=28.5.2"}
	dockerd29Tool = goTool{Name: "dockerd", Module: "github.com/moby/moby/v2", Version: "v2.0.0-beta.24",
		Package: "./cmd/dockerd", Source: true,
		LDFlags: "-X github.com/moby/moby/v2/dockerversion.Version=29.8.1-dev"}
	dockerCLI29Tool = goTool{Name: "docker", Module: "github.com/docker/cli", Version: "v29.10.0+incompatible",
		Package: "./cmd/docker", Source: true,
		LDFlags: "-X github.com/docker/cli/cli/version.Version=29.10.0",
		// v2.1.3 is refused by the module proxy; only swarm commands use it.
		Replace: []string{"github.com/moby/swarmkit/v2@v2.1.3=github.com/moby/swarmkit/v2@v2.1.2"}}
)

// engineBuildTags are the build tags of a static dockerd and docker CLI
// without cgo: no btrfs or devicemapper graph drivers, no quota support.
const engineBuildTags = "netgo osusergo exclude_graphdriver_btrfs exclude_graphdriver_devicemapper exclude_disk_quota"

// toolBuildTimeout bounds one tool build (a cold buildx build downloads
// a few hundred modules and took 8.5 minutes on a loaded 2-core machine).
const toolBuildTimeout = 20 * time.Minute

// goTool is a program built from a Go module. By default it is built as a
// dependency of a throw-away module. With Source, the module's own tree is
// copied and built as the main module: docker/docker and docker/cli keep
// their dependencies in vendor.mod and vendor.sum (their module zips have no
// vendor/), which become go.mod and go.sum, then Replace (go mod edit
// -replace arguments) applies, and Package is relative to the tree.
type goTool struct {
	Name, Module, Version, Package string

	Source  bool
	Replace []string
	LDFlags string
}

// cacheName is the file name of the tool's cached binary. Source builds
// (the engines) also carry the Go version that built them.
func (g goTool) cacheName() string {
	n := g.Name + "-" + g.Version
	if g.Source {
		n += "-" + runtime.Version()
	}
	return n
}

// toolBuild is one tool being built (or found in the cache) in the
// background.
type toolBuild struct {
	tool goTool
	done chan struct{}
	path string
	took time.Duration // 0 when it came from the cache
	err  error

	announced atomic.Bool // a test logged how long the build took
}

// wait returns the binary's path, how long building it took (0 if cached),
// and why there is none.
func (b *toolBuild) wait() (string, time.Duration, error) {
	<-b.done
	return b.path, b.took, b.err
}

// toolBuilds are the builds TestClientMatrix starts; the engines come last,
// as their cells do.
type toolBuilds struct{ buildx, nerdctl, dockerCLI29, dockerd28, dockerd29 *toolBuild }

// startToolBuilds starts building every missing tool, one after the other
// in one goroutine (the machine has 2 cores), while the test goes on. The
// builds are cancelled and waited for when the test ends.
func startToolBuilds(t *testing.T) *toolBuilds {
	t.Helper()
	b := startBuilds(t, buildxTool, nerdctlTool, dockerCLI29Tool, dockerd28Tool, dockerd29Tool)
	return &toolBuilds{buildx: b[0], nerdctl: b[1], dockerCLI29: b[2], dockerd28: b[3], dockerd29: b[4]}
}

// toolCacheDir is where built tools are kept between runs.
func toolCacheDir() string {
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		cacheRoot = os.TempDir()
	}
	return filepath.Join(cacheRoot, "ecrgate-e2e")
}

// startBuilds builds tools in order in one background goroutine and
// returns one toolBuild for each; see startToolBuilds.
func startBuilds(t *testing.T, tools ...goTool) []*toolBuild {
	t.Helper()
	cacheDir := toolCacheDir()
	builds := make([]*toolBuild, len(tools))
	for i, tool := range tools {
		builds[i] = &toolBuild{tool: tool, done: make(chan struct{})}
	}
	ctx, cancel := context.WithCancel(context.Background())
	all := make(chan struct{})
	go func() {
		defer close(all)
		for _, b := range builds {
			b.path, b.took, b.err = buildGoTool(ctx, b.tool, cacheDir)
			close(b.done)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-all
		for _, b := range builds {
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
	return builds
}

func buildGoTool(ctx context.Context, tool goTool, cacheDir string) (string, time.Duration, error) {
	cached := filepath.Join(cacheDir, tool.cacheName())
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
	defer func() {
		// The module cache's copy is read-only; so is our copy of it.
		_ = filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(work)
	}()
	ctx, cancel := context.WithTimeout(ctx, toolBuildTimeout)
	defer cancel()
	start := time.Now()
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	var out bytes.Buffer
	run := func(dir string, args ...string) error {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = dir
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s (%s): %w\n%s", strings.Join(args, " "),
				time.Since(start).Round(time.Second), err, tailLines(out.String(), 30))
		}
		return nil
	}
	built := filepath.Join(work, tool.Name)
	args := []string{"build", "-trimpath", "-o", built}
	dir := work
	if tool.Source {
		if dir, err = sourceTree(ctx, run, goBin, tool, work); err != nil {
			return "", 0, err
		}
		args = append(args, "-tags", engineBuildTags, "-ldflags", "-s -w "+tool.LDFlags)
	} else {
		files := map[string]string{
			"go.mod":   fmt.Sprintf("module ecrgate-e2e-tools\n\ngo 1.26\n\nrequire %s %s\n", tool.Module, tool.Version),
			"tools.go": fmt.Sprintf("//go:build tools\n\npackage tools\n\nimport _ %q\n", tool.Package),
		}
		for n, body := range files {
			if err := os.WriteFile(filepath.Join(work, n), []byte(body), 0o644); err != nil {
				return "", 0, err
			}
		}
	}
	if err := run(dir, append(args, tool.Package)...); err != nil {
		return "", 0, fmt.Errorf("build %s@%s: %w", tool.Module, tool.Version, err)
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

// sourceTree copies tool's module from the module cache (downloading it
// through the module proxy) into work/src, makes vendor.mod and vendor.sum
// its go.mod and go.sum when it has them, applies tool.Replace, and
// returns the tree's directory.
func sourceTree(ctx context.Context, run func(dir string, args ...string) error, goBin string, tool goTool, work string) (string, error) {
	modVer := tool.Module + "@" + tool.Version
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", modVer)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local")
	b, err := cmd.Output()
	var dl struct{ Dir, Error string }
	if jerr := json.Unmarshal(b, &dl); jerr != nil || dl.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %v %s (%v)", modVer, err, dl.Error, jerr)
	}
	src := filepath.Join(work, "src")
	if o, err := exec.CommandContext(ctx, "cp", "-R", dl.Dir, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy %s: %w: %s", dl.Dir, err, o)
	}
	if o, err := exec.CommandContext(ctx, "chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("chmod %s: %w: %s", src, err, o)
	}
	for from, to := range map[string]string{"vendor.mod": "go.mod", "vendor.sum": "go.sum"} {
		body, err := os.ReadFile(filepath.Join(src, from))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(src, to), body, 0o644); err != nil {
			return "", err
		}
	}
	for _, r := range tool.Replace {
		if err := run(src, "mod", "edit", "-replace", r); err != nil {
			return "", err
		}
	}
	return src, nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
