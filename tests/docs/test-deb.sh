#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The Debian package, end to end: build it with dpkg-buildpackage from a copy of the source tree
# (build artefacts and .git left out), check the .deb with lintian (no E: line), unpack it with
# dpkg -x into a fresh directory and check that every file is where it belongs and that nothing
# of the test suite came along.
#
# Usage: tests/docs/test-deb.sh [SRCDIR]            (SRCDIR: the source tree, default: this one)
#        tests/docs/test-deb.sh --if-asked SRCDIR   (meson: skip, exit 77, unless
#                                                    AMT_ENLIST_TEST_DEB=1; see tests/docs/meson.build)
# Needs: dpkg-dev, debhelper, lintian, and the package's build dependencies (dpkg-buildpackage
# checks them and names what is missing). DEB_BUILD_OPTIONS=nocheck in the environment skips
# the package's test suite, as usual. KEEP=1 keeps the work directory.
# Takes minutes: the package build runs the whole test suite.
set -euo pipefail

if [ "${1:-}" = --if-asked ]; then
	shift
	if [ "${AMT_ENLIST_TEST_DEB:-}" != 1 ]; then
		echo "SKIP: the package test runs only when asked: meson test --setup package --suite package"
		exit 77
	fi
fi
src=$(realpath -- "${1:-$(dirname -- "$0")/../..}")
[ -f "$src/debian/control" ] || {
	echo "FAIL: $src has no debian/control"
	exit 1
}

missing=
for tool in dpkg-buildpackage dpkg-deb dh lintian; do
	command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
	echo "FAIL: not installed:$missing (Debian: dpkg-dev debhelper lintian)"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/amt-enlist-deb.XXXXXX")
if [ "${KEEP:-}" = 1 ]; then
	echo "work directory: $work"
else
	trap 'rm -rf "$work"' EXIT
fi
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
package=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Source)
tree="$work/$package-$version"
mkdir -p "$tree"

# The tree as a fresh checkout would have it, plus files not committed yet: no .git, no build
# directories, no leftovers of test runs.
tar -C "$src" \
	--exclude=./.git --exclude='./build*' --exclude='./obj-*' --exclude='./debian/.debhelper' \
	--exclude="./debian/$package" --exclude='./debian/tmp' --exclude='./debian/files' \
	--exclude='./debian/*.substvars' --exclude='./debian/*.debhelper.log' \
	--exclude='case-*' --exclude='__pycache__' -cf - . | tar -C "$tree" -xf -

failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# ---- build ----
echo "=== dpkg-buildpackage -us -uc -b ($package $version)"
start=$(date +%s)
# AMT_ENLIST_TEST_DEB is not passed on: the package's own test run must not build a package.
if ! (cd "$tree" && env -u AMT_ENLIST_TEST_DEB dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	tail -n 80 "$work/build.log"
	echo "FAIL: dpkg-buildpackage failed (the whole log: KEEP=1 $0, then $work/build.log)"
	exit 1
fi
echo "built in $(($(date +%s) - start)) s"
grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' "$work/build.log" | sed 's/^/  tests: /' || true

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="$work/${package}_${version}_${arch}.deb"
[ -f "$deb" ] || {
	echo "FAIL: no $deb; built:"
	ls "$work"
	exit 1
}

# ---- lintian ----
echo "=== lintian"
lintian --no-cfg --display-info "$deb" "$work"/*.buildinfo >"$work/lintian.log" 2>&1 || true
sed 's/^/  /' "$work/lintian.log"
if grep -q '^E: ' "$work/lintian.log"; then
	fail "lintian reports errors"
fi

# ---- contents ----
echo "=== dpkg -x"
root="$work/root"
mkdir "$root"
dpkg -x "$deb" "$root"
(cd "$root" && find . -mindepth 1 ! -type d | sort | sed 's/^\.//') >"$work/files"
sed 's/^/  /' "$work/files"

expect() { # MODE PATH: MODE x (executable), f (not executable) or - (either)
	local mode=$1 path=$2
	if [ ! -f "$root$path" ]; then
		fail "$path is not in the package"
	elif [ "$mode" = x ] && [ ! -x "$root$path" ]; then
		fail "$path is not executable"
	elif [ "$mode" = f ] && [ -x "$root$path" ]; then
		fail "$path is executable"
	fi
}
expect x /usr/sbin/amt-enlist
expect f /usr/share/man/man8/amt-enlist.8.gz
expect f /usr/share/bash-completion/completions/amt-enlist
expect f /usr/lib/systemd/system/amt-enlist.service
expect f /usr/lib/udev/rules.d/60-amt-enlist.rules
expect x /usr/share/initramfs-tools/hooks/amt-enlist
expect x /usr/share/initramfs-tools/scripts/init-premount/amt-enlist
expect - /usr/share/doc/amt-enlist/examples/50-amt-enlist
expect - /usr/share/doc/amt-enlist/examples/amt-enlist.yaml
expect f /etc/initramfs-tools/conf.d/amt-enlist
expect f /usr/share/doc/amt-enlist/copyright
expect f /usr/share/doc/amt-enlist/changelog.gz
expect f /usr/share/doc/amt-enlist/README.Debian

# Nothing of the test suite: no emulator, no preload shim, no test programs.
if grep -E 'amtsim|test-|fortify|/tests?/|provserver' "$work/files"; then
	fail "files of the test suite are in the package (above)"
fi
# No /etc/amt-enlist.conf: its presence is what turns the systemd unit on.
if grep -q '^/etc/amt-enlist.conf$' "$work/files"; then
	fail "the package ships /etc/amt-enlist.conf: the unit would run on every machine"
fi

# Files under /etc are conffiles (dh_installdeb), so an administrator's changes survive upgrades.
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles >"$work/conffiles" 2>/dev/null || : >"$work/conffiles"
{ grep '^/etc/' "$work/files" || true; } | while read -r f; do
	grep -qxF "$f" "$work/conffiles" || echo "$f"
done >"$work/not-conffiles"
if [ -s "$work/not-conffiles" ]; then
	fail "not conffiles: $(tr '\n' ' ' <"$work/not-conffiles")"
fi

# The dependencies come from shlibs, so the same source builds on other releases.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libcurl libjson-c libxml2 libssl libyaml; do
	grep -q "$lib" <<<"$depends" || fail "Depends names no $lib package: $depends"
done

# The unpacked agent runs (its libraries are those of this system) and its man page reads.
if ! out=$(env -u BMC_CONFIG_PATH "$root/usr/sbin/amt-enlist" --version 2>&1) ||
	[ "$out" != "amt-enlist $(sed -E 's/[-+~].*//' <<<"$version")" ]; then
	fail "the packaged agent's --version says '$out', the package is $version"
fi
if command -v man >/dev/null; then
	if ! man -l "$root/usr/share/man/man8/amt-enlist.8.gz" 2>&1 | grep -q 'EXIT STATUS'; then
		fail "the packaged man page does not format"
	fi
fi
if ! bash -n "$root/usr/share/bash-completion/completions/amt-enlist"; then
	fail "the packaged bash completion is not valid bash"
fi

if [ "$failures" -ne 0 ]; then
	echo "$failures problem(s)"
	exit 1
fi
echo "package $package $version: built, lintian has no errors, files in place"
