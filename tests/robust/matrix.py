#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The fault matrix: `amt-enlist --server URL --state-dir DIR` against the emulator with every
fault at every step of the run, each case checked against an outcome derived from rules.

matrix.json holds the rules, not recorded results:
  outcomes   named outcomes: {exit, amt: untouched|activated|any, handoff: none|pending|final,
             max_seconds, stats: {counter: value}, stderr: [regex]}
  amthi      AMTHI request faults (WORD@N, N = 1 .. the number of AMTHI requests of a clean run,
             counted by amtsim --stats and named by a recording relay, relay.py): the request
             named by "boundary" and the ones before and after it make three phases; "faults"
             maps each fault word and phase to an outcome
  wsman      faults on the N-th authenticated WS-Man call (lme-disconnect@N) and on each call by
             name (soap-fault=Class.Method), phases before/at/after "boundary"
  server     the test server's faults at the hand-off: each spec at the pending document
             (the first request) and at the final one (after "slow=1:0", which lets exactly one
             request through), with the outcome for each position; "sample" names the
             positions of each spec that the CI sample runs
  cases      everything else, one case each: {name, kind, phase, faults, server_faults, args
             (added), profile, tls, lms, expect (outcome name, or an outcome with "base"),
             sample}
  known_bugs case name -> the bug (file:function, what is wrong): such a case failing is
             reported as "xfail" and does not fail the run; passing, as "XPASS" (remove it)

Every case: a fresh emulated machine (amtsim --state) and a fresh test server; the agent runs
with the case's faults; its exit code, wall time, counters and message are checked against the
outcome; then, whatever happened, AMT's state (the --state file) must agree with the state
directory (AMT holds an admin password => the state directory holds it: HA1 compared and a
Digest GET through amtsim --lms), every document the server holds carries that same password,
the first was "pending" (written ahead), no password appears in any output, and a message that
says "AMT is left untouched" or "... with the password saved" tells the truth. Then the agent
runs again without faults: exit 0, AMT in client control mode with the saved password and the
server's current document final with it.

Usage: matrix.py --agent PATH --amtsim PATH [--sample] [--jobs N] [--filter REGEX] [--list]
                 [--keep] [matrix.json]
Exit status 0 when every case passed (or failed as a known bug).
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, HERE)
import common  # noqa: E402
import relay  # noqa: E402


class Case:
    def __init__(self, name, kind, phase, expect, faults=(), server_faults=(), args=(),
                 profile=None, tls=False, lms=False, sample=False, note=""):
        self.name, self.kind, self.phase, self.expect = name, kind, phase, expect
        self.faults, self.server_faults = list(faults), list(server_faults)
        self.args, self.profile, self.tls, self.lms = list(args), profile, tls, lms
        self.sample, self.note = sample, note
        self.known_bug = None


# ---- the clean run: how many AMTHI requests, which WS-Man calls, in which order ----

def trace_clean_run(paths, spec, workdir):
    tmp = tempfile.mkdtemp(dir=workdir, prefix="trace-")
    env = common.Env(paths, tmp, spec["profile"])
    relays = []

    def recorder(sock):
        r = relay.Relay(os.path.join(tmp, "relay.sock"), sock)
        relays.append(r)
        return os.path.join(tmp, "relay.sock"), r.close

    try:
        res = env.agent_run(spec["args"], relay=recorder)
    finally:
        env.close()
    if res.rc != 0:
        raise common.HarnessError(f"the clean run failed (exit {res.rc}):\n{res.err}")
    amthi = relays[0].amthi
    calls = [c for auth, c in relays[0].wsman_calls() if auth]
    if len(amthi) != res.stats.get("amthi_requests"):
        raise common.HarnessError(f"the relay saw {len(amthi)} AMTHI requests, amtsim counted "
                                  f"{res.stats.get('amthi_requests')}")
    if len(calls) != common.run.lookup(res.stats, "wsman.authenticated"):
        raise common.HarnessError(f"the relay saw {len(calls)} authenticated WS-Man calls, "
                                  f"amtsim counted "
                                  f"{common.run.lookup(res.stats, 'wsman.authenticated')}")
    shutil.rmtree(tmp, ignore_errors=True)
    return amthi, calls


def phases_around(names, boundary, phase_names):
    """Phase of each item: before the first BOUNDARY, at it, after it."""
    if boundary not in names:
        raise common.HarnessError(f"{boundary} is not in the clean run: {names}")
    at = names.index(boundary)
    before, on, after = phase_names
    return [before if i < at else on if i == at else after for i in range(len(names))]


def middle(items):
    return items[(len(items) - 1) // 2]


def build_cases(spec, amthi, calls):
    cases = []
    # AMTHI request faults, every N
    a = spec["amthi"]
    phases = phases_around(amthi, a["boundary"], a["phases"])
    for word, by_phase in a["faults"].items():
        group = {}
        for n, (name, phase) in enumerate(zip(amthi, phases), 1):
            c = Case(f"{word}@{n}", word + "@N", phase, by_phase[phase], faults=[f"{word}@{n}"],
                     note=name)
            group.setdefault(phase, []).append(c)
            cases.append(c)
        for members in group.values():
            middle(members).sample = True
    # WS-Man call faults
    w = spec["wsman"]
    wphases = phases_around(calls, w["boundary"], w["phases"])
    for word, by_phase in w["faults"].items():
        for n, (call, phase) in enumerate(zip(calls, wphases), 1):
            fault = word.replace("{n}", str(n)).replace("{call}", call)
            kind = re.sub(r"[@=].*", "", word) + ("@N" if "{n}" in word else "=CALL")
            cases.append(Case(fault, kind, phase, by_phase[phase], faults=[fault], note=call,
                              sample=True))
    # server faults at the pending and the final document
    s = spec["server"]
    for fault, by_pos in s["faults"].items():
        for pos, outcome in by_pos.items():
            if outcome is None:
                continue
            cases.append(Case(f"server {fault} ({pos})", "server " + re.sub(r"[=:].*", "", fault),
                              pos, outcome, server_faults=s["positions"][pos] + [fault],
                              sample=pos in s.get("sample", {}).get(fault, [])))
    for c in spec["cases"]:
        cases.append(Case(c["name"], c["kind"], c["phase"], c["expect"],
                          faults=c.get("faults", []), server_faults=c.get("server_faults", []),
                          args=c.get("args", []), profile=c.get("profile"),
                          tls=c.get("tls", False), lms=c.get("lms", False),
                          sample=c.get("sample", False), note=c.get("note", "")))
    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise common.HarnessError(f"duplicate case names: {sorted(dup)}")
    for name, bug in spec.get("known_bugs", {}).items():
        if name not in names:
            raise common.HarnessError(f"known_bugs names no case: {name}")
        cases[names.index(name)].known_bug = bug
    return cases


def outcome(spec, expect):
    if isinstance(expect, str):
        return dict(spec["outcomes"][expect], name=expect)
    base = dict(spec["outcomes"][expect["base"]]) if "base" in expect else {}
    base.update({k: v for k, v in expect.items() if k != "base"})
    base["name"] = expect.get("base", "custom") + "+"
    return base


# ---- one case ----

def check_outcome(env, want, res, record):
    problems = []
    if res.timed_out:
        return [f"HANG: the agent did not end within {want['max_seconds'] + 10} s"]
    if res.rc != want["exit"]:
        problems.append(f"exit {res.rc}, expected {want['exit']}")
    if res.elapsed > want["max_seconds"]:
        problems.append(f"took {res.elapsed:.1f} s, more than {want['max_seconds']} s")
    for key, value in want.get("stats", {}).items():
        if res.counter(key) != value:
            problems.append(f"amtsim counter {key} = {res.counter(key)}, expected {value}")
    for rx in want.get("stderr", []):
        if not re.search(rx, res.err, re.M):
            problems.append(f"stderr does not match /{rx}/")
    mach = env.machine()
    amt = want.get("amt", "any")
    if amt == "untouched" and (mach.get("control_mode") != env.profile["amt"]["control_mode"]
                               or mach.get("admin_ha1")):
        problems.append(f"AMT should be untouched, it is {common.machine_summary(mach)}")
    if amt == "activated" and (mach.get("control_mode") == "none" or not mach.get("admin_ha1")):
        problems.append(f"AMT should be activated, it is {common.machine_summary(mach)}")
    claim = common.stderr_claims(res.err)
    if claim == "untouched" and (mach.get("control_mode") != "none" or mach.get("admin_ha1")):
        problems.append(f"the message says AMT is left untouched, it is "
                        f"{common.machine_summary(mach)}")
    if claim == "activated" and not mach.get("admin_ha1"):
        problems.append(f"the message says AMT was activated, it is "
                        f"{common.machine_summary(mach)}")
    docs = env.server_documents(record)
    handoff = want.get("handoff", "any")
    states = [d.get("state", "final") for d in docs]
    if handoff == "none" and docs:
        problems.append(f"the server should hold nothing, it holds {states}")
    if handoff == "pending" and (not docs or "final" in states):
        problems.append(f"the server should hold the pending document only, it holds {states}")
    if handoff == "final":
        problems += env.check_final(record)
    return problems


def run_case(paths, spec, case, workdir, keep):
    want = outcome(spec, case.expect)
    want.setdefault("max_seconds", spec["max_seconds"])
    tmp = tempfile.mkdtemp(dir=workdir, prefix="case-")
    problems, detail, harness = [], [], False
    start = time.monotonic()
    env = None
    try:
        env = common.Env(paths, tmp, case.profile or spec["profile"], tls=case.tls, lms=case.lms)
        args = spec["args"] + case.args
        if case.server_faults:
            env.srv.control("/_fault", {"set": case.server_faults})
        res = env.agent_run(args, faults=case.faults, timeout=want["max_seconds"] + 10)
        record = env.record()
        p = check_outcome(env, want, res, record)
        p += env.check_consistency(record)
        problems += [f"faulted run: {x}" for x in p]
        detail.append(f"  faulted run: exit {res.rc} in {res.elapsed:.2f} s, AMT "
                      f"{common.machine_summary(env.machine())}\n{common.tail(res.err)}")
        # the rerun, without faults
        env.srv.control("/_fault", {"clear": True})
        res2 = env.agent_run(args, timeout=spec["max_seconds"] + 10)
        record = env.record()
        p = []
        if res2.timed_out or res2.rc != 0:
            p.append(f"exit {res2.rc}{' (hang)' if res2.timed_out else ''}, expected 0")
        p += env.check_final(record)
        p += env.check_consistency(record)
        p += env.check_secrets(record)
        problems += [f"rerun: {x}" for x in p]
        detail.append(f"  rerun: exit {res2.rc} in {res2.elapsed:.2f} s\n{common.tail(res2.err)}")
        result_exit, run_seconds = res.rc, res.elapsed
    except Exception as e:  # the harness broke (a server or emulator that did not start, ...)
        problems.append(f"harness: {type(e).__name__}: {e}")
        result_exit, run_seconds, harness = None, 0.0, True
    finally:
        if env:
            env.close()
    elapsed = time.monotonic() - start
    if not problems and not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"case": case, "want": want, "exit": result_exit, "problems": problems,
            "harness": harness, "detail": detail, "elapsed": elapsed, "tmp": tmp,
            "run_seconds": run_seconds}


# ---- the report ----

def status(r):
    """ok, FAIL, xfail (a known bug, still there) or XPASS (a known bug no longer seen)."""
    bug = r["case"].known_bug
    if r["problems"]:
        return "xfail" if bug and not r["harness"] else "FAIL"
    return "XPASS" if bug else "ok"


def summary_table(results):
    """One row per fault kind: cases, passed, known bugs, failed, and passed/total per phase."""
    rows = {}
    for r in results:
        c = r["case"]
        row = rows.setdefault(c.kind, {"n": 0, "ok": 0, "xfail": 0, "fail": 0, "phases": {}})
        st = status(r)
        row["n"] += 1
        row["ok"] += st in ("ok", "XPASS")
        row["xfail"] += st == "xfail"
        row["fail"] += st == "FAIL"
        ok, total = row["phases"].get(c.phase, (0, 0))
        row["phases"][c.phase] = (ok + (st in ("ok", "XPASS")), total + 1)
    width = max([len(k) for k in rows] + [5]) + 2
    lines = [f"{'fault'.ljust(width)}{'cases':>6}{'ok':>5}{'bug':>5}{'FAIL':>6}   per phase (ok/cases)"]
    for kind, row in rows.items():
        phases = ", ".join(f"{p} {ok}/{total}" for p, (ok, total) in row["phases"].items())
        lines.append(f"{kind.ljust(width)}{row['n']:>6}{row['ok']:>5}"
                     f"{row['xfail'] or '':>5}{row['fail'] or '':>6}   {phases}")
    n = len(results)
    tot = {k: sum(r[k] for r in rows.values()) for k in ("ok", "xfail", "fail")}
    lines.append(f"{'total'.ljust(width)}{n:>6}{tot['ok']:>5}{tot['xfail'] or '':>5}"
                 f"{tot['fail'] or '':>6}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--amtsim", required=True)
    ap.add_argument("--sample", action="store_true", help="the CI sample only")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--filter", help="only cases whose name matches this regular expression")
    ap.add_argument("--list", action="store_true", help="list the cases and their outcomes")
    ap.add_argument("--keep", action="store_true", help="keep every case's directory")
    ap.add_argument("--workdir", default=os.getcwd(),
                    help="where case directories go (not tmpfs: the state directory must be "
                         "persistent storage); default the working directory")
    ap.add_argument("matrix", nargs="?", default=os.path.join(HERE, "matrix.json"))
    args = ap.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `matrix.py --list | head` ends quietly
    with open(args.matrix) as f:
        spec = json.load(f)
    paths = common.Paths(os.path.abspath(args.agent), os.path.abspath(args.amtsim))
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(dir=args.workdir, prefix="faultmatrix-")
    try:
        amthi, calls = trace_clean_run(paths, spec, workdir)
    except common.HarnessError as e:
        print(f"FAIL: {e}")
        return 1
    print(f"clean run: {len(amthi)} AMTHI requests, authenticated WS-Man calls: "
          f"{', '.join(calls)}")
    cases = build_cases(spec, amthi, calls)
    if args.sample:
        cases = [c for c in cases if c.sample]
    if args.filter:
        cases = [c for c in cases if re.search(args.filter, c.name)]
    if args.list:
        shutil.rmtree(workdir, ignore_errors=True)
        for c in cases:
            w = outcome(spec, c.expect)
            print(f"{c.name:40} {c.phase:13} {w['name']:28} exit {w['exit']}"
                  f"{'  [sample]' if c.sample else ''}  {c.note}")
        return 0
    print(f"{len(cases)} cases, {args.jobs} at a time")
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_case, paths, spec, c, workdir, args.keep) for c in cases]
        for fut in futures:
            r = fut.result()
            results.append(r)
            c = r["case"]
            st = status(r)
            print(f"{st:5} {c.name:38} {c.phase:12} expect {r['want']['name']:27} "
                  f"got exit {r['exit']} in {r['run_seconds']:.2f} s  {c.note}", flush=True)
            if st == "xfail":
                print(f"      known bug: {c.known_bug}")
            if st == "XPASS":
                print(f"      XPASS: the known bug is not seen any more, remove it from "
                      f"known_bugs: {c.known_bug}")
            if r["problems"]:
                for p in r["problems"]:
                    print("      problem: " + p)
            if st == "FAIL":
                for d in r["detail"]:
                    print(d)
                print(f"      kept: {r['tmp']}")
            elif r["problems"] and not args.keep:
                shutil.rmtree(r["tmp"], ignore_errors=True)
    counts = {k: sum(status(r) == k for r in results) for k in ("ok", "xfail", "XPASS", "FAIL")}
    elapsed = time.monotonic() - t0
    print()
    print(summary_table(results))
    print()
    print(f"{len(results)} cases in {elapsed:.0f} s: {counts['ok']} passed, "
          f"{counts['xfail']} failed as known bugs (xfail), {counts['XPASS']} known bugs not "
          f"seen (XPASS), {counts['FAIL']} failed")
    for r in results:
        if status(r) == "FAIL":
            print(f"  FAIL: {r['case'].name}: {r['problems'][0]}")
    bugs = {}
    for r in results:
        if status(r) == "xfail":
            bugs.setdefault(r["case"].known_bug, []).append(r["case"].name)
    for bug, names in bugs.items():
        print(f"  known bug ({len(names)} cases: {', '.join(names)}): {bug}")
    if not counts["FAIL"] and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
