#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The kill test: `amt-enlist --server URL --state-dir DIR` interrupted at random points, then
run again; AMT must never be left with a password nobody holds, and the server must end up with
exactly the password AMT accepts.

Each run is one fresh emulated machine (its own amtsim --state file) and one fresh test server.
The run's interruptions, drawn from random.Random(SEED) before anything starts (so a run is
reproduced by the seed and its number, whatever --jobs is):
  kill        the agent is SIGKILLed DELAY seconds after it started; the emulator is slowed
              (latency=MS per ME message, wsman-latency=MS per WS-Man reply) so the run lasts
              long enough for DELAY, drawn over the whole length of a clean run, to land
              anywhere in it
  reset       the emulated firmware resets at a random point: reset@N (the N-th AMTHI request),
              reset-before-setup, reset-during-setup or lme-disconnect@N
  kill+reset  both in the same agent run
One to three interrupted runs in a row (each a new agent process against the same machine and
server), then a run without faults. Checked after every interrupted run: AMT holding an admin
password means the state directory holds exactly that password (HA1 compared), every document
the server holds carries it, and the first was "pending" (written ahead of Setup). Checked
after the clean run: exit 0, AMT in client control mode, post, accepting the saved password (a
Digest GET through amtsim --lms, a wrong one refused), the server's current document final
with that password; no password in any output.

A failure of the first kind is a LOCKOUT (AMT holds a password the machine does not), one of
the second a LOST PASSWORD (the server holds another password, or none after the clean run).
A temporary file left in the state directory (<uuid>.json.tmp.PID: the agent killed between
writing it and renaming it over the record) is reported as a note and counted, not failed.

