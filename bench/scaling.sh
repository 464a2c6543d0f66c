#!/usr/bin/env bash
# scaling.sh: throughput of the thread-heavy workloads at 1 to 16 threads,
# mapalloc against the allocators given, in one bounded run.
#
#   scaling.sh [-b BUILD] [-t "1 2 4 8 16"] [-w "WORKLOADS"] [-r RUNS]
#              [-B SECONDS | -d SECONDS] OUT_DIR [NAME=LIB.so | glibc ...]
#
# Each workload runs for a fixed time (its -d) at each thread count, once
# per allocator and run, the allocators in a rotating order; the figure is
# the workload's own ops_per_s (frees per second; thread-churn: threads
# created and joined per second). -B is the bound on the whole run (default
# 450 s, about 8 minutes with the start-ups): the seconds per run are
# derived from it, unless -d gives them; runs that would pass the bound by
# more than a tenth are skipped, and the table says so.
#
# Needs bash, awk and coreutils only (no python, no network): the build
# tree (BUILD/bench/<workload>, BUILD/preload/libmapalloc-preload.so) and
# the peers' shared libraries copied to a bare machine are enough. BUILD
# defaults to the tree this script is in (meson copies it to BUILD/bench/),
# else ../build next to bench/. "glibc" names the C library's malloc (no
# preload). Writes OUT_DIR/scaling.csv (one row a run) and
# OUT_DIR/scaling.md (machine, medians, ratios), and prints the tables;
# exits 1 if an allocator has no successful run at some point.
set -euo pipefail

usage() { sed -n '2,/^set -e/{/^set -e/!p}' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-64}"; }

command="bench/scaling.sh $*"
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/prodcons" ]; then build=$(dirname "$here"); else build=$(dirname "$here")/build; fi
threads="1 2 4 8 16"
workloads="prodcons thread-churn larson larson-sized xmalloc"
runs=1 bound=450 duration=""
while getopts "b:t:w:r:B:d:h" opt; do
  case $opt in
    b) build=$OPTARG ;;
    t) threads=$OPTARG ;;
    w) workloads=$OPTARG ;;
    r) runs=$OPTARG ;;
    B) bound=$OPTARG ;;
    d) duration=$OPTARG ;;
    h) usage 0 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
out=$1; shift

# The allocators: name and preload ("" for the C library's malloc).
names=(mapalloc) libs=("$build/preload/libmapalloc-preload.so")
for a in "$@"; do
  case $a in
    glibc | glibc=) names+=(glibc) libs+=("") ;;
    *=*) names+=("${a%%=*}") libs+=("${a#*=}") ;;
    *) echo "scaling.sh: want NAME=LIB.so or glibc, not $a" >&2; exit 64 ;;
  esac
done
for i in "${!names[@]}"; do
  lib=${libs[$i]}
  if [ -n "$lib" ] && [ ! -f "$lib" ]; then echo "scaling.sh: ${names[$i]}: no $lib" >&2; exit 66; fi
  [ -z "$lib" ] || libs[$i]=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
done
for w in $workloads; do
  [ -x "$build/bench/$w" ] || { echo "scaling.sh: no $build/bench/$w (meson compile -C BUILD)" >&2; exit 66; }
done

