#!/usr/bin/env bash
# Builds the macOS installer package for one CPU from the darwin tarball that
# `make dist` writes (on Linux, where the guest image can be built):
#
#   dist/vmbox-<version>-darwin-<arch>.tar.gz  ->  dist/vmbox-<version>-darwin-<arch>.pkg
#
# The package installs /usr/local/bin/vmbox and the guest image in
# /usr/local/share/vmbox/<arch>/, where vmbox looks for it
# (../share/vmbox/<arch> from the executable), plus the NOTICE in
# /usr/local/share/doc/vmbox/.
#
# Run it on a Mac with the Xcode command line tools and Go, from the
# repository root. By default the CLI is rebuilt here with cgo, so that it
# has the vz driver (Virtualization.framework), and signed with
# host/driver/vz/vmbox.entitlements before pkgbuild; the tarball's own CLI
# is cross-compiled without cgo and can only use QEMU.
#
# usage: packaging/macos/build-pkg.sh [options]
#   --arch arm64|amd64        CPU of the package (default: this Mac's)
#   --version V               release version (default: git describe, as the Makefile)
#   --tarball FILE            input (default: dist/vmbox-V-darwin-ARCH.tar.gz)
#   --binary FILE             ship this vmbox instead of building one with cgo
#   --prebuilt                ship the tarball's vmbox (QEMU only, no vz driver)
#   --entitlements FILE       (default: host/driver/vz/vmbox.entitlements)
#   --sign-identity ID        codesign identity, e.g. "Developer ID Application: ..." (default: ad hoc, "-")
#   --installer-identity ID   productbuild --sign identity, e.g. "Developer ID Installer: ..." (default: unsigned)
#   --out DIR                 output directory (default: dist)
#   --stage DIR               only lay the payload out in DIR and stop: no build,
#                             signing or pkgbuild, so it also runs off a Mac (used by tests)
set -euo pipefail

die() {
	echo "build-pkg.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

identifier=io.github.vmbox.vmbox
arch=
version=
tarball=
binary=
prebuilt=no
entitlements=host/driver/vz/vmbox.entitlements
sign_identity=-
installer_identity=
out=dist
stage=

while [ $# -gt 0 ]; do
	case $1 in
	--arch | --version | --tarball | --binary | --entitlements | --sign-identity | --installer-identity | --out | --stage)
		[ $# -ge 2 ] || die "$1 needs a value"
		v=$2
		case $1 in
		--arch) arch=$v ;;
		--version) version=$v ;;
		--tarball) tarball=$v ;;
		--binary) binary=$v ;;
		--entitlements) entitlements=$v ;;
		--sign-identity) sign_identity=$v ;;
		--installer-identity) installer_identity=$v ;;
		--out) out=$v ;;
		--stage) stage=$v ;;
		esac
		shift 2
		;;
	--prebuilt)
		prebuilt=yes
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

if [ -z "$arch" ]; then
	case $(uname -m) in
	arm64 | aarch64) arch=arm64 ;;
	x86_64) arch=amd64 ;;
	*) die "cannot tell the CPU from uname -m ($(uname -m)): pass --arch" ;;
	esac
fi
case $arch in
arm64) host_arch=arm64 ;;
amd64) host_arch=x86_64 ;;
*) die "--arch must be arm64 or amd64, not $arch" ;;
esac
if [ -z "$version" ]; then
	version=$(git describe --tags --always --dirty 2>/dev/null) || die "no --version and no git checkout to describe"
fi
[ -n "$tarball" ] || tarball=dist/vmbox-$version-darwin-$arch.tar.gz
[ -f "$tarball" ] || die "$tarball not found: build it with make dist (on Linux) and copy dist/ here"
if [ -n "$binary" ] && [ "$prebuilt" = yes ]; then
	die "--binary and --prebuilt exclude each other"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Unpack the release tarball: one top directory with bin/, share/, NOTICE.
tar -xzf "$tarball" -C "$work"
top=$work/vmbox-$version-darwin-$arch
[ -d "$top" ] || die "$tarball does not hold vmbox-$version-darwin-$arch/ (wrong --version or --arch?)"
for f in bin/vmbox share/vmbox/$arch/kernel share/vmbox/$arch/initrd.img share/vmbox/$arch/manifest.json NOTICE; do
	[ -f "$top/$f" ] || die "$tarball lacks $f"
done

root=$work/root
mkdir -p "$root/usr/local/bin" "$root/usr/local/share/vmbox/$arch" "$root/usr/local/share/doc/vmbox"
cp "$top/share/vmbox/$arch/kernel" "$top/share/vmbox/$arch/initrd.img" "$top/share/vmbox/$arch/manifest.json" \
	"$root/usr/local/share/vmbox/$arch/"
