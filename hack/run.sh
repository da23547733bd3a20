#!/usr/bin/env bash
# The main job: boot the default instance, print both sides' versions, and
# run a container. Uses the freshly built binary and image. The container
# image is busybox built from Debian's busybox-static and loaded into the VM,
# since this machine cannot reach Docker Hub.
set -euo pipefail
cd "$(dirname "$0")/.."
export VMBOX_IMAGE_DIR="${VMBOX_IMAGE_DIR:-$PWD/build/image/$(go env GOARCH)}"
bin/vmbox start
bin/vmbox version
go run ./hack/busybox-image -o build/busybox.tar -tag busybox:latest
bin/vmbox load -i build/busybox.tar
bin/vmbox run --rm busybox sh -c 'echo "hello from a container on $(uname -s) $(uname -m), pid $$, host $(hostname)"'
