#!/usr/bin/python3
"""Where mapalloc's peak RSS goes, against glibc's, for run.py's programs.

Runs each program once under glibc and once under mapalloc, each with the
probe (probe.c, built here from --build-dir's objects): in every process of
the program, a thread samples the resident size every 10 ms and, at each
new high, records where the allocator's resident pages are. For the
process of the tree with the highest VmHWM it prints, for both allocators,
the resident memory at that sampled peak by component, and the difference:

  live requested       bytes the program asked for, in live blocks
  rounding/headers     mapalloc: block size - request (resident part);
                       glibc: chunk size (header, 16-byte rounding) - request
  free in used pages   mapalloc: free blocks and unused tails of pages that
                       hold live blocks; glibc: free chunks and top of its heaps
  empty pages kept     mapalloc: pages with no live block, kept for reuse
  free slices          mapalloc: freed slices not yet purged (decay_ms, dirty_max_kb)
  large live           blocks with a mapping of their own (resident part)
  large cache          mapalloc: freed large mappings kept for reuse
  headers, metadata    mapalloc: region headers, heap structures, large table
  program's own        anonymous memory the allocator does not own (stacks,
                       the program's own mmaps, e.g. CPython's object arenas)
  files                file-backed resident pages (code, libraries)

  bench/real/probe.py python-containers git dot
  bench/real/probe.py --options large_cache=0 dot     # mapalloc with options
  bench/real/probe.py --json out.json sqlite          # the raw records too

The probe costs a lock per allocation, so programs run slower than in
run.py, and time-driven purging (decay_ms) holds less than at full speed;
run.py's figures are the reference, these say where the memory is.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REAL_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(os.path.dirname(REAL_DIR))
_spec = importlib.util.spec_from_file_location("bench_real", os.path.join(REAL_DIR, "run.py"))
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)

# The glue's calls into mapalloc and mapalloc's calls to the kernel that the
# probe intercepts (ld --wrap); mmap64 is mmap's name with 64-bit off_t.
WRAPPED = ["mmap64", "munmap", "mremap", "mapalloc_malloc", "mapalloc_calloc", "mapalloc_realloc",
           "mapalloc_reallocarray", "mapalloc_free", "mapalloc_free_sized", "mapalloc_free_aligned_sized",
           "mapalloc_aligned_alloc", "mapalloc_posix_memalign", "mapalloc_memalign", "mapalloc_valloc",
           "mapalloc_pvalloc"]
MIB = 1024.0 * 1024.0


def source_dir(build_dir):
    """The source tree of a meson build directory: the probe reads the
    internal structures of the allocator built there."""
    try:
        with open(os.path.join(build_dir, "meson-info", "meson-info.json")) as f:
            return json.load(f)["directories"]["source"]
    except (OSError, ValueError, KeyError):
        return REPO_DIR


def preload_aliases(tree):
    """The standard names that preload/meson.build makes linker aliases of
    mapalloc_ functions: {name: target}."""
    with open(os.path.join(tree, "preload", "meson.build")) as f:
        text = f.read()
    block = re.search(r"preload_aliases = \{(.*?)\}", text, re.S)
    if block is None:
        sys.exit("error: no preload_aliases in preload/meson.build")
    return dict(re.findall(r"'(\w+)' : '(\w+)'", block.group(1)))


def alias_flags(tree):
    """The same aliases for the probe, to its __wrap_ functions where it
    wraps the target, so that the program's calls reach the probe."""
    flags = []
    for name, target in preload_aliases(tree).items():
        fn = "mapalloc_" + target
        flags.append(f"-Wl,--defsym={name}={'__wrap_' + fn if fn in WRAPPED else fn}")
    return flags


