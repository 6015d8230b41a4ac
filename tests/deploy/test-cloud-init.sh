#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The cloud-init example (scripts/cloud-init/amt-enlist.yaml): valid for cloud-init's own schema
# (Debian 12's cloud-init 22.4: `cloud-init schema --config-file FILE`; its --annotate crashes on
# some errors, so it is not used), with a control that a broken config is refused (the schema
# check needs python3-jsonschema, which cloud-init depends on); the /etc/amt-enlist.conf it
# writes (0600) uses only long options that `amt-enlist --help` lists, as "key = value", with
# yes/no booleans and a hand-off; runcmd runs amt-enlist.
#
# Usage: test-cloud-init.sh AMT_ENLIST AMTSIM PROVSERVER
# Debian packages: cloud-init, python3, python3-yaml.

# Checks are often "eval '...'": expanded when the check runs, hence single quotes.
# shellcheck disable=SC2016,SC2317,SC2034

agent=$(realpath "$1")
amtsim=$(realpath "$2")
provserver=$(realpath "$3")
. "$(dirname "$0")/lib.sh"

example="$srcroot/scripts/cloud-init/amt-enlist.yaml"
need cloud-init cloud-init

check "the first line is #cloud-config" eval '[ "$(head -n 1 "$example")" = "#cloud-config" ]'

cloud-init schema --config-file "$example" >"$tmp/schema.out" 2>&1
rc=$?
check "cloud-init schema: valid (exit $rc: $(tr '\n' ' ' <"$tmp/schema.out"))" \
	eval '[ "$rc" = 0 ] && grep -q "^Valid cloud-config" "$tmp/schema.out"'

printf '#cloud-config\nwrite_files:\n  - path: 3\n    bogus: 1\nruncmd: 5\n' >"$tmp/broken.yaml"
check "control: cloud-init schema refuses a broken config" \
	eval '! cloud-init schema --config-file "$tmp/broken.yaml" >/dev/null 2>&1'

"$agent" --help >"$tmp/help.txt" 2>&1 || die "amt-enlist --help failed"
check "/etc/amt-enlist.conf: long options of amt-enlist, key = value, yes/no, a hand-off, 0600" \
	"${helper[@]}" conf-keys "$example" "$tmp/help.txt"

check "runcmd runs amt-enlist" "$python" -c '
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
cmds = [c if isinstance(c, list) else c.split() for c in cfg.get("runcmd", [])]
sys.exit(not any(c and c[0] in ("amt-enlist", "/usr/sbin/amt-enlist") for c in cmds))' "$example"

finish
