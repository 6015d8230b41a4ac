#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Two agents at once on one machine (a cloud-init runcmd and the systemd unit, say): both run
`amt-enlist --server URL --state-dir DIR` against the same emulated AMT, the same state
directory and the same server, the second started a random 0..SPREAD seconds after the first.
Both must succeed: the state directory's lock makes the second wait for the first, then find
AMT activated with the saved password and hand that off. Then one clean run. AMT must never
hold a password that the state directory does not, and the server must end up with exactly
that password.

Usage: two_agents.py --agent PATH --amtsim PATH [--rounds N] [--seed S] [--spread SECONDS]
Exit status 0 when every round passed.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, HERE)
import common  # noqa: E402

ARGS = ["--server", "{server}/enlist", "--state-dir", "{state}", "--me-timeout", "5",
        "--deadline", "30"]
# Slow enough that the two runs overlap for most of their length.
SLOW = ["latency=3", "wsman-latency=20"]
EXIT_CODES = set(range(0, 12))


def both_at_once(env, delay):
    """Start two agents DELAY seconds apart against one emulator; their Results."""
    sim, sock = common.guard(env.m.listen, os.path.join(env.tmp, "stats-pair.json"),
                             faults=SLOW)
    procs = []
    try:
        cmd = [env.paths.agent, "--device", "unix:" + sock] + env.expand(ARGS)
        for wait in (0, delay):
            time.sleep(wait)
            procs.append((time.monotonic(), subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        results = []
        for start, p in procs:
            timed_out = False
            try:
                out, err = p.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                timed_out = True
            results.append(common.Result(p.returncode, out, err, time.monotonic() - start, {},
                                         False, timed_out))
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        common.guard(common.run.stop, sim)
    env.runs += results
    return results


def one_round(paths, workdir, i, delay, keep):
    tmp = tempfile.mkdtemp(dir=workdir, prefix=f"round{i:03d}-")
    problems, lines = [], []
    env = None
    try:
        env = common.Env(paths, tmp, "amt11-pre")
        for k, res in enumerate(both_at_once(env, delay), 1):
            last = res.err.strip().splitlines()[-1:] or [""]
            lines.append(f"  agent {k}: exit {res.rc} after {res.elapsed:.2f} s: {last[0]}")
            if res.timed_out:
                problems.append(f"agent {k}: HANG")
            elif res.rc not in EXIT_CODES:
                problems.append(f"agent {k}: CRASH (exit {res.rc})")
            elif res.rc != 0:
                problems.append(f"agent {k}: exit {res.rc}, expected 0")
        record = env.record()
        for p in env.check_consistency(record, lms=False):
            problems.append(f"after the pair: {p}")
        res = env.agent_run(ARGS, timeout=60)
        lines.append(f"  clean run: exit {res.rc}")
        if res.rc != 0:
            problems.append(f"clean run: exit {res.rc}: {res.err.strip().splitlines()[-1:]}")
        record = env.record()
        problems += [f"after the clean run: {p}" for p in
                     env.check_final(record) + env.check_consistency(record, lms=True)]
        problems += env.check_secrets(record)
    except common.HarnessError as e:
        problems.append(f"harness: {e}")
    finally:
        if env:
            env.close()
    if not problems and not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return problems, lines, tmp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--amtsim", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--spread", type=float, default=0.3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="show every round's agent runs")
    ap.add_argument("--workdir", default=os.getcwd(),
                    help="where round directories go (not tmpfs); default the working directory")
    args = ap.parse_args()
    paths = common.Paths(os.path.abspath(args.agent), os.path.abspath(args.amtsim))
    workdir = tempfile.mkdtemp(dir=args.workdir, prefix="two-agents-")
    rng = random.Random(args.seed)
    delays = [rng.uniform(0, args.spread) for _ in range(args.rounds)]
    failed = 0
    for i, delay in enumerate(delays, 1):
        problems, lines, tmp = one_round(paths, workdir, i, delay, args.keep)
        print(f"{'ok  ' if not problems else 'FAIL'} round {i}: second agent after "
              f"{delay:.3f} s", flush=True)
        if problems or args.verbose:
            failed += bool(problems)
            for line in lines + [f"      problem: {p}" for p in problems]:
                print(line)
            if problems:
                print(f"      kept: {tmp}")
    print(f"seed {args.seed}: {args.rounds - failed} passed, {failed} failed")
    if not failed and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
