#!/bin/sh
# The launcher: build/preload/mapalloc-run runs real programs on
# mapalloc with the same output as without it, prints the statistics at exit
# when asked (text or JSON, on stderr, also for coreutils, which close
# stderr at exit), passes options, keeps an existing LD_PRELOAD, and answers
# a bad command line with a usage message and exit status 2.
#
# Usage: launcher_test.sh MAPALLOC_RUN MARKER_LIB CASE...
#   MARKER_LIB  a small shared library to stand for someone else's LD_PRELOAD
# Exit status 0 all passed, 1 a failure, 77 (skip) when the launcher is missing.
set -u

RUN=${1:-}
MARKER=${2:-}
[ $# -ge 2 ] && shift 2
if [ -z "$RUN" ] || [ ! -x "$RUN" ]; then
    echo "launcher not found: '$RUN'"
    exit 77
fi
case "$RUN" in /*) ;; *) RUN="$(pwd)/$RUN" ;; esac
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3 || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mapalloc-run.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
# Options from the environment of the test run would change what is printed.
unset MAPALLOC_OPTIONS LD_PRELOAD

fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}

# same NAME CMD...: CMD's stdout and exit status, plainly and through the
# launcher, must be identical.
same() {
    name=$1
    shift
    "$@" >"$tmp/plain.out" 2>"$tmp/plain.err"
    plain=$?
    "$RUN" -- "$@" >"$tmp/run.out" 2>"$tmp/run.err"
    run=$?
    if [ "$plain" -ne "$run" ] || ! cmp -s "$tmp/plain.out" "$tmp/run.out"; then
        fail "$name: exit $plain plainly, $run through mapalloc-run; output:"
        diff "$tmp/plain.out" "$tmp/run.out" | head -10 | sed 's/^/  /'
        head -c 1000 "$tmp/run.err" | sed 's/^/  /'
        return
    fi
    [ "$plain" -eq 0 ] || { fail "$name: exit $plain with and without the launcher"; return; }
    echo "ok   $name ($(wc -c <"$tmp/plain.out") bytes, identical)"
}

# A JSON object in FILE (one line, whatever else the file holds), with the
# summary, "classes", "heaps" and "arenas": parsed by python3's json module.
valid_json() {
    "$PYTHON" - "$1" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
assert len(lines) == 1, "%d JSON lines" % len(lines)
d = json.loads(lines[0])
for k in ("live", "mapped", "peak_mapped", "resident", "mmap_calls", "munmap_calls",
          "madvise_calls", "huge_fallbacks", "classes", "heaps", "arenas"):
    assert k in d, "no " + k
assert d["mmap_calls"] > 0, "no mmap call: was mapalloc the allocator?"
assert sum(c["blocks"] * c["size"] for c in d["classes"]) <= d["live"]
EOF
}

make_input() {
    [ -f "$tmp/input.txt" ] && return
    awk 'BEGIN { x = 7; for (i = 0; i < 300000; i++) { x = (x * 1103515245 + 12345) % 2147483648;
         printf "%d %08x row-%d %s\n", x % 50000, x, i, substr("zyxwvutsrqponmlkjihgfedcba", x % 26 + 1, x % 13) } }' \
        >"$tmp/input.txt"
}

case_programs() {
    make_input
    same sort sort "$tmp/input.txt"
    same sort_key sort -k2,2 -S 1M -T "$tmp" "$tmp/input.txt"
    same wc wc "$tmp/input.txt"
    if [ -n "$PYTHON" ]; then
        prog='import json, random
r = random.Random(6)
d = {}
for i in range(100000):
    d.setdefault(r.randrange(20000), []).append(str(i) * (i % 7))
print(json.dumps(sorted((k, len(v)) for k, v in d.items())[:300]))
print(sum(len("".join(v)) for v in d.values()))'
        same python "$PYTHON" -c "$prog"
        same python_malloc env PYTHONMALLOC=malloc "$PYTHON" -c "$prog"
    fi
    # Arguments with spaces and an exit status pass through unchanged.
    "$RUN" -- printf '%s|' "a b" "" "c" >"$tmp/args.out"
    [ "$(cat "$tmp/args.out")" = "a b||c|" ] || fail "arguments: got '$(cat "$tmp/args.out")'"
    "$RUN" -- sh -c 'exit 3'
    rc=$?
    [ "$rc" -eq 3 ] || fail "exit status: 3 expected, got $rc"
    # Really on mapalloc, also from another directory, also after a cd.
    (cd / && "$RUN" -- sh -c 'cd /tmp && cat /proc/self/maps') >"$tmp/maps" 2>&1
    grep -q 'libmapalloc-preload' "$tmp/maps" || fail "mapalloc is not in the launched process"
    echo "ok   arguments, exit status, preload present"
}

# --stats: the text report on stderr at exit, stdout untouched.
case_stats() {
    make_input
    sort "$tmp/input.txt" >"$tmp/plain.out"
    for prog in sort cat; do
        "$RUN" --stats -- "$prog" "$tmp/input.txt" >"$tmp/out" 2>"$tmp/err"
        rc=$?
        if [ "$prog" = sort ] && ! cmp -s "$tmp/out" "$tmp/plain.out"; then
            fail "--stats changes sort's output"
        fi
        if [ "$rc" -ne 0 ] || ! grep -Eq '^mapalloc: live +[0-9.]+ (B|[KMGTPE]iB) in [0-9]+ blocks?,' "$tmp/err" ||
            ! grep -Eq '^mapalloc: calls +mmap [1-9][0-9]*,' "$tmp/err" ||
            ! grep -q '^mapalloc: class ' "$tmp/err" || grep -q 'mapalloc:' "$tmp/out"; then
            fail "--stats -- $prog: exit $rc, stderr:"
            head -c 1500 "$tmp/err" | sed 's/^/  /'
            continue
        fi
        echo "ok   --stats -- $prog ($(grep -c '^mapalloc:' "$tmp/err") lines on stderr)"
    done
    # Even when the program closes stderr itself before exiting (bash: dash
    # leaves with _exit, which runs no exit handler).
    if command -v bash >/dev/null; then
        "$RUN" --stats -- bash -c 'x=$(ls /); exec 2>&-; exit 0' 2>"$tmp/err"
        grep -q '^mapalloc: live ' "$tmp/err" || fail "--stats -- bash closing stderr: nothing printed"
    fi
    if [ -n "$PYTHON" ]; then
        "$RUN" --stats -- "$PYTHON" -c 'import os; os.close(2)' 2>"$tmp/err"
        grep -q '^mapalloc: live ' "$tmp/err" || fail "--stats -- python3 closing fd 2: nothing printed"
    fi
}

case_stats_json() {
    [ -n "$PYTHON" ] || { echo "skip stats_json: no python3"; return; }
    make_input
    "$RUN" --stats=json -- sort "$tmp/input.txt" >"$tmp/out" 2>"$tmp/err"
    if ! valid_json "$tmp/err"; then
        fail "--stats=json -- sort: stderr is not the JSON report:"
        head -c 1500 "$tmp/err" | sed 's/^/  /'
    else
        echo "ok   --stats=json -- sort"
    fi
    "$RUN" --stats=json -- "$PYTHON" -c 'x = [str(i) * 3 for i in range(200000)]' 2>"$tmp/err"
    if ! valid_json "$tmp/err" || [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
        fail "--stats=json -- python3: stderr:"
        head -c 1500 "$tmp/err" | sed 's/^/  /'
    else
        echo "ok   --stats=json -- python3 (stderr is one JSON object)"
    fi
}

# --options LIST and --options=LIST add to MAPALLOC_OPTIONS.
case_options() {
    "$RUN" --options verbose=1,decay_ms=77 -- cat /dev/null 2>"$tmp/err"
    if ! grep -q '^mapalloc: options:.* verbose=1.* decay_ms=77' "$tmp/err" ||
        [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
        fail "--options verbose=1,decay_ms=77: stderr:"
        sed 's/^/  /' "$tmp/err"
    fi
    MAPALLOC_OPTIONS=large_cache=3 "$RUN" --options=verbose=1 --options secure=1 -- cat /dev/null 2>"$tmp/err"
    if ! grep -q '^mapalloc: options:.* verbose=1.* large_cache=3.* secure=1' "$tmp/err"; then
        fail "MAPALLOC_OPTIONS=large_cache=3 + --options=verbose=1 --options secure=1:"
        sed 's/^/  /' "$tmp/err"
    fi
    # Options and --stats together; a bad option is mapalloc's warning.
    "$RUN" --stats --options verbose=1,bogus=2 -- cat /dev/null 2>"$tmp/err"
    grep -q "^mapalloc: warning: unknown option 'bogus'" "$tmp/err" &&
        grep -q '^mapalloc: options:.* stats=1' "$tmp/err" &&
        grep -q '^mapalloc: live ' "$tmp/err" || {
        fail "--stats --options verbose=1,bogus=2:"
        sed 's/^/  /' "$tmp/err"
    }
    echo "ok   options"
}

usage_error() {
    "$RUN" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    if [ "$rc" -ne 2 ] || ! grep -q 'usage: mapalloc-run' "$tmp/err" || [ -s "$tmp/out" ]; then
        fail "mapalloc-run $*: exit $rc (want 2 and a usage line on stderr); stderr:"
        sed 's/^/  /' "$tmp/err"
    fi
}

case_usage() {
    usage_error
    usage_error --
    usage_error --stats
    usage_error --options verbose=1
    usage_error --options
    usage_error --bogus -- true
    usage_error -x true
    usage_error --stats=xml -- true
    usage_error --help
    # A program that does not exist: the shell's "not found", 127.
    "$RUN" -- /nonexistent/program 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 127 ] || fail "missing program: exit $rc, want 127"
    echo "ok   usage errors"
}

# An LD_PRELOAD already set stays, after mapalloc's library (whose malloc
# must come first).
case_preload_kept() {
    [ -f "$MARKER" ] || { fail "marker library '$MARKER' missing"; return; }
    LD_PRELOAD="$MARKER" "$RUN" -- sh -c 'echo "$LD_PRELOAD"; cat /proc/self/maps' >"$tmp/out" 2>&1
    first=$(head -n 1 "$tmp/out")
    case "$first" in
    */libmapalloc-preload.so:"$MARKER") ;;
    *) fail "LD_PRELOAD is '$first', want <mapalloc>:$MARKER" ;;
    esac
    grep -q 'libmapalloc-preload' "$tmp/out" && grep -q "$(basename "$MARKER")" "$tmp/out" ||
        fail "both libraries are not mapped in the launched process"
    echo "ok   existing LD_PRELOAD kept"
}

# A program that never calls malloc (coreutils' true): mapalloc starts all
# the same, and --stats and verbose=1 print their lines.
case_no_alloc() {
    "$RUN" --stats --options verbose=1 -- true 2>"$tmp/err"
    grep -q '^mapalloc: options:' "$tmp/err" && grep -q '^mapalloc: live ' "$tmp/err" ||
        fail "mapalloc-run --stats --options verbose=1 -- true: printed '$(cat "$tmp/err")'"
}

all="programs stats stats_json options usage preload_kept no_alloc"
[ $# -eq 0 ] && set -- $all
for c in "$@"; do
    case " $all " in
    *" $c "*) "case_$c" ;;
    *) echo "no case named $c (cases: $all)"; exit 1 ;;
    esac
done
[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
exit 0
