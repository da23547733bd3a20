#!/usr/bin/env bash
# The main job: boot the default instance, print both sides' versions, and
# run a container. Uses the freshly built binary and image.
set -euo pipefail
cd "$(dirname "$0")/.."
export VMBOX_IMAGE_DIR="${VMBOX_IMAGE_DIR:-$PWD/build/image/$(go env GOARCH)}"
bin/vmbox start
bin/vmbox version
bin/vmbox shell -- uname -a
