#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The MAAS commissioning script (scripts/maas/50-amt-enlist), run the way MAAS's runner
# (maas_run_remote_scripts.py, run_script()) runs a serial commissioning script: executed
# directly (its shebang), stdin /dev/null, stdout and stderr to files, and the environment it
# sets: BMC_CONFIG_PATH (config/bmc-config.yaml beside the scripts, not existing yet),
# RESULT_PATH, OUTPUT_COMBINED_PATH, OUTPUT_STDOUT_PATH, OUTPUT_STDERR_PATH, DOWNLOAD_PATH,
# MAAS_BASE_URL, MAAS_RESOURCES_FILE, MAAS_STORAGE_CONFIG_FILE, RUNTIME, HAS_STARTED. MAAS's
# credentials file comes from the test server (--maas-creds-out) through AMT_ENLIST_MAAS_CONFIG;
# the machine is the emulator: through a real /dev/mei0 path (amtsim --run, umockdev) or its
# socket (AMT_ENLIST_DEVICE). After an exit 0 with the file written, the runner would post the
# file's YAML as the power settings: it must equal what the agent's own signal left in MAAS, and
# AMT must accept the password.
#
# Usage: test-maas-script.sh AMT_ENLIST AMTSIM PROVSERVER
# Debian packages: python3, python3-yaml, python3-oauthlib, umockdev, util-linux (unshare); root.

# Checks are often "eval '...'": expanded when the check runs, hence single quotes.
# shellcheck disable=SC2016,SC2317,SC2034

agent=$(realpath "$1")
amtsim=$(realpath "$2")
provserver=$(realpath "$3")
. "$(dirname "$0")/lib.sh"

script="$srcroot/scripts/maas/50-amt-enlist"
[ "$(id -u)" = 0 ] || die "needs root (a tmpfs state directory in a private mount namespace)"

echo "== the script and its metadata"
check "bash -n" bash -n "$script"
check "the MAAS 1.0 metadata, read as MAAS's ScriptForm reads it, has what a bmc-config script needs" \
	"${helper[@]}" maas-header "$script"

# PATH for the script: the agent from the build as amt-enlist, and stubs for what would touch
# the host (modprobe, udevadm).
bin="$tmp/bin"
mkdir -p "$bin"
ln -s "$agent" "$bin/amt-enlist"
printf '#!/bin/sh\nexit 0\n' >"$bin/modprobe"
printf '#!/bin/sh\nexit 0\n' >"$bin/udevadm"
chmod 755 "$bin/modprobe" "$bin/udevadm"

start_server "$tmp/srv" --maas-creds-style maas
url=$srv_url
cfg="$tmp/srv/maas.cfg"

# run_like_maas NAME [VAR=VALUE...] [-- PREFIX...]: the script in a fresh runner layout; sets
# rc, base (the layout), out (stdout), err (stderr), bmc (BMC_CONFIG_PATH), result (RESULT_PATH).
run_like_maas() {
	local name=$1 envs=() prefix=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift && prefix=("$@")
	base="$tmp/maas-$name"
	mkdir -p "$base/scripts" "$base/config" "$base/out/50-amt-enlist" "$base/scripts/downloads/50-amt-enlist"
	install -m 0755 "$script" "$base/scripts/50-amt-enlist"
	: >"$base/resources.json"
	local o="$base/out/50-amt-enlist"
	out="$o/50-amt-enlist.out" err="$o/50-amt-enlist.err" result="$o/50-amt-enlist.yaml"
	bmc="$base/config/bmc-config.yaml"
	env PATH="$bin:$PATH" DEBIAN_FRONTEND=noninteractive \
		MAAS_BASE_URL="$url" MAAS_RESOURCES_FILE="$base/resources.json" \
		MAAS_STORAGE_CONFIG_FILE=/storage-config.json \
		OUTPUT_COMBINED_PATH="$o/50-amt-enlist" OUTPUT_STDOUT_PATH="$out" OUTPUT_STDERR_PATH="$err" \
		RESULT_PATH="$result" DOWNLOAD_PATH="$base/scripts/downloads/50-amt-enlist" RUNTIME=600 \
		HAS_STARTED=False BMC_CONFIG_PATH="$bmc" \
		AMT_ENLIST_MAAS_CONFIG="$cfg" AMT_ENLIST_STATE_DIR="$base/state" "${envs[@]}" \
		"${prefix[@]}" "$base/scripts/50-amt-enlist" </dev/null >"$out" 2>"$err"
	rc=$?
	cat "$out" "$err" >"$o/50-amt-enlist"
}
show() { sed 's/^/   | /' "$out" "$err"; }
untouched() { # PROFILE MACHINE_STATE: AMT is still unprovisioned (control mode none)
	"$amtsim" --profile "$profiles/$1.json" --state "$2" --run -- "$agent" info --json |
		"$python" -c 'import json, sys; sys.exit(json.load(sys.stdin)["control_mode"] != "none")'
}
no_password_in_output() { "${helper[@]}" state-passwords-absent "$base/state" "$out" "$err"; }
skipped_result() { grep -qx 'status: skipped' "$result"; }

