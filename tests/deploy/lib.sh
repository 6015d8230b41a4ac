# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2034,SC2154
# Shared by the deployment tests: a check counter, a scratch directory, and the emulator and the
# test server started in the background and stopped at exit. Sourced, after setting the
# variables agent, amtsim and provserver.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcroot=$(cd "$here/../.." && pwd)
profiles="$srcroot/tests/amtsim/profiles"
python=/usr/bin/python3
helper=("$python" "$here/deploytest.py")

# An ASan build of the agent runs under umockdev's preload too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-verify_asan_link_order=0:detect_leaks=1}"

checks=0
failures=0

ok() {
	checks=$((checks + 1))
	echo "ok   $*"
}

not_ok() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "FAIL $*"
}

check() { # DESCRIPTION COMMAND...: ok when COMMAND succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

finish() {
	echo "$((checks - failures)) of $checks checks passed"
	[ "$failures" -eq 0 ]
	exit $?
}

die() {
	echo "FAIL $*"
	exit 1
}

need() { # COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || die "$1 is missing: install Debian's $2"
}

# In the working directory (meson's build tree), as the integration tests do: /tmp may be tmpfs.
tmp=$(mktemp -d "$PWD/deploy-XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

first_line() { # FIFO PATTERN: the first line a starting helper prints, or fail
	local line
	if ! read -r -t 15 line <"$1" || [[ $line != *"$2"* ]]; then
		return 1
	fi
	printf '%s\n' "$line"
}

# start_server DIR [ARGS...]: the test provisioning server; sets srv_url and srv_pid. DIR gets
# record.json, maas.cfg (cloud-init's MAAS datasource with this run's credentials), srv.err.
start_server() {
	local dir=$1 line
	shift
	mkdir -p "$dir"
	mkfifo "$dir/srv.out"
	"$python" "$provserver" --port 0 --record "$dir/record.json" --maas-creds-out "$dir/maas.cfg" \
		"$@" >"$dir/srv.out" 2>"$dir/srv.err" &
	srv_pid=$!
	pids+=("$srv_pid")
	line=$(first_line "$dir/srv.out" "listening on ") || {
		cat "$dir/srv.err"
		die "the test server did not start"
	}
	srv_url=${line##*listening on }
}

# start_sim SOCKET PROFILE [ARGS...]: the emulator serving the agent's unix:SOCKET device; sets
# sim_pid.
start_sim() {
	local sock=$1 profile=$2
	shift 2
	mkfifo "$sock.out"
	"$amtsim" --profile "$profiles/$profile.json" "$@" --listen "$sock" >"$sock.out" 2>"$sock.err" &
	sim_pid=$!
	pids+=("$sim_pid")
	first_line "$sock.out" listening >/dev/null || {
		cat "$sock.err"
		die "amtsim did not start"
	}
	rm -f "$sock.out"
}

stop() { # PID
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# verify_admin PROFILE MACHINE_STATE (--bmc FILE | --state DIR): AMT, as the machine was left,
# accepts the password as admin (WS-Man over the emulator's LMS stand-in) and refuses a wrong one.
verify_admin() {
	local profile=$1 machine=$2 port sock="$tmp/lms-$RANDOM.sock"
	shift 2
	port=$("${helper[@]}" free-port)
	start_sim "$sock" "$profile" --state "$machine" --lms "$port"
	"${helper[@]}" wsman-admin "$port" "$@"
	local rc=$?
	stop "$sim_pid"
	return $rc
}
