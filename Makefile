# ecrgate build, test and demo entry points. See README.md.
GO       ?= go
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/ecrgate/ecrgate/pkg/version.Version=$(VERSION)
E2E_TIMEOUT ?= 60m

.PHONY: all build test e2e bench demo lint install clean fuzz image release-tools release-snapshot release actionlint chart-test

all: build

# Static binaries (no cgo): no dynamic loader at start, which is most of a
# warm credential-helper get. Tests keep cgo for the race detector.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ecrgate ./cmd/proxy
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/docker-credential-ecrgate ./cmd/credhelper
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ecrgate-fetch-token ./cmd/tokenfetch
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ecrgate-emulator ./cmd/emulator

test:
	$(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory chart-test

# The container image (scratch + static ecrgate + CA bundle + user 65532) for
# IMAGE_PLATFORMS, built without a Docker daemon by tools/image and written as
# an OCI image layout to IMAGE_DIR; prints the index digest. Reproducible: the
# same commit gives the same digest (-trimpath, -buildid=, SOURCE_DATE_EPOCH
# from the last commit for every file time).
IMAGE_DIR        ?= build/image
IMAGE_PLATFORMS  ?= linux/amd64 linux/arm64
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
REVISION         ?= $(shell git rev-parse HEAD 2>/dev/null)
image:
	@set -e; bins=""; for p in $(IMAGE_PLATFORMS); do \
		out=build/$${p%/*}_$${p#*/}/ecrgate; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath \
			-ldflags '$(LDFLAGS) -buildid=' -o $$out ./cmd/proxy; \
		bins="$$bins -binary $$p=$$out"; \
	done; \
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./tools/image -o $(IMAGE_DIR) \
		-version '$(VERSION)' -revision '$(REVISION)' $$bins

# End-to-end tests drive the real docker CLI, dockerd, skopeo and the AWS CLI
# against the emulator. They need root (dockerd) and the packages .ci/run installs.
# The first run on a machine also builds buildx, nerdctl, the docker CLI 29 and
# Docker Engines 28 and 29 from their Go modules (cached in ~/.cache/ecrgate-e2e),
# hence the hour.
e2e: build
	$(GO) test -race -count=1 -tags e2e -timeout $(E2E_TIMEOUT) -v ./test/e2e/...

bench: build
	$(GO) run ./bench

demo: build
	$(GO) run ./test/demo --bin bin

# gofmt, go vet and staticcheck (pinned in go.mod as a tool), then a build
# for each of LINT_PLATFORMS: OS-specific code must stay in files named for
# their OS (lock_unix.go, lock_windows.go).
LINT_PLATFORMS ?= darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags e2e ./test/e2e/...
	@set -e; for p in $(LINT_PLATFORMS); do \
		echo "GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./..."; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./...; \
	done
	$(GO) -C tools/release vet ./...
	$(GO) -C tools/helm vet ./...
	@$(MAKE) --no-print-directory actionlint

# Release tooling, pinned as Go tools in tools/release/go.mod (its own module,
# so goreleaser's dependencies stay out of ours) and built from the module
# proxy into bin/release/. The first build of goreleaser takes a few minutes.
RELEASE_BIN := bin/release
release-tools:
	$(GO) -C tools/release build -o ../../$(RELEASE_BIN)/goreleaser github.com/goreleaser/goreleaser/v2

# The Helm chart (charts/ecrgate): helm lint --strict with each value set in
# charts/ecrgate/ci, then tools/helm's test, which renders the chart with
# them, decodes every manifest strictly into its k8s.io/api type, checks what
# the chart promises and runs `ecrgate config check` on the rendered
# config.yaml laid out as a ConfigMap volume. helm (helm.sh/helm/v4) is
# pinned in tools/helm/go.mod, its own module so that Kubernetes' modules
# stay out of ours; its first build takes about 6 minutes on two cores.
HELM := $(RELEASE_BIN)/helm
$(HELM): tools/helm/go.mod tools/helm/go.sum
	$(GO) -C tools/helm build -o ../../$(HELM) helm.sh/helm/v4/cmd/helm

chart-test: $(HELM)
	@set -e; for f in charts/ecrgate/ci/*-values.yaml; do \
		echo "helm lint --strict charts/ecrgate -f $$f"; \
		$(HELM) lint --strict --quiet charts/ecrgate -f $$f; \
	done
	HELM=$(abspath $(HELM)) $(GO) -C tools/helm test -count=1 ./...

# actionlint (pinned in tools/actionlint: its YAML library clashes with
# goreleaser's in one module) on every workflow, the example one too.
# -shellcheck= and -pyflakes=: the same checks whatever else is installed.
actionlint:
	$(GO) -C tools/actionlint build -o ../../$(RELEASE_BIN)/actionlint github.com/rhysd/actionlint/cmd/actionlint
	$(RELEASE_BIN)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml examples/github-actions/*.yml

# Everything a release publishes, into dist/ (which goreleaser empties first),
# published nowhere: the six archives (linux, darwin, windows × amd64, arm64),
# the .deb and .rpm, SHA256SUMS, a CycloneDX SBOM per archive and the Homebrew
# formula (dist/homebrew/Formula/ecrgate.rb). See .goreleaser.yaml.
release-snapshot: release-tools
	$(RELEASE_BIN)/goreleaser release --snapshot --clean

# The same, published to GitHub (a v* tag checked out, GITHUB_TOKEN set): what
# .github/workflows/release.yml runs.
release: release-tools
	$(RELEASE_BIN)/goreleaser release --clean

# Short fuzzing pass over every fuzz target in the tree, FUZZTIME each
# (go test -fuzz runs one target at a time). Not part of `make test`; plain
# `go test` runs the seed corpora only.
FUZZTIME ?= 30s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' pkg cmd | sort); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$t ./$$(dirname $$f) ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
		done; \
	done

install: build
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 bin/ecrgate $(DESTDIR)$(BINDIR)/ecrgate
	install -m 0755 bin/docker-credential-ecrgate $(DESTDIR)$(BINDIR)/docker-credential-ecrgate
	install -m 0755 bin/ecrgate-fetch-token $(DESTDIR)$(BINDIR)/ecrgate-fetch-token
	install -m 0755 bin/ecrgate-emulator $(DESTDIR)$(BINDIR)/ecrgate-emulator

clean:
	rm -rf bin build
	$(GO) clean -testcache
