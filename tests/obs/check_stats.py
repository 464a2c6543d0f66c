#!/usr/bin/env python3
"""Checks mapalloc_stats_print's JSON and text with a real parser.

Usage: check_stats.py snapshot TEST_STATS   runs `TEST_STATS snapshot DIR` and
                                            compares stats*.json, stats*.txt
                                            and expected.json
       check_stats.py exit TEST_STATS       runs `TEST_STATS exit` with
                                            MAPALLOC_OPTIONS=stats=1 and =2 and
                                            parses what it prints at exit, then
                                            `TEST_STATS one` (one block) with
                                            stats=1
Exit status 0 when every check holds, 1 otherwise (each failure printed).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

SUMMARY = ["live", "live_blocks", "large_blocks", "small_mapped", "large_mapped", "mapped",
           "peak_mapped", "resident", "regions", "abandoned_pages", "mmap_calls",
           "munmap_calls", "mremap_calls", "madvise_calls", "mprotect_calls", "huge_fallbacks",
           "lazy_free", "purged", "peak_resident", "mappings", "peak_mappings", "prof_mapped"]
CLASS_FIELDS = ["class", "size", "pages", "blocks", "capacity", "memory", "live", "waste"]
ARENA_FIELDS = ["live", "blocks", "committed", "mapped", "peak"]
# resident and peak_resident are read from /proc once per form: they may
# move a little.
PROC_FIELDS = ("resident", "peak_resident")
RESIDENT_SLACK = 4 << 20

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


def human(n):
    """A size as the text form prints it: exact bytes below 1 KiB, then
    tenths of the largest binary unit that keeps it below 1024 after
    rounding half up (written apart from src/error.c, to check it)."""
    if n < 1024:
        return "%d B" % n
    for k, unit in enumerate(["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"], 1):
        tenths = (n * 10 + (1 << (10 * k - 1))) >> (10 * k)
        if tenths < 10240 or unit == "EiB":
            return "%d.%d %s" % (tenths // 10, tenths % 10, unit)


def approx(text):
    """The bytes a size text stands for, to within half a tenth of its unit."""
    number, unit = text.split()
    return float(number) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].index(unit)


def parse_json(path):
    with open(path) as f:
        text = f.read()
    check(text.endswith("}\n") and text.count("\n") == 1,
          "%s: one JSON object on one line" % path)
    # A strict parse: no NaN, no duplicate keys.
    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        check(len(keys) == len(set(keys)), "%s: duplicate keys %s" % (path, keys))
        return dict(pairs)

    def no_constants(name):
        raise ValueError("non-standard constant " + name)
    return json.loads(text, object_pairs_hook=no_dups, parse_constant=no_constants)


# The text form: its summary lines, in this order, each with the JSON
# fields its figures show (S: a size text, N: a count, "metadata": mapped
# less the small and large parts).
S = r"(\d+ B|\d+\.\d [KMGTPE]iB)"
N = r"(\d+)"
SUMMARY_LINES = [
    ("live", r"live +%s in %s blocks?, %s of them large" % (S, N, N),
     ["live", "live_blocks", "large_blocks"]),
    ("mapped", r"mapped +%s: %s in %s regions?, %s for large blocks, %s of metadata; %s mappings?"
     % (S, S, N, S, S, N),
     ["mapped", "small_mapped", "regions", "large_mapped", "metadata", "mappings"]),
    ("resident", r"resident +%s, the whole process" % S, ["resident"]),
    ("peak", r"peak +%s mapped, %s resident, %s mappings?" % (S, S, N),
     ["peak_mapped", "peak_resident", "peak_mappings"]),
    ("purged", r"purged +%s given back with madvise, in total" % S, ["purged"]),
    ("lazy free", r"lazy free +%s purged with MADV_FREE, counted in resident until the kernel"
     r" takes it back" % S, ["lazy_free"]),
    ("calls", r"calls +mmap %s, munmap %s, mremap %s, madvise %s, mprotect %s"
     r"(?:; MAP_HUGETLB refused (\d+))?" % (N, N, N, N, N),
     ["mmap_calls", "munmap_calls", "mremap_calls", "madvise_calls", "mprotect_calls",
      "huge_fallbacks"]),
]
CLASS_HEADER = "class  size (B)    pages   blocks capacity     memory       live      waste"
CLASS_ROW = re.compile(r" *%s +%s +%s +%s +%s +%s +%s +%s" % (N, N, N, N, N, S, S, S))
HEAP_HEADER = "heap                  pages   blocks       live"
HEAP_ROW = re.compile(r"(0x[0-9a-f]+|abandoned) +%s +%s +%s" % (N, N, S))
ARENA_HEADER = "arena                blocks       live  committed     mapped       peak"
ARENA_ROW = re.compile(r"(0x[0-9a-f]+) +%s +%s +%s +%s +%s" % (N, S, S, S, S))


def parse_text(path):
    """The text form: {"summary": {field: text}, "classes", "heaps",
    "arenas": lists of rows with the JSON's field names (counts as ints,
    sizes as their text)}. Checks the order of the sections and lines, and
    that each table's rows line up under its header."""
    out = {"summary": {}, "classes": [], "heaps": [], "arenas": []}
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        check(line.startswith("mapalloc: "), "%s: line without prefix: %r" % (path, line))
    lines = [line[len("mapalloc: "):] for line in lines]
    for i, (label, pattern, fields) in enumerate(SUMMARY_LINES):
        line = lines[i] if i < len(lines) else ""
        m = re.fullmatch(pattern, line)
        if not check(m, "%s: summary line %d should be %s, is %r" % (path, i + 1, label, line)):
            continue
        for n, plural in re.findall(r"\b(\d+) (?:block|region|mapping)(s?)\b", line):
            check((n == "1") == (plural == ""), "%s: %r: %s with%s a plural"
                  % (path, line, n, "" if plural else "out"))
        for field, value in zip(fields, m.groups()):
            if value is not None:
                out["summary"][field] = int(value) if value.isdigit() else value
            elif field == "huge_fallbacks":
                out["summary"][field] = 0  # printed only when there were some
    rest = lines[len(SUMMARY_LINES):]
    tables = [("classes", CLASS_HEADER, CLASS_ROW, CLASS_FIELDS),
              ("heaps", HEAP_HEADER, HEAP_ROW, ["heap", "pages", "blocks", "live"]),
              ("arenas", ARENA_HEADER, ARENA_ROW, ["arena", "blocks", "live", "committed",
                                                   "mapped", "peak"])]
    for key, header, row, fields in tables:
        if key == "arenas" and not rest:
            break  # no explicit arena: no table
        if not check(rest and rest[0] == header,
                     "%s: %s header expected, got %r" % (path, key, rest[0] if rest else None)):
            return out
        rest = rest[1:]
        while rest and (m := row.fullmatch(rest[0])):
            check(len(rest[0]) == len(header),
                  "%s: %s row not under its header:\n%s\n%s" % (path, key, header, rest[0]))
            out[key].append({f: int(v) if v.isdigit() else v for f, v in zip(fields, m.groups())})
            rest = rest[1:]
    check(not rest, "%s: lines after the tables: %r" % (path, rest[:3]))
    return out


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_document(name, doc, expected_stats, class_sizes, allocated_classes):
    """What every printed snapshot must satisfy; returns the small live bytes."""
    check(list(k for k in doc if k not in ("classes", "heaps", "arenas")) == SUMMARY,
          "%s: summary fields %s" % (name, list(doc)))
    for key in SUMMARY:
        if check(key in doc and is_count(doc[key]), "%s: summary field %s" % (name, key)):
            if key in PROC_FIELDS:
                check(abs(doc[key] - expected_stats[key]) <= RESIDENT_SLACK,
                      "%s: %s %d, stats_get said %d" % (name, key, doc[key], expected_stats[key]))
            else:
                check(doc[key] == expected_stats[key],
                      "%s: %s %d, mapalloc_stats_get said %d"
                      % (name, key, doc[key], expected_stats[key]))
    for key in ("classes", "heaps", "arenas"):
        check(isinstance(doc.get(key), list), "%s: %s is a list" % (name, key))
    check(doc["mapped"] >= doc["small_mapped"] + doc["large_mapped"],
          "%s: mapped >= small_mapped + large_mapped" % name)
    check(doc["peak_mapped"] >= doc["mapped"], "%s: peak_mapped >= mapped" % name)
    check(doc["peak_resident"] >= doc["resident"] - RESIDENT_SLACK,
          "%s: peak_resident %d below resident %d" % (name, doc["peak_resident"], doc["resident"]))
    check(doc["peak_mappings"] >= doc["mappings"] >= doc["regions"] + doc["large_blocks"],
          "%s: mappings %d (peak %d), regions %d, large blocks %d"
          % (name, doc["mappings"], doc["peak_mappings"], doc["regions"], doc["large_blocks"]))
    small_live = 0
    seen = set()
    for row in doc["classes"]:
        check(list(row) == CLASS_FIELDS, "%s: class row fields %s" % (name, list(row)))
        c = row["class"]
        check(0 <= c < len(class_sizes) and c not in seen, "%s: class index %d" % (name, c))
        seen.add(c)
        check(row["size"] == class_sizes[c],
              "%s: class %d size %d, the size class table says %d"
              % (name, c, row["size"], class_sizes[c]))
        check(row["pages"] > 0 and row["blocks"] <= row["capacity"],
              "%s: class %d pages %d blocks %d capacity %d"
              % (name, c, row["pages"], row["blocks"], row["capacity"]))
        # Exact bytes: whole 64 KiB slices, block sizes, the rest.
        check(row["memory"] % 65536 == 0 and row["memory"] >= row["pages"] * 65536
              and row["live"] == row["blocks"] * row["size"]
              and row["waste"] == row["memory"] - row["live"],
              "%s: class %d bytes %s" % (name, c, row))
        small_live += row["live"]
    # Only the classes in use: those the program allocated from, no other.
    check(sorted(seen) == sorted(allocated_classes),
          "%s: class rows %s, the program allocated from %s"
          % (name, sorted(seen), sorted(allocated_classes)))
    heap_live = sum(h["live"] for h in doc["heaps"])
    check(heap_live == small_live,
          "%s: heaps' live %d, classes' blocks * size %d" % (name, heap_live, small_live))
    return small_live


