#!/usr/bin/python3
"""One integration case: the unchanged amt-enlist binary against the firmware emulator.

A case is a JSON file (tests/integration/cases/) that states the machine, the faults, what the
agent is asked, and what must come out; this runner is generic, in the manner of curl's tests.

Keys of a case:
  description   one line
  profile       name of a profile in tests/amtsim/profiles/
  faults        ["busy=2", ...] passed to amtsim as --fault (every step)
  tls           true: make a test CA and AMT's "AMT RCFG" certificate for the emulator
  files         {"NAME": "content"}: files made in the case's directory before the steps
  steps         a list of agent runs against the same emulated machine, each with the keys
                below; a case without "steps" is one step made of its own keys
  verify_admin  true: after the steps, a separate Digest-authenticated WS-Man call (through the
                emulator's LMS stand-in) must accept the password in the state directory as
                "admin", and refuse a wrong one
Keys of a step:
  args          the agent's arguments (the runner adds --device); {tmp}, {state} and {ca} are
                replaced by the case's directory, its state directory and the test CA
  fault_env     faults for this step only
  exit          expected exit code
  stdout_json   a JSON object that the agent's stdout must contain (subset match)
  expect_profile  true: stdout (info --json) must show the state the profile describes
  stdout        regular expressions that must match stdout
  stderr        regular expressions that must match stderr
  stderr_lines  the most lines stderr may have
  stats         {"amthi.connects": 1, "amthi.commands.GetUUID": 1, ...}: emulator counters of
                this step
  max_seconds   wall-time bound of the agent's run (a hang is a failure)
  show_password true: the step may print the admin password (it must not otherwise: every
                output of every step is searched for it)

Usage: run.py --transport unix|umockdev --agent PATH --amtsim PATH CASE.json
"""

import argparse
import socket
import ssl
import urllib.request
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



class Machine:
    """The emulated machine of one case: its state file, TLS material and transport."""

    def __init__(self, args, case, tmp):
        self.args, self.case, self.tmp = args, case, tmp
        self.state_file = os.path.join(tmp, "machine-state.json")
        self.certs = os.path.join(tmp, "certs")
        if case.get("tls"):
            subprocess.run(["sh", os.path.join(HERE, "..", "amtsim", "make-test-certs.sh"),
                            self.certs], check=True, capture_output=True)

    def sim_command(self, stats_path, faults=()):
        c = self.case
        cmd = [self.args.amtsim, "--profile", os.path.join(PROFILES, c["profile"] + ".json"),
               "--stats", stats_path]
        cmd += ["--state", self.state_file]  # the machine carries over from run to run
        if c.get("tls"):
            cmd += ["--tls-cert", os.path.join(self.certs, "amt.pem"),
                    "--tls-key", os.path.join(self.certs, "amt.key")]
        for f in list(c.get("faults", [])) + list(faults):
            cmd += ["--fault", f]
        return cmd

    def listen(self, stats_path, extra=(), faults=()):
        sock = os.path.join(self.tmp, "mei.sock")
        sim = subprocess.Popen(self.sim_command(stats_path, faults) + list(extra) +
                               ["--listen", sock],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = sim.stdout.readline()
        if "listening" not in line:
            sim.kill()
            fail(f"amtsim did not start: {line!r} {sim.stderr.read()}")
        return sim, sock


def stop(sim):
    sim.send_signal(signal.SIGTERM)
    try:
        sim.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sim.kill()
        fail("amtsim did not stop on SIGTERM")


def expand(arg, m):
    return (arg.replace("{tmp}", m.tmp).replace("{state}", os.path.join(m.tmp, "state"))
            .replace("{ca}", os.path.join(m.certs, "ca.pem")))


def run_step(m, step, transport, stats_path):
    """One agent run against the machine: its own emulator process, so per-step faults and
    counters are the step's own; the machine's state carries over through --state."""
    agent_args = [expand(a, m) for a in step["args"]]
    faults = step.get("fault_env", [])
    if transport == "umockdev":
        cmd = m.sim_command(stats_path, faults)
        return run_agent(cmd + ["--run", "--", m.args.agent] + agent_args, step)
    sim, sock = m.listen(stats_path, faults=faults)
    try:
        return run_agent([m.args.agent, "--device", "unix:" + sock] + agent_args, step)
    finally:
        stop(sim)


def run_agent(cmd, step):
    bound = step.get("max_seconds", 30)
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=bound + 5)
    except subprocess.TimeoutExpired:
        fail(f"the agent hung past {bound} s: {' '.join(cmd)}")
    elapsed = time.monotonic() - start
    if elapsed > bound:
        fail(f"the agent took {elapsed:.1f} s, more than {bound} s")
    return p, elapsed


def json_out(p, problems):
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        problems.append(f"stdout is not JSON ({e})")
        return None


