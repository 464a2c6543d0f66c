#!/usr/bin/python3
"""mapalloc-timeline: a program's memory over time, as a picture.

Runs PROGRAM under mapalloc (and again under each --compare allocator),
and, from outside the process, every --interval milliseconds, reads its
resident memory (VmRSS of /proc/PID/status, VmHWM for the peak) and its
mapped memory (VmSize); under mapalloc, the allocator's heap profiler also
appends its estimate of the live bytes to a file (MAPALLOC_PROF_LIVE) from
its sampled paths, at most every 50 ms. Nothing runs inside the program but
the allocator. Writes OUT (a PNG drawn with matplotlib: resident memory of
each allocator against time, mapalloc's mapped and live bytes too, wall
time and peak in the legend) and the data beside it, OUT with .tsv for
.png: allocator, t_s, resident_bytes, mapped_bytes, live_bytes (empty where
not known).

Usually run by mapalloc-run --timeline OUT [--compare ALLOC=LIB]... --
PROGRAM ARGS; ALLOC=LIB preloads LIB (a path), glibc= (an empty LIB)
preloads nothing.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time


def read_status(pid):
    """(VmRSS, VmSize, VmHWM) in bytes, None for those not there (a zombie)."""
    want = {"VmRSS:": 0, "VmSize:": 1, "VmHWM:": 2}
    out = [None, None, None]
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in want:
                    out[want[parts[0]]] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


def run_one(name, lib, cmd, interval, options, live):
    """Runs cmd under lib (None: no preload); returns its samples, wall
    time, peak resident bytes, exit status and live-byte samples."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    live_path = None
    if lib:
        env["LD_PRELOAD"] = lib
    if name == "mapalloc":
        opts = [o for o in (options or "").split(",") if o]
        if live:
            fd, live_path = tempfile.mkstemp(prefix="mapalloc-live.")
            os.close(fd)
            env["MAPALLOC_PROF_LIVE"] = live_path
            if not any(o.startswith("prof=") or o.startswith("leaks=") for o in opts):
                opts += ["prof=1", "prof_final=0"]
        env["MAPALLOC_OPTIONS"] = ",".join(opts)
    else:
        env.pop("MAPALLOC_OPTIONS", None)
    samples = []
    peak = 0
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env)
    while True:
        rss, size, hwm = read_status(proc.pid)
        now = time.monotonic() - start
        if rss is not None:
            samples.append((now, rss, size))
            peak = max(peak, rss, hwm or 0)
        if proc.poll() is not None:
            break
        time.sleep(interval / 1000.0)
    wall = time.monotonic() - start
    live_samples = []
    if live_path:
        with open(live_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    live_samples.append((int(parts[0]) / 1000.0 - start, int(parts[1])))
        os.unlink(live_path)
    return {"name": name, "samples": samples, "wall": wall, "peak": peak,
            "rc": proc.returncode, "live": live_samples}


def write_data(path, runs):
    with open(path, "w") as f:
        f.write("allocator\tt_s\tresident_bytes\tmapped_bytes\tlive_bytes\n")
        for r in runs:
            for t, rss, size in r["samples"]:
                f.write(f"{r['name']}\t{t:.3f}\t{rss}\t{size}\t\n")
            for t, live in r["live"]:
                f.write(f"{r['name']}\t{t:.3f}\t\t\t{live}\n")


def draw(path, runs, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mib = 1024.0 * 1024.0
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    for r in runs:
        label = f"{r['name']}: resident, {r['wall']:.2f} s, peak {r['peak'] / mib:.1f} MiB"
        t = [s[0] for s in r["samples"]]
        line, = ax.plot(t, [s[1] / mib for s in r["samples"]], label=label, linewidth=1.6)
        if r["name"] == "mapalloc":
            ax.plot(t, [s[2] / mib for s in r["samples"]], linestyle="--", linewidth=0.9,
                    color=line.get_color(), label="mapalloc: mapped (VmSize)")
            if r["live"]:
                ax.plot([s[0] for s in r["live"]], [s[1] / mib for s in r["live"]], linestyle=":",
                        linewidth=1.4, color=line.get_color(),
                        label="mapalloc: live bytes (estimated from samples)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MiB")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", required=True, help="mapalloc's preload library")
    ap.add_argument("--out", required=True, help="the picture (PNG); the data goes to .tsv beside it")
    ap.add_argument("--compare", action="append", default=[], metavar="ALLOC=LIB",
                    help="another allocator: a preload library, or an empty LIB for none (glibc=)")
    ap.add_argument("--interval", type=float, default=50, metavar="MS")
    ap.add_argument("--no-live", action="store_true", help="no live bytes (mapalloc without prof=1)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no program to run")
    allocators = [("mapalloc", a.lib)]
    for c in a.compare:
        if "=" not in c:
            ap.error(f"--compare {c}: ALLOC=LIB expected")
        name, lib = c.split("=", 1)
        if lib and not os.path.exists(lib):
            ap.error(f"--compare {c}: no file {lib}")
        allocators.append((name, lib or None))
    runs = [run_one(name, lib, cmd, a.interval, os.environ.get("MAPALLOC_OPTIONS"), not a.no_live)
            for name, lib in allocators]
    base = a.out[:-4] if a.out.endswith(".png") else a.out
    write_data(base + ".tsv", runs)
    draw(a.out, runs, " ".join(" ".join(cmd).split())[:100])
    for r in runs:
        print(f"mapalloc-timeline: {r['name']}: {r['wall']:.2f} s, peak resident "
              f"{r['peak'] / 1048576:.1f} MiB, exit {r['rc']}", file=sys.stderr)
    print(f"mapalloc-timeline: wrote {a.out} and {base}.tsv", file=sys.stderr)
    return runs[0]["rc"]


if __name__ == "__main__":
    sys.exit(main())
