#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The initramfs-tools hook and boot script (scripts/initramfs/).
#
# 1. A real image: mkinitramfs -d with a copy of /etc/initramfs-tools holding the hook and the
#    boot script from the tree (installed the way the package installs them, into hooks/ and
#    scripts/init-premount/) and a conf.d/amt-enlist naming the agent from the build and a CA
#    bundle; lsinitramfs and unmkinitramfs then show the agent, every library of its ldd closure,
#    the CA bundle, the boot script (in init-premount's ORDER) and, when the running kernel has
#    its modules here, mei and mei_me. Without /lib/modules (a container) mkinitramfs is given a
#    made-up kernel version, and its /boot/config-VERSION comes from a tmpfs over /boot in a
#    private mount namespace (unshare -m): the host is not touched.
# 2. The boot script against a fake root (AMT_ENLIST_TEST_ROOT): a stub /scripts/functions, a
#    made-up /proc/cmdline, stub modprobe, the agent from the build talking to the emulator
#    (amt_enlist.device=unix:SOCKET) and to the test server over HTTPS: nothing happens without
#    settings; it posts; a missing /dev/mei0 ends within amt_enlist.ready_timeout with exit 0;
#    an agent failure still exits 0.
# 3. The image itself: chroot into the unpacked initramfs (busybox sh, the copied libraries, the
#    carried CA bundle) and run the boot script there against the emulator and the test server.
#
# Usage: test-initramfs.sh AMT_ENLIST AMTSIM PROVSERVER
# Debian packages: initramfs-tools (with busybox, klibc-utils, cpio, kmod), util-linux (unshare),
# openssl, python3, python3-yaml, python3-oauthlib; the tests run as root (CI does).

# Checks are often "eval '...'": expanded when the check runs, hence single quotes.
# shellcheck disable=SC2016,SC2317,SC2034

agent=$(realpath "$1")
amtsim=$(realpath "$2")
provserver=$(realpath "$3")
. "$(dirname "$0")/lib.sh"

hook="$srcroot/scripts/initramfs/hooks/amt-enlist"
boot="$srcroot/scripts/initramfs/scripts/init-premount/amt-enlist"
need mkinitramfs initramfs-tools
need lsinitramfs initramfs-tools
need unmkinitramfs initramfs-tools
[ "$(id -u)" = 0 ] || die "needs root (mkinitramfs in a private mount namespace, chroot)"

# The test server, over HTTPS with a test CA: the CA is the bundle the hook carries.
sh "$srcroot/tests/server/make-certs.sh" "$tmp/certs" >/dev/null 2>&1 || die "make-certs.sh failed"
start_server "$tmp/srv" --tls-cert "$tmp/certs/server.pem" --tls-key "$tmp/certs/server.key"
https_url=$srv_url

echo "== 1. mkinitramfs with the hook"
version=$(uname -r)
modules=yes
if [ ! -d "/lib/modules/$version" ]; then
	version=0.0.0-amt-enlist-test
	modules=no
	echo "   (no /lib/modules/$(uname -r): kernel version $version, module check skipped)"
fi
conf="$tmp/initramfs-tools"
cp -a /etc/initramfs-tools "$conf"
mkdir -p "$conf/hooks" "$conf/scripts/init-premount" "$conf/conf.d"
install -m 0755 "$hook" "$conf/hooks/amt-enlist"
install -m 0755 "$boot" "$conf/scripts/init-premount/amt-enlist"
cat >"$conf/conf.d/amt-enlist" <<EOF
AMT_ENLIST_BINARY=$agent
AMT_ENLIST_CA_BUNDLE=$tmp/certs/ca.pem
EOF
# Modules from the hook only (MODULES=list), and gzip (no zstd needed to read it back).
sed -i -e 's/^MODULES=.*/MODULES=list/' -e 's/^COMPRESS=.*/COMPRESS=gzip/' "$conf/initramfs.conf"
image="$tmp/initrd.img"
mkinit=(mkinitramfs -d "$conf" -o "$image" "$version")
if [ -e "/boot/config-$version" ]; then
	"${mkinit[@]}" >"$tmp/mkinitramfs.log" 2>&1
