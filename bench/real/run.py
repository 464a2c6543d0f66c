#!/usr/bin/python3
"""Real programs from Debian's packages under every installed allocator.

Each program runs on inputs generated here into a scratch directory
(nothing is downloaded), deterministic, a few seconds under glibc. Runs are
interleaved: for each run, for each program, every allocator once, starting
one allocator further on each run. Per run it measures the wall time, the
CPU time (user + system, of the whole process tree, from os.wait4) and the
peak RSS: the largest peak resident set of any one process of the program's
tree (tree-rss.c, built here with cc; see there why not the harness's own
wait4). It prints medians, ratios to glibc and geometric means, and writes
<date>-<time>-real.{csv,json,md} (and .png with matplotlib) to
bench/results/, with the machine, the allocators' and the programs' package
versions.

  bench/real/run.py                            every program, every allocator, 3 runs
  bench/real/run.py --programs sort --runs 1   a smoke check (seconds)
  bench/real/run.py --list                     the programs, and which are missing
  bench/real/run.py --alloc NAME=/path/lib.so  add (or override) an allocator
  bench/real/run.py --variant NAME=OPTIONS     mapalloc's preload with MAPALLOC_OPTIONS=OPTIONS

bench/real/install-deps installs the programs (Debian packages); a program
whose command is missing is skipped with a line saying so.
"""

import argparse
import datetime
import hashlib
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REAL_DIR = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.dirname(REAL_DIR)
REPO_DIR = os.path.dirname(BENCH_DIR)
SCRIPTS = os.path.join(REAL_DIR, "scripts")

# The suite's harness (bench/run.py): allocator discovery, the machine
# description, medians and geometric means, the output files.
_spec = importlib.util.spec_from_file_location("bench_suite", os.path.join(BENCH_DIR, "run.py"))
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)
log = suite.log
BASELINE = "glibc"
PYTHON = "/usr/bin/python3"  # Debian's, whose test package provides test.test_dict
PYTHON_PACKAGE = "python%d.%d" % sys.version_info[:2]  # this script runs on it too (the #! line)


# ---------------------------------------------------------------- inputs

def words(rng, n, lo=2, hi=12):
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(lo, hi)))
            for _ in range(n)]


