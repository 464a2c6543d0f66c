#!/usr/bin/python3
"""Burst and idle under every allocator: resident memory over time, drawn.

Runs bench_obs_idle (a burst of 256 MiB in small, medium and large blocks,
all freed, then a sleep with no allocator call) under each allocator that
bench/run.py finds (glibc, jemalloc, tcmalloc, mimalloc, mapalloc, and any
--alloc NAME=PATH), samples its resident memory (/proc/PID/statm) every
10 ms from outside, and prints a table (peak, right after the last free,
and after 0.25, 1 and 3 s of idleness, of 3.5 s) and draws every allocator's curve on
one set of axes, time 0 at the last free.

  bench/obs/idle.py                                  # into bench/results/
  bench/obs/idle.py --runs 3 --alloc mimalloc3=/tmp/peers/.../libmimalloc.so
"""
import argparse
import os
import select
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH_DIR)
import run  # noqa: E402  (bench/run.py: the allocators and their environment)

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
MARKS = (0.25, 1.0, 3.0)


def resident(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def sample(exe, path, burst, idle_ms):
    """[(seconds since the last free, resident bytes)], the peak, and the
    time from start to the last free."""
    env = dict(run.run_env(path))
    env.pop("MAPALLOC_OPTIONS", None)
    t0 = time.monotonic()
    p = subprocess.Popen([exe, str(burst), str(idle_ms)], env=env, stderr=subprocess.PIPE)
    points, freed_at, peak = [], None, 0
    while True:
        ready, _, _ = select.select([p.stderr], [], [], 0.01)
        now = time.monotonic()
        if ready and freed_at is None:
            line = p.stderr.readline()
            if line.startswith(b"freed"):
                freed_at = now
        rss = resident(p.pid)
        if not rss or p.poll() is not None:  # gone, or a zombie (statm reads 0)
            break
        peak = max(peak, rss)
        points.append((now, rss))
    p.wait()
    if p.returncode != 0 or freed_at is None:
        sys.exit(f"error: {exe} under {path or 'glibc'}: exit {p.returncode}")
    return [(t - freed_at, r) for t, r in points], peak, freed_at - t0


def at(points, t):
    """The resident bytes of the first sample at or after t."""
    for s, r in points:
        if s >= t:
            return r
    return points[-1][1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(run.REPO_DIR, "build"))
    ap.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "results"))
    ap.add_argument("--runs", type=int, default=3, help="runs per allocator, interleaved (median shown)")
    ap.add_argument("--burst-mib", type=int, default=256)
    ap.add_argument("--idle-ms", type=int, default=3500)
    ap.add_argument("--allocators", nargs="+")
    ap.add_argument("--alloc", action="append", default=[], metavar="NAME=PATH")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    exe = os.path.join(args.build_dir, "bench", "obs", "bench_obs_idle")
    if not os.path.exists(exe):
        sys.exit(f"error: {exe} missing (meson compile -C {args.build_dir})")
    allocators = run.discover_allocators(args)
    runs = {name: [] for name, _ in allocators}
    for _ in range(args.runs):
        for name, path in allocators:
            runs[name].append(sample(exe, path, args.burst_mib, args.idle_ms))

    cols = ["peak", "after free"] + [f"+{m:g} s" for m in MARKS]
    lines = [f"Resident memory (MiB, medians of {args.runs}) of a burst of {args.burst_mib} MiB "
             f"in small, medium and large blocks, freed, then {args.idle_ms} ms with no allocator call",
             "", "| allocator | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, _ in allocators:
        rs = runs[name]
        vals = [statistics.median(pk for _, pk, _ in rs), statistics.median(at(pts, 0) for pts, _, _ in rs)]
        vals += [statistics.median(at(pts, m) for pts, _, _ in rs) for m in MARKS]
        lines.append(f"| {name} | " + " | ".join(f"{v / MIB:.1f}" for v in vals) + " |")
    table = "\n".join(lines)
    print(table)

    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, time.strftime("%Y%m%d-%H%M%S") + "-idle")
    with open(stem + ".md", "w") as f:
        f.write(table + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no picture (apt-get install python3-matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, _ in allocators:
        # The run whose resident memory 1 s after the free is the median one.
        rs = sorted(runs[name], key=lambda r: at(r[0], 1.0))
        pts = rs[len(rs) // 2][0]
        ax.plot([t for t, _ in pts], [r / MIB for _, r in pts], label=name, linewidth=1.4)
    ax.axvline(0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("seconds since the last free (then no allocator call)")
    ax.set_ylabel("resident MiB")
    ax.set_title(f"Burst of {args.burst_mib} MiB, freed, then idle")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=110)
    print(f"wrote {stem}.md and {stem}.png")


if __name__ == "__main__":
    main()