else
	# mkinitramfs reads /boot/config-VERSION to choose a compressor it can use.
	unshare -m sh -c 'mount -t tmpfs amt-enlist-test /boot &&
		printf "CONFIG_RD_GZIP=y\n" >"/boot/config-$1" && shift && exec "$@"' \
		sh "$version" "${mkinit[@]}" >"$tmp/mkinitramfs.log" 2>&1
fi
rc=$?
check "mkinitramfs exits 0" test "$rc" = 0
if grep -q "^W: amt-enlist:" "$tmp/mkinitramfs.log"; then
	not_ok "the hook warns: $(grep "^W: amt-enlist:" "$tmp/mkinitramfs.log")"
else
	ok "the hook raises no warning"
fi
[ -s "$image" ] || { cat "$tmp/mkinitramfs.log"; die "no image was made"; }
lsinitramfs "$image" | sed 's|^\./||' | sort >"$tmp/list"
has() { grep -qxF "$1" "$tmp/list"; }

check "the image holds usr/sbin/amt-enlist" has usr/sbin/amt-enlist
check "the image holds the CA bundle (etc/amt-enlist/ca.crt)" has etc/amt-enlist/ca.crt
check "the image holds the boot script (scripts/init-premount/amt-enlist)" \
	has scripts/init-premount/amt-enlist
missing=()
nlibs=0
while read -r lib; do
	nlibs=$((nlibs + 1))
	# copy_exec keeps the name ldd gives, usr-merged; a symlink brings its target along.
	name=$(realpath -s "$lib")
	case "$name" in /lib* | /bin/* | /sbin/*) name="/usr$name" ;; esac
	target=$(readlink -f "$lib")
	case "$target" in /lib* | /bin/* | /sbin/*) target="/usr$target" ;; esac
	has "${name#/}" && has "${target#/}" || missing+=("$lib")
done < <(env --unset=LD_PRELOAD ldd "$agent" | sed -n -e 's/.*=> \(\/[^ ]*\) .*/\1/p' \
	-e 's/^[[:space:]]*\(\/[^ ]*\) .*/\1/p')
if [ "${#missing[@]}" -eq 0 ] && [ "$nlibs" -gt 3 ]; then
	ok "the image holds all $nlibs libraries of the agent's ldd closure"
else
	not_ok "libraries missing from the image (of $nlibs): ${missing[*]}"
fi
if [ "$modules" = yes ]; then
	for m in mei mei_me; do
		path=$(modinfo -k "$version" -n "$m" 2>/dev/null)
		case "$path" in
		'') echo "   ($m: not a module of $version, not checked)" ;;
		'(builtin)') echo "   ($m: built into $version)" ;;
		*) check "the image holds module $m" has "usr${path#/usr}" ;;
		esac
	done
fi

unpacked="$tmp/unpacked"
unmkinitramfs "$image" "$unpacked" >/dev/null 2>&1 || die "unmkinitramfs failed"
img="$unpacked"
[ -d "$unpacked/main" ] && img="$unpacked/main"
check "the agent in the image is the build's" cmp -s "$agent" "$img/usr/sbin/amt-enlist"
check "the CA bundle in the image is the configured one" cmp -s "$tmp/certs/ca.pem" "$img/etc/amt-enlist/ca.crt"
check "the boot script in the image is the tree's, executable" \
	sh -c '[ -x "$1" ] && cmp -s "$1" "$2"' sh "$img/scripts/init-premount/amt-enlist" "$boot"
check "init-premount's ORDER runs the boot script" \
	grep -qF '/scripts/init-premount/amt-enlist "$@"' "$img/scripts/init-premount/ORDER"