echo "== commissioning: AMT 11, not provisioned, through /dev/mei0 (umockdev)"
run_like_maas commission -- "$amtsim" --profile "$profiles/amt11-pre.json" \
	--state "$tmp/machine-commission.json" --run --
check "exit 0" test "$rc" = 0
check "the bmc-config YAML (0600) equals the power settings MAAS's node holds (power_type amt)" \
	"${helper[@]}" bmc-matches-maas "$bmc" "$url"
check "AMT accepts the bmc-config's password as admin, and refuses a wrong one" \
	verify_admin amt11-pre "$tmp/machine-commission.json" --bmc "$bmc"
check "the password reached MAAS before AMT was set to it (a signal before the final one)" \
	eval '"$python" -c "import json,sys; r=json.load(open(sys.argv[1])); s=[x for x in r[\"maas\"][\"signals\"] if x[\"result\"]==\"stored\"]; sys.exit(len(s) < 2)" "$tmp/srv/record.json"'
check "no password in the script's output" no_password_in_output
check "no skipped result" eval '! [ -e "$result" ]'
[ "$rc" = 0 ] || show

echo "== a second run in the same boot: the file exists, AMT is left alone"
before=$(sha256sum "$bmc")
"${helper[@]}" reset "$url" || die "cannot reset the test server"
run_like_maas commission -- "$amtsim" --profile "$profiles/amt11-pre.json" \
	--state "$tmp/machine-commission.json" --run --
check "exit 0, result skipped" eval '[ "$rc" = 0 ] && skipped_result'
check "bmc-config unchanged, nothing sent to MAAS" \
	eval '[ "$(sha256sum "$bmc")" = "$before" ] && "${helper[@]}" server-nothing "$url"'

echo "== a machine with an ME but no AMT (non-vPro), through the emulator's socket"
"${helper[@]}" reset "$url" || die "cannot reset the test server"
start_sim "$tmp/nonvpro.sock" non-vpro
run_like_maas nonvpro AMT_ENLIST_DEVICE="unix:$tmp/nonvpro.sock"
stop "$sim_pid"
check "exit 0" test "$rc" = 0
check "no bmc-config written, nothing sent to MAAS" \
	eval '! [ -e "$bmc" ] && "${helper[@]}" server-nothing "$url"'
[ "$rc" = 0 ] || show

echo "== a machine without an ME (a VM: no MEI device)"
run_like_maas nome AMT_ENLIST_DEVICE="$tmp/no-such-mei0"
check "exit 0, no bmc-config" eval '[ "$rc" = 0 ] && ! [ -e "$bmc" ]'
[ "$rc" = 0 ] || show

echo "== enlistment: MAAS's config without a token, /run on tmpfs"
"$python" - "$url" "$tmp/enlist.cfg" <<'EOF' || die "cannot fetch the enlistment config"
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/cloud-config/enlist", timeout=10) as r:
    open(sys.argv[2], "wb").write(r.read())
EOF
mkdir -p "$tmp/tmpfs-run"
run_like_maas enlist AMT_ENLIST_MAAS_CONFIG="$tmp/enlist.cfg" \
	AMT_ENLIST_STATE_DIR="$tmp/tmpfs-run/amt-enlist" -- \
	unshare -m sh -c 'mount -t tmpfs amt-enlist-test "$0" && exec "$@"' "$tmp/tmpfs-run" \
	"$amtsim" --profile "$profiles/amt11-pre.json" --state "$tmp/machine-enlist.json" --run --
