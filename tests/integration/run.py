#!/usr/bin/python3
"""One integration case: the unchanged amt-enlist binary against the firmware emulator.

A case is a JSON file (tests/integration/cases/) that states the machine, the faults, what the
agent is asked, and what must come out; this runner is generic, in the manner of curl's tests.

Keys of a case:
  description   one line
  profile       name of a profile in tests/amtsim/profiles/
  faults        ["busy=2", ...] passed to amtsim as --fault
  args          the agent's arguments (the runner adds --device and, under umockdev, nothing)
  exit          expected exit code
  stdout_json   a JSON object that the agent's stdout must contain (subset match)
  expect_profile  true: stdout (info --json) must show the state the profile describes
  stdout        regular expressions that must match stdout
  stderr        regular expressions that must match stderr
  stderr_lines  the most lines stderr may have
  stats         {"amthi.connects": 1, "amthi.commands.GetUUID": 1, ...}: emulator counters
  max_seconds   wall-time bound of the agent's run (a hang is a failure)

Usage: run.py --transport unix|umockdev --agent PATH --amtsim PATH CASE.json
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = os.path.join(HERE, "..", "amtsim", "profiles")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def subset(expected, actual, path="$"):
    """Return a list of differences where ACTUAL does not contain EXPECTED."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        out = []
        for k, v in expected.items():
            if k not in actual:
                out.append(f"{path}.{k}: missing")
            else:
                out += subset(v, actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            out += subset(e, a, f"{path}[{i}]")
        return out
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


CONTROL_MODES = {"none": "none", "ccm": "client", "acm": "admin"}


def profile_expectation(profile):
    """What `info --json` must print for a machine profile: derived from the profile itself."""
    amt = profile["amt"]
    versions = {v["description"]: v["version"] for v in amt["code_versions"]}
    exp = {
        "version": versions.get("AMT"),
        "build": versions.get("Build Number"),
        "sku": int(versions.get("Sku", "0"), 0),
        "uuid": amt["uuid"],
        "control_mode": CONTROL_MODES[amt["control_mode"]],
        "provisioning_state": amt["provisioning_state"],
        "dns_suffix": amt.get("dns_suffix", ""),
        "power_policy": amt.get("power_policy"),
        "code_versions": versions,
        "certificate_hashes": [
            {"name": h["name"], "hash": h["hash"], "default": h["default"],
             "active": h["active"]} for h in amt["cert_hashes"]],
    }
    for side in ("wired", "wireless"):
        a = amt.get(side)
        if a is None:
            exp[side] = None
            continue
        exp[side] = {"enabled": a["enabled"], "ipv4": a["ipv4"], "dhcp": a["dhcp"],
                     "mac": a["mac"], "link_up": a["link"] == "up"}
        if a["dhcp"]:
            exp[side]["dhcp_mode"] = a["dhcp_mode"]
    wd = profile["clients"].get("watchdog")
    if wd and not wd.get("busy") and "state" in wd:
        state = int(wd["state"], 0)
        exp["state_independence"] = f"0x{state:02X}"
        if state & 0x80:
            exp["tls_enforced"] = "yes" if state & 0x40 else "no"
            exp["operational"] = "yes" if state & 0x02 else "no"
    else:
        exp["state_independence"] = None
    return exp


def lookup(stats, dotted):
    cur = stats.get("clients", {}) if dotted.split(".")[0] in ("amthi", "lme", "watchdog") \
        else stats
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return 0
        cur = cur[part]
    return cur


def sim_command(args, case, stats_path):
    cmd = [args.amtsim, "--profile", os.path.join(PROFILES, case["profile"] + ".json"),
           "--stats", stats_path]
    for f in case.get("faults", []):
        cmd += ["--fault", f]
    return cmd


def run_unix(args, case, tmp, stats_path):
    sock = os.path.join(tmp, "mei.sock")
    sim = subprocess.Popen(sim_command(args, case, stats_path) + ["--listen", sock],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = sim.stdout.readline()
        if "listening" not in line:
            fail(f"amtsim did not start: {line!r} {sim.stderr.read()}")
        agent = [args.agent, "--device", "unix:" + sock] + case["args"]
        return run_agent(agent, case)
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            fail("amtsim did not stop on SIGTERM")


def run_umockdev(args, case, tmp, stats_path):
    del tmp
    cmd = sim_command(args, case, stats_path) + ["--run", "--", args.agent] + case["args"]
    return run_agent(cmd, case)


def run_agent(cmd, case):
    bound = case.get("max_seconds", 30)
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=bound + 5)
    except subprocess.TimeoutExpired:
        fail(f"the agent hung past {bound} s: {' '.join(cmd)}")
    elapsed = time.monotonic() - start
    if elapsed > bound:
        fail(f"the agent took {elapsed:.1f} s, more than {bound} s")
    return p, elapsed


def check(case, p, stats):
    problems = []
    if p.returncode != case.get("exit", 0):
        problems.append(f"exit {p.returncode}, expected {case.get('exit', 0)}")
    if case.get("expect_profile"):
        with open(os.path.join(PROFILES, case["profile"] + ".json")) as f:
            want = profile_expectation(json.load(f))
        try:
            problems += subset(want, json.loads(p.stdout))
        except json.JSONDecodeError as e:
            problems.append(f"stdout is not JSON ({e})")
    if "stdout_json" in case:
        try:
            out = json.loads(p.stdout)
            problems += subset(case["stdout_json"], out)
        except json.JSONDecodeError as e:
            problems.append(f"stdout is not JSON ({e})")
    for rx in case.get("stdout", []):
        if not re.search(rx, p.stdout, re.M):
            problems.append(f"stdout does not match /{rx}/")
    for rx in case.get("stderr", []):
        if not re.search(rx, p.stderr, re.M):
            problems.append(f"stderr does not match /{rx}/")
    if "stderr_lines" in case:
        n = len(p.stderr.splitlines())
        if n > case["stderr_lines"]:
            problems.append(f"stderr has {n} lines, at most {case['stderr_lines']} expected")
    for key, want in case.get("stats", {}).items():
        got = lookup(stats, key)
        if got != want:
            problems.append(f"emulator counter {key} = {got}, expected {want}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", choices=["unix", "umockdev"], required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--amtsim", required=True)
    ap.add_argument("case")
    args = ap.parse_args()
    with open(args.case) as f:
        case = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = os.path.join(tmp, "stats.json")
        runner = run_unix if args.transport == "unix" else run_umockdev
        p, elapsed = runner(args, case, tmp, stats_path)
        stats = {}
        if os.path.exists(stats_path):
            with open(stats_path) as f:
                stats = json.load(f)
        problems = check(case, p, stats)
    print(f"case: {os.path.basename(args.case)} ({args.transport}): {case['description']}")
    print(f"agent: exit {p.returncode} in {elapsed:.2f} s")
    if problems:
        print("stdout:\n" + p.stdout)
        print("stderr:\n" + p.stderr)
        print("stats: " + json.dumps(stats))
        for pr in problems:
            print("problem: " + pr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
