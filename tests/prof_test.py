#!/usr/bin/python3
"""The heap profiler on real programs: each case runs a program under
mapalloc-run (--profile, --options, --timeline), reads what it wrote with
google-pprof (or the leak report on stderr, or the timeline's data file),
and checks it against what the program says it allocated.

Usage: prof_test.py CASE
Environment (tests/meson.build): MAPALLOC_RUN, TEST_PROF_PROG (exported
symbols), TEST_PROF_PROG_PLAIN (none exported), TEST_PROF_CXX.
Exit status: 0 passed, 1 failed, 77 skipped (a tool is missing).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

RUN = os.environ.get("MAPALLOC_RUN", "")
PROG = os.environ.get("TEST_PROF_PROG", "")
PLAIN = os.environ.get("TEST_PROF_PROG_PLAIN", "")
CXX = os.environ.get("TEST_PROF_CXX", "")
PPROF = shutil.which("google-pprof") or shutil.which("pprof")
TOLERANCE = 0.15
# A fine interval, so that the tenth that one function allocates is some
# thousand samples: the estimate's spread is then a few percent.
FINE = "prof_sample_kb=32"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(cmd, env=None, timeout=240, ok=True):
    e = dict(os.environ)
    for k in ("MAPALLOC_OPTIONS", "LD_PRELOAD", "MAPALLOC_PROF_FILE", "MAPALLOC_PROF_PID"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout)
    if ok:
        check(p.returncode == 0, f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr[-3000:]}")
    return p


def profiled(tmp, prog, args, options="", name="p.heap", env=None):
    """Runs prog under mapalloc-run --profile; returns (profile path, stdout)."""
    path = os.path.join(tmp, name)
    cmd = [RUN, "--profile", path]
    if options:
        cmd += ["--options", options]
    p = run(cmd + ["--", prog] + args, env=env)
    check(os.path.exists(path), f"no profile at {path}; stderr:\n{p.stderr[-2000:]}")
    return path, p.stdout


def truth(stdout):
    """{function: bytes} as the program printed them."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "child":
            out[parts[0]] = int(parts[1])
    return out


def pprof_text(prog, profile, extra=()):
    """{function: cumulative MiB} from google-pprof --text (names shortened
    to what precedes an argument list)."""
    p = run([PPROF, "--text", *extra, prog, profile])
    cum = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)\s+[\d.]+%\s+(.*)$", line)
        if m:
            name = m.group(3).split("(")[0].strip()
            cum[name] = cum.get(name, 0.0) + float(m.group(2))
    return cum, p.stdout


def check_estimates(cum, want, text):
    for fn, true_bytes in want.items():
        if true_bytes == 0:
            continue
        est = cum.get(fn, 0.0) * 1048576
        ratio = est / true_bytes
        print(f"{fn}: estimated {est / 1048576:.1f} MiB, allocated {true_bytes / 1048576:.1f} MiB "
              f"({ratio:.3f})")
        check(abs(ratio - 1) <= TOLERANCE, f"{fn}: estimate off by {100 * (ratio - 1):.1f}%:\n{text}")


def case_split(tmp):
    path, out = profiled(tmp, PROG, ["split", "300"], FINE)
    want = truth(out)
    check(len(want) == 3, f"no byte counts printed: {out}")
    cum, text = pprof_text(PROG, path)
    check_estimates(cum, want, text)


def leak_report(stderr):
    """[(bytes, [frame lines])] from the leaks=1 report."""
    entries = []
    for line in stderr.splitlines():
        m = re.match(r"mapalloc: (\d+) bytes in \d+ blocks allocated at:", line)
        if m:
            entries.append((int(m.group(1)), []))
        elif entries and re.match(r"mapalloc:\s+#\d+ ", line):
            entries[-1][1].append(line)
    return entries


def leaked_ten(stdout):
    m = re.search(r"^leaked alloc_ten (\d+)$", stdout, re.M)
    check(m, f"the program did not say what alloc_ten leaked: {stdout}")
    return int(m.group(1))