echo "== 1b. the hook's settings (the hook run alone, as mkinitramfs runs it)"
run_hook() { # CONF-LINES: run the hook with a conf.d/amt-enlist; sets hook_rc, dest
	local c="$tmp/hookconf-$RANDOM"
	dest="$c/dest"
	mkdir -p "$c/conf.d" "$dest"
	printf '%s\n' "$1" >"$c/conf.d/amt-enlist"
	env DESTDIR="$dest" CONFDIR="$c" version="$version" verbose=n MODULESDIR="/lib/modules/$version" \
		sh "$hook" >"$c/out" 2>&1
	hook_rc=$?
	hook_out="$c/out"
}
run_hook "AMT_ENLIST_INITRAMFS=n
AMT_ENLIST_BINARY=$agent"
check "AMT_ENLIST_INITRAMFS=n: exit 0, nothing added" \
	eval '[ "$hook_rc" = 0 ] && [ -z "$(ls -A "$dest")" ]'
run_hook "AMT_ENLIST_BINARY=$tmp/no-such-agent"
check "a missing agent: a warning and exit 0 (a kernel update must not fail), nothing added" \
	eval '[ "$hook_rc" = 0 ] && grep -q "^W: amt-enlist: .*no-such-agent is missing" "$hook_out" &&
		! [ -e "$dest/usr/sbin/amt-enlist" ]'
run_hook "AMT_ENLIST_BINARY=$agent
AMT_ENLIST_CA_BUNDLE=$tmp/no-such-ca.pem"
check "a missing CA bundle: a warning, the agent still added" \
	eval '[ "$hook_rc" = 0 ] && grep -q "^W: amt-enlist: no CA bundle" "$hook_out" &&
		[ -x "$dest/usr/sbin/amt-enlist" ]'

echo "== 2. the boot script against a fake root"
stubs="$tmp/stubs"
mkdir -p "$stubs"
cat >"$stubs/modprobe" <<'EOF'
#!/bin/sh
echo "$*" >>"$AMT_ENLIST_TEST_ROOT/modprobe.calls"
EOF
chmod 755 "$stubs/modprobe"

make_root() { # DIR CMDLINE: a fake initramfs root
	local r=$1
	mkdir -p "$r/proc" "$r/scripts" "$r/usr/sbin" "$r/etc/amt-enlist" "$r/dev" "$r/run"
	printf '%s\n' "$2" >"$r/proc/cmdline"
	ln -s "$agent" "$r/usr/sbin/amt-enlist"
	cp "$tmp/certs/ca.pem" "$r/etc/amt-enlist/ca.crt"
	: >"$r/dev/kmsg"
	# What /scripts/functions gives the boot script, with networking "configured" by ipconfig.
	cat >"$r/scripts/functions" <<'EOF'
configure_networking() {
	echo called >"$AMT_ENLIST_TEST_ROOT/networking.calls"
	printf 'DEVICE=eth0\nIPV4ADDR=192.0.2.10\nIPV4DNS0=192.0.2.53\nIPV4DNS1=0.0.0.0\nDNSDOMAIN=example.test\n' \
		>"$AMT_ENLIST_TEST_ROOT/run/net-eth0.conf"
}
log_begin_msg() { :; }
log_end_msg() { :; }
log_success_msg() { :; }
log_warning_msg() { :; }
log_failure_msg() { :; }
EOF
}

shell=(/bin/sh)
command -v busybox >/dev/null 2>&1 && shell=(busybox sh) # the initramfs's own shell
echo "   (shell: ${shell[*]})"

run_boot() { # ROOT [ENV...]: run the boot script; sets boot_rc, boot_ms; output in ROOT/console
	local r=$1 start
	shift
	start=$(date +%s%N)
	env PATH="$stubs:$PATH" AMT_ENLIST_TEST_ROOT="$r" "$@" \
		timeout 120 "${shell[@]}" "$boot" >"$r/console" 2>&1
	boot_rc=$?
	boot_ms=$((($(date +%s%N) - start) / 1000000))
}
silent() { ! [ -s "$1/console" ] && ! [ -s "$1/dev/kmsg" ]; }
untouched() { ! [ -e "$1/modprobe.calls" ] && ! [ -e "$1/networking.calls" ] && ! [ -e "$1/run/amt-enlist" ]; }
both_logs() { grep -q "$2" "$1/console" && grep -q "$3" "$1/dev/kmsg"; } # ROOT CONSOLE-RE KMSG-RE
show_console() { sed 's/^/   console: /' "$1"; }

