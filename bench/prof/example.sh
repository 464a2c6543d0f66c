#!/bin/sh
# The README's profiling example: Debian's python3 running
# bench/prof/table.py, with PYTHONMALLOC=malloc so that every object is a
# malloc. Writes, in OUT_DIR:
#   python.heap, python.heap.peak  its heap profiles at exit and at the peak
#                        of live bytes (mapalloc-run --profile, prof_peak=1)
#   python-pprof.txt     the peak profile as google-pprof --text prints it
#   python-timeline.png  its memory over time under mapalloc and glibc
#   python-timeline.tsv  the data of the picture
#   bench/prof/example.sh [BUILD_DIR [OUT_DIR]]   (defaults: build, bench/results)
set -eu
build=${1:-build}
out=${2:-bench/results}
here=$(dirname "$0")
mkdir -p "$out"
export PYTHONMALLOC=malloc
"$build/preload/mapalloc-run" --profile "$out/python.heap" --options prof_peak=1 \
    -- /usr/bin/python3 "$here/table.py"
google-pprof --text /usr/bin/python3 "$out/python.heap.peak" > "$out/python-pprof.txt" 2>/dev/null
head -20 "$out/python-pprof.txt"
"$build/preload/mapalloc-run" --timeline "$out/python-timeline.png" --compare glibc= \
    -- /usr/bin/python3 "$here/table.py"