def same_size(name, what, text, exact, slack=0):
    """text (a size text) shows exact bytes: exactly its rounding, or, for
    figures read from /proc again by the other form, within slack."""
    if slack:
        check(text is not None and abs(approx(text) - exact) <= slack + approx(text) / 20,
              "%s: %s %r, JSON %d" % (name, what, text, exact))
    else:
        check(text == human(exact), "%s: %s %r, JSON %d bytes, which is %r"
              % (name, what, text, exact, human(exact)))


def compare_text(name, doc, text):
    """The text shows the JSON's figures: counts equal, sizes rounded."""
    summary = text["summary"]
    want = dict(doc, metadata=doc["mapped"] - doc["small_mapped"] - doc["large_mapped"])
    for key, value in summary.items():
        if isinstance(value, int):
            check(value == want[key], "%s: text %s %d, JSON %d" % (name, key, value, want[key]))
        else:
            same_size(name, key, value, want[key], RESIDENT_SLACK if key in PROC_FIELDS else 0)
    # The profiler's line is there only while it has tables (not in these runs).
    check(set(summary) == set(want) - {"abandoned_pages", "prof_mapped", "classes", "heaps", "arenas"},
          "%s: the text summary shows %s" % (name, sorted(summary)))
    for key, fields in (("classes", CLASS_FIELDS), ("heaps", ["heap", "pages", "blocks", "live"]),
                        ("arenas", ["arena"] + ARENA_FIELDS)):
        if not check(len(text[key]) == len(doc[key]), "%s: text %s %s, JSON %s"
                     % (name, key, text[key], doc[key])):
            continue
        for t, j in zip(text[key], doc[key]):
            for f in fields:
                if isinstance(t[f], str) and isinstance(j[f], int):
                    same_size(name, "%s %s" % (key, f), t[f], j[f])
                else:
                    check(t[f] == j[f], "%s: text %s %s %r, JSON %r" % (name, key, f, t[f], j[f]))