nw=$(wc -w <<<"$workloads") nt=$(wc -w <<<"$threads") na=${#names[@]}
total=$((nw * nt * na * runs))
# About 0.3 s a run goes to start-up, setting up and draining.
[ -n "$duration" ] || duration=$(awk -v b="$bound" -v n="$total" 'BEGIN {
  d = b / n - 0.3; if (d < 0.2) d = 0.2; printf "%.2f", d }')
limit=$(awk -v d="$duration" 'BEGIN { printf "%d", d * 4 + 30 }') # a hung run is killed

mkdir -p "$out"
csv=$out/scaling.csv md=$out/scaling.md
echo "workload,threads,allocator,run,ops,unit,ops_per_s,wall_s,user_s,sys_s,ok" >"$csv"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "scaling: $nw workloads x $nt thread counts x $na allocators x $runs runs = $total runs" \
  "of $duration s (bound $bound s)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS k=0 point=0 skipped=0 status=0
TIMEFORMAT="%R %U %S"
for r in $(seq 1 "$runs"); do
  for w in $workloads; do
    for t in $threads; do
      point=$((point + 1))
      for j in $(seq 0 $((na - 1))); do
        i=$(((j + point) % na)) # one allocator further on at each point
        name=${names[$i]} lib=${libs[$i]}
        k=$((k + 1))
        if [ $((SECONDS - start)) -gt "$(awk -v b="$bound" 'BEGIN { printf "%d", b * 1.1 }')" ]; then
          skipped=$((skipped + 1))
          echo "$w,$t,$name,$r,,,,,,,skipped" >>"$csv"
          continue
        fi
        rc=0
        { time env ${lib:+LD_PRELOAD="$lib"} timeout "$limit" "$build/bench/$w" -t "$t" -d "$duration" \
            >"$tmp/out" 2>"$tmp/err"; } 2>"$tmp/time" || rc=$?
        line=$(tail -n 1 "$tmp/out")
        want=$([ -n "$lib" ] && basename "$lib" || echo libc.so.6)
        ok=1
        [ "$rc" -eq 0 ] && [ "${line##* }" = OK ] && grep -q " malloc=$want " <<<"$line" || ok=0
        field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        read -r wall user sys <"$tmp/time" || true
        echo "$w,$t,$name,$r,$(field ops),$(field unit),$(field ops_per_s),$wall,$user,$sys,$ok" >>"$csv"
        printf '[%3d/%d] %-13s t=%-3s %-10s %12s %s/s %s\n' "$k" "$total" "$w" "$t" "$name" \
          "$(field ops_per_s)" "$(field unit)" "$([ $ok = 1 ] && echo OK || echo "FAIL $(tail -n 1 "$tmp/err")")"
      done
    done
  done
done
elapsed=$((SECONDS - start))

# The tables: per workload, median ops/s per thread count and allocator,
# with the ratio to mapalloc (above 1: faster than mapalloc).
{
  echo "# Scaling: thread-heavy workloads at $threads threads"
  echo
  echo "Command: \`$command\` (runs of $duration s, $runs per point; $elapsed s in all)"
  echo
  echo "Machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs," \
    "Linux $(uname -r); load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  for i in "${!names[@]}"; do echo "- ${names[$i]}: ${libs[$i]:-the C library}"; done
  [ "$skipped" -eq 0 ] || { echo; echo "$skipped runs skipped: the bound of $bound s was reached"; }
  awk -F, -v order="${names[*]}" -v wls="$workloads" -v ths="$threads" '
    function med(key,   n, i, j, v, x) {
      n = split(vals[key], v, " ")
      if (n == 0) return ""
      for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function fmt(x) { return x >= 1e6 ? sprintf("%.2fM", x / 1e6) : x >= 1e3 ? sprintf("%.1fk", x / 1e3) : sprintf("%.0f", x) }
    NR > 1 && $11 == 1 { vals[$1 "|" $2 "|" $3] = vals[$1 "|" $2 "|" $3] " " $7; unit[$1] = $6 }
    NR > 1 && $11 == "skipped" { skipped[$1 "|" $2 "|" $3] = 1 }
    END {
      na = split(order, a, " "); nw = split(wls, w, " "); nt = split(ths, t, " ")
      for (x = 1; x <= nw; x++) {
        printf "\n%s: median %s per second (in brackets: ratio to mapalloc, above 1 is faster)\n\n", w[x], unit[w[x]] ? unit[w[x]] : "ops"
        printf "| threads |"; for (y = 1; y <= na; y++) printf " %s |", a[y]; printf "\n|---:|"
        for (y = 1; y <= na; y++) printf "---:|"; printf "\n"
        for (z = 1; z <= nt; z++) {
          ref = med(w[x] "|" t[z] "|mapalloc"); printf "| %s |", t[z]
          for (y = 1; y <= na; y++) {
            m = med(w[x] "|" t[z] "|" a[y])
            if (m == "" && !skipped[w[x] "|" t[z] "|" a[y]]) nfailed++
            if (m == "") printf " %s |", skipped[w[x] "|" t[z] "|" a[y]] ? "skipped" : "failed"
            else printf " %s%s |", fmt(m), (ref != "" && ref > 0 ? sprintf(" (%.2f)", m / ref) : "")
          }
          printf "\n"
        }
      }
      if (nfailed) printf "\n%d points without a successful run (see the csv and each run'"'"'s line above)\n", nfailed
      exit nfailed > 0
    }' "$csv" || status=1
} >"$md"
cat "$md"
echo "wrote $csv and $md"
exit "$status"
