#!/bin/sh
# Runs real programs with and without LD_PRELOAD=libmapalloc-preload.so and
# compares their standard output and exit status byte for byte.
#
# Usage: preload_test.sh [case]...   (all cases when none is named)
# Environment (set by tests/meson.build):
#   MAPALLOC_PRELOAD   path of libmapalloc-preload.so
#   TEST_PRELOAD_API   the C API program (built without mapalloc)
#   TEST_PRELOAD_MT    the multi-threaded C program
#   TEST_PRELOAD_FORK  the program that forks under load
#   TEST_CXX_PROG      the C++ program (empty when there is no C++ compiler)
# Exit status: 0 all passed, 1 a failure, 77 (skip) when the library is missing.
set -u

PRELOAD=${MAPALLOC_PRELOAD:-}
if [ -z "$PRELOAD" ] || [ ! -f "$PRELOAD" ]; then
    echo "preload library not found: '$PRELOAD'"
    exit 77
fi
PYTHON=/usr/bin/python3
TIMEOUT=${TEST_PRELOAD_TIMEOUT:-120}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mapalloc-preload.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0

# compare NAME COMMAND: runs COMMAND with sh -c, first plainly, then with the
# preload (which every process of the pipeline inherits), and compares.
compare() {
    name=$1
    cmd=$2
    timeout "$TIMEOUT" sh -c "$cmd" >"$tmp/plain.out" 2>"$tmp/plain.err"
    plain_rc=$?
    LD_PRELOAD="$PRELOAD" timeout "$TIMEOUT" sh -c "$cmd" >"$tmp/pre.out" 2>"$tmp/pre.err"
    pre_rc=$?
    if [ "$plain_rc" -ne "$pre_rc" ] || ! cmp -s "$tmp/plain.out" "$tmp/pre.out"; then
        echo "FAIL $name: exit status $plain_rc without the preload, $pre_rc with it"
        echo "  command: $cmd"
        echo "  --- output differs (first lines of diff):"
        diff "$tmp/plain.out" "$tmp/pre.out" | head -20 | sed 's/^/  /'
        echo "  --- stderr with the preload:"
        head -c 2000 "$tmp/pre.err" | sed 's/^/  /'
        failures=$((failures + 1))
        return
    fi
    if [ "$plain_rc" -ne 0 ]; then
        # Both failed the same way: the program itself is broken here.
        echo "FAIL $name: exit status $plain_rc with and without the preload"
        head -c 2000 "$tmp/plain.err" | sed 's/^/  /'
        failures=$((failures + 1))
        return
    fi
    echo "ok   $name ($(wc -c <"$tmp/plain.out") bytes of identical output)"
}

# A run that must succeed under the preload, with no comparison.
must_pass() {
    name=$1
    shift
    if LD_PRELOAD="$PRELOAD" timeout "$TIMEOUT" "$@" >"$tmp/pre.out" 2>"$tmp/pre.err"; then
        echo "ok   $name"
    else
        echo "FAIL $name: exit status $? under the preload: $*"
        head -c 3000 "$tmp/pre.out" "$tmp/pre.err" | sed 's/^/  /'
        failures=$((failures + 1))
    fi
}

have() {
    command -v "$1" >/dev/null 2>&1
}

case_loaded() {
    # The preload is really in the process, and really allocates: its
    # statistics at exit show mappings.
    if ! LD_PRELOAD="$PRELOAD" cat /proc/self/maps | grep -q 'libmapalloc-preload'; then
        echo "FAIL loaded: libmapalloc-preload is not mapped in a preloaded process"
        failures=$((failures + 1))
        return
    fi
    out=$(MAPALLOC_OPTIONS=stats=1 LD_PRELOAD="$PRELOAD" "$PYTHON" -c 'x = [str(i) for i in range(100000)]' 2>&1)
    if ! printf '%s\n' "$out" | grep -Eq '^mapalloc: calls +mmap [1-9]'; then
        echo "FAIL loaded: no mapalloc statistics at exit of a preloaded python3:"
        printf '%s\n' "$out" | head -20 | sed 's/^/  /'
        failures=$((failures + 1))
        return
    fi
    echo "ok   loaded (mapped in the process, statistics at exit)"
}