# a. No amt_enlist settings: nothing at all.
r="$tmp/root-none"
make_root "$r" "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet ip=dhcp"
run_boot "$r" quiet=y
check "no settings: exit 0" test "$boot_rc" = 0
check "no settings: no output, no kernel log" silent "$r"
check "no settings: no modprobe, no networking, no agent run" untouched "$r"
r="$tmp/root-verbose-only"
make_root "$r" "root=/dev/sda1 amt_enlist.verbose"
run_boot "$r"
check "only amt_enlist.verbose (no hand-off): exit 0, nothing done" \
	eval '[ "$boot_rc" = 0 ] && silent "$r" && untouched "$r"'

# b. It posts.
r="$tmp/root-post"
make_root "$r" "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro amt_enlist.server=$https_url/enlist amt_enlist.device=unix:$tmp/sim-post.sock amt_enlist.deadline=60"
start_sim "$tmp/sim-post.sock" amt11-pre --state "$tmp/machine-post.json"
post_sim=$sim_pid
run_boot "$r"
stop "$post_sim"
check "server set: exit 0" test "$boot_rc" = 0
check "server set: mei_me loaded, networking configured" \
	eval 'grep -q "mei_me" "$r/modprobe.calls" && [ -e "$r/networking.calls" ]'
check "server set: /etc/resolv.conf written from ipconfig's DNS" \
	eval 'printf "search example.test\nnameserver 192.0.2.53\n" | cmp -s - "$r/etc/resolv.conf"'
check "server set: the server holds the final document, with the password AMT was given" \
	"${helper[@]}" server-final "$https_url" amt11-pre "$r/run/amt-enlist"
check "server set: AMT accepts the saved password as admin" \
	verify_admin amt11-pre "$tmp/machine-post.json" --state "$r/run/amt-enlist"
check "server set: the agent's lines reach the console and the kernel log" \
	eval 'both_logs "$r" "^amt-enlist: .*AMT activated" "^<5>amt-enlist: .*AMT activated" &&
		both_logs "$r" "^amt-enlist: done" "^<5>amt-enlist: done"'
check "server set: no password on the console or in the kernel log" \
	"${helper[@]}" state-passwords-absent "$r/run/amt-enlist" "$r/console" "$r/dev/kmsg"
if [ "$boot_rc" != 0 ] || ! grep -q "amt-enlist: done" "$r/console"; then
	show_console "$r/console"
fi

# c. No /dev/mei0: a bounded wait, exit 0, nothing sent.
"${helper[@]}" reset "$https_url" || die "cannot reset the test server"
r="$tmp/root-nodev"
make_root "$r" "root=/dev/sda1 amt_enlist.server=$https_url/enlist amt_enlist.ready_timeout=2"
run_boot "$r"
check "no /dev/mei0: exit 0" test "$boot_rc" = 0
check "no /dev/mei0: ends within the bound (2 s; took $boot_ms ms)" \
	eval '[ "$boot_ms" -ge 1500 ] && [ "$boot_ms" -lt 8000 ]'
check "no /dev/mei0: says so on the console and in the kernel log" \
	both_logs "$r" "no .*/dev/mei0 after 2 s" "^<5>amt-enlist: no .*/dev/mei0 after 2 s"
check "no /dev/mei0: nothing sent, the agent not run" \
	eval '"${helper[@]}" server-nothing "$https_url" && ! [ -e "$r/run/amt-enlist" ]'