def build_probes(build_dir, work):
    cc = os.environ.get("CC", "cc")
    src = os.path.join(REAL_DIR, "probe.c")
    tree = source_dir(build_dir)
    flags = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-fPIC", "-shared", "-pthread", "-D_FILE_OFFSET_BITS=64"]
    glue = os.path.join(build_dir, "preload", "libmapalloc-preload.so.p", "preload.c.o")
    objects = os.path.join(build_dir, "src", "libmapalloc_objects.a")
    for f in (glue, objects):
        if not os.path.exists(f):
            sys.exit(f"error: {f} missing (meson compile -C {build_dir})")
    out = {"glibc": os.path.join(work, "probe-glibc.so"), "mapalloc": os.path.join(work, "probe-mapalloc.so")}
    cmds = [[cc, *flags, "-DPROBE_GLIBC", src, "-o", out["glibc"]],
            [cc, *flags, "-I", os.path.join(tree, "src"), "-I", os.path.join(tree, "include"), src, glue,
             "-Wl,--whole-archive", objects, "-Wl,--no-whole-archive",
             *[f"-Wl,--wrap={s}" for s in WRAPPED], *alias_flags(tree), "-Wl,-Bsymbolic-functions",
             "-Wl,--no-undefined",
             "-o", out["mapalloc"]]]
    for cmd in cmds:
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            sys.exit(f"error: {' '.join(cmd)}\n{p.stderr}")
    return out


def components(rec):
    """(name, bytes) of the process's resident memory at the sampled peak;
    they add up to the sampled RSS."""
    s = rec["peak"]
    anon = s["rss"] - s["file_rss"] - s["probe"]
    if s["allocator"] == "glibc":
        heaps = s["heap_resident"] + max(0, s["arena"] - s["heap_size"])  # brk heap + thread arenas
        rows = [("live requested", s["small_req"]),
                ("rounding/headers", s["small_usable"] - s["small_req"]),
                ("free in used pages", heaps - s["small_usable"]),
                ("empty pages kept", 0), ("free slices", 0),
                ("large live", s["large_resident"]), ("large cache", 0), ("headers, metadata", 0)]
        owned = heaps + s["large_resident"]
    else:
        live_res = s["page_live"] - s["page_live_unresident"]
        rows = [("live requested", s["small_req"]),
                ("rounding/headers", live_res - s["small_req"]),
                ("free in used pages", s["page_resident"] - live_res),
                ("empty pages kept", s["empty_resident"]),
                ("free slices", s["free_slice_resident"]),
                ("large live", s["large_resident"]),
                ("large cache", s["cache_resident"]),
                ("headers, metadata", s["header_resident"] + s["meta_resident"])]
        owned = s["mapped_resident"]
    rows += [("program's own", anon - owned), ("files", s["file_rss"]), ("probe table", s["probe"])]
    return rows


def peak_process(path):
    """The record of the process with the highest VmHWM."""
    best = None
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if best is None or rec["hwm"] > best["hwm"]:
                best = rec
    return best


def class_lines(rec, top=6):
    """mapalloc's classes with the most resident bytes beyond their requests."""
    rows = []
    for size, pages, res, live, req, usable in rec["peak"].get("classes", []):
        rows.append((res - req, size, pages, res, live, req))
    rows.sort(reverse=True)
    out = []
    for extra, size, pages, res, live, req in rows[:top]:
        out.append(f"    class {size:7d} B: {pages:4d} pages, {res / MIB:7.2f} MiB resident, "
                   f"{live / MIB:7.2f} in blocks, {req / MIB:7.2f} requested: {extra / MIB:+7.2f} MiB")
    return out


