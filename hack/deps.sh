#!/usr/bin/env bash
# Installs what building and testing vmbox needs on a Debian/Ubuntu machine.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
  qemu-system-x86     # the hypervisor for amd64 guests
  qemu-system-arm     # the hypervisor for arm64 guests
  qemu-utils
  busybox-static      # test images are built from it
  cpio                # checks the initramfs with an independent reader
  e2fsprogs
  docker-registry     # a real registry on loopback for pull tests
  runc crun           # peers for the container start benchmark
  skopeo umoci        # peers for the pull benchmark
  buildah             # a peer for the build benchmark (with docker.io's dockerd)
  msitools wixl       # msiinfo/msibuild and wixl for the Windows installer
  shellcheck          # checks the installers' shell scripts
  zstd
  iproute2            # network namespaces in tests
  dpkg-dev            # dpkg-deb, to unpack the guest image's packages
  ca-certificates
  gcc libc6-dev       # the trivial static init of the benchmark floor VM
  docker.io           # the 20.10 docker CLI, a client of the Docker API
  docker-compose      # Compose 1.29, a client of the Docker API
  python3-docker      # docker-py, the Python SDK
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
# The arm64 guest image is built from Debian's arm64 packages (no emulation
# needed): apt-get download finds them once the architecture is known.
update=
host_arch="$(dpkg --print-architecture)"
if ! dpkg --print-foreign-architectures | grep -qx arm64 && [ "$host_arch" != arm64 ]; then
  $SUDO dpkg --add-architecture arm64
  update=1
fi
# The guest image build fetches pinned packages with apt-get download, which
# needs the package lists even when nothing is missing here, and lists recent
# enough to know every version vmimage/debian.lock pins for this machine's
# architecture (security updates replace versions in the archive).
lists_lack_pins() {
  local lock arch name version specs=()
  lock="$(dirname "$0")/../vmimage/debian.lock"
  [ -f "$lock" ] || return 1
  while read -r arch name version _; do
    case "$arch" in ''|'#'*) continue ;; esac
    [ "$arch" = "$host_arch" ] && specs+=("$name=$version")
  done <"$lock"
  [ ${#specs[@]} -gt 0 ] || return 1
  # apt-cache exits 0 even when a version is unknown, so compare what it shows.
  local known spec
  known="$(apt-cache show --no-all-versions "${specs[@]}" 2>/dev/null |
    awk '/^Package: /{p=$2} /^Version: /{print p "=" $2}')"
  for spec in "${specs[@]}"; do
    if ! grep -qxF "$spec" <<<"$known"; then
      echo "apt's package lists lack $spec, which vmimage/debian.lock pins; updating them"
      return 0
    fi
  done
  return 1
}
if [ -n "$update" ] || ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null || [ ${#missing[@]} -gt 0 ] || lists_lack_pins; then
  $SUDO apt-get update -q
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