check "exit 0, result skipped" eval '[ "$rc" = 0 ] && skipped_result'
check "says that AMT is left for commissioning" grep -q "activated when the machine is commissioned" "$out"
check "no bmc-config, nothing sent to MAAS" eval '! [ -e "$bmc" ] && "${helper[@]}" server-nothing "$url"'
check "AMT is untouched (control mode none)" untouched amt11-pre "$tmp/machine-enlist.json"
[ "$rc" = 0 ] || show

echo "== another script configured a BMC already"
run_like_maas otherbmc -- sh -c 'printf "power_type: ipmi\n" >"$BMC_CONFIG_PATH" && exec "$@"' sh \
	"$amtsim" --profile "$profiles/amt11-pre.json" --state "$tmp/machine-otherbmc.json" --run --
check "exit 0, result skipped" eval '[ "$rc" = 0 ] && skipped_result'
check "the other BMC's file is left alone, nothing sent to MAAS" \
	eval '[ "$(cat "$bmc")" = "power_type: ipmi" ] && "${helper[@]}" server-nothing "$url"'
check "AMT is untouched (control mode none)" untouched amt11-pre "$tmp/machine-otherbmc.json"

echo "== AMT provisioned with a password not held here: the script fails, MAAS is left alone"
run_like_maas unknown -- "$amtsim" --profile "$profiles/amt16-ccm.json" --run --
check "exit 6 (the agent's code)" test "$rc" = 6
check "the reason is in the output" grep -q "password this machine does not hold" "$err"
check "no bmc-config, nothing sent to MAAS" eval '! [ -e "$bmc" ] && "${helper[@]}" server-nothing "$url"'

echo "== which hand-offs the script asks for (a stub agent that prints its arguments)"
stub="$tmp/stub-bin"
mkdir -p "$stub"
printf '#!/bin/sh\necho "args: $*"\n' >"$stub/amt-enlist"
chmod 755 "$stub/amt-enlist"
cp "$bin/modprobe" "$bin/udevadm" "$stub/"
asks() { # NAME CONFIG WANT-MAAS(yes|no)
	bin_saved=$bin
	bin=$stub
	run_like_maas "$1" AMT_ENLIST_MAAS_CONFIG="$2"
	bin=$bin_saved
	local line
	line=$(grep '^args: ' "$out")
	[ "$rc" = 0 ] || return 1
	[[ $line == *"--no-amt-ok"* && $line == *"--bmc-config $bmc"* && $line == *" enlist" ]] || return 1
	if [ "$3" = yes ]; then [[ $line == *"--maas=$2"* ]]; else [[ $line != *"--maas"* ]]; fi
}
"$python" - "$tmp/block.cfg" "$tmp/flow.cfg" "$tmp/empty-token.cfg" <<'EOF'
import sys
open(sys.argv[1], "w").write("datasource:\n  MAAS:\n    metadata_url: http://192.0.2.1:5248/MAAS/metadata/\n"
                             "    consumer_key: ck\n    token_key: tk\n    token_secret: ts\n")
open(sys.argv[2], "w").write("#cloud-config\ndatasource: {MAAS: {consumer_key: ck, "
                             "metadata_url: 'http://192.0.2.1:5248/MAAS/metadata/', "
                             "token_key: tk, token_secret: 'ts'}}\n")
open(sys.argv[3], "w").write("datasource:\n  MAAS:\n    metadata_url: http://192.0.2.1:5248/MAAS/metadata/\n"
                             "    token_secret: ''\n")
EOF
check "block-style credentials: --maas=CFG and --bmc-config" asks block "$tmp/block.cfg" yes
check "flow-style credentials (MAAS's own): --maas=CFG and --bmc-config" asks flow "$tmp/flow.cfg" yes
check "the test server's credentials: --maas=CFG" asks server "$cfg" yes
check "enlistment config (metadata_url only): --bmc-config alone" asks enlistcfg "$tmp/enlist.cfg" no
check "an empty token: --bmc-config alone" asks emptytoken "$tmp/empty-token.cfg" no
check "no config file: --bmc-config alone" asks nocfg "$tmp/none.cfg" no

finish