def first_frame_entries(entries, fn):
    return [i for i, (_, frames) in enumerate(entries) if frames and fn + "+" in frames[0]]


def case_leak(tmp):
    """Two leaks, alloc_thirty's (every block) and alloc_ten's (one block in
    four): the larger first, each within the tolerance, no freed block."""
    p = run([RUN, "--options", "leaks=1," + FINE, "--", PROG, "leak", "200"])
    want = truth(p.stdout)
    entries = leak_report(p.stderr)
    check(entries, f"no leak report:\n{p.stderr[-2000:]}")
    size, frames = entries[0]
    print("\n".join(p.stderr.splitlines()[:8]))
    check("alloc_thirty+" in frames[0], f"the first entry's first frame is not alloc_thirty:\n{p.stderr}")
    ratio = size / want["alloc_thirty"]
    check(abs(ratio - 1) <= TOLERANCE, f"leaked {want['alloc_thirty']} bytes, reported {size}")
    ten = first_frame_entries(entries, "alloc_ten")
    check(len(ten) == 1 and ten[0] > 0, f"alloc_ten's leak is not one entry after the first:\n{p.stderr}")
    ratio = entries[ten[0]][0] / leaked_ten(p.stdout)
    check(abs(ratio - 1) <= TOLERANCE, f"alloc_ten leaked {leaked_ten(p.stdout)}, reported "
          f"{entries[ten[0]][0]}")
    sizes = [e[0] for e in entries]
    check(sizes == sorted(sizes, reverse=True), f"not largest first: {sizes}")
    check(not first_frame_entries(entries, "alloc_sixty"), f"freed blocks reported as leaks:\n{p.stderr}")


def case_peak(tmp):
    path, out = profiled(tmp, PROG, ["leak", "200"], "prof_peak=1," + FINE)
    want = truth(out)
    check(os.path.exists(path + ".peak"), "no peak profile")
    cum, text = pprof_text(PROG, path + ".peak")
    check_estimates(cum, want, text)
    cum, text = pprof_text(PROG, path)
    check(cum.get("alloc_sixty", 0) == 0 and cum.get("alloc_thirty", 0) > 0,
          f"the final profile has freed blocks, or lacks the leaked ones:\n{text}")


def case_cxx(tmp):
    if not CXX:
        print("no C++ program built")
        sys.exit(77)
    path, out = profiled(tmp, CXX, ["200"], FINE)
    want = truth(out)
    cum, text = pprof_text(CXX, path)
    check_estimates(cum, want, text)


def case_threads(tmp):
    path, out = profiled(tmp, PROG, ["threads", "300"], FINE)
    want = truth(out)
    cum, text = pprof_text(PROG, path)
    check_estimates(cum, want, text)
    check(cum.get("thread_job", 0) > 0, f"no stack reaches the threads' start:\n{text}")


def case_fork(tmp):
    path, out = profiled(tmp, PROG, ["fork", "200"], FINE)
    want = truth(out)
    child = re.search(r"child (\d+)", out).group(1)
    cum, text = pprof_text(PROG, path)
    check_estimates(cum, {k: v for k, v in want.items() if k != "alloc_ten"}, text)
    check(cum.get("alloc_ten", 0) == 0, f"the child's allocations in the parent's profile:\n{text}")
    child_path = f"{path}.{child}"
    check(os.path.exists(child_path), f"the child wrote no profile {child_path}")
    cum, text = pprof_text(PROG, child_path)
    ten = want["alloc_ten"] = 200 * 1048576 // 10
    check(abs(cum.get("alloc_ten", 0) * 1048576 / ten - 1) <= TOLERANCE + 0.05,
          f"the child's profile lacks its own allocations:\n{text}")
    check(cum.get("alloc_thirty", 0) == 0, f"the parent's later allocations in the child's:\n{text}")


