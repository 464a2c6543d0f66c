#!/usr/bin/env bash
# Runs the request-scoped arena benchmark (arena_bench.c) of each allocator
# and prints, per variant and thread count, the median over the runs and its
# ratio to mapalloc's arena with reset. Builds nothing.
#
#   bench/arena/run.sh BUILD_DIR [RUNS [REQUESTS BLOCKS REPETITIONS]]
#
# RUNS (default 5) rounds, each running every binary once, one after the
# other, so that a busy moment of the machine falls on all of them alike.
# Each binary already reports the median of its REPETITIONS (default 7).
# The raw lines go to $OUT when it is set (tab-separated: run, variant,
# threads, cpu_ns_per_block, wall_ns_per_block, requests_per_s).
# ratio = variant's CPU ns per block / mapalloc arena+reset's: above 1,
# mapalloc's arena is faster. CPU time is the figure to trust on a busy
# machine; wall time and requests/s move with the load.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [RUNS [REQUESTS BLOCKS REPETITIONS]]}
runs=${2:-5}
shift $(( $# < 2 ? $# : 2 ))
args=("$@")

bins=()
for a in mapalloc jemalloc mimalloc; do
  b="$build/bench/arena_bench_$a"
  if [ -x "$b" ]; then bins+=("$b"); else echo "run.sh: $b not built, skipped" >&2; fi
done
[ ${#bins[@]} -gt 0 ] || { echo "run.sh: no arena_bench binary in $build/bench" >&2; exit 1; }

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for ((r = 1; r <= runs; r++)); do
  for b in "${bins[@]}"; do
    "$b" "${args[@]}" | grep -v '^#' | sed "s/^/$r\t/" >> "$raw"
  done
done
[ -n "${OUT:-}" ] && cp "$raw" "$OUT"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "workload: ${args[*]:-2000 1000 7} (requests, blocks per request, repetitions per run); $runs runs"
python3 - "$raw" <<'EOF'
import sys, statistics, collections
rows = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    run, name, threads, cpu, wall, rps = line.rstrip("\n").split("\t")
    key = (name, int(threads))
    if key not in rows:
        order.append(key)
    rows[key].append((float(cpu), float(wall), float(rps)))
for threads in sorted({t for _, t in order}):
    ref = rows.get(("mapalloc arena+reset", threads))
    ref_ns = statistics.median(r[0] for r in ref) if ref else None
    print(f"\n{threads} thread{'s' if threads > 1 else ''} (each with its own arena or heap)")
    print(f"{'variant':30} {'cpu ns/block':>12} {'min..max':>15} {'wall ns/block':>13} {'requests/s':>10} {'ratio':>6}")
    for name, t in order:
        if t != threads:
            continue
        cpu = [r[0] for r in rows[(name, t)]]
        wall = statistics.median(r[1] for r in rows[(name, t)])
        rps = statistics.median(r[2] for r in rows[(name, t)])
        med = statistics.median(cpu)
        ratio = f"{med / ref_ns:6.2f}" if ref_ns else "     -"
        print(f"{name:30} {med:12.2f} {min(cpu):7.2f}..{max(cpu):<7.2f} {wall:13.2f} {rps:10.0f} {ratio}")
EOF
