#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The systemd unit and the udev rule (scripts/systemd/).
#
# - systemd-analyze verify needs the ExecStart binary and the units the unit refers to: it runs
#   with --root on a temporary root holding the host's /usr/lib/systemd/system, the unit where
#   the package installs it, and the agent from the build at /usr/sbin/amt-enlist. Any line it
#   prints is a failure (it exits 0 on unknown keys); a control unit with a misspelt key must
#   make it print.
# - systemd-analyze security --offline: the sandbox's exposure stays "OK" (at most 3.0).
# - The unit's settings that the agent relies on (the device, /proc/cmdline, netlink, a
#   persistent state directory) and the command line, which the agent must accept.
# - The rule: udevadm test on an emulated mei0 (umockdev-run, in a private mount namespace with
#   only this rule and tmpfs over /dev and /run: nothing on the host is touched) sets the systemd
#   tag and SYSTEMD_WANTS=amt-enlist.service, on "add" and "change"; mei1 gets neither.
#
# Usage: test-systemd.sh AMT_ENLIST AMTSIM PROVSERVER
# Debian packages: systemd (systemd-analyze), udev (udevadm), umockdev, util-linux (unshare);
# root.

# Checks are often "eval '...'": expanded when the check runs, hence single quotes.
# shellcheck disable=SC2016,SC2317,SC2034

agent=$(realpath "$1")
amtsim=$(realpath "$2")
provserver=$(realpath "$3")
. "$(dirname "$0")/lib.sh"

unit="$srcroot/scripts/systemd/amt-enlist.service"
rules="$srcroot/scripts/systemd/60-amt-enlist.rules"
need systemd-analyze systemd
need udevadm udev
need umockdev-run umockdev
[ "$(id -u)" = 0 ] || die "needs root (udevadm test in a private mount namespace)"

echo "== systemd-analyze verify"
root="$tmp/root"
mkdir -p "$root/usr/lib/systemd" "$root/usr/sbin" "$root/etc/systemd/system"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
install -m 0644 "$unit" "$root/usr/lib/systemd/system/amt-enlist.service"
install -m 0755 "$agent" "$root/usr/sbin/amt-enlist"
verify() { # UNIT: verify prints nothing and exits 0
	systemd-analyze verify --man=no --generators=no --root="$root" "$1" >"$tmp/verify.out" 2>&1
	local rc=$?
	sed 's/^/   | /' "$tmp/verify.out"
	[ "$rc" = 0 ] && ! [ -s "$tmp/verify.out" ]
}
check "verify: amt-enlist.service is clean" verify amt-enlist.service
sed 's/^DeviceAllow=/DeviceAlow=/' "$unit" >"$root/usr/lib/systemd/system/amt-enlist-control.service"
check "control: verify reports a misspelt key" eval '! verify amt-enlist-control.service >/dev/null'
rm -f "$root/usr/lib/systemd/system/amt-enlist-control.service"

systemd-analyze security --offline=true --root="$root" --threshold=30 amt-enlist.service \
	>"$tmp/security.out" 2>&1
rc=$?
check "security: exposure at most 3.0 ($(grep -o 'Overall exposure level.*' "$tmp/security.out"))" \
	test "$rc" = 0

echo "== what the agent needs from the unit"
has() { grep -qxE "$1" "$unit"; }
check "started by the device, after the network: BindsTo/After dev-mei0.device, network-online.target" \
	eval 'has "BindsTo=dev-mei0.device" && has "After=dev-mei0.device network-online.target" &&
		has "Wants=network-online.target"'
check "an unconfigured install does nothing: ConditionPathExists=/etc/amt-enlist.conf" \
	has "ConditionPathExists=/etc/amt-enlist.conf"
check "oneshot, RemainAfterExit=no, a TimeoutStartSec" \
	eval 'has "Type=oneshot" && has "RemainAfterExit=no" && has "TimeoutStartSec=[0-9]+(min|s)?"'
check "persistent state: StateDirectory=amt-enlist and --state-dir=/var/lib/amt-enlist" \
	eval 'has "StateDirectory=amt-enlist" && grep -q "^ExecStart=.* --state-dir=/var/lib/amt-enlist" "$unit"'
