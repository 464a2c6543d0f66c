#!/usr/bin/env python3
"""Checks mapalloc_stats_print's JSON and text with a real parser.

Usage: check_stats.py snapshot TEST_STATS   runs `TEST_STATS snapshot DIR` and
                                            compares stats*.json, stats*.txt
                                            and expected.json
       check_stats.py exit TEST_STATS       runs `TEST_STATS exit` with
                                            MAPALLOC_OPTIONS=stats=1 and =2 and
                                            parses what it prints at exit
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
           "munmap_calls", "mremap_calls", "madvise_calls", "mprotect_calls", "huge_fallbacks"]
CLASS_FIELDS = ["class", "size", "pages", "blocks", "capacity", "waste"]
ARENA_FIELDS = ["live", "blocks", "committed", "mapped", "peak"]
# resident is read from /proc twice (once per form): it may move a little.
RESIDENT_SLACK = 4 << 20

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


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


def parse_text(path):
    """The text form, back into the JSON form's shape."""
    out = {"classes": [], "heaps": [], "arenas": []}
    section = "summary"
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        if not check(line.startswith("mapalloc: "), "%s: line without prefix: %r" % (path, line)):
            continue
        words = line[len("mapalloc: "):].split()
        if words[:2] == ["class", "size"]:
            section = "classes"
        elif words[:2] == ["heap", "pages"]:
            section = "heaps"
        elif words and words[0] == "arena":
            fields = dict(zip(words[2::2], (int(w) for w in words[3::2])))
            out["arenas"].append(dict(arena=words[1], **fields))
        elif section == "summary":
            check(len(words) == 2 and words[1].isdigit(), "%s: summary line %r" % (path, line))
            out[words[0]] = int(words[1])
        elif section == "classes":
            check(len(words) == 6, "%s: class line %r" % (path, line))
            out["classes"].append(dict(zip(CLASS_FIELDS, map(int, words))))
        elif section == "heaps":
            check(len(words) == 4, "%s: heap line %r" % (path, line))
            out["heaps"].append({"heap": words[0], "pages": int(words[1]),
                                 "blocks": int(words[2]), "live": int(words[3])})
    return out


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_document(name, doc, expected_stats, class_sizes):
    """What every printed snapshot must satisfy; returns the small live bytes."""
    for key in SUMMARY:
        if check(key in doc and is_count(doc[key]), "%s: summary field %s" % (name, key)):
            if key == "resident":
                check(abs(doc[key] - expected_stats[key]) <= RESIDENT_SLACK,
                      "%s: resident %d, stats_get said %d" % (name, doc[key], expected_stats[key]))
            else:
                check(doc[key] == expected_stats[key],
                      "%s: %s %d, mapalloc_stats_get said %d"
                      % (name, key, doc[key], expected_stats[key]))
    for key in ("classes", "heaps", "arenas"):
        check(isinstance(doc.get(key), list), "%s: %s is a list" % (name, key))
    check(doc["mapped"] >= doc["small_mapped"] + doc["large_mapped"],
          "%s: mapped >= small_mapped + large_mapped" % name)
    check(doc["peak_mapped"] >= doc["mapped"], "%s: peak_mapped >= mapped" % name)
    small_live = 0
    seen = set()
    for row in doc["classes"]:
        check(set(row) == set(CLASS_FIELDS), "%s: class row fields %s" % (name, sorted(row)))
        c = row["class"]
        check(0 <= c < len(class_sizes) and c not in seen, "%s: class index %d" % (name, c))
        seen.add(c)
        check(row["size"] == class_sizes[c],
              "%s: class %d size %d, the size class table says %d"
              % (name, c, row["size"], class_sizes[c]))
        check(row["pages"] > 0 and row["blocks"] <= row["capacity"],
              "%s: class %d pages %d blocks %d capacity %d"
              % (name, c, row["pages"], row["blocks"], row["capacity"]))
        small_live += row["blocks"] * row["size"]
    heap_live = sum(h["live"] for h in doc["heaps"])
    check(heap_live == small_live,
          "%s: heaps' live %d, classes' blocks * size %d" % (name, heap_live, small_live))
    return small_live


def compare_text(name, doc, text):
    for key in SUMMARY:
        if key == "resident":
            check(abs(text.get(key, -1) - doc[key]) <= RESIDENT_SLACK,
                  "%s: text resident %s, JSON %d" % (name, text.get(key), doc[key]))
        else:
            check(text.get(key) == doc[key],
                  "%s: text %s %s, JSON %d" % (name, key, text.get(key), doc[key]))
    check(text["classes"] == doc["classes"], "%s: text classes differ from JSON" % name)
    check(text["heaps"] == doc["heaps"], "%s: text heaps differ from JSON:\n%s\n%s"
          % (name, text["heaps"], doc["heaps"]))
    check(text["arenas"] == doc["arenas"], "%s: text arenas %s, JSON %s"
          % (name, text["arenas"], doc["arenas"]))


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
    small = check_document("stats.json", one, exp["stats"], sizes)
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
    small2 = check_document("stats2.json", two, exp["stats2"], sizes)
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
    check(text.get("live", 0) > 0 and len(text["arenas"]) == 1 and len(text["classes"]) > 0,
          "stats=1 at exit: %r" % r.stderr[:2000])


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
