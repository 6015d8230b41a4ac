#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# memcheck.sh AGENT AMTSIM [CASE...]: integration cases (tests/integration/cases/CASE.json, or a
# path to a case file such as tests/robust/cases/*.json, whose bounds leave room for valgrind),
# run by tests/integration/run.py over the unix transport, with every agent run under valgrind's
# memcheck. Each agent run must end with zero errors, zero definite leaks and no file descriptor
# open besides 0, 1, 2 (and valgrind's own log); the case itself must pass as usual.
#
# The agent is replaced by a wrapper that execs valgrind on it (the unix transport: under
# umockdev, valgrind and umockdev's LD_PRELOAD do not mix). Exit 77 (skipped) without valgrind
# or with an ASan build. JOBS (default 2) cases run at a time; MEMCHECK_KEEP=1 keeps the logs.
# Debian package: valgrind.
set -u

if [ $# -lt 2 ]; then
	echo "usage: $0 AGENT AMTSIM [CASE...]" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
RUNPY="$HERE/../integration/run.py"
CASEDIR="$HERE/../integration/cases"
AGENT=$(realpath "$1")
AMTSIM=$(realpath "$2")
shift 2
JOBS=${JOBS:-2}

if ! command -v valgrind >/dev/null 2>&1; then
	echo "SKIP: valgrind is not installed (Debian package valgrind)"
	exit 77
fi
if ldd "$AGENT" 2>/dev/null | grep -qE 'lib(a|ub|t)san'; then
	echo "SKIP: $AGENT is built with a sanitizer; valgrind needs a plain build"
	exit 77
fi

# info, activate, enlist --server (plain, HTTPS, retries, a refusal), enlist --maas, TLS inside
# APF, unknown credentials, and faults: firmware reset, truncated reply, no reply (a case of
# ours, after the pending document: the explanation after the failure reads AMT's modes again),
# busy, reset during Setup, refused channel.
CASES=("$@")
if [ ${#CASES[@]} -eq 0 ]; then
	CASES=(info-amt11-pre activate-amt11-pre enlist-server enlist-server-tls
	       enlist-server-retries enlist-server-refuses-pending enlist-maas activate-amt19-tls
	       enlist-unknown-credentials fault-reset fault-truncate "$HERE/cases/no-reply-enlist.json"
	       fault-busy activate-reset-during-setup activate-channel-refused)
fi

# Not /tmp: a tmpfs there would make the state directory non-durable (run.py works in the
# working directory for the same reason).
WORK=$(mktemp -d "$PWD/memcheck-XXXXXX")
cat >"$WORK/agent-under-valgrind" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \\
	--error-exitcode=99 --track-fds=yes --num-callers=30 \\
	--log-file="\$MEMCHECK_LOGDIR/vg.%p.log" "$AGENT" "\$@"
EOF
chmod +x "$WORK/agent-under-valgrind"

# One case: run it, then read every valgrind log it left. Prints a report, exits 0 or 1.
one_case() {
	local file=$1 name bad=0 logs=0 steps log dir
	case "$file" in
	*.json) name=$(basename "$file" .json) ;;
	*) name=$file file="$CASEDIR/$file.json" ;;
	esac
	dir="$WORK/$name"
	mkdir -p "$dir"
	if [ ! -f "$file" ]; then
		echo "FAIL $name: no such case: $file"
		return 1
	fi
	# The case's time bounds are for the agent running natively: under valgrind (and on a
	# loaded machine) each step gets ten times its bound, at least 120 s. Prints the steps.
	steps=$(/usr/bin/python3 - "$file" "$dir/case.json" <<-'PY'
		import json, sys
		case = json.load(open(sys.argv[1]))
		steps = case.get("steps", [case])
		for step in steps:
		    step["max_seconds"] = max(120, 10 * step.get("max_seconds", 30))
		json.dump(case, open(sys.argv[2], "w"))
		print(len(steps))
		PY
	)
	local start=$SECONDS
	if ! (cd "$dir" && MEMCHECK_LOGDIR="$dir" /usr/bin/python3 "$RUNPY" --transport unix \
		--agent "$WORK/agent-under-valgrind" --amtsim "$AMTSIM" "$dir/case.json") \
		>"$dir/run.out" 2>&1; then
		echo "FAIL $name: the case failed under valgrind"
		sed 's/^/    /' "$dir/run.out" | tail -40
		bad=1
	fi
	for log in "$dir"/vg.*.log; do
		[ -e "$log" ] || continue
		logs=$((logs + 1))
		local errors definite fds
		errors=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tr -d ,)
		definite=$(sed -n 's/^==[0-9]*==  *definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tr -d ,)
		# every "Open ... N: WHAT" but 0-2, valgrind's own log file and what the agent
		# inherited (run.py passes 0-2 only)
		fds=$(awk -v self="$log" '
			function flush() { if (pending != "") printf "%s ", pending; pending = "" }
			/<inherited from parent>/ { pending = ""; next }
			/^==[0-9]+== Open / {
				flush()
				line = $0; sub(/^==[0-9]+== Open /, "", line)
				if (!match(line, / [0-9]+(:|$)/)) next
				n = substr(line, RSTART + 1, RLENGTH - 1); sub(/:/, "", n); n += 0
				what = substr(line, RSTART + RLENGTH); sub(/^ /, "", what)
				if (n > 2 && what != self) pending = n "(" line ")"
				next
			}
			/^==[0-9]+== *$/ { flush() }
			END { flush() }' "$log")
		if [ -z "$errors" ]; then
			echo "FAIL $name: $(basename "$log"): no ERROR SUMMARY (valgrind did not finish: killed?)"
			bad=1
		elif [ "$errors" != 0 ]; then
			echo "FAIL $name: $(basename "$log"): $errors errors"
			bad=1
		fi
		if [ -n "$definite" ] && [ "$definite" != 0 ]; then
			echo "FAIL $name: $(basename "$log"): $definite bytes definitely lost"
			bad=1
		fi
		if [ -n "$fds" ]; then
			echo "FAIL $name: $(basename "$log"): file descriptors open at exit: $fds"
			bad=1
		fi
		if ! grep -q 'FILE DESCRIPTORS:' "$log"; then
			echo "FAIL $name: $(basename "$log"): no file descriptor report"
			bad=1
		fi
		if [ "$errors" != 0 ] || [ -n "$fds" ] || { [ -n "$definite" ] && [ "$definite" != 0 ]; }; then
			grep -v -e '^==[0-9]*== *$' "$log" | sed 's/^/    /' | head -80
		fi
	done
	if [ "$logs" -lt "$steps" ]; then
		echo "FAIL $name: $logs valgrind logs for $steps agent runs"
		bad=1
	fi
	if [ $bad = 0 ]; then
		echo "ok   $name: $logs agent runs, 0 errors, 0 definite leaks, no fd left open ($((SECONDS - start)) s)"
		[ "${MEMCHECK_KEEP:-0}" = 1 ] || rm -rf "$dir"
	fi
	return $bad
}
export -f one_case
export WORK CASEDIR RUNPY AMTSIM

echo "memcheck: ${#CASES[@]} cases, $JOBS at a time, valgrind $(valgrind --version | sed 's/valgrind-//')"
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
printf '%s\n' "${CASES[@]}" |
	xargs -P "$JOBS" -I{} bash -c 'n=$(basename "$1" .json); one_case "$1" >"$WORK/$n.report" 2>&1; echo $? >"$WORK/$n.rc"' _ {}
failed=0
for c in "${CASES[@]}"; do
	n=$(basename "$c" .json)
	cat "$WORK/$n.report"
	[ "$(cat "$WORK/$n.rc" 2>/dev/null)" = 0 ] || failed=$((failed + 1))
done
echo "memcheck: $((${#CASES[@]} - failed)) passed, $failed failed"
if [ $failed = 0 ] && [ "${MEMCHECK_KEEP:-0}" != 1 ]; then
	rm -rf "$WORK"
else
	echo "logs kept in $WORK"
fi
[ $failed = 0 ]
