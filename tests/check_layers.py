#!/usr/bin/env python3
"""The layering of src/, checked from the code itself.

The layers are the table at the top of src/internal.h (one line per layer:
its number, its name, its files). Every file of src/ must be in the table,
and may include only headers of its own layer or below (the public header
mapalloc.h is no layer: any file may include it). Only src/os.c may make
mapping system calls (mmap, munmap, mremap, madvise, mprotect) or open
/dev/zero. A violation is printed as FILE:LINE: what, and the script exits 1.

Usage: check_layers.py [SRC_DIR]   (default: the src/ beside tests/)
"""
import os
import re
import sys

SYSCALLS = re.compile(r"(?<![\w.>])(mmap|munmap|mremap|madvise|mprotect)\s*\(")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
LAYER_LINE = re.compile(r"^\s*\*\s+(\d+)\s+\w+\s+(.*)$")
FILE_NAME = re.compile(r"\b[\w]+\.[ch]\b")
PUBLIC = {"mapalloc.h"}
OS_FILE = "os.c"


def layers(src):
    """{file: layer} from the table in internal.h."""
    table = {}
    with open(os.path.join(src, "internal.h"), encoding="utf-8") as f:
        for line in f:
            if line.startswith(" */"):
                break
            m = LAYER_LINE.match(line)
            if m:
                for name in FILE_NAME.findall(m.group(2)):
                    table[name] = int(m.group(1))
    return table


def strip_comments_and_strings(text):
    """The code with comments and string literals blanked, lines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:j]) + '"')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "src")
    table = layers(src)
    problems = []
    if not table:
        problems.append("src/internal.h: no layer table found")
    for name in sorted(os.listdir(src)):
        if not name.endswith((".c", ".h")):
            continue
        path = os.path.join(src, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if name not in table:
            problems.append(f"src/{name}:1: not in the layer table of src/internal.h")
            continue
        level = table[name]
        for number, line in enumerate(text.splitlines(), 1):
            m = INCLUDE.match(line)
            if not m or m.group(1) in PUBLIC:
                continue
            header = os.path.basename(m.group(1))
            if header not in table:
                problems.append(f"src/{name}:{number}: includes {header}, which is in no layer")
            elif table[header] > level:
                problems.append(f"src/{name}:{number}: includes {header} (layer {table[header]}), "
                                f"above its own layer {level}")
        if name == OS_FILE:
            continue
        code = strip_comments_and_strings(text)
        for number, line in enumerate(code.splitlines(), 1):
            m = SYSCALLS.search(line)
            if m:
                problems.append(f"src/{name}:{number}: calls {m.group(1)}: only src/{OS_FILE} "
                                "makes mapping system calls")
        for number, line in enumerate(text.splitlines(), 1):
            if '"/dev/zero"' in line and not line.lstrip().startswith(("/*", "*")):
                problems.append(f"src/{name}:{number}: opens /dev/zero: only src/{OS_FILE} does")
    for p in problems:
        print(p)
    if problems:
        return 1
    counts = {}
    for name, level in table.items():
        counts.setdefault(level, []).append(name)
    print(f"layers: {len(table)} files in {len(counts)} layers, every include points down, "
          f"mapping system calls only in src/{OS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
