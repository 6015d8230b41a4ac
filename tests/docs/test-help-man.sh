#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The man page and the bash completion cannot drift from the program:
#   - every command and every option that "amt-enlist --help" prints is documented in
#     amt-enlist(8) (a .TP entry under COMMANDS or OPTIONS), and the page names no option,
#     command or exit code that --help does not know; its .TH footer carries --version;
#   - the bash completion offers exactly those commands and options, and completes file names
#     for FILE/PATH values, directories for DIR values;
#   - groff (and man, when installed) format the page without a warning.
#
# Usage: test-help-man.sh AGENT MANPAGE COMPLETION
# Needs bash and groff (Debian: groff-base). Exit 0 when all is well, 1 with every problem named.
set -uo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 AGENT MANPAGE COMPLETION" >&2
	exit 2
fi
agent=$(realpath -- "$1") page=$(realpath -- "$2") completion=$(realpath -- "$3")
problems=0
problem() {
	echo "FAIL: $*"
	problems=$((problems + 1))
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- what --help says ----

if ! "$agent" --help >"$tmp/help" 2>"$tmp/help.err"; then
	echo "FAIL: $agent --help failed:"
	cat "$tmp/help.err"
	exit 1
fi
version=$("$agent" --version) || {
	echo "FAIL: $agent --version failed"
	exit 1
}

# "  -d, --device PATH   ..." / "      --json   ..." / "      --maas[=CFG]   ..."; a long
# option with its value may fill the column (one space before the help) or wrap the help to the
# next line. -> one line per option: NAME SHORT METAVAR ("-" when none)
sed -n '/^Options:/,/^$/p' "$tmp/help" |
	sed -nE 's/^ +(-([A-Za-z]), )?--([a-z0-9][a-z0-9-]*)(\[=([A-Z]+)\]| ([A-Z]+))?( .*)?$/\3|\2|\5\6/p' |
	awk -F'|' '{ print $1, ($2 == "" ? "-" : $2), ($3 == "" ? "-" : $3) }' >"$tmp/options"
cut -d' ' -f1 "$tmp/options" | sort -u >"$tmp/help-long"
awk '$2 != "-" { print "-" $2 }' "$tmp/options" | sort -u >"$tmp/help-short"
sed -n '/^Commands:/,/^$/p' "$tmp/help" | sed -nE 's/^  ([a-z][a-z-]*) .*/\1/p' |
	sort -u >"$tmp/help-commands"
# "Exit codes: 0 ok, 1 unexpected failure, ..., 11 AMT has no address."
sed -n '/^Exit codes:/,/^See /p' "$tmp/help" | tr '\n' ' ' | sed 's/^Exit codes: *//' |
	grep -oE '(^|, *)[0-9]+ ' | grep -oE '[0-9]+' | sort -n -u >"$tmp/help-exit"

n_long=$(wc -l <"$tmp/help-long")
n_commands=$(wc -l <"$tmp/help-commands")
n_all_lines=$(sed -n '/^Options:/,/^$/p' "$tmp/help" | grep -cE '^ +-')
if [ "$n_long" -lt 5 ] || [ "$n_commands" -lt 1 ] || [ "$n_long" -ne "$n_all_lines" ]; then
	echo "FAIL: cannot read the options ($n_long of $n_all_lines lines) or commands" \
		"($n_commands) from --help; has its layout changed?"
	cat "$tmp/help"
	exit 1
fi
echo "--help: $n_long options, $n_commands commands, $(wc -l <"$tmp/help-exit") exit codes"

# ---- the man page ----

if [ ! -r "$page" ]; then
	echo "FAIL: no man page at $page"
	exit 1
fi
# Roff source without comments, with \- as -, \e as \.
grep -v '^\.\\"' "$page" | sed -e 's/\\-/-/g' -e 's/\\e/\\/g' >"$tmp/page"

# The first line after each .TP in a section: its entries.
tp_heads() { # SECTION
	awk -v sec="$1" '
		/^\.SH / { insec = ($0 ~ "^\\.SH \"?" sec "\"?$"); next }
		insec && /^\.TP/ { want = 1; next }
		insec && want { print; want = 0 }
	' "$tmp/page"
}

tp_heads OPTIONS >"$tmp/man-option-heads"
grep -oE -- '--[a-z0-9][a-z0-9-]*' "$tmp/man-option-heads" | sort -u >"$tmp/man-long"
grep -oE -- '(^|[ "])-[A-Za-z]([ ,"]|$)' "$tmp/man-option-heads" | grep -oE -- '-[A-Za-z]' |
	sort -u >"$tmp/man-short"
tp_heads COMMANDS | sed -nE 's/^\.B +([a-z][a-z-]*)$/\1/p' | sort -u >"$tmp/man-commands"
tp_heads "EXIT STATUS" | sed -nE 's/^\.B +([0-9]+)$/\1/p' | sort -n -u >"$tmp/man-exit"
grep -oE -- '--[a-z0-9][a-z0-9-]*' "$tmp/page" | sort -u >"$tmp/man-mentioned"

while read -r o; do
	grep -qxF -- "--$o" "$tmp/man-long" || problem "man page: --$o (in --help) has no entry under OPTIONS"
done <"$tmp/help-long"
while read -r o; do
	grep -qxF -- "${o#--}" "$tmp/help-long" ||
		problem "man page: $o is documented under OPTIONS but --help does not know it"
done <"$tmp/man-long"
while read -r o; do
	grep -qxF -- "${o#--}" "$tmp/help-long" ||
		problem "man page: mentions $o, which --help does not know"
done <"$tmp/man-mentioned"
while read -r o; do
	grep -qxF -- "$o" "$tmp/man-short" || problem "man page: short option $o has no entry under OPTIONS"
done <"$tmp/help-short"
while read -r o; do
	grep -qxF -- "$o" "$tmp/help-short" ||
		problem "man page: short option $o is documented but --help does not know it"
done <"$tmp/man-short"
if ! diff -u --label help-commands --label man-commands "$tmp/help-commands" \
	"$tmp/man-commands" >"$tmp/diff"; then
	problem "man page: the COMMANDS entries differ from --help:"
	cat "$tmp/diff"
fi
if ! diff -u --label help-exit-codes --label man-exit-codes "$tmp/help-exit" "$tmp/man-exit" \
	>"$tmp/diff"; then
	problem "man page: the EXIT STATUS entries differ from the exit codes --help lists:"
	cat "$tmp/diff"
fi
th_version=$(sed -nE 's/^\.TH .*"(amt-enlist [^"]*)".*/\1/p' "$tmp/page" | head -n1)
[ "$th_version" = "$version" ] ||
	problem "man page: .TH says '$th_version', the program says '$version'"

# Formatting: no warning from groff, nor from man as lintian runs it.
if ! command -v groff >/dev/null; then
	problem "groff is not installed (Debian: groff-base): cannot check the page's formatting"
else
	out=$(LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$page" 2>&1)
	[ -z "$out" ] || problem "groff -man -ww warns:"$'\n'"$out"
fi
if command -v man >/dev/null; then
	out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
		man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
	[ -z "$out" ] || problem "man --warnings warns:"$'\n'"$out"
fi

# ---- the bash completion ----

if [ ! -r "$completion" ]; then
	echo "FAIL: no bash completion at $completion"
	exit 1
fi
mkdir -p "$tmp/cwd/subdir"
: >"$tmp/cwd/ca.pem"

# complete LINE: the candidates, one a line, that the completion gives with the cursor at the
# end of "amt-enlist LINE", as bash would call it (its default COMP_WORDBREAKS).
complete_line() {
	(cd "$tmp/cwd" && bash --norc --noprofile -c '
		source "$1" || exit 1
		complete -p amt-enlist >/dev/null || { echo "no complete -F for amt-enlist" >&2; exit 1; }
		COMP_WORDBREAKS=$'"'"' \t\n"\'"'"'@><=;|&(:'"'"'
		COMP_LINE="amt-enlist $2"
		COMP_POINT=${#COMP_LINE}
		COMP_WORDS=(amt-enlist $2)
		COMP_CWORD=${#COMP_WORDS[@]}
		_amt_enlist amt-enlist "" ""
		printf "%s\n" "${COMPREPLY[@]}"
	' complete "$completion" "$1")
}

complete_line "--" >"$tmp/comp-long" || problem "completion: sourcing or calling it failed"
sed -n 's/^--//p' "$tmp/comp-long" | sort -u >"$tmp/comp-long-names"
while read -r o; do
	grep -qxF -- "$o" "$tmp/comp-long-names" || problem "completion: does not offer --$o"
done <"$tmp/help-long"
while read -r o; do
	grep -qxF -- "$o" "$tmp/help-long" || problem "completion: offers --$o, which --help does not know"
done <"$tmp/comp-long-names"

complete_line "-" | grep -E '^-[A-Za-z]$' | sort -u >"$tmp/comp-short"
if ! diff -u --label help-short --label completion-short "$tmp/help-short" "$tmp/comp-short" \
	>"$tmp/diff"; then
	problem "completion: the short options differ from --help:"
	cat "$tmp/diff"
fi

complete_line "" | sort -u >"$tmp/comp-commands"
if ! diff -u --label help-commands --label completion-commands "$tmp/help-commands" \
	"$tmp/comp-commands" >"$tmp/diff"; then
	problem "completion: the commands offered differ from --help:"
	cat "$tmp/diff"
fi
first=$(head -n1 "$tmp/help-commands")
[ -z "$(complete_line "$first ")" ] || problem "completion: offers a second command after '$first'"
[ -n "$(complete_line "--json ")" ] || problem "completion: offers no command after --json"

# Values: files for FILE/PATH/CFG, directories for DIR, from the metavar --help shows.
while read -r name short metavar; do
	case $metavar in
	FILE | PATH | CFG) want=ca.pem prefix=c ;;
	DIR) want=subdir prefix=s ;;
	*) continue ;;
	esac
	if [ "$metavar" = CFG ]; then # --maas[=CFG]: the value only after '='
		got=$(complete_line "--$name=$prefix")
	else
		got=$(complete_line "--$name $prefix")
		grep -qxF "$want" <<<"$got" || got=
		[ -z "$got" ] || got=$(complete_line "--$name=$prefix")
	fi
	grep -qxF "$want" <<<"$got" ||
		problem "completion: --$name $metavar does not complete '$prefix' to '$want' (got: ${got//$'\n'/ })"
	if [ "$short" != - ]; then
		got=$(complete_line "-$short $prefix")
		grep -qxF "$want" <<<"$got" ||
			problem "completion: -$short $metavar does not complete '$prefix' to '$want'"
	fi
done <"$tmp/options"

if [ "$problems" -ne 0 ]; then
	echo "$problems problem(s)"
	exit 1
fi
echo "man page and bash completion match --help"
