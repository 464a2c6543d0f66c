#!/usr/bin/env python3
"""The cost of mapalloc's checks (issue 5).

Builds the library twice with meson -- the default build and -Dchecks=false --
and times the same commands under three configurations, each through the
preload library:

  default     the default build (the misuse checks on)
  checks-off  the -Dchecks=false build
  secure      the default build with MAPALLOC_OPTIONS=secure=1

Runs are interleaved (every round times every command under every
configuration, in a rotating order) so that drift on the machine falls on all
of them alike. Reported: the median wall time and CPU time (user + sys) per
command and configuration, and the geometric mean over the commands of
default/checks-off and secure/checks-off.

  bench/safety/cost_of_checks.py [--build-dir DIR] [--runs N] [--scale X]
                                 [--cmd NAME=COMMAND ...] [--json FILE]

Without --cmd the commands are the loops of bench/safety/loops.c (built in
the default configuration). A COMMAND is split like a shell line; it may use
{build} for the build directory of the default configuration, e.g.
  --cmd 'larson={build}/bench/workloads/larson 10'
"""
import argparse
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build-dir', default='/tmp/mapalloc-cost-of-checks')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--scale', type=float, default=0.25,
                    help='work per run of the default loops (1.0: a few seconds each)')
    ap.add_argument('--cmd', action='append', default=[], metavar='NAME=COMMAND')
    ap.add_argument('--json', help='write the raw times and the summary here')
    args = ap.parse_args()

    default_dir = build(args.build_dir, 'default', [])
    nochecks_dir = build(args.build_dir, 'checks-off', ['-Dchecks=false'])
    preload = 'preload/libmapalloc-preload.so'
    configs = [
        ('default', os.path.join(default_dir, preload), ''),
        ('checks-off', os.path.join(nochecks_dir, preload), ''),
        ('secure', os.path.join(default_dir, preload), 'secure=1'),
    ]

    commands = []
    for spec in args.cmd:
        name, _, line = spec.partition('=')
        commands.append((name, shlex.split(line.replace('{build}', default_dir))))
    if not commands:
        loops = os.path.join(default_dir, 'bench', 'safety', 'safety_loops')
        commands = [(w, [loops, w, str(args.scale)]) for w in ('pairs', 'batch', 'remote', 'realloc')]

    times = {(c, n): {'wall': [], 'cpu': []} for c, _, _ in configs for n, _ in commands}
    for run in range(args.runs):
        for i, (name, argv) in enumerate(commands):
            k = (run + i) % len(configs)
            for cname, lib, options in configs[k:] + configs[:k]:
                env = dict(os.environ, LD_PRELOAD=lib)
                env.pop('MAPALLOC_OPTIONS', None)
                if options:
                    env['MAPALLOC_OPTIONS'] = options
                wall, cpu = timed(argv, env, cname)
                times[(cname, name)]['wall'].append(wall)
                times[(cname, name)]['cpu'].append(cpu)
        print('round %d of %d done' % (run + 1, args.runs), file=sys.stderr)

    med = {key: {m: statistics.median(v[m]) for m in ('wall', 'cpu')} for key, v in times.items()}
    print('median seconds over %d runs (wall / cpu)' % args.runs)
    print('%-12s' % 'command' + ''.join('%22s' % c for c, _, _ in configs) +
          '%14s%14s' % ('default/off', 'secure/off'))
    for name, _ in commands:
        row = '%-12s' % name
        for cname, _, _ in configs:
            row += '%22s' % ('%.3f / %.3f' % (med[(cname, name)]['wall'], med[(cname, name)]['cpu']))
        off = med[('checks-off', name)]['wall']
        row += '%14.3f%14.3f' % (med[('default', name)]['wall'] / off, med[('secure', name)]['wall'] / off)
        print(row)
    summary = {}
    for metric in ('wall', 'cpu'):
        for cname in ('default', 'secure'):
            summary['%s/checks-off %s' % (cname, metric)] = geomean(
                [med[(cname, n)][metric] / med[('checks-off', n)][metric] for n, _ in commands])
    for key, value in summary.items():
        print('geometric mean %-26s %.3f (%+.1f%%)' % (key, value, (value - 1) * 100))

    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'machine': {'uname': platform.uname()._asdict(), 'cpus': os.cpu_count()},
                'runs': args.runs,
                'commands': {n: a for n, a in commands},
                'times': {'%s|%s' % k: v for k, v in times.items()},
                'summary': summary,
            }, f, indent=1)


if __name__ == '__main__':
    main()