def check(case, step, p, stats):
    problems = []
    if p.returncode != step.get("exit", 0):
        problems.append(f"exit {p.returncode}, expected {step.get('exit', 0)}")
    if step.get("expect_profile"):
        with open(os.path.join(PROFILES, case["profile"] + ".json")) as f:
            want = profile_expectation(json.load(f))
        out = json_out(p, problems)
        if out is not None:
            problems += subset(want, out)
    if "stdout_json" in step:
        out = json_out(p, problems)
        if out is not None:
            problems += subset(step["stdout_json"], out)
    for rx in step.get("stdout", []):
        if not re.search(rx, p.stdout, re.M):
            problems.append(f"stdout does not match /{rx}/")
    for rx in step.get("stderr", []):
        if not re.search(rx, p.stderr, re.M):
            problems.append(f"stderr does not match /{rx}/")
    if "stderr_lines" in step:
        n = len(p.stderr.splitlines())
        if n > step["stderr_lines"]:
            problems.append(f"stderr has {n} lines, at most {step['stderr_lines']} expected")
    for key, want in step.get("stats", {}).items():
        got = lookup(stats, key)
        if got != want:
            problems.append(f"emulator counter {key} = {got}, expected {want}")
    return problems


def saved_passwords(tmp):
    """Every password in the case's state directory (to search outputs for, and to verify)."""
    out = []
    state = os.path.join(tmp, "state")
    if os.path.isdir(state):
        for name in os.listdir(state):
            if name.endswith(".json"):
                with open(os.path.join(state, name)) as f:
                    out.append(json.load(f)["password"])
    return out


def wsman_get_as_admin(port, password, cafile):
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
            "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
            "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"><s:Header>"
            "<a:Action s:mustUnderstand=\"true\">"
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action>"
            "<a:To s:mustUnderstand=\"true\">/wsman</a:To>"
            "<w:ResourceURI s:mustUnderstand=\"true\">"
            "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings</w:ResourceURI>"
            "<a:MessageID s:mustUnderstand=\"true\">uuid:1</a:MessageID>"
            "<a:ReplyTo><a:Address>"
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
            "</a:Address></a:ReplyTo></s:Header><s:Body/></s:Envelope>").encode()
    scheme = "https" if cafile else "http"
    url = f"{scheme}://127.0.0.1:{port}/wsman"
    mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    mgr.add_password(None, url, "admin", password)
    handlers = [urllib.request.HTTPDigestAuthHandler(mgr)]
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/soap+xml; charset=utf-8"})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verify_admin(m, problems):
    passwords = saved_passwords(m.tmp)
    if len(passwords) != 1:
        problems.append(f"expected one password in the state directory, found {len(passwords)}")
        return
    port = free_port()
    sim, _ = m.listen(os.path.join(m.tmp, "verify-stats.json"), ["--lms", str(port)])
    try:
        cafile = os.path.join(m.certs, "ca.pem") if m.case.get("tls") else None
        if wsman_get_as_admin(port, passwords[0], cafile) != 200:
            problems.append("AMT does not accept the saved password as admin")
        if wsman_get_as_admin(port, passwords[0] + "x", cafile) != 401:
            problems.append("AMT accepts a wrong admin password")
    finally:
        stop(sim)


def load_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def run_case(args, case, tmp):
    m = Machine(args, case, tmp)
    for name, content in case.get("files", {}).items():
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, 0o600)
    reports, problems = [], []
    for i, step in enumerate(case.get("steps", [case])):
        stats_path = os.path.join(tmp, f"stats-{i}.json")
        p, elapsed = run_step(m, step, args.transport, stats_path)
        stats = load_json(stats_path)
        step_problems = check(case, step, p, stats)
        reports.append((i, step, p, elapsed, stats, step_problems))
        problems += [f"step {i + 1}: {x}" for x in step_problems]
    if case.get("verify_admin"):
        verify_admin(m, problems)
    for pw in saved_passwords(tmp):
        for i, step, p, _, _, _ in reports:
            if not step.get("show_password") and (pw in p.stdout or pw in p.stderr):
                problems.append(f"step {i + 1}: the admin password appears in the output")
    return reports, problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", choices=["unix", "umockdev"], required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--amtsim", required=True)
    ap.add_argument("case")
    args = ap.parse_args()
    with open(args.case) as f:
        case = json.load(f)
    # In the working directory (the build tree), not /tmp: a tmpfs there would make the
    # state directory non-durable and change what activation does.
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix="case-") as tmp:
        reports, problems = run_case(args, case, tmp)
    print(f"case: {os.path.basename(args.case)} ({args.transport}): {case['description']}")
    for i, step, p, elapsed, stats, step_problems in reports:
        print(f"step {i + 1}: {' '.join(step['args'])}: exit {p.returncode} in {elapsed:.2f} s")
        if step_problems:
            print("stdout:\n" + p.stdout)
            print("stderr:\n" + p.stderr)
            print("stats: " + json.dumps(stats))
    if problems:
        for pr in problems:
            print("problem: " + pr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