def case_signal(tmp):
    path = os.path.join(tmp, "s.heap")
    run([RUN, "--profile", path, "--options", "prof_signal=SIGUSR2", "--", PROG, "signal", path],
        timeout=120)
    for n in range(1, 6):
        cum, text = pprof_text(PROG, f"{path}.{n}")
        check(cum.get("churn", 0) > 0, f"profile {n} has no stack of the allocating threads:\n{text}")
    print("five profiles written from the signal handler, each read by google-pprof")


def case_sigframe(tmp, alt=False):
    path, _ = profiled(tmp, PROG, ["sigframe"] + (["alt"] if alt else []), "prof_sample_kb=0")
    cum, text = pprof_text(PROG, path)
    check(cum.get("handler_alloc", 0) > 0, f"no sample from the handler:\n{text}")
    # Through the signal frame, into the frame the signal interrupted.
    check(cum.get("interrupted_loop", 0) > 0 and cum.get("sigframe_job", 0) > 0,
          f"the stacks stop at the signal frame:\n{text}")


def case_sigaltstack(tmp):
    case_sigframe(tmp, alt=True)


def case_tinystack(tmp):
    path, _ = profiled(tmp, PROG, ["tinystack"], "prof_sample_kb=1")
    cum, text = pprof_text(PROG, path, ["--alloc_space"])
    check(cum.get("deep", 0) > 0 and cum.get("tiny_job", 0) > 0,
          f"no stacks from the small thread:\n{text}")


def case_dlopen(tmp):
    path, _ = profiled(tmp, PROG, ["dlopen"], "prof_sample_kb=0")
    cum, text = pprof_text(PROG, path, ["--alloc_space"])
    check(any("dlopen" in k for k in cum), f"no sample from inside dlopen:\n{text}")


def symbol_range(prog, name):
    """(start, end) of a function in prog's symbol table, from nm."""
    out = run(["nm", "-S", "--defined-only", prog]).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            start = int(parts[0], 16)
            return start, start + int(parts[1], 16)
    raise Failure(f"no {name} in nm -S {prog}")


def case_stripped(tmp):
    """Without symbols the leak report gives offsets in the program, the
    ones its unstripped copy's symbol table places in the function."""
    prog = os.path.join(tmp, "prof_prog_stripped")
    shutil.copy(PLAIN, prog)
    run(["strip", "--strip-all", prog])
    check("alloc_thirty" not in run(["nm", "-D", prog], ok=False).stdout, "still has the symbols")
    p = run([RUN, "--options", "leaks=1," + FINE, "--", prog, "leak", "100"])
    entries = leak_report(p.stderr)
    check(entries, f"no leak report:\n{p.stderr[-2000:]}")
    first = entries[0][1][0]
    m = re.search(r"#0 0x[0-9a-f]+ 0x([0-9a-f]+) \(\[program\]\)", first)
    check(m, f"the first frame is not an offset in the program: {first}")
    lo, hi = symbol_range(PLAIN, "alloc_thirty")
    check(lo <= int(m.group(1), 16) < hi,
          f"offset {m.group(1)} is not in alloc_thirty ({lo:#x}-{hi:#x}): {first}")
    ratio = entries[0][0] / truth(p.stdout)["alloc_thirty"]
    check(abs(ratio - 1) <= TOLERANCE, f"leak of {ratio:.3f} of the truth")
    path, out = profiled(tmp, prog, ["split", "100"], FINE)
    cum, text = pprof_text(prog, path)
    total = sum(truth(out).values())
    got = float(re.search(r"Total: ([\d.]+) MB", text).group(1)) * 1048576
    check(abs(got / total - 1) <= TOLERANCE, f"total {got} against {total}:\n{text}")


def case_no_eh_frame(tmp):
    """A program without call frame information: stacks end where it starts
    (or go on by frame pointers), the profile is still written."""
    prog = os.path.join(tmp, "prof_prog_bare")
    run(["objcopy", "--remove-section=.eh_frame", "--remove-section=.eh_frame_hdr", PLAIN, prog])
    path, out = profiled(tmp, prog, ["split", "50"], FINE)
    p = run([PPROF, "--text", prog, path])
    check("Total:" in p.stdout, f"google-pprof cannot read it:\n{p.stdout}{p.stderr}")
    p = run([RUN, "--options", "leaks=1", "--", prog, "tinystack"])