def snapshot(program):
    with tempfile.TemporaryDirectory(prefix="mapalloc-stats.") as d:
        r = subprocess.run([program, "snapshot", d], capture_output=True, text=True, timeout=120)
        if not check(r.returncode == 0, "test_stats snapshot: exit %d\n%s%s"
                     % (r.returncode, r.stdout, r.stderr)):
            return
        exp = parse_json(os.path.join(d, "expected.json"))
        one = parse_json(os.path.join(d, "stats.json"))
        two = parse_json(os.path.join(d, "stats2.json"))
        text_one = parse_text(os.path.join(d, "stats.txt"))
        text_two = parse_text(os.path.join(d, "stats2.txt"))
    sizes = exp["class_sizes"]

    # Snapshot 1: small and medium blocks only.
    allocated = [int(c) for c in exp["class_blocks"]]
    small = check_document("stats.json", one, exp["stats"], sizes, allocated)
    check(small == exp["small_live"] == one["live"],
          "stats.json: classes' bytes %d, expected %d, live %d"
          % (small, exp["small_live"], one["live"]))
    blocks = {str(r["class"]): r["blocks"] for r in one["classes"]}
    check(blocks == exp["class_blocks"],
          "stats.json: blocks per class %s, allocated %s" % (blocks, exp["class_blocks"]))
    check(one["live_blocks"] == sum(exp["class_blocks"].values()) and one["large_blocks"] == 0,
          "stats.json: live_blocks %d large_blocks %d" % (one["live_blocks"], one["large_blocks"]))
    # One row per owner: main heap, live thread, arena's heap; and the
    # exited thread's regions as "abandoned".
    lives = sorted(h["live"] for h in one["heaps"])
    check(lives == sorted(exp["heaps_live"].values()),
          "stats.json: heaps' live %s, expected %s" % (lives, sorted(exp["heaps_live"].values())))
    abandoned = [h for h in one["heaps"] if h["heap"] == "abandoned"]
    check(len(abandoned) == 1 and abandoned[0]["live"] == exp["heaps_live"]["exited_thread"],
          "stats.json: abandoned rows %s" % abandoned)
    check(one["abandoned_pages"] >= 1, "stats.json: abandoned_pages 0 with an exited thread's"
          " blocks live")
    for h in one["heaps"]:
        check(h["heap"] == "abandoned" or re.fullmatch(r"0x[0-9a-f]+", h["heap"]),
              "stats.json: heap name %r" % h["heap"])
    check(len(one["arenas"]) == 1, "stats.json: arenas %s" % one["arenas"])
    if one["arenas"]:
        a = one["arenas"][0]
        check(set(a) == set(["arena"] + ARENA_FIELDS), "stats.json: arena fields %s" % sorted(a))
        check(a["arena"] == exp["arena2"]["arena"], "stats.json: arena %s, created %s"
              % (a["arena"], exp["arena2"]["arena"]))
        check(a["live"] == exp["heaps_live"]["arena"],
              "stats.json: arena live %d, allocated %d" % (a["live"], exp["heaps_live"]["arena"]))
        check(a["blocks"] == 60, "stats.json: arena blocks %d, allocated 60" % a["blocks"])
        check(a["committed"] >= a["live"] and a["mapped"] >= a["committed"]
              and a["peak"] >= a["committed"], "stats.json: arena figures %s" % a)
    compare_text("stats.txt", one, text_one)

    # Snapshot 2: and three large blocks, one of them in the arena.
    small2 = check_document("stats2.json", two, exp["stats2"], sizes, allocated)
    check(small2 == small, "stats2.json: small bytes %d, were %d" % (small2, small))
    check(two["large_blocks"] == exp["large_blocks"],
          "stats2.json: large_blocks %d, expected 3" % two["large_blocks"])
    check(two["live"] == small + exp["large_live"],
          "stats2.json: live %d, small %d + large %d" % (two["live"], small, exp["large_live"]))
    check(two["live_blocks"] == one["live_blocks"] + 3, "stats2.json: live_blocks")
    check(two["large_mapped"] >= exp["large_live"], "stats2.json: large_mapped")
    if check(len(two["arenas"]) == 1, "stats2.json: one arena"):
        a = two["arenas"][0]
        want = {k: exp["arena2"][k] for k in ["arena"] + ARENA_FIELDS}
        check(a == want, "stats2.json: arena %s, mapalloc_arena_stats %s" % (a, want))
        check(a["live"] == exp["heaps_live"]["arena"] + exp["arena_large_live"],
              "stats2.json: arena live %d" % a["live"])
    compare_text("stats2.txt", two, text_two)