# d. The agent fails (the server's port is closed: the deadline passes): still exit 0, logged.
closed=$("${helper[@]}" free-port)
r="$tmp/root-fail"
make_root "$r" "root=/dev/sda1 quiet amt_enlist.server=https://127.0.0.1:$closed/enlist amt_enlist.deadline=2 amt_enlist.device=unix:$tmp/sim-fail.sock"
start_sim "$tmp/sim-fail.sock" amt11-pre
run_boot "$r" quiet=y
stop "$sim_pid"
check "agent failure: exit 0" test "$boot_rc" = 0
check "agent failure: FAILED with the agent's exit code, on the console even when quiet, and in the kernel log" \
	both_logs "$r" "^amt-enlist: FAILED with exit 9 (the deadline passed)" "^<3>amt-enlist: FAILED with exit 9"
check "agent failure: quiet keeps progress off the console, not off the kernel log" \
	eval '! grep -q "loading mei_me" "$r/console" && grep -q "loading mei_me" "$r/dev/kmsg"'
grep -q "FAILED with exit 9" "$r/console" || show_console "$r/console"

echo "== 3. the boot script inside the image (chroot)"
"${helper[@]}" reset "$https_url" || die "cannot reset the test server"
# Stubs where the image would touch the host: networking (a real DHCP) and modprobe. Only ever
# inside the unpacked image.
if [ -z "$img" ] || [ ! -d "$img/scripts" ] || [ ! -d "$img/usr/sbin" ]; then
	die "unpacked image not found"
fi
cat >"$img/scripts/functions" <<'EOF'
configure_networking() {
	echo called >/run/networking.calls
	printf 'DEVICE=eth0\nIPV4DNS0=192.0.2.53\n' >/run/net-eth0.conf
}
EOF
rm -f "${img:?}/usr/sbin/modprobe"
printf '#!/bin/sh\necho "$*" >>/run/modprobe.calls\n' >"${img:?}/usr/sbin/modprobe"
chmod 755 "${img:?}/usr/sbin/modprobe"
mkdir -p "$img/proc" "$img/dev" "$img/run"
printf 'root=/dev/sda1 amt_enlist.server=%s/enlist amt_enlist.device=unix:/run/mei.sock amt_enlist.deadline=60\n' \
	"$https_url" >"$tmp/cmdline"
: >"$img/dev/kmsg"
: >"$img/dev/null"
start_sim "$img/run/mei.sock" amt11-pre --state "$tmp/machine-chroot.json"
chroot_sim=$sim_pid
# /proc for the agent (an ASan build reads /proc/self/maps), the made-up command line bound
# over /proc/cmdline, the host's /dev/null: all in a private mount namespace.
unshare -m sh -c 'mount -t proc proc "$1/proc" && mount --bind "$2" "$1/proc/cmdline" &&
	mount --bind /dev/null "$1/dev/null" &&
	exec env -i PATH=/sbin:/usr/sbin:/bin:/usr/bin quiet=n ASAN_OPTIONS="$3" \
		chroot "$1" /bin/sh /scripts/init-premount/amt-enlist' \
	sh "$img" "$tmp/cmdline" "$ASAN_OPTIONS" >"$tmp/chroot-console" 2>&1
chroot_rc=$?
stop "$chroot_sim"
check "in the image: exit 0" test "$chroot_rc" = 0
check "in the image: the agent runs on the image's libraries and posts over HTTPS with the carried CA" \
	"${helper[@]}" server-final "$https_url" amt11-pre "$img/run/amt-enlist"
check "in the image: AMT accepts the saved password as admin" \
	verify_admin amt11-pre "$tmp/machine-chroot.json" --state "$img/run/amt-enlist"
check "in the image: mei_me requested, the kernel log written" \
	eval 'grep -q mei_me "$img/run/modprobe.calls" && grep -q "^<5>amt-enlist: done" "$img/dev/kmsg"'
if [ "$chroot_rc" != 0 ] || ! grep -q "amt-enlist: done" "$tmp/chroot-console"; then
	show_console "$tmp/chroot-console"
fi

finish