def case_python(tmp):
    """Debian's python3, built without frame pointers: stacks reach its
    interpreter loop and the program's start."""
    py = "/usr/bin/python3"
    if not os.path.exists(py):
        sys.exit(77)
    script = "d = [str(i) * 20 for i in range(300000)]; print(len(d))"
    path, _ = profiled(tmp, py, ["-c", script], "", env={"PYTHONMALLOC": "malloc"})
    cum, text = pprof_text(py, path, ["--alloc_space"])
    check(sum(cum.get(k, 0) for k in ("Py_RunMain", "Py_BytesMain", "main")) > 0,
          f"python's stacks do not reach its main:\n{text}")
    check(any("EvalFrame" in k for k in cum), f"no interpreter frames:\n{text}")
    depths = [len(l.split("@")[1].split()) for l in open(path) if "@ 0x" in l]
    print(f"{len(depths)} stacks, {sum(depths) / len(depths):.1f} frames on average")
    check(sum(depths) / len(depths) >= 8, "python's stacks are shallow")


def case_svg(tmp):
    path, _ = profiled(tmp, PROG, ["split", "50"], FINE)
    if shutil.which("dot") is None:
        print("no graphviz")
        sys.exit(77)
    p = run([PPROF, "--svg", PROG, path])
    check("<svg" in p.stdout and "alloc_sixty" in p.stdout, f"no SVG:\n{p.stdout[:500]}{p.stderr}")


def case_timeline(tmp):
    if run(["/usr/bin/python3", "-c", "import matplotlib"], ok=False).returncode != 0:
        print("matplotlib not installed (Debian: python3-matplotlib)")
        sys.exit(77)
    png = os.path.join(tmp, "t.png")
    cmd = [RUN, "--timeline", png, "--compare", "glibc=", "--interval", "20"]
    jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    if os.path.exists(jemalloc):
        cmd += ["--compare", "jemalloc=" + jemalloc]
    run(cmd + ["--", PROG, "steps", "60"])
    check(os.path.exists(png), "no picture")
    with open(png, "rb") as f:
        head = f.read(8)
    check(head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10000, "not a PNG, or empty")
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(tmp, "t.tsv"))][1:]
    names = {r[0] for r in rows}
    want = {"mapalloc", "glibc"} | ({"jemalloc"} if os.path.exists(jemalloc) else set())
    check(names == want, f"allocators in the data: {names}")
    for name in want:
        rss = [int(r[2]) for r in rows if r[0] == name and r[2]]
        check(len(rss) >= 3, f"{name}: {len(rss)} samples")
        # Blocks are touched at both ends only: not all of them is resident.
        check(max(rss) > 30 << 20, f"{name}: peak resident {max(rss)}, for 60 MiB of blocks")
    live = [int(r[4]) for r in rows if r[0] == "mapalloc" and r[4]]
    check(live and abs(max(live) / (60 << 20) - 1) < 0.35, f"live bytes: {live[-5:]}")
    print(f"{len(rows)} rows for {sorted(names)}, mapalloc live peak {max(live) >> 20} MiB")


def main():
    case = sys.argv[1] if len(sys.argv) > 1 else ""
    fn = globals().get("case_" + case)
    if fn is None:
        print(f"no case {case}")
        return 2
    if not PPROF:
        print("google-pprof not installed (Debian: google-perftools)")
        return 77
    if not (RUN and os.path.exists(RUN) and PROG):
        print("the launcher or the programs are missing")
        return 77
    with tempfile.TemporaryDirectory(prefix="mapalloc-prof.") as tmp:
        try:
            fn(tmp)
        except Failure as f:
            print(f"FAIL {case}: {f}")
            return 1
    print(f"ok   {case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