def at_exit(program):
    env = dict(os.environ)
    env["MAPALLOC_OPTIONS"] = "stats=2"
    r = subprocess.run([program, "exit"], capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0 and r.stdout.startswith("exit:"), "stats=2: exit %d" % r.returncode)
    try:
        doc = json.loads(r.stderr)
        for key in SUMMARY:
            check(is_count(doc.get(key)), "stats=2 at exit: field %s" % key)
        check(doc["live"] > 0 and len(doc["classes"]) > 0 and len(doc["arenas"]) == 1,
              "stats=2 at exit: live %s, %d classes, %d arenas"
              % (doc["live"], len(doc["classes"]), len(doc["arenas"])))
        check(sum(c["blocks"] * c["size"] for c in doc["classes"]) == doc["live"],
              "stats=2 at exit: classes' bytes against live")
    except ValueError as e:
        check(False, "stats=2 at exit: not JSON (%s):\n%s" % (e, r.stderr[:2000]))
    env["MAPALLOC_OPTIONS"] = "stats=1"
    r = subprocess.run([program, "exit"], capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0, "stats=1: exit %d" % r.returncode)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(r.stderr)
        f.flush()
        text = parse_text(f.name)
    check(text["summary"].get("live", "0 B") != "0 B" and len(text["arenas"]) == 1
          and len(text["classes"]) > 0, "stats=1 at exit: %r" % r.stderr[:2000])

    # Counts of one take the singular: one block in one region.
    r = subprocess.run([program, "one"], capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0 and r.stdout.startswith("one:"), "stats=1, one block: exit %d"
          % r.returncode)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(r.stderr)
        f.flush()
        text = parse_text(f.name)
    s = text["summary"]
    check(s.get("live_blocks") == 1 and s.get("regions") == 1 and s.get("large_blocks") == 0
          and len(text["classes"]) == 1 and not text["arenas"],
          "stats=1, one block: %r" % r.stderr[:2000])
    for words in ("in 1 block,", "in 1 region,"):
        check(words in r.stderr,
              "stats=1, one block: no %r in %r" % (words, r.stderr[:2000]))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("snapshot", "exit"):
        print(__doc__)
        return 2
    (snapshot if sys.argv[1] == "snapshot" else at_exit)(sys.argv[2])
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