Usage: killtest.py --agent PATH --amtsim PATH [--runs N] [--seed S] [--jobs J] [--only I]
Exit status 0 when every run passed.
"""

import argparse
import concurrent.futures
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, HERE)
import common  # noqa: E402

PROFILE = "amt11-pre"
ARGS = ["--server", "{server}/enlist", "--state-dir", "{state}", "--me-timeout", "5",
        "--deadline", "20"]
SLOW = ["latency=4", "wsman-latency=10"]
# Kill delays are drawn over 0 .. WINDOW seconds: a little longer than a clean run with SLOW
# (about 0.3 s here), fixed so that a seed draws the same delays everywhere.
WINDOW = 0.4
MODES = [("kill", 0.6), ("reset", 0.25), ("kill+reset", 0.15)]
# the documented exit codes (README): anything else, or a signal, is a crash
EXIT_CODES = set(range(0, 12))


def draw_plan(rng, i, window, amthi_requests, wsman_calls):
    """The interruptions of run I: a list of agent runs, each {faults, kill_after}."""
    steps = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        x, mode = rng.random(), MODES[-1][0]
        for name, p in MODES:
            if x < p:
                mode = name
                break
            x -= p
        faults, kill = list(SLOW), None
        if "reset" in mode:
            kind = rng.choice(["reset@N", "reset@N", "reset-before-setup", "reset-during-setup",
                               "lme-disconnect@N"])
            if kind == "reset@N":
                faults.append(f"reset@{rng.randint(1, amthi_requests)}")
            elif kind == "lme-disconnect@N":
                faults.append(f"lme-disconnect@{rng.randint(1, wsman_calls)}")
            else:
                faults.append(kind)
        if "kill" in mode:
            kill = round(rng.uniform(0.0, window), 3)
        steps.append({"mode": mode, "faults": faults, "kill_after": kill})
    return {"run": i, "steps": steps}


def describe(step):
    extra = [f for f in step["faults"] if f not in SLOW]
    parts = [step["mode"]]
    if step["kill_after"] is not None:
        parts.append(f"kill at {step['kill_after']:.3f} s")
    if extra:
        parts.append(" ".join(extra))
    return ", ".join(parts)


def where(env, record):
    """Where the interruption left things: AMT untouched/activated, server none/pending/final."""
    m = env.machine()
    amt = "activated" if m.get("admin_ha1") else "untouched"
    states = [d.get("state", "final") for d in env.server_documents(record)]
    server = "final" if "final" in states else "pending" if states else "none"
    return f"AMT {amt}, server {server}"


def one_run(paths, plan, workdir, keep):
    tmp = tempfile.mkdtemp(dir=workdir, prefix=f"run{plan['run']:04d}-")
    problems, lines, landed, strays = [], [], [], set()
    kinds = set()
    env = None
    t0 = time.monotonic()
    try:
        env = common.Env(paths, tmp, PROFILE)
        for k, step in enumerate(plan["steps"], 1):
            res = env.agent_run(ARGS, faults=step["faults"], timeout=60,
                                kill_after=step["kill_after"])
            record = env.record()
            got = "killed" if res.killed else f"exit {res.rc}"
            if res.timed_out:
                problems.append(f"interrupted run {k}: HANG (no end within 60 s)")
            elif not res.killed and res.rc not in EXIT_CODES:
                problems.append(f"interrupted run {k}: CRASH (exit {res.rc})")
            at = where(env, record)
            landed.append(at)
            lines.append(f"  {k}: {describe(step)}: {got} after {res.elapsed:.3f} s; {at}")
            strays.update(env.state_dir_leftovers())
            for p in env.check_consistency(record, lms=False, strays=False):
                problems.append(f"after interrupted run {k}: {p}")
                kinds.add("lockout" if "LOCKOUT" in p else "lost" if "LOST" in p else "other")
        res = env.agent_run(ARGS, timeout=60)
        record = env.record()
        lines.append(f"  clean rerun: exit {res.rc} in {res.elapsed:.2f} s")
        if res.rc != 0:
            problems.append(f"clean rerun: exit {res.rc}, expected 0: "
                            f"{res.err.strip().splitlines()[-1:]}")
        strays.update(env.state_dir_leftovers())
        for p in env.check_final(record) + env.check_consistency(record, lms=True,
                                                                   strays=False):
            problems.append(f"after the clean rerun: {p}")
            kinds.add("lockout" if "LOCKOUT" in p or "accept" in p else
                      "lost" if "LOST" in p else "other")
        for p in env.check_secrets(record):
            problems.append(p)
            kinds.add("secret")
    except Exception as e:  # the harness broke (a server or emulator that did not start, ...)
        problems.append(f"harness: {type(e).__name__}: {e}")
        kinds.add("harness")
    finally:
        if env:
            env.close()
    if not problems and not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"plan": plan, "problems": problems, "lines": lines, "landed": landed,
            "kinds": kinds, "tmp": tmp, "elapsed": time.monotonic() - t0,
            "strays": sorted(strays)}


def clean_run_facts(paths, workdir):
    """How long a clean run lasts with the slowing faults, and how many AMTHI requests and
    authenticated WS-Man calls it makes."""
    tmp = tempfile.mkdtemp(dir=workdir, prefix="clean-")
    env = common.Env(paths, tmp, PROFILE)
    try:
        res = env.agent_run(ARGS, faults=SLOW, timeout=60)
    finally:
        env.close()
    if res.rc != 0:
        raise common.HarnessError(f"the clean run failed (exit {res.rc}): {res.err}")
    shutil.rmtree(tmp, ignore_errors=True)
    return (res.elapsed, res.stats.get("amthi_requests", 0),
            common.run.lookup(res.stats, "wsman.authenticated"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--amtsim", required=True)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=None, help="default: drawn, and printed")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", type=int, action="append",
                    help="run only run number I of the seed's plan (repeatable)")
    ap.add_argument("--window", type=float, default=WINDOW,
                    help=f"draw kill delays over 0 .. this many seconds (default {WINDOW})")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--workdir", default=os.getcwd(),
                    help="where run directories go (not tmpfs); default the working directory")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    paths = common.Paths(os.path.abspath(args.agent), os.path.abspath(args.amtsim))
    workdir = tempfile.mkdtemp(dir=args.workdir, prefix="killtest-")
    t0 = time.monotonic()
    try:
        measured, amthi_requests, wsman_calls = clean_run_facts(paths, workdir)
    except common.HarnessError as e:
        print(f"FAIL: {e}")
        return 1
    rng = random.Random(seed)
    plans = [draw_plan(rng, i, args.window, amthi_requests, wsman_calls)
             for i in range(1, args.runs + 1)]
    if args.only:
        plans = [p for p in plans if p["run"] in args.only]
    print(f"seed {seed}: {len(plans)} runs, {args.jobs} at a time; a clean run with "
          f"{' '.join(SLOW)} takes {measured:.3f} s ({amthi_requests} AMTHI requests, "
          f"{wsman_calls} authenticated WS-Man calls); kill delays drawn over "
          f"0..{args.window:.3f} s", flush=True)
    if measured > args.window:
        print(f"note: a clean run is longer than the kill window here: kills land in its first "
              f"{args.window / measured:.0%} only (--window to widen)", flush=True)
    print(f"reproduce: killtest.py --seed {seed} --runs {args.runs}"
          f"{'' if args.window == WINDOW else f' --window {args.window}'} [--only I]",
          flush=True)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(one_run, paths, p, workdir, args.keep) for p in plans]
        for fut in futures:
            r = fut.result()
            results.append(r)
            st = "ok  " if not r["problems"] else "FAIL"
            print(f"{st} run {r['plan']['run']}: "
                  f"{'; '.join(describe(s) for s in r['plan']['steps'])} "
                  f"({r['elapsed']:.1f} s)", flush=True)
            if r["strays"]:
                print(f"      note: temporary file left in the state directory by a SIGKILL: "
                      f"{', '.join(r['strays'])}")
            if r["problems"]:
                for line in r["lines"]:
                    print(line)
                for p in r["problems"]:
                    print("      problem: " + p)
                print(f"      kept: {r['tmp']}")
    failed = [r for r in results if r["problems"]]
    interrupted = [s for r in results for s in r["plan"]["steps"]]
    killed = sum(1 for s in interrupted if s["kill_after"] is not None)
    landings = {}
    for r in results:
        for at in r["landed"]:
            landings[at] = landings.get(at, 0) + 1
    lockouts = sum(1 for r in failed if "lockout" in r["kinds"])
    lost = sum(1 for r in failed if "lost" in r["kinds"])
    print()
    print(f"seed {seed}: {len(results)} machines, {len(interrupted)} interrupted agent runs "
          f"({killed} with SIGKILL, {len(interrupted) - killed} with firmware faults only) in "
          f"{time.monotonic() - t0:.0f} s")
    print("where the interruptions left the machine:")
    for at, n in sorted(landings.items()):
        print(f"  {at}: {n}")
    strays = sum(1 for r in results if r["strays"])
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed; lockouts {lockouts}, "
          f"lost passwords {lost}; machines whose state directory kept a temporary file "
          f"(<uuid>.json.tmp.PID, a SIGKILL inside state_save; not counted as a failure): "
          f"{strays}")
    if not failed and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