check "/dev/mei0 reachable: DeviceAllow=/dev/mei0 rw, no PrivateDevices" \
	eval 'has "DeviceAllow=/dev/mei0 rw" && ! grep -q "^PrivateDevices=yes" "$unit"'
check "/proc/cmdline and /proc/net readable: no ProcSubset=pid" eval '! grep -q "^ProcSubset=pid" "$unit"'
check "netlink for getifaddrs(), INET for the server" \
	grep -qE "^RestrictAddressFamilies=.*AF_NETLINK" "$unit"
check "sandboxed: ProtectSystem=strict, ProtectHome, PrivateTmp, NoNewPrivileges, no capabilities, @system-service" \
	eval 'has "ProtectSystem=strict" && has "ProtectHome=yes" && has "PrivateTmp=yes" &&
		has "NoNewPrivileges=yes" && has "CapabilityBoundingSet=" && has "SystemCallFilter=@system-service"'

exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
read -r -a exec_words <<<"$exec_line"
check "ExecStart runs /usr/sbin/amt-enlist" test "${exec_words[0]}" = /usr/sbin/amt-enlist
"$agent" "${exec_words[@]:1}" --state-dir="$tmp/state" --server http://127.0.0.1:9/x \
	--device "$tmp/no-mei0" >"$tmp/exec.out" 2>&1
rc=$?
check "the agent accepts the unit's command line (no AMT here: exit 0 with --no-amt-ok; got $rc)" \
	test "$rc" = 0

echo "== the udev rule"
mkdir -p "$tmp/rules"
install -m 0644 "$rules" "$tmp/rules/60-amt-enlist.rules"
device() { # NAME MAJOR:MINOR: a umockdev description of an MEI device
	printf 'P: /devices/pci0000:00/0000:00:16.0/mei/%s\nE: DEVNAME=/dev/%s\nE: MAJOR=%s\nE: MINOR=%s\nE: SUBSYSTEM=mei\nA: dev=%s\\n\n' \
		"$1" "$1" "${2%:*}" "${2#*:}" "$2"
}
device mei0 242:0 >"$tmp/mei0.umockdev"
device mei1 242:1 >"$tmp/mei1.umockdev"
udev_test() { # NAME ACTION: udevadm test's properties for the emulated device
	unshare -m sh -c '
		mount --bind "$1" /usr/lib/udev/rules.d && mount -t tmpfs none /etc/udev/rules.d &&
		mount -t tmpfs none /run && mount -t tmpfs -o mode=0755 none /dev &&
		mknod -m 0666 /dev/null c 1 3 &&
		exec umockdev-run --device "$2" -- udevadm test --action="$3" "/sys/devices/pci0000:00/0000:00:16.0/mei/$4"
	' sh "$tmp/rules" "$tmp/$1.umockdev" "$2" "$1" 2>&1
}
for action in add change; do
	udev_test mei0 "$action" >"$tmp/udev-mei0-$action.out"
	check "mei0 ($action): TAGS has systemd, SYSTEMD_WANTS=amt-enlist.service" \
		eval 'grep -qx "TAGS=.*:systemd:.*" "$tmp/udev-mei0-$action.out" &&
			grep -qx "SYSTEMD_WANTS=amt-enlist.service" "$tmp/udev-mei0-$action.out"'
done
udev_test mei1 add >"$tmp/udev-mei1.out"
check "mei1: neither (the rule is about mei0, the device the unit binds to)" \
	eval 'grep -q "^DEVPATH=.*/mei1$" "$tmp/udev-mei1.out" && ! grep -q "SYSTEMD_WANTS" "$tmp/udev-mei1.out" &&
		! grep -q "^TAGS=.*systemd" "$tmp/udev-mei1.out"'
check "udevadm reads the rule without complaint" \
	eval '! grep -iE "invalid|error|unknown|failed to parse" "$tmp/udev-mei0-add.out" | grep -i "amt-enlist"'
if ! grep -qx "SYSTEMD_WANTS=amt-enlist.service" "$tmp/udev-mei0-add.out"; then
	sed 's/^/   | /' "$tmp/udev-mei0-add.out"
fi

finish
