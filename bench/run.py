#!/usr/bin/python3
"""Run the mapalloc benchmarks against every installed allocator.

Builds nothing: it uses the programs of an existing meson build directory
(default: build/ at the top of the repository). Modes:

  run.py                 whole workloads (bench/workloads/), every allocator,
                         several runs interleaved round-robin; median wall
                         time and median peak RSS, ratios to mapalloc,
                         geometric means; CSV, JSON, Markdown and a PNG chart
                         in bench/results/
  run.py --quick         the same at small sizes, in under two minutes
  run.py --micro         the Google Benchmark micro-benchmarks, once per
                         allocator under LD_PRELOAD (plus the arena-API
                         binaries of the peers, which link their allocator)
  run.py --instructions  instructions per malloc(16)/free pair under
                         valgrind --tool=callgrind, from runs of N and 2N pairs,
                         in three cases (page emptied, page kept live, random
                         order), with and without the harness

Allocators: glibc (no preload), jemalloc, tcmalloc (minimal), mimalloc and
mapalloc (<build>/preload/libmapalloc-preload.so); one that is not installed
is skipped with a line saying so. --alloc NAME=PATH adds or overrides one,
and --options NAME=LIST gives one its MAPALLOC_OPTIONS: a mapalloc variant
beside the default one, run interleaved with it (the heap profiler's cost:
--alloc mapalloc-prof=build/preload/libmapalloc-preload.so
--options mapalloc-prof=prof=1).
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)

LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
            "/usr/local/lib", "/usr/lib"]

# name -> library file to preload (None: the C library's own malloc).
PEERS = [
    ("glibc", None),
    ("jemalloc", "libjemalloc.so.2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4"),
    ("mimalloc", "libmimalloc.so.2"),
]
MAPALLOC_PRELOAD = os.path.join("preload", "libmapalloc-preload.so")
REFERENCE = "mapalloc"

# Workload -> (-n for the default run, -n for --quick). The default sizes
# take 1-4 s each under glibc on a 2-core machine (a default run of 5
# allocators x 5 runs about 12 minutes); --quick a tenth of that, 3 runs.
# Every run is a fixed amount of work, so that the figure is a time and the
# geometric means mean something: prodcons, which runs for a fixed time by
# default, gets -n (batches in all) here.
WORKLOADS = {
    "larson": (2000000, 200000),
    "larson-sized": (2000000, 200000),
    "xmalloc": (120000, 12000),
    "prodcons": (6000, 600),
    "thread-churn": (40000, 4000),
    "cache-scratch": (1000000, 100000),
    "cache-thrash": (1000000, 100000),
    "tree": (300000, 30000),
    "strhash": (800000, 80000),
    "realloc-heavy": (2000000, 200000),
    "large-blocks": (400, 40),
    "large-churn": (1000, 100),
}
# The workloads whose -n is the work in all, split over their threads; the
# others' -n is per thread, and with --threads T run.py gives them
# n * nproc / T, so that the total work stays that of a default run and an
# oversubscribed run (--threads 128 on 2 cores) takes about as long.
TOTAL_WORK = {"prodcons", "thread-churn", "large-churn"}


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- allocators

def find_lib(filename):
    for d in LIB_DIRS:
        p = os.path.join(d, filename)
        if os.path.exists(p):
            return p
    return None


def discover_allocators(args):
    """Returns [(name, preload path or None)], reference first."""
    found = []
    mapalloc = os.path.join(args.build_dir, MAPALLOC_PRELOAD)
    overrides = dict(a.split("=", 1) for a in args.alloc)
    candidates = [(REFERENCE, mapalloc)] + [(n, find_lib(f) if f else None) for n, f in PEERS]
    names = [n for n, _ in candidates]
    for n in overrides:
        if n not in names:
            candidates.append((n, overrides[n]))
    for name, path in candidates:
        path = overrides.get(name, path)
        if args.allocators and name not in args.allocators:
            continue
        if name == "glibc" and name not in overrides:
            found.append((name, None))
        elif path and os.path.exists(path):
            found.append((name, os.path.abspath(path)))
        else:
            want = path or dict(PEERS).get(name) or "?"
            log(f"skipping {name}: {want} not found")
    return found


def expected_provider(path):
    """The object the workloads report as providing malloc."""
    return os.path.basename(path) if path else "libc.so.6"


# Allocator name -> its MAPALLOC_OPTIONS (--options), and the directory its
# heap profiles go to when those turn the profiler on.
ALLOC_OPTIONS = {}
PROFILE_DIR = None


def run_env(path, name=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if path:
        env["LD_PRELOAD"] = path
    if name in ALLOC_OPTIONS:
        env["MAPALLOC_OPTIONS"] = ALLOC_OPTIONS[name]
        env["MAPALLOC_PROF_FILE"] = os.path.join(PROFILE_DIR, name + ".heap")
    return env


# ---------------------------------------------------------------- machine

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def package_version(path):
    """Debian package and version owning a library, when dpkg knows it."""
    if not path or not shutil.which("dpkg-query"):
        return None
    real = os.path.realpath(path)
    for p in (real, path):
        owner = sh(["dpkg-query", "-S", p])
        if owner:
            pkg = owner.split(": ")[0].split(",")[0]  # "libjemalloc2:amd64: /usr/lib/..."
            ver = sh(["dpkg-query", "-W", "-f=${Version}", pkg])
            return f"{pkg} {ver}".strip()
    return os.path.basename(real)


def machine_description(args, allocators):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    glibc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else ""
    versions = {}
    for name, path in allocators:
        if name == "glibc":
            versions[name] = glibc
        elif name == REFERENCE:
            desc = sh(["git", "-C", REPO_DIR, "describe", "--always", "--dirty"])
            versions[name] = f"git {desc}" if desc else "?"
        else:
            versions[name] = package_version(path)
    compilers = {}
    intro = os.path.join(args.build_dir, "meson-info", "intro-compilers.json")
    try:
        with open(intro) as f:
            for lang, c in json.load(f).get("host", {}).items():
                compilers[lang] = f"{c.get('id')} {c.get('version')}"
    except (OSError, ValueError):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem_kib // 1024,
        "kernel": platform.release(),
        "machine": platform.machine(),
        "glibc": glibc,
        "allocators": {n: {"preload": p, "version": versions.get(n)} for n, p in allocators},
        "compilers": compilers,
        # A busy machine makes times noisy; the load at the start says how busy.
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join([os.path.relpath(sys.argv[0], REPO_DIR)] + sys.argv[1:]),
    }


# ---------------------------------------------------------------- running

def run_measured(cmd, env, timeout):
    """Runs cmd; returns (exit status, wall seconds, rusage, stdout, stderr).
    The rusage is the child's own (os.wait4); note that on Linux its
    ru_maxrss also counts the memory of this process from before the exec,
    which is why the workloads report their own peak (VmHWM)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        timer = threading.Timer(timeout, lambda: os.kill(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it
        out.seek(0)
        err.seek(0)
        return (proc.returncode, wall, ru, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and not math.isnan(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def workload_sizes(args):
    """{workload: -n} for this run: the default or quick size, times
    --scale, and for the per-thread workloads times nproc / --threads."""
    sizes = {w: (q if args.quick else d) for w, (d, q) in WORKLOADS.items()}
    nproc = os.cpu_count() or 1
    for w in sizes:
        f = args.scale
        if args.threads and w not in TOTAL_WORK:
            f *= nproc / args.threads
        sizes[w] = max(1, int(sizes[w] * f))
    return sizes


def run_workloads(args, allocators):
    sizes = workload_sizes(args)
    workloads = [w for w in WORKLOADS if not args.workloads or w in args.workloads]
    for w in workloads:
        exe = os.path.join(args.build_dir, "bench", w)
        if not os.access(exe, os.X_OK):
            sys.exit(f"error: {exe} not built (meson compile -C {args.build_dir})")
    runs = args.runs or (3 if args.quick else 5)
    total = runs * len(workloads) * len(allocators)
    log(f"workloads: {len(workloads)} x {len(allocators)} allocators x {runs} runs = {total} runs"
        f" ({'quick' if args.quick else 'default'} sizes, threads={args.threads or 'default'})")
    results, failures, k = [], 0, 0
    t_start = time.perf_counter()
    for r in range(runs):
        for w in workloads:
            # Round-robin over the allocators, starting one further each run,
            # so that no allocator always runs first (or after the same one).
            order = allocators[r % len(allocators):] + allocators[:r % len(allocators)]
            for name, path in order:
                k += 1
                cmd = [os.path.join(args.build_dir, "bench", w), "-n", str(sizes[w]),
                       "-s", str(args.seed)]
                if args.threads:
                    cmd += ["-t", str(args.threads)]
                rc, wall, ru, out, err = run_measured(cmd, run_env(path, name), args.timeout)
                line = out.strip().splitlines()[-1] if out.strip() else ""
                m = re.search(r"malloc=(\S+)", line)
                provider = m.group(1) if m else "?"
                ok = rc == 0 and line.endswith(" OK")
                note = ""
                if ok and provider != expected_provider(path):
                    ok, note = False, f" (malloc came from {provider}, not {expected_provider(path)})"
                if not ok:
                    failures += 1
                    msg = (err.strip().splitlines() or [line or f"exit status {rc}"])[-1]
                    note = note or f" ({msg[:100]})"
                # Peak RSS: the workload's own VmHWM; the rusage figure would
                # include this Python process, which the child was forked from.
                m = re.search(r"peak_kib=(\d+)", line)
                rss = (int(m.group(1)) if m else ru.ru_maxrss) / 1024.0  # KiB -> MiB
                m = re.search(r" threads=(\d+)", line)
                threads = int(m.group(1)) if m else args.threads
                m = re.search(r" free=(\S+)", line)  # larson-sized: free_sized or free
                results.append({"workload": w, "allocator": name, "run": r, "n": sizes[w],
                                "threads": threads, "free": m.group(1) if m else "",
                                "seconds": round(wall, 4),
                                "user": round(ru.ru_utime, 4), "sys": round(ru.ru_stime, 4),
                                "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 4),
                                "peak_rss_mib": round(rss, 2), "ru_maxrss_mib": round(ru.ru_maxrss / 1024.0, 2), "ok": ok, "output": line})
                log(f"[{k:3d}/{total}] run {r + 1}/{runs} {w:14s} {name:9s} {wall:7.3f} s "
                    f"{rss:8.1f} MiB  {'OK' if ok else 'FAIL'}{note}")
    log(f"workloads done in {time.perf_counter() - t_start:.0f} s, {failures} failed runs")
    return workloads, results, failures


def summarize(workloads, allocators, results, key_fields=("seconds", "peak_rss_mib", "cpu_seconds", "sys")):
    """{workload: {allocator: {field: median over ok runs}}}"""
    summary = {}
    for w in workloads:
        summary[w] = {}
        for name, _ in allocators:
            rows = [x for x in results if x["workload"] == w and x["allocator"] == name and x["ok"]]
            summary[w][name] = {f: median([x[f] for x in rows]) for f in key_fields}
            summary[w][name]["runs"] = len(rows)
    return summary


def reference_of(allocators):
    names = [n for n, _ in allocators]
    return REFERENCE if REFERENCE in names else names[0]


def workload_tables(workloads, allocators, summary):
    """Markdown tables (time, memory) with ratios to the reference and the
    geometric means; returns (text, geomeans)."""
    names = [n for n, _ in allocators]
    ref = reference_of(allocators)
    out, geo = [], {}
    for field, title, unit, fmt in (("seconds", "Median wall time", "s", "{:.3f}"),
                                    ("peak_rss_mib", "Median peak RSS", "MiB", "{:.1f}"),
                                    ("cpu_seconds", "Median CPU time, user + system "
                                     "(less sensitive than wall time to a busy machine)", "s", "{:.3f}"),
                                    ("sys", "Median system time (page faults, mmap and munmap, "
                                     "thread start and exit)", "s", "{:.3f}")):
        out.append(f"{title} ({unit}; in brackets: ratio to {ref}, lower is better)\n")
        out.append("| workload | " + " | ".join(names) + " |")
        out.append("|---|" + "---:|" * len(names))
        for w in workloads:
            r = summary[w][ref][field]
            cells = []
            for n in names:
                v = summary[w][n][field]
                if math.isnan(v):
                    cells.append("failed")
                else:
                    cells.append(fmt.format(v) + (f" ({v / r:.2f})" if r and not math.isnan(r) else ""))
            out.append(f"| {w} | " + " | ".join(cells) + " |")
        cells = []
        for n in names:
            g = geomean([summary[w][n][field] for w in workloads])
            gr = geomean([summary[w][n][field] / summary[w][ref][field] for w in workloads
                          if summary[w][ref][field] and not math.isnan(summary[w][ref][field])])
            geo.setdefault(n, {})[field] = g
            geo[n][field + "_ratio"] = gr
            cells.append(fmt.format(g) + f" ({gr:.2f})")
        out.append("| **geometric mean** | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out), geo


def free_notes(workloads, allocators, results):
    """Which free each allocator's runs used where a workload says so
    (larson-sized: free_sized when the allocator has it, else free)."""
    out = []
    for w in workloads:
        used = {}
        for name, _ in allocators:
            kinds = sorted({x.get("free") for x in results
                            if x["workload"] == w and x["allocator"] == name and x.get("free")})
            if kinds:
                used[name] = "/".join(kinds)
        if used:
            out.append(f"{w} freed with: " + ", ".join(f"{n} {k}" for n, k in used.items()) + "\n")
    return "\n".join(out)


def draw_chart(path, workloads, allocators, summary, machine):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib for this python: chart skipped (run with /usr/bin/python3)")
        return None
    names = [n for n, _ in allocators]
    ref = reference_of(allocators)
    groups = workloads + ["geomean"]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(groups) * max(1, len(names)) / 3), 8),
                             sharex=True)
    width = 0.8 / len(names)
    for ax, field, label in ((axes[0], "seconds", "wall time"), (axes[1], "peak_rss_mib", "peak RSS")):
        for i, n in enumerate(names):
            vals = []
            for w in workloads:
                v, r = summary[w][n][field], summary[w][ref][field]
                vals.append(v / r if r and not math.isnan(v) and not math.isnan(r) else 0)
            vals.append(geomean(vals))
            xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, vals, width, label=n)
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_ylabel(f"{label} / {ref}\n(lower is better)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(names), fontsize="small", loc="upper left")
    axes[1].set_xticks(range(len(groups)))
    axes[1].set_xticklabels(groups, rotation=20)
    fig.suptitle(f"mapalloc workloads: median of runs, relative to {ref}\n"
                 f"{machine['cpu']}, {machine['nproc']} CPUs, Linux {machine['kernel']}, "
                 f"{machine['date'][:10]}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(args, stem, machine, rows, extra, table_md):
    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, stem)
    if rows:
        with open(base + ".csv", "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            wr.writeheader()
            wr.writerows(rows)
    with open(base + ".json", "w") as f:
        json.dump({"machine": machine, **extra, "raw": rows}, f, indent=1, default=str)
    with open(base + ".md", "w") as f:
        f.write(f"# {stem}\n\nCommand: `{machine['command']}`\n\n"
                f"Machine: {machine['cpu']}, {machine['nproc']} CPUs, {machine['memory_mib']} MiB, "
                f"Linux {machine['kernel']}, {machine['glibc']}; "
                f"load average at start {machine['loadavg_at_start']}\n\n"
                + "".join(f"- {n}: {v['version']}\n" for n, v in machine["allocators"].items())
                + "\n" + table_md + "\n")
    return base


# ---------------------------------------------------------------- micro

def micro_binaries(args, allocators):
    """[(allocator, binary, preload)]: the plain binary under every
    allocator, then the peers' arena binaries (linked, no preload)."""
    plan = []
    micro = os.path.join(args.build_dir, "bench", "micro")
    if not os.access(micro, os.X_OK):
        log(f"skipping micro-benchmarks: {micro} not built (Google Benchmark missing?)")
    else:
        plan += [(name, micro, path) for name, path in allocators]
    for peer in (REFERENCE, "jemalloc", "mimalloc"):
        exe = os.path.join(args.build_dir, "bench", f"micro-arena-{peer}")
        if os.access(exe, os.X_OK) and (not args.allocators or peer in args.allocators):
            plan.append((peer, exe, None))
    return plan


def run_micro(args, allocators, machine, stem):
    plan = micro_binaries(args, allocators)
    runs = args.runs or 1
    min_time = args.min_time or (0.02 if args.quick else 0.2)
    rows, k, total = [], 0, runs * len(plan)
    for r in range(runs):
        order = plan[r % len(plan):] + plan[:r % len(plan)] if plan else []
        for name, exe, path in order:
            k += 1
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
                out_json = tf.name
            cmd = [exe, f"--benchmark_min_time={min_time}", f"--benchmark_out={out_json}",
                   "--benchmark_out_format=json", "--benchmark_format=console"]
            if args.filter:
                cmd.append(f"--benchmark_filter={args.filter}")
            t0 = time.perf_counter()
            rc, _, _, out, err = run_measured(cmd, run_env(path, name), args.timeout * 10)
            try:
                with open(out_json) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                data = {"benchmarks": []}
            os.unlink(out_json)
            nb = 0
            for b in data.get("benchmarks", []):
                if b.get("error_occurred"):
                    log(f"    {name} {b['name']}: error: {b.get('error_message')}")
                    continue
                scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
                ops = b.get("ops", 1) or 1
                rows.append({"case": b["name"], "allocator": name, "run": r,
                             "binary": os.path.basename(exe),
                             "ns_per_op": round(b["real_time"] * scale / ops, 3),
                             "iterations": b.get("iterations"), "ops_per_iteration": ops})
                nb += 1
            log(f"[{k}/{total}] micro {os.path.basename(exe):22s} {name:9s} {nb} cases in "
                f"{time.perf_counter() - t0:.0f} s" + ("" if rc == 0 else f"  FAIL (exit {rc}: "
                                                       f"{(err.strip().splitlines() or [''])[-1][:100]})"))
    names = [n for n, _ in allocators] + [n for n, e, p in plan if n not in [a for a, _ in allocators]]
    names = list(dict.fromkeys(n for n in names if any(x["allocator"] == n for x in rows)))
    cases = list(dict.fromkeys(x["case"] for x in rows))
    ref = REFERENCE if REFERENCE in names else (names[0] if names else "")
    med = {(c, n): median([x["ns_per_op"] for x in rows if x["case"] == c and x["allocator"] == n])
           for c in cases for n in names}
    lines = [f"Micro-benchmarks: median ns per operation (in brackets: ratio to {ref})\n",
             "| case | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for c in cases:
        r = med[(c, ref)]
        cells = []
        for n in names:
            v = med[(c, n)]
            cells.append("-" if math.isnan(v) else f"{v:.1f}" + ("" if math.isnan(r) else f" ({v / r:.2f})"))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    base = write_outputs(args, stem + "-micro", machine, rows,
                         {"summary": {f"{c}|{n}": v for (c, n), v in med.items()}}, table)
    log(f"wrote {base}.csv/.json/.md")


# ---------------------------------------------------------------- instructions

# Case -> what the loop does (instr/pairs.c). "random" runs over a fixed set
# of --random-blocks blocks, so its N is that number (one pass) and 2N two.
INSTR_CASES = {
    "empty": "malloc(16) then free: each free empties the page",
    "live": "the same, one other block kept allocated: the page never empties",
    "random": "a million blocks freed in a random order, then allocated again",
}


def callgrind_counts(exe, args, path, name):
    """Runs exe under callgrind; returns (all instructions, the instructions
    of every object but the executable). The second is the allocator with
    the harness removed: what is left when the program's own code (the loop,
    and the PLT stubs, which belong to it) is taken out; the start-up of
    the C library and the loader is in it too, but the same for N and 2N."""
    with tempfile.NamedTemporaryFile(suffix=".callgrind", delete=False) as tf:
        out = tf.name
    try:
        # Uncompressed names and positions: a cost line is then "line cost".
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               "--compress-strings=no", "--compress-pos=no", exe] + [str(a) for a in args]
        p = subprocess.run(cmd, env=run_env(path, name), capture_output=True, text=True)
        m = re.search(r"Collected\s*:\s*(\d+)", p.stderr)
        if p.returncode != 0 or not m:
            # The program's own message if it left one, else valgrind's last.
            lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
            own = [x for x in lines if not x.startswith("==")]
            raise RuntimeError((own or lines or ["?"])[0 if own else -1])
        total = int(m.group(1))
        return total, total - callgrind_self_cost(out, exe)
    finally:
        os.unlink(out)


def callgrind_self_cost(out_file, exe):
    """The self cost (instructions executed in its own code, callees not
    counted) of object `exe`, from a callgrind output file written with
    --compress-strings=no. Format: "ob=" names the object of the functions
    that follow; a cost line is "position cost", except the one after a
    "calls=" line, which is the inclusive cost of that call."""
    exe = os.path.realpath(exe)
    in_exe, after_call, total = False, False, 0
    with open(out_file) as f:
        for line in f:
            if after_call:
                after_call = False
            elif line.startswith("ob="):
                in_exe = os.path.realpath(line[3:].strip()) == exe
            elif line.startswith("calls="):
                after_call = True
            elif in_exe and line[:1].isdigit():
                parts = line.split()
                if len(parts) >= 2:
                    total += int(parts[1])
    return total


def run_instructions(args, allocators, machine, stem):
    if not shutil.which("valgrind"):
        log("skipping --instructions: valgrind not found")
        return
    exe = os.path.join(args.build_dir, "bench", "instr-pairs")
    if not os.access(exe, os.X_OK):
        sys.exit(f"error: {exe} not built")
    rows, failed = [], {}
    for name, path in allocators:
        for case in INSTR_CASES:
            n = args.random_blocks if case == "random" else args.pairs
            try:
                (t1, a1), (t2, a2) = (callgrind_counts(exe, [k, 16, case, args.random_blocks], path, name)
                                      for k in (n, 2 * n))
            except RuntimeError as e:
                log(f"{name:9s} {case:6s} failed: {e}")
                failed.setdefault(name, str(e))
                continue
            rows.append({"allocator": name, "case": case, "pairs": n,
                         "instructions_n": t1, "instructions_2n": t2,
                         "instructions_per_pair": round((t2 - t1) / n, 2),
                         "allocator_n": a1, "allocator_2n": a2,
                         "allocator_per_pair": round((a2 - a1) / n, 2)})
            log(f"{name:9s} {case:6s} {(t2 - t1) / n:7.1f} instructions per pair, "
                f"{(a2 - a1) / n:7.1f} without the harness")
    table = instruction_tables(rows, [n for n, _ in allocators], failed, args)
    print("\n" + table)
    base = write_outputs(args, stem + "-instructions", machine, rows, {"failed": failed}, table)
    log(f"wrote {base}.csv/.json/.md")


def instruction_tables(rows, names, failed, args):
    """Markdown: per allocator (failed ones too) and case, the counts
    without and with the harness, and why any run failed."""
    cases = list(INSTR_CASES)
    val = {(x["allocator"], x["case"]): x for x in rows}
    ref = REFERENCE if REFERENCE in names else (names[0] if names else "-")
    out = [f"Instructions per malloc(16)/free pair (callgrind, (I(2N) - I(N)) / N; N = {args.pairs}, "
           f"random: N = {args.random_blocks} blocks, one pass)\n"]
    out += [f"- {c}: {INSTR_CASES[c]}" for c in cases]
    for field, title in (("allocator_per_pair", "Without the harness: the instructions outside "
                          "the program's own code (in malloc and free)"),
                         ("instructions_per_pair", "With the harness: the whole process "
                          "(the loop and its calls included, the same for all)")):
        out += ["", f"{title}; in brackets: ratio to {ref}\n",
                "| allocator | " + " | ".join(cases) + " |", "|---|" + "---:|" * len(cases)]
        for n in names:
            cells = []
            for c in cases:
                x, r = val.get((n, c)), val.get((ref, c))
                if not x:
                    cells.append("failed")
                    continue
                v = x[field]
                cells.append(f"{v:.1f}" + (f" ({v / r[field]:.2f})" if r and r[field] else ""))
            out.append(f"| {n} | " + " | ".join(cells) + " |")
    if failed:
        out += [""] + [f"- {n} failed under callgrind: {why}" for n, why in failed.items()]
    return "\n".join(out) + "\n"


def report_only(args):
    with open(args.report) as f:
        data = json.load(f)
    machine, rows = data["machine"], data["raw"]
    allocators = [(n, v.get("preload")) for n, v in machine["allocators"].items()]
    workloads = list(dict.fromkeys(x["workload"] for x in rows))
    for x in rows:  # runs recorded before cpu_seconds existed
        x.setdefault("cpu_seconds", x.get("user", 0) + x.get("sys", 0))
    summary = summarize(workloads, allocators, rows)
    table, _ = workload_tables(workloads, allocators, summary)
    table += free_notes(workloads, allocators, rows)
    print(table)
    args.out_dir = os.path.dirname(os.path.abspath(args.report))
    stem = os.path.basename(args.report)[:-len(".json")]
    base = os.path.join(args.out_dir, stem)
    with open(base + ".md", "w") as f:
        f.write(f"# {stem}\n\nCommand: `{machine['command']}`\n\n"
                f"Machine: {machine['cpu']}, {machine['nproc']} CPUs, {machine['memory_mib']} MiB, "
                f"Linux {machine['kernel']}, {machine['glibc']}; "
                f"load average at start {machine.get('loadavg_at_start', '?')}\n\n"
                + "".join(f"- {n}: {v['version']}\n" for n, v in machine["allocators"].items())
                + "\n" + table + "\n")
    log(f"wrote {base}.md")
    if not args.no_chart and draw_chart(base + ".png", workloads, allocators, summary, machine):
        log(f"wrote {base}.png")
    return 0


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO_DIR, "build"),
                    help="meson build directory (default: build/ at the repo top)")
    ap.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "results"),
                    help="where results go (default: bench/results)")
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 runs: under two minutes")
    ap.add_argument("--micro", action="store_true", help="run the micro-benchmarks instead")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per malloc/free pair with callgrind instead")
    ap.add_argument("--runs", type=int, default=0, help="runs per workload and allocator "
                    "(default 5, --quick 3, --micro 1)")
    ap.add_argument("--threads", type=int, default=0, help="threads per workload (default: nproc)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every workload size")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), help="only these workloads")
    ap.add_argument("--allocators", nargs="+", help="only these allocators")
    ap.add_argument("--alloc", action="append", default=[], metavar="NAME=PATH",
                    help="add an allocator, or override one's preload library")
    ap.add_argument("--options", action="append", default=[], metavar="NAME=LIST",
                    help="MAPALLOC_OPTIONS for allocator NAME's runs (its heap profiles, "
                         "if it writes any, go to a temporary directory)")
    ap.add_argument("--filter", help="--micro: Google Benchmark filter regex")
    ap.add_argument("--min-time", type=float, default=0, help="--micro: seconds per case "
                    "(default 0.2, --quick 0.02)")
    ap.add_argument("--pairs", type=int, default=100000, help="--instructions: N")
    ap.add_argument("--random-blocks", type=int, default=1000000,
                    help="--instructions: blocks of the random-order case (its N)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per workload run")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--report", metavar="RESULTS.json",
                    help="rewrite the tables (.md) and chart (.png) of a saved workload run "
                         "from its raw results, without running anything")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    for a in args.alloc:
        if "=" not in a:
            ap.error(f"--alloc wants NAME=PATH, not {a}")
    for o in args.options:
        if "=" not in o:
            ap.error(f"--options wants NAME=LIST, not {o}")
        name, opts = o.split("=", 1)
        ALLOC_OPTIONS[name] = opts
    global PROFILE_DIR
    profile_dir = tempfile.TemporaryDirectory(prefix="mapalloc-bench-prof.")
    PROFILE_DIR = profile_dir.name
    if not os.path.isdir(args.build_dir):
        sys.exit(f"error: no build directory {args.build_dir}: "
                 "meson setup build && meson compile -C build first")

    if args.report:
        return report_only(args)

    allocators = discover_allocators(args)
    if not allocators:
        sys.exit("error: no allocator to run")
    if REFERENCE not in [n for n, _ in allocators]:
        log(f"note: {REFERENCE} not available; ratios are to {allocators[0][0]}")
    machine = machine_description(args, allocators)
    stem = (datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
            + (f"-t{args.threads}" if args.threads else ""))

    if args.instructions:
        run_instructions(args, allocators, machine, stem)
        return 0
    if args.micro:
        run_micro(args, allocators, machine, stem)
        return 0

    workloads, results, failures = run_workloads(args, allocators)
    summary = summarize(workloads, allocators, results)
    table, geo = workload_tables(workloads, allocators, summary)
    table += free_notes(workloads, allocators, results)
    print("\n" + table)
    base = write_outputs(args, stem, machine, results,
                         {"summary": summary, "geomean": geo, "reference": reference_of(allocators),
                          "failures": failures}, table)
    log(f"wrote {base}.csv/.json/.md")
    if not args.no_chart and draw_chart(base + ".png", workloads, allocators, summary, machine):
        log(f"wrote {base}.png")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