case_pipeline() {
    compare pipeline "seq 1 300000 | awk '{ s[\$1 % 1009] += \$1; n[length(\$1)]++ } END { for (k in s) print k, s[k]; for (k in n) print \"len\", k, n[k] }' | sort -k1,1 -k2,2n | uniq -c | sort -k1,1nr -k2,2 -k3,3n"
    compare pipeline_text "seq 1 100000 | sed 's/\\(.\\)\\(.*\\)/\\2\\1/' | tr '0-9' 'a-j' | sort | uniq -c | sort -nr | head -200"
}

py_prog='
import collections, hashlib, json, random, sqlite3, zlib
r = random.Random(12345)
d = {}
for i in range(60000):
    k = "k%d" % r.randrange(50000)
    d.setdefault(k, []).append(i)
lists = sorted(d.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:50]
print(json.dumps(lists[:5])[:2000])
c = collections.Counter("".join(r.choice("abcdef") for _ in range(100000)))
print(sorted(c.items()))
big = [bytes(r.randrange(256) for _ in range(r.randrange(1, 3000))) for _ in range(1000)]
print(hashlib.sha256(b"".join(big)).hexdigest(), len(zlib.compress(b"".join(big))))
db = sqlite3.connect(":memory:")
db.execute("create table t (a integer, b text)")
db.executemany("insert into t values (?, ?)", ((i, str(i) * 5) for i in range(20000)))
print(db.execute("select count(*), sum(a), max(length(b)) from t").fetchone())
s = set()
for i in range(30000):
    s.add(tuple(range(i % 10)))
print(len(s), sum(len(str(x)) for x in d.values()))
'

case_python() {
    [ -x "$PYTHON" ] || { echo "skip python: no $PYTHON"; return; }
    compare python "$PYTHON -c '$py_prog'"
    # Every allocation through malloc, not pymalloc's arenas.
    compare python_malloc "PYTHONMALLOC=malloc $PYTHON -c '$py_prog'"
    # The mapping options under a real program.
    compare python_devzero "MAPALLOC_OPTIONS=devzero=1 PYTHONMALLOC=malloc $PYTHON -c '$py_prog'"
    compare python_huge "MAPALLOC_OPTIONS=huge=1,noreserve=1 PYTHONMALLOC=malloc $PYTHON -c '$py_prog'"
}

case_perl() {
    have perl || { echo "skip perl: not installed"; return; }
    compare perl "perl -e 'my %h; for my \$i (1..200000) { push @{\$h{\$i % 5003}}, \"v\" x (\$i % 40) } my \$t = 0; for my \$k (sort { \$a <=> \$b } keys %h) { \$t += scalar @{\$h{\$k}}; print \"\$k \", scalar(@{\$h{\$k}}), \"\\n\" if \$k % 500 == 0 } print \"\$t\\n\"'"
}

make_big_input() {
    [ -f "$tmp/big.txt" ] && return
    awk 'BEGIN { x = 12345; for (i = 0; i < 400000; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%d %08x line-%d %s\n", x % 100000, x, i, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, x % 17) } }' >"$tmp/big.txt"
}

case_sort() {
    make_big_input
    compare sort "sort '$tmp/big.txt'"
    compare sort_numeric_parallel "sort -n -k1,1 -k3,3 --parallel=2 -S 64M '$tmp/big.txt'"
    # A small buffer: temporary files and merges.
    mkdir -p "$tmp/sorttmp"
    compare sort_external "sort -S 1M -T '$tmp/sorttmp' -k2,2 '$tmp/big.txt'"
}

case_tools() {
    if have tar && have gzip; then
        compare tar_gzip "tar -cf - --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C /usr/include/linux . 2>/dev/null | gzip -n -1 | gzip -dc | md5sum"
    fi
    have grep && compare grep "grep -rc 'define' /usr/include/linux 2>/dev/null | sort"
}

case_cxx() {
    if [ -z "${TEST_CXX_PROG:-}" ]; then
        echo "skip cxx: no C++ program built"
        return
    fi
    compare cxx "'$TEST_CXX_PROG'"
}

case_mt() {
    compare mt_c "'$TEST_PRELOAD_MT'"
}

case_fork() {
    compare fork "'$TEST_PRELOAD_FORK'"
}

case_api() {
    must_pass api "$TEST_PRELOAD_API"
}

all="loaded pipeline python perl sort tools cxx mt fork api"
[ $# -eq 0 ] && set -- $all
for c in "$@"; do
    case " $all " in
    *" $c "*) "case_$c" ;;
    *) echo "no case named $c (cases: $all)"; exit 1 ;;
    esac
done
[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
exit 0