def gen_git_history(d, files=80, commits=200):
    """d/history/K/: the files that change in commit K (all of them in 0)."""
    rng = random.Random(5)
    vocab = words(rng, 3000, 2, 10)

    def line():
        return " ".join(rng.choice(vocab) for _ in range(rng.randrange(3, 12)))

    tree = {f"src/m{i // 10}/f{i}.txt": [line() for _ in range(rng.randrange(100, 600))]
            for i in range(files)}
    for k in range(commits):
        changed = sorted(tree) if k == 0 else rng.sample(sorted(tree), 4)
        for name in changed:
            lines = tree[name]
            for _ in range(rng.randrange(1, 15) if k else 0):
                op, at = rng.random(), rng.randrange(len(lines))
                if op < 0.4:
                    lines[at] = line()
                elif op < 0.8:
                    lines.insert(at, line())
                elif len(lines) > 50:
                    del lines[at]
            path = os.path.join(d, "history", str(k), name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")


def gen_graph(d, nodes=2500, width=40):
    """A layered digraph: each node has two parents in the layers above."""
    rng = random.Random(7)
    out = ["digraph g {", "  node [shape=box];"]
    out += [f'  n{i} [label="node {i}\\n{rng.randrange(10**6)}"];' for i in range(nodes)]
    layers = [list(range(i, min(nodes, i + width))) for i in range(0, nodes, width)]
    for li in range(1, len(layers)):
        for v in layers[li]:
            for _ in range(2):
                u = rng.choice(layers[max(0, li - rng.choice((1, 1, 1, 2, 3)))])
                out.append(f"  n{u} -> n{v};")
    with open(os.path.join(d, "graph.dot"), "w") as f:
        f.write("\n".join(out + ["}"]) + "\n")


def gen_c_source(d, functions=200):
    """A C file of loops, switches and calls between its functions, which
    gcc -O2 inlines and unrolls."""
    rng = random.Random(3)
    out = ["#include <stddef.h>", "#include <string.h>",
           "struct rec { int id; double w; char name[24]; struct rec *next; };",
           "static inline int mix(int a, int b) { return (a * 31) ^ (b >> 3); }"]
    for i in range(functions):
        out += [f"int f{i}(int *a, int n, struct rec *r) {{", "  int s = 0; double acc = 0.0;"]
        for j in range(rng.randrange(4, 12)):
            kind = rng.randrange(5)
            if kind == 0:
                out.append(f"  for (int i = 0; i < n; i++) {{ s += mix(a[i], {rng.randrange(1000)}); "
                           f"if (s > {rng.randrange(10**6)}) s -= a[(i * {rng.randrange(7, 97)}) % n]; }}")
            elif kind == 1:
                out.append(f"  switch (s & 7) {{ case 0: s += {rng.randrange(99)}; break; case 1: s ^= n; "
                           f"break; case 2: s *= 3; break; case 3: acc += s * 0.{rng.randrange(1, 99)}; "
                           f"break; default: s -= {rng.randrange(50)}; }}")
            elif kind == 2:
                out.append(f"  for (struct rec *p = r; p; p = p->next) {{ acc += p->w * {rng.randrange(1, 9)}; "
                           f"if (p->id == {rng.randrange(100)}) memcpy(p->name, \"n{i:05d}_{j:02d}\", 10); }}")
            elif kind == 3:
                out.append(f"  if (n > {rng.randrange(5, 50)}) {{ for (int i = 1; i < n; i++) "
                           f"a[i] = a[i - 1] * {rng.randrange(2, 9)} + (a[i] >> {rng.randrange(1, 5)}); }}")
            elif i and rng.random() < 0.5:
                out.append(f"  s += f{rng.randrange(i)}(a, n / 2, r);")
            else:
                out.append(f"  acc *= 1.0{rng.randrange(10)};")
        out.append("  return s + (int)acc;\n}")
    with open(os.path.join(d, "big.c"), "w") as f:
        f.write("\n".join(out) + "\n")


def gen_text(path, lines, seed):
    """Lines of "word number word word...": sortable, compressible."""
    rng = random.Random(seed)
    vocab = words(rng, 20000)
    with open(path, "w") as f:
        for _ in range(lines):
            rest = " ".join(rng.choices(vocab, k=rng.randrange(1, 8)))
            f.write(f"{rng.choice(vocab)} {rng.randrange(10**9)} {rest}\n")


def gen_json(d, records=120000):
    rng = random.Random(21)
    vocab = words(rng, 2000, 3, 10)
    with open(os.path.join(d, "in.json"), "w") as f:
        f.write("[")
        for i in range(records):
            if i:
                f.write(",\n")
            json.dump({"id": i, "g": rng.choice(vocab[:200]), "v": rng.randrange(10000),
                       "name": rng.choice(vocab) + " " + rng.choice(vocab),
                       "tags": rng.sample(vocab, rng.randrange(0, 6)),
                       "pos": {"x": rng.random(), "y": rng.random()}}, f)
        f.write("]\n")


def gen_image(d, w=1600, h=1200):
    """A binary PPM with patterns that resizing and blurring do not flatten."""
    rows = []
    for y in range(h):
        px = bytearray(3 * w)
        px[0::3] = bytes(((x * 7 + y * 3) ^ (x * y >> 6)) & 255 for x in range(w))
        px[1::3] = bytes(int(128 + 127 * math.sin((x + 2 * y) / 37.0)) for x in range(w))
        px[2::3] = bytes((x * y // 97) & 255 for x in range(w))
        rows.append(bytes(px))
    with open(os.path.join(d, "in.ppm"), "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h) + b"".join(rows))


# ---------------------------------------------------------------- programs

def python_testsuite_missing():
    p = subprocess.run([PYTHON, "-c", "import test.test_dict"], capture_output=True)
    return "Debian's python3 test package (libpython3.X-testsuite)" if p.returncode else None


def file_digest(*names):
    def digest(d, out):
        h = hashlib.sha256()
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                h.update(f.read())
        return h.hexdigest()[:16]
    return digest


def stdout_digest(d, out):
    return hashlib.sha256(out.encode()).hexdigest()[:16]


def python_tests_digest(d, out):
    """The tests' verdict, which must hold; the rest of the output has times."""
    return "SUCCESS" if "Tests result: SUCCESS" in out else None


JQ_QUERY = ("group_by(.g) | map({g: .[0].g, n: length, total: (map(.v) | add), "
            "names: (map(.name) | unique | length), tags: ([.[].tags[]] | unique | length), "
            "far: (map(select(.pos.x > 0.9)) | length)}) | sort_by(-.total) | .[:20]")

PYTHON_TESTS = ["test_dict", "test_list", "test_set", "test_tuple", "test_deque",
                "test_ordered_dict", "test_collections", "test_userdict"]


class Program:
    def __init__(self, name, what, package, argv, needs, setup=None, digest=stdout_digest, missing=None,
                 stdin=None):
        self.name, self.what, self.package, self.argv, self.needs = name, what, package, argv, needs
        self.setup, self.digest, self.missing, self.stdin = setup, digest, missing, stdin

    def why_missing(self):
        """None when it can run, else what is missing."""
        for cmd in self.needs:
            if not shutil.which(cmd):
                return cmd
        return self.missing() if self.missing else None


# In the order of the tables. argv and stdin are relative to the program's
# scratch directory, where it runs.
PROGRAMS = [
    Program("python-containers", "CPython's own tests of dict, list, set, tuple, deque, OrderedDict, "
            "collections, UserDict (python3 -m test)", f"lib{PYTHON_PACKAGE}-testsuite",
            [PYTHON, "-m", "test"] + PYTHON_TESTS, [PYTHON], digest=python_tests_digest,
            missing=python_testsuite_missing),
    Program("git", "git: 200 commits of generated files, gc --aggressive, log -p | wc", "git",
            ["sh", os.path.join(SCRIPTS, "git-session.sh"), "history"], ["git"], gen_git_history),
    Program("dot", "graphviz dot -Tsvg of a layered digraph of 2,500 nodes, 4,900 edges", "graphviz",
            ["dot", "-Tsvg", "graph.dot", "-o", "graph.svg"], ["dot"], gen_graph, file_digest("graph.svg")),
    Program("gcc", "gcc -O2 -c of a generated C file of 200 functions (cc1 inlines across them)", "gcc-12",
            ["gcc", "-O2", "-w", "-c", "big.c", "-o", "big.o"], ["gcc"], gen_c_source, file_digest("big.o")),
    Program("python-json", "python3: 150,000 records to JSON and back, grouped and indexed", PYTHON_PACKAGE,
            [PYTHON, os.path.join(SCRIPTS, "python-json.py")], [PYTHON]),
    Program("perl", "perl: 250,000 records in hashes, regex substitution, sorts and joins", "perl",
            ["perl", os.path.join(SCRIPTS, "perl-work.pl")], ["perl"]),
    Program("sqlite", "sqlite3 shell: 200,000 rows, 3 indexes, update, group by, joins, sorts", "sqlite3",
            ["sh", "-c", "rm -f db.sqlite && exec sqlite3 -bail -init /dev/null db.sqlite"], ["sqlite3"],
            stdin=os.path.join(SCRIPTS, "sqlite.sql")),
    Program("sort", "GNU sort -k2,2n -k1,1 of 1,000,000 generated lines (47 MB)", "coreutils",
            ["sort", "-k2,2n", "-k1,1", "-o", "sorted.txt", "lines.txt"], ["sort"],
            lambda d: gen_text(os.path.join(d, "lines.txt"), 1000000, 31), file_digest("sorted.txt")),
    Program("xz", "xz -6 -T1 of 4 MB of generated text, then xz -d", "xz-utils",
            ["sh", "-c", "xz -6 -T1 -c text.txt > text.xz && xz -dc text.xz | cksum && wc -c < text.xz"],
            ["xz"], lambda d: gen_text(os.path.join(d, "text.txt"), 85000, 41)),
    Program("jq", "jq group_by/map/unique over a generated 19 MB JSON array", "jq",
            ["jq", "-c", JQ_QUERY, "in.json"], ["jq"], gen_json),
    Program("convert", "ImageMagick convert: 1600x1200 image resized up, blurred, rotated, resized down",
            "imagemagick-6.q16",
            ["/usr/bin/convert", "in.ppm", "-resize", "180%", "-blur", "0x3", "-rotate", "17",
             "-resize", "50%", "-strip", "out.png"], ["/usr/bin/convert"], gen_image, file_digest("out.png")),
]
BY_NAME = {p.name: p for p in PROGRAMS}


def program_env(work):
    """The same environment for every allocator: no user configuration,
    fixed seeds, dates and locale, so that runs repeat."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "MAPALLOC_", "GIT_"))}
    env.update({
        "HOME": work, "LC_ALL": "C", "TZ": "UTC",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    })
    return env


def program_versions(programs):
    """The Debian package of each program, with its version."""
    return {p.name: f"{p.package} {suite.sh(['dpkg-query', '-W', '-f=${Version}', p.package])}".strip()
            for p in programs}


# ---------------------------------------------------------------- running

def build_helper(source, output):
    """Compiles bench/real/SOURCE, a program of one file, into output."""
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-o", output, os.path.join(REAL_DIR, source)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"error: {' '.join(cmd)}:\n{p.stderr}")
    return output


def run_once(tree_rss, prog, work, env, preload, timeout):
    """One run under tree-rss; returns a dict of measurements."""
    report = os.path.join(work, ".tree-rss")
    env = dict(env, TREE_RSS_PRELOAD=preload or "")
    cwd = os.path.join(work, prog.name)
    stdin = open(prog.stdin) if prog.stdin else subprocess.DEVNULL
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([tree_rss, report] + prog.argv, cwd=cwd, env=env, stdin=stdin,
                                stdout=out, stderr=err, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            if prog.stdin:
                stdin.close()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    fields = {}
    try:
        with open(report) as f:
            fields = dict(kv.split("=", 1) for kv in f.read().split())
        os.unlink(report)
    except (OSError, ValueError):
        pass
    note = ""
    if proc.returncode != 0:
        note = f"exit status {proc.returncode}: " + (stderr.strip().splitlines() or [""])[-1][:120]
    elif "cannot be preloaded" in stderr:  # ld.so ignored LD_PRELOAD
        note = "the preload was not loaded"
    digest = None
    if not note:
        try:
            digest = prog.digest(cwd, stdout)
        except OSError as e:
            note = f"no output: {e}"
        if digest is None and not note:
            note = "wrong output"
    return {"seconds": round(wall, 4), "user": round(ru.ru_utime, 4), "sys": round(ru.ru_stime, 4),
            "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 4),
            "peak_rss_mib": round(int(fields.get("maxrss_kib", 0)) / 1024.0, 2),
            "procs": int(fields.get("procs", 0)), "peak_comm": fields.get("comm", "?"),
            "digest": digest, "ok": not note, "note": note,
            "loadavg_1min": round(os.getloadavg()[0], 2)}


def discover(args):
    """[(name, preload or None, MAPALLOC_OPTIONS or None)], glibc first."""
    found = suite.discover_allocators(args)
    found.sort(key=lambda a: a[0] != BASELINE)
    out = [(n, p, None) for n, p in found]
    mapalloc = dict(found).get(suite.REFERENCE)
    for v in args.variant:
        name, opts = v.split("=", 1)
        if mapalloc:
            out.append((name, mapalloc, opts))
        else:
            log(f"skipping {name}: no mapalloc preload")
    return out


def run_programs(args, programs, allocators, work):
    tree_rss = build_helper("tree-rss.c", os.path.join(work, "tree-rss"))
    env = program_env(work)
    for p in programs:
        os.makedirs(os.path.join(work, p.name), exist_ok=True)
        if p.setup:
            t0 = time.perf_counter()
            p.setup(os.path.join(work, p.name))
            log(f"inputs of {p.name} generated in {time.perf_counter() - t0:.1f} s")
    total = args.runs * len(programs) * len(allocators)
    log(f"programs: {len(programs)} x {len(allocators)} allocators x {args.runs} runs = {total} runs")
    rows, reference_digest, failures, k = [], {}, 0, 0
    t_start = time.perf_counter()
    for r in range(args.runs):
        for p in programs:
            order = allocators[r % len(allocators):] + allocators[:r % len(allocators)]
            for name, preload, opts in order:
                k += 1
                run_env = dict(env, MAPALLOC_OPTIONS=opts) if opts else env
                row = {"program": p.name, "allocator": name, "run": r}
                row.update(run_once(tree_rss, p, work, run_env, preload, args.timeout))
                # Every allocator must compute what the first run (glibc's) did.
                if row["ok"]:
                    ref = reference_digest.setdefault(p.name, row["digest"])
                    if row["digest"] != ref:
                        row["ok"], row["note"] = False, f"output differs ({row['digest']} != {ref})"
                failures += not row["ok"]
                rows.append(row)
                log(f"[{k:3d}/{total}] run {r + 1}/{args.runs} {p.name:17s} {name:10s} "
                    f"{row['seconds']:7.2f} s {row['cpu_seconds']:7.2f} cpu {row['peak_rss_mib']:8.1f} MiB "
                    f"({row['peak_comm']}){'' if row['ok'] else '  FAIL ' + row['note']}")
    log(f"done in {time.perf_counter() - t_start:.0f} s, {failures} failed runs")
    return rows, failures


# ---------------------------------------------------------------- report

FIELDS = (("peak_rss_mib", "Median peak RSS", "MiB", "{:.1f}"),
          ("cpu_seconds", "Median CPU time, user + system", "s", "{:.2f}"),
          ("seconds", "Median wall time", "s", "{:.2f}"))


def summarize(programs, names, rows):
    """{program: {allocator: {field: median over ok runs, "runs": n}}}"""
    out = {}
    for p in programs:
        out[p] = {}
        for n in names:
            ok = [x for x in rows if x["program"] == p and x["allocator"] == n and x["ok"]]
            out[p][n] = {f: suite.median([x[f] for x in ok]) for f, *_ in FIELDS}
            out[p][n]["runs"] = len(ok)
    return out


def tables(programs, names, summary):
    """Markdown: per field, programs x allocators with ratios to glibc and
    the geometric means of the values and of the ratios."""
    base = BASELINE if BASELINE in names else names[0]
    text, geo = [], {}
    for field, title, unit, fmt in FIELDS:
        text += [f"{title} ({unit}; in brackets: ratio to {base}, lower is better)\n",
                 "| program | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for p in programs:
            b = summary[p][base][field]
            cells = []
            for n in names:
                v = summary[p][n][field]
                cells.append("-" if math.isnan(v) else fmt.format(v) + ("" if math.isnan(b) or not b
                                                                        else f" ({v / b:.2f})"))
            text.append(f"| {p} | " + " | ".join(cells) + " |")
        cells = []
        for n in names:
            g = suite.geomean([summary[p][n][field] for p in programs])
            gr = suite.geomean([summary[p][n][field] / summary[p][base][field] for p in programs
                                if summary[p][base][field] and not math.isnan(summary[p][base][field])])
            geo.setdefault(n, {})[field] = g
            geo[n][field + "_ratio"] = gr
            cells.append(fmt.format(g) + f" ({gr:.2f})")
        text += ["| **geometric mean** | " + " | ".join(cells) + " |", ""]
    return "\n".join(text), geo


def draw_chart(path, programs, names, summary, machine):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib for this python: chart skipped")
        return None
    base = BASELINE if BASELINE in names else names[0]
    groups = programs + ["geomean"]
    fig, axes = plt.subplots(2, 1, figsize=(max(9, 0.5 * len(groups) * len(names)), 8), sharex=True)
    width = 0.8 / len(names)
    for ax, field, label in ((axes[0], "peak_rss_mib", "peak RSS"), (axes[1], "cpu_seconds", "CPU time")):
        for i, n in enumerate(names):
            vals = [summary[p][n][field] / summary[p][base][field] for p in programs]
            vals = [0 if math.isnan(v) else v for v in vals]
            vals.append(suite.geomean(vals))
            ax.bar([g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))], vals, width, label=n)
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_ylabel(f"{label} / {base}\n(lower is better)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(names), fontsize="small", loc="upper left")
    axes[1].set_xticks(range(len(groups)))
    axes[1].set_xticklabels(groups, rotation=25)
    fig.suptitle(f"real programs: median of runs, relative to {base}\n{machine['cpu']}, "
                 f"{machine['nproc']} CPUs, Linux {machine['kernel']}, {machine['date'][:10]}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO_DIR, "build"),
                    help="meson build directory with preload/libmapalloc-preload.so (default: build/)")
    ap.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "results"),
                    help="where results go (default: bench/results)")
    ap.add_argument("--runs", type=int, default=3, help="runs per program and allocator (default 3)")
    ap.add_argument("--programs", nargs="+", metavar="NAME", help="only these programs (--list names them)")
    ap.add_argument("--list", action="store_true", help="list the programs and exit")
    ap.add_argument("--allocators", nargs="+", help="only these allocators")
    ap.add_argument("--alloc", action="append", default=[], metavar="NAME=PATH",
                    help="add an allocator, or override one's preload library")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OPTIONS",
                    help="add mapalloc run with MAPALLOC_OPTIONS=OPTIONS under this name")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run (default 300)")
    ap.add_argument("--work-dir", help="scratch directory (default: a new one in $TMPDIR, removed after)")
    ap.add_argument("--no-chart", action="store_true")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    for a in args.alloc + args.variant:
        if "=" not in a:
            ap.error(f"--alloc and --variant want NAME=VALUE, not {a}")

    if args.list:
        for p in PROGRAMS:
            why = p.why_missing()
            print(f"{p.name:18s} {p.what}" + (f"  [missing: {why}]" if why else ""))
        return 0
    unknown = [n for n in args.programs or [] if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown program(s) {' '.join(unknown)}; --list names them")
    programs = []
    for p in PROGRAMS:
        if args.programs and p.name not in args.programs:
            continue
        why = p.why_missing()
        if why:
            log(f"skipping {p.name}: {why} not found (bench/real/install-deps installs it)")
        else:
            programs.append(p)
    if not programs:
        sys.exit("error: no program to run")
    allocators = discover(args)
    if not allocators:
        sys.exit("error: no allocator to run")

    machine = suite.machine_description(args, [(n, p) for n, p, _ in allocators])
    for n, _, opts in allocators:
        if opts:  # a variant: mapalloc's build, with options
            machine["allocators"][n].update(options=opts,
                                            version=machine["allocators"][suite.REFERENCE]["version"])
    machine["programs"] = program_versions(programs)
    stem = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-real"
    work = os.path.abspath(args.work_dir) if args.work_dir else tempfile.mkdtemp(prefix="mapalloc-real-")
    os.makedirs(work, exist_ok=True)
    try:
        rows, failures = run_programs(args, programs, allocators, work)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    names = [n for n, _, _ in allocators]
    pnames = [p.name for p in programs]
    summary = summarize(pnames, names, rows)
    table, geo = tables(pnames, names, summary)
    print("\n" + table)
    loads = [x["loadavg_1min"] for x in rows]
    preface = ("Peak RSS: the largest peak resident set (VmHWM) of any one process of the program's "
               "tree; CPU: user + system of the whole tree. "
               f"Load average (1 min) during the runs: median {suite.median(loads):.2f}, "
               f"max {max(loads):.2f}.\n\n"
               + "".join(f"- {p.name}: {p.what} ({machine['programs'][p.name]})\n" for p in programs) + "\n")
    base = suite.write_outputs(args, stem, machine, rows,
                               {"summary": summary, "geomean": geo, "baseline": BASELINE,
                                "failures": failures}, preface + table)
    log(f"wrote {base}.csv/.json/.md")
    if not args.no_chart and draw_chart(base + ".png", pnames, names, summary, machine):
        log(f"wrote {base}.png")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