cp "$top/NOTICE" "$root/usr/local/share/doc/vmbox/NOTICE"
chmod 0644 "$root/usr/local/share/vmbox/$arch/"* "$root/usr/local/share/doc/vmbox/NOTICE"
exe=$root/usr/local/bin/vmbox

if [ -n "$stage" ]; then
	cp "${binary:-$top/bin/vmbox}" "$exe"
	chmod 0755 "$exe"
	rm -rf "$stage"
	mkdir -p "$(dirname "$stage")"
	cp -R "$root" "$stage"
	echo "Staged the payload of vmbox-$version-darwin-$arch.pkg in $stage"
	exit 0
fi

[ "$(uname -s)" = Darwin ] || die "pkgbuild, productbuild and codesign exist only on macOS (use --stage DIR elsewhere)"
for tool in pkgbuild productbuild codesign; do
	command -v "$tool" >/dev/null || die "$tool not found: install the Xcode command line tools (xcode-select --install)"
done

if [ -n "$binary" ]; then
	cp "$binary" "$exe"
elif [ "$prebuilt" = yes ]; then
	cp "$top/bin/vmbox" "$exe"
else
	command -v go >/dev/null || die "go not found: install Go, or pass --binary FILE or --prebuilt"
	commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	built=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
	pkg=github.com/vmbox/vmbox/internal/version
	echo "building vmbox $version for darwin/$arch with cgo (vz driver)"
	CGO_ENABLED=1 GOOS=darwin GOARCH=$arch go build -trimpath \
		-ldflags "-s -w -X $pkg.Version=$version -X $pkg.GitCommit=$commit -X $pkg.BuildTime=$built" \
		-o "$exe" ./cmd/vmbox
fi
chmod 0755 "$exe"
file "$exe" | grep -q "$host_arch" || die "$exe is not a $host_arch executable: $(file "$exe")"

# Sign before pkgbuild: the entitlement is what lets the vz driver use
# Virtualization.framework. A Developer ID signature needs the hardened
# runtime and a secure timestamp to be notarized; an ad hoc one runs only
# on Macs that accept it (the one that built it).
[ -f "$entitlements" ] || die "entitlements $entitlements not found (run from the repository root or pass --entitlements)"
sign_flags=(--force --entitlements "$entitlements" --sign "$sign_identity")
if [ "$sign_identity" != - ]; then
	sign_flags+=(--options runtime --timestamp)
fi
codesign "${sign_flags[@]}" "$exe"
codesign --verify --strict "$exe"
codesign -d --entitlements - "$exe" 2>/dev/null | grep -q com.apple.security.virtualization ||
	die "$exe was signed without the com.apple.security.virtualization entitlement"

# Installer versions compare numerically: use the release's leading
# major.minor.patch (v1.2.3, 1.2.3), or 0.0.0 for a build that is not a
# release (a bare commit, which may start with digits).
if [[ $version =~ ^v([0-9]+(\.[0-9]+){0,2}) ]] || [[ $version =~ ^([0-9]+(\.[0-9]+){1,2}) ]]; then
	pkg_version=${BASH_REMATCH[1]}
else
	pkg_version=0.0.0
fi

pkgbuild --root "$root" --identifier "$identifier" --version "$pkg_version" \
	--install-location / --filter '\.DS_Store$' "$work/vmbox.pkg"

cat >"$work/distribution.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
  <title>vmbox $version</title>
  <options customize="never" require-scripts="false" hostArchitectures="$host_arch"/>
  <domains enable_localSystem="true" enable_anywhere="false" enable_currentUserHome="false"/>
  <volume-check>
    <allowed-os-versions><os-version min="12.0"/></allowed-os-versions>
  </volume-check>
  <choices-outline>
    <line choice="default"><line choice="$identifier"/></line>
  </choices-outline>
  <choice id="default"/>
  <choice id="$identifier" visible="false"><pkg-ref id="$identifier"/></choice>
  <pkg-ref id="$identifier" version="$pkg_version" onConclusion="none">vmbox.pkg</pkg-ref>
</installer-gui-script>
XML

mkdir -p "$out"
dst=$out/vmbox-$version-darwin-$arch.pkg
product_flags=(--distribution "$work/distribution.xml" --package-path "$work")
if [ -n "$installer_identity" ]; then
	product_flags+=(--sign "$installer_identity")
fi
productbuild "${product_flags[@]}" "$dst"
pkgutil --check-signature "$dst" || true
shasum -a 256 "$dst"

cat <<DONE
Wrote $dst
Install:   sudo installer -pkg $dst -target /
Uninstall: sudo rm -f /usr/local/bin/vmbox && sudo rm -rf /usr/local/share/vmbox/$arch /usr/local/share/doc/vmbox && sudo pkgutil --forget $identifier
DONE
if [ -n "$installer_identity" ]; then
	echo "Notarize: xcrun notarytool submit $dst --keychain-profile PROFILE --wait && xcrun stapler staple $dst"
fi
