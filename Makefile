# vmbox build. `make deps run` builds everything and boots the VM;
# `make deps test` runs the tests (what CI runs).

GO        ?= go
ARCH      ?= $(shell $(GO) env GOARCH)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILT     ?= $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
PKG       := github.com/vmbox/vmbox/internal/version
LDFLAGS   := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).GitCommit=$(COMMIT) -X $(PKG).BuildTime=$(BUILT)
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
IMAGE_DIR := build/image/$(ARCH)
TEST_TIMEOUT ?= 45m

export VMBOX_IMAGE_DIR ?= $(CURDIR)/$(IMAGE_DIR)

.PHONY: all deps build agent image image-arm64 run test test-short bench cross vet fmt clean typecheck-darwin sign-darwin dist

all: build image

deps:
	./hack/deps.sh

build:
	$(GOBUILD) -o bin/vmbox ./cmd/vmbox
	GOOS=linux GOARCH=$(ARCH) $(GOBUILD) -o bin/vmbox-agent ./cmd/vmbox-agent

# The agent for each guest architecture, as /init of that guest's image.
bin/linux_%/vmbox-agent: FORCE
	GOOS=linux GOARCH=$* $(GOBUILD) -o $@ ./cmd/vmbox-agent

image: bin/linux_$(ARCH)/vmbox-agent
	$(GO) run ./vmimage/cmd/vmimage -arch $(ARCH) -agent bin/linux_$(ARCH)/vmbox-agent -out $(IMAGE_DIR)

# The main job: build, boot the default VM, show both sides' versions.
run: build image
	./hack/run.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Tests need both guest images (amd64 and arm64 boot end to end) and the
# cross-built CLIs.
test: build image image-arm64 vet cross
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

image-arm64:
	$(MAKE) --no-print-directory image ARCH=arm64

test-short: build
	$(GO) test -short ./...

bench: build image
	./hack/bench.sh

cross:
	for t in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64; do \
		os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		echo "build $$t"; GOOS=$$os GOARCH=$$arch $(GOBUILD) -o bin/$$os\_$$arch/vmbox$$ext ./cmd/vmbox || exit 1; \
	done

# Installers into dist/ (docs/install.md): tarballs for linux and darwin, the
# Windows MSI, the Homebrew formula and SHA256SUMS. Each carries the guest
# image of its own architecture: amd64 always, arm64 when the lock pins its
# packages; hack/dist skips (and names) any target whose image is missing.
DIST_ARCHES := amd64 $(shell grep -qs '^arm64 linux-image-' vmimage/debian.lock && echo arm64)

dist: cross
	for a in $(DIST_ARCHES); do \
		$(MAKE) --no-print-directory image ARCH=$$a VERSION=$(VERSION) COMMIT=$(COMMIT) BUILT=$(BUILT) || exit 1; \
	done
	$(GO) run ./hack/dist -version $(VERSION) -date $(BUILT) -out dist

# The macOS host build (vz driver: darwin && cgo) cannot be compiled here;
# type-check it, with its dependencies, for darwin/arm64 and darwin/amd64.
typecheck-darwin:
	$(GO) run ./hack/typecheck

# On a Mac only: build bin/vmbox with cgo (the vz driver needs it) and sign
# it with the entitlement Virtualization.framework requires (docs/macos.md).
sign-darwin:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/vmbox ./cmd/vmbox
	codesign --force --entitlements host/driver/vz/vmbox.entitlements -s - bin/vmbox

clean:
	rm -rf bin build dist

FORCE:
