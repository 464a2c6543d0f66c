#!/usr/bin/env python3
"""The cost of mapalloc's checks, and of its heap profiler.

Builds the library with meson -- the default build and, when asked for,
-Dchecks=false -- and runs the same commands under these configurations, each
through the preload library:

  default     the default build (the misuse checks on)
  checks-off  the -Dchecks=false build
  secure      the default build with MAPALLOC_OPTIONS=secure=1
  prof        the default build with MAPALLOC_OPTIONS=prof=1 (its profiles
              at exit go to a temporary directory)

Runs are interleaved (every round times every command under every
configuration, in a rotating order) so that drift on the machine falls on all
of them alike. Reported: the median wall time and CPU time (user + sys) per
command and configuration, and the geometric mean over the commands of
each configuration over the base, both as a ratio of the medians and
"paired": per command the median over the rounds of the ratio of its two runs
in that round. With --instructions, each command
runs once per configuration under valgrind --tool=callgrind instead and the
ratios are of instructions executed: a figure that machine noise does not
move, to read beside the times. The ratios are to --base (checks-off by
default; the profiler's cost: --configs default,prof --base default).

  bench/safety/cost_of_checks.py [--build-dir DIR] [--runs N] [--scale X]
                                 [--configs default,checks-off,secure,prof]
                                 [--base CONFIG]
                                 [--loops | --cmd NAME=COMMAND ...]
                                 [--instructions] [--json FILE]

Without --cmd the commands are the whole workloads of the benchmark suite
(bench/workloads, built in the default configuration), each with the -n of
bench/run.py's default run times --scale (default 1). --loops runs the loops
of bench/safety/loops.c instead. A COMMAND is split like a shell line; it may
use {build} for the build directory of the default configuration, e.g.
  --cmd 'larson={build}/bench/larson -n 100000'
"""
import argparse
import importlib.util
import json
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def suite_workloads():
    """bench/run.py's workloads and their default sizes."""
    spec = importlib.util.spec_from_file_location('bench_run', os.path.join(SOURCE, 'bench', 'run.py'))
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    return {name: sizes[0] for name, sizes in run.WORKLOADS.items()}


def build(build_dir, name, options):
    path = os.path.join(build_dir, name)
    if not os.path.exists(os.path.join(path, 'build.ninja')):
        subprocess.run(['meson', 'setup', path, SOURCE, '-Dbuildtype=release'] + options,
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(['meson', 'compile', '-C', path], check=True, stdout=subprocess.DEVNULL)
    return path


def timed(argv, env, config):
    """Wall and CPU seconds of one run of argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit('cost_of_checks: %s failed (%d) in configuration %s: %s' % (
            ' '.join(argv), result.returncode, config, result.stderr.decode()[-500:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def instructions(argv, env, config):
    """Instructions executed by one run of argv under callgrind."""
    cmd = ['valgrind', '--tool=callgrind', '--callgrind-out-file=/dev/null'] + argv
    result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = re.search(r'Collected\s*:\s*(\d+)', result.stderr)
    if result.returncode != 0 or not m:
        sys.exit('cost_of_checks: %s failed under callgrind in configuration %s: %s' % (
            ' '.join(argv), config, result.stderr[-500:]))
    return int(m.group(1))


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build-dir', default='/tmp/mapalloc-cost-of-checks')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--scale', type=float, default=1.0,
                    help='work per run of the workloads or loops (1.0: a few seconds each)')
    ap.add_argument('--configs', default='default,checks-off,secure',
                    help='which configurations to run (the base is always one)')
    ap.add_argument('--base', default='checks-off', help='the configuration the ratios are to')
    ap.add_argument('--loops', action='store_true', help='the loops of bench/safety/loops.c')
    ap.add_argument('--cmd', action='append', default=[], metavar='NAME=COMMAND')
    ap.add_argument('--instructions', action='store_true',
                    help='count instructions with callgrind, one run each, instead of timing')
    ap.add_argument('--json', help='write the raw figures and the summary here')
    args = ap.parse_args()

    base = args.base
    wanted = set(args.configs.split(',')) | {base}
    default_dir = build(args.build_dir, 'default', [])
    nochecks_dir = build(args.build_dir, 'checks-off', ['-Dchecks=false']) if 'checks-off' in wanted else None
    preload = 'preload/libmapalloc-preload.so'
    profiles = tempfile.TemporaryDirectory(prefix='mapalloc-cost-prof.')
    configs = [c for c in [
        ('default', os.path.join(default_dir, preload), ''),
        ('checks-off', os.path.join(nochecks_dir or '', preload), ''),
        ('secure', os.path.join(default_dir, preload), 'secure=1'),
        ('prof', os.path.join(default_dir, preload), 'prof=1'),
    ] if c[0] in wanted]
    if base not in [c for c, _, _ in configs]:
        sys.exit('cost_of_checks: no configuration %s' % base)
    others = [c for c, _, _ in configs if c != base]

    commands = []
    for spec in args.cmd:
        name, _, line = spec.partition('=')
        commands.append((name, shlex.split(line.replace('{build}', default_dir))))
    if not commands and args.loops:
        loops = os.path.join(default_dir, 'bench', 'safety', 'safety_loops')
        commands = [(w, [loops, w, str(args.scale * 0.25)]) for w in ('pairs', 'batch', 'remote', 'realloc')]
    elif not commands:
        commands = [(w, [os.path.join(default_dir, 'bench', w), '-n', str(max(1, int(n * args.scale)))])
                    for w, n in suite_workloads().items()]
    metrics = ('instructions',) if args.instructions else ('wall', 'cpu')

    runs = 1 if args.instructions else args.runs
    load_start = os.getloadavg()
    figures = {(c, n): {m: [] for m in metrics} for c, _, _ in configs for n, _ in commands}
    for run in range(runs):
        for i, (name, argv) in enumerate(commands):
            k = (run + i) % len(configs)
            for cname, lib, options in configs[k:] + configs[:k]:
                env = dict(os.environ, LD_PRELOAD=lib)
                env.pop('MAPALLOC_OPTIONS', None)
                if options:
                    env['MAPALLOC_OPTIONS'] = options
                    env['MAPALLOC_PROF_FILE'] = os.path.join(profiles.name, cname + '.heap')
                if args.instructions:
                    figures[(cname, name)]['instructions'].append(instructions(argv, env, cname))
                else:
                    wall, cpu = timed(argv, env, cname)
                    figures[(cname, name)]['wall'].append(wall)
                    figures[(cname, name)]['cpu'].append(cpu)
        print('round %d of %d done' % (run + 1, runs), file=sys.stderr)

    med = {key: {m: statistics.median(v[m]) for m in metrics} for key, v in figures.items()}
    if args.instructions:
        print('instructions executed (callgrind, millions)')
        cell = lambda m: '%.1f' % (m['instructions'] / 1e6)
    else:
        print('median seconds over %d runs (wall / cpu)' % runs)
        cell = lambda m: '%.3f / %.3f' % (m['wall'], m['cpu'])
    first = metrics[0]
    print('%-14s' % 'command' + ''.join('%22s' % c for c, _, _ in configs) +
          ''.join('%14s' % (c + '/' + base) for c in others))
    for name, _ in commands:
        row = '%-14s' % name + ''.join('%22s' % cell(med[(c, name)]) for c, _, _ in configs)
        off = med[(base, name)][first]
        row += ''.join('%14.3f' % (med[(c, name)][first] / off) for c in others)
        print(row)
    summary = {}
    for metric in metrics:
        for cname in others:
            summary['%s/%s %s' % (cname, base, metric)] = geomean(
                [med[(cname, n)][metric] / med[(base, n)][metric] for n, _ in commands])
            if runs > 1:
                # The same round's two runs of a command ran one after the
                # other: their ratio cancels the slower drifts of a shared
                # machine that a ratio of medians taken apart keeps.
                summary['%s/%s %s, paired' % (cname, base, metric)] = geomean(
                    [statistics.median(a / b for a, b in zip(figures[(cname, n)][metric],
                                                             figures[(base, n)][metric]))
                     for n, _ in commands])
    for key, value in summary.items():
        print('geometric mean %-38s %.3f (%+.1f%%)' % (key, value, (value - 1) * 100))

    load_end = os.getloadavg()
    commit = subprocess.run(['git', '-C', os.path.dirname(os.path.abspath(__file__)), 'describe',
                             '--always', '--dirty'], capture_output=True, text=True).stdout.strip()
    print('mapalloc %s; load average at the start %.2f, at the end %.2f (1 min)'
          % (commit or 'unknown', load_start[0], load_end[0]))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'machine': {'uname': platform.uname()._asdict(), 'cpus': os.cpu_count(),
                            'load_start': load_start, 'load_end': load_end},
                'mapalloc': commit,
                'runs': runs,
                'commands': {n: a for n, a in commands},
                'figures': {'%s|%s' % k: v for k, v in figures.items()},
                'summary': summary,
            }, f, indent=1)


if __name__ == '__main__':
    main()
