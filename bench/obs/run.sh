#!/bin/sh
# Runs the decay and huge-page benchmarks against a build directory and
# prints two tables (Markdown) of medians; the raw lines of every run go to
# BUILD_DIR/bench/obs/results/ with a description of the machine.
#
# Usage: bench/obs/run.sh BUILD_DIR [RUNS] [HUGE_WORKING_SET_MIB]
#   RUNS                  runs per configuration (default 5; the median is shown)
#   HUGE_WORKING_SET_MIB  working set of the huge-page benchmark (default 1024)
# Environment: DECAY_ARGS (default "256 4 500": burst MiB, rounds, idle ms),
#   HUGE_ACCESSES (millions of random accesses, default 40).
set -eu
build=${1:?usage: run.sh BUILD_DIR [RUNS] [HUGE_WORKING_SET_MIB]}
runs=${2:-5}
ws=${3:-1024}
decay_args=${DECAY_ARGS:-256 4 500}
accesses=${HUGE_ACCESSES:-40}
decay_bin=$build/bench/obs/bench_obs_decay
huge_bin=$build/bench/obs/bench_obs_hugepage
for b in "$decay_bin" "$huge_bin"; do
    [ -x "$b" ] || { echo "run.sh: $b missing: meson compile -C $build first" >&2; exit 1; }
done
out=$build/bench/obs/results
mkdir -p "$out"
unset MAPALLOC_OPTIONS

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $(uname -srm)"
    echo "cpus: $(nproc)"
    grep -m1 'model name' /proc/cpuinfo 2>/dev/null || true
    grep -E '^(MemTotal|HugePages_Total|Hugepagesize)' /proc/meminfo
    echo "thp enabled: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
    echo "thp defrag: $(cat /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null)"
    echo "commit: $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "runs: $runs; decay args: $decay_args; huge working set: $ws MiB, $accesses M accesses"
} >"$out/machine.txt"

# once FILE NAME OPTIONS CMD...: one run, its line "name=NAME options=OPTIONS
# k=v..." added to FILE. The configurations take turns (run 1 of each, then
# run 2...), so that a drift of the machine does not favour one of them.
once() {
    file=$1 name=$2 opts=$3
    shift 3
    line=$(MAPALLOC_OPTIONS=$opts "$@")
    echo "name=$name options=$opts $line" >>"$file"
}

# The median of each field over the lines of one configuration; a field
# with a comma list gets the median of each position.
medians() {
    awk -v want="$2" '
    function median(list, n,   a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        split($1, nm, "="); if (nm[2] != want) next
        for (f = 2; f <= NF; f++) {
            eq = index($f, "="); k = substr($f, 1, eq - 1); v = substr($f, eq + 1)
            if (!(k in order)) { order[k] = ++nk; keys[nk] = k }
            if (k == "options") { opts = v; width[k] = 0; continue }
            m = split(v, parts, ",")
            width[k] = m
            for (p = 1; p <= m; p++) vals[k, p] = vals[k, p] " " parts[p]
        }
    }
    END {
        for (i = 1; i <= nk; i++) {
            k = keys[i]; s = (k == "options") ? opts : ""
            for (p = 1; p <= width[k]; p++)
                s = s (p > 1 ? " / " : "") median(vals[k, p])
            printf "%s=%s\t", k, s
            if (width[k] == 1) { # the spread of a single figure: "min-max"
                n = split(vals[k, 1], a, " "); lo = a[1]; hi = a[1]
                for (j = 2; j <= n; j++) { if (a[j] + 0 < lo + 0) lo = a[j]; if (a[j] + 0 > hi + 0) hi = a[j] }
                printf "%s_range=%s-%s\t", k, lo, hi
            }
        }
        printf "\n"
    }' "$1"
}

field() { printf '%s\n' "$1" | tr '\t' '\n' | sed -n "s/^$2=//p"; }

echo "Decay: bursts of ${decay_args%% *} MiB in small blocks, freed, then idle-ish work; median of $runs runs (min-max)"
decay=$out/decay.txt
: >"$decay"
i=0
while [ "$i" -lt "$runs" ]; do
    once "$decay" short "decay_ms=0,dirty_max_kb=0" "$decay_bin" $decay_args
    once "$decay" default "" "$decay_bin" $decay_args
    once "$decay" no_limit "dirty_max_kb=1073741823" "$decay_bin" $decay_args
    once "$decay" infinite "decay_ms=3600000,dirty_max_kb=1073741823" "$decay_bin" $decay_args
    i=$((i + 1))
done
echo
echo "| decay | MAPALLOC_OPTIONS | wall s | bursts s | peak RSS MiB | RSS after each free MiB | RSS at end of each idle phase MiB | madvise | munmap |"
echo "|---|---|---|---|---|---|---|---|---|"
for name in short default no_limit infinite; do
    m=$(medians "$decay" "$name")
    echo "| $name | \`$(field "$m" options)\` | $(field "$m" wall_s) ($(field "$m" wall_s_range)) | $(field "$m" burst_s) ($(field "$m" burst_s_range)) | $(field "$m" peak_mib) | $(field "$m" free_mib) | $(field "$m" idle_mib) | $(field "$m" madvise) | $(field "$m" munmap) |"
done

echo
echo "Huge pages: $ws MiB of 64 B - 4 KiB blocks, $accesses M random accesses; median of $runs runs (min-max)"
huge=$out/hugepage.txt
: >"$huge"
i=0
while [ "$i" -lt "$runs" ]; do
    once "$huge" thp0 "thp=0" "$huge_bin" "$ws" "$accesses"
    once "$huge" thp1 "thp=1" "$huge_bin" "$ws" "$accesses"
    once "$huge" huge1 "huge=1" "$huge_bin" "$ws" "$accesses"
    i=$((i + 1))
done
echo
echo "| MAPALLOC_OPTIONS | allocate s | random access s | free s | RSS MiB | AnonHugePages MiB | huge_fallbacks | madvise |"
echo "|---|---|---|---|---|---|---|---|"
for name in thp0 thp1 huge1; do
    m=$(medians "$huge" "$name")
    echo "| \`$(field "$m" options)\` | $(field "$m" alloc_s) ($(field "$m" alloc_s_range)) | $(field "$m" access_s) ($(field "$m" access_s_range)) | $(field "$m" free_s) | $(field "$m" rss_mib) | $(field "$m" anon_huge_mib) | $(field "$m" huge_fallbacks) | $(field "$m" madvise) |"
done
echo
echo "raw results and the machine: $out/"