def report(prog, recs):
    g, m = recs["glibc"], recs["mapalloc"]
    cg, cm = dict(components(g)), dict(components(m))
    lines = [f"## {prog}: the peak process: `{m['cmd'].strip()}` (glibc: `{g['cmd'].strip()}`)", "",
             "| MiB at the sampled peak | glibc | mapalloc | difference |", "|---|---:|---:|---:|"]
    for name, _ in components(m):
        a, b = cg[name] / MIB, cm[name] / MIB
        lines.append(f"| {name} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    for key, label in (("rss", "sampled peak RSS"), ("hwm", "VmHWM")):
        a = g["peak"][key] if key == "rss" else g[key]
        b = m["peak"][key] if key == "rss" else m[key]
        lines.append(f"| **{label}** | {a / MIB:.2f} | {b / MIB:.2f} | {(b - a) / MIB:+.2f} |")
    sm = m["peak"]
    lines += ["", f"mapalloc at its peak ({sm['ms']} ms): {sm['regions']} regions, {sm['heaps']} heaps "
              f"(pages, resident MiB each: {', '.join(f'{r}/{b / MIB:.1f}' for r, b in sm['heap_list'])}), "
              f"{sm['pages']} pages in use, {sm['empty_pages']} empty ({sm['retained_pages']} retained), "
              f"{sm['free_slices']} free slices, large cache {sm['cache_mappings']} mappings "
              f"({sm['cache_mapped'] / MIB:.1f} MiB mapped), {sm['large_n']} live large blocks; "
              f"glibc at its peak ({g['peak']['ms']} ms): heap {g['peak']['heap_size'] / MIB:.1f} MiB, "
              f"arena {g['peak']['arena'] / MIB:.1f}, mmapped {g['peak']['hblkhd'] / MIB:.1f}, "
              f"free chunks {g['peak']['fordblks'] / MIB:.1f}.", "",
              "mapalloc's classes with the most resident memory beyond the requests:"]
    lines += class_lines(m)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("programs", nargs="+", help="run.py's program names")
    ap.add_argument("--build-dir", default=os.path.join(REPO_DIR, "build"))
    ap.add_argument("--options", default="", help="MAPALLOC_OPTIONS for the mapalloc run")
    ap.add_argument("--json", help="write the peak records of both runs here")
    ap.add_argument("--trace", metavar="DIR", help="write every sample of the peak process to "
                    "DIR/PROGRAM-ALLOCATOR.trace (columns: see trace_line in probe.c)")
    ap.add_argument("--work-dir", help="scratch directory (default: a new one, removed after)")
    args = ap.parse_args()
    unknown = [p for p in args.programs if p not in real.BY_NAME]
    if unknown:
        sys.exit(f"error: unknown program(s) {' '.join(unknown)}")
    work = os.path.abspath(args.work_dir) if args.work_dir else tempfile.mkdtemp(prefix="mapalloc-probe-")
    os.makedirs(work, exist_ok=True)
    out = {}
    try:
        probes = build_probes(os.path.abspath(args.build_dir), work)
        tree_rss = real.build_helper("tree-rss.c", os.path.join(work, "tree-rss"))
        env = real.program_env(work)
        for name in args.programs:
            prog = real.BY_NAME[name]
            why = prog.why_missing()
            if why:
                print(f"skipping {name}: {why} not found")
                continue
            os.makedirs(os.path.join(work, name), exist_ok=True)
            if prog.setup:
                prog.setup(os.path.join(work, name))
            recs = {}
            for alloc in ("glibc", "mapalloc"):
                jsonl = os.path.join(work, f"{name}-{alloc}.jsonl")
                if os.path.exists(jsonl):
                    os.unlink(jsonl)
                run_env = dict(env, PROBE_OUT=jsonl)
                trace = os.path.join(work, f"{name}-{alloc}.trace")
                if args.trace:
                    run_env["PROBE_TRACE"] = trace
                if alloc == "mapalloc" and args.options:
                    run_env["MAPALLOC_OPTIONS"] = args.options
                row = real.run_once(tree_rss, prog, work, run_env, probes[alloc], 900)
                if not row["ok"]:
                    sys.exit(f"error: {name} under the {alloc} probe: {row['note']}")
                recs[alloc] = peak_process(jsonl)
                recs[alloc]["tree_peak_mib"] = row["peak_rss_mib"]
                if args.trace:
                    os.makedirs(args.trace, exist_ok=True)
                    shutil.copy(f"{trace}.{recs[alloc]['pid']}",
                                os.path.join(args.trace, f"{name}-{alloc}.trace"))
            print(report(name, recs))
            out[name] = recs
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"options": args.options, "programs": out}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
