# SPDX-License-Identifier: Apache-2.0
"""What the fault matrix and the kill test share: one emulated machine with its test server,
agent runs against it, and the checks that tie AMT's state, the state directory and the server's
record together (no lockout, no lost password, no secret in any output).

The machine, the server, the state directory convention and the Digest check come from the
integration runner (tests/integration/run.py), imported as a module.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import run  # noqa: E402  (tests/integration/run.py)

PROFILES = run.PROFILES
WRONG = "x"  # appended to a password: AMT must refuse the result


class HarnessError(Exception):
    """The harness itself could not do its job (emulator or server did not start, ...)."""


def guard(fn, *a, **kw):
    """run.py's helpers end the process (sys.exit) when something does not start."""
    try:
        return fn(*a, **kw)
    except SystemExit as e:
        raise HarnessError(f"{getattr(fn, '__name__', fn)}: harness failure ({e})") from None


class Paths:
    def __init__(self, agent, amtsim):
        self.agent, self.amtsim = agent, amtsim


def load_profile(name):
    with open(os.path.join(PROFILES, name + ".json")) as f:
        return json.load(f)


def default_realm(uuid):
    return "Digest:" + uuid.replace("-", "").upper()


def ha1(password, realm, user="admin"):
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


class Result:
    def __init__(self, rc, out, err, elapsed, stats, killed=False, timed_out=False):
        self.rc, self.out, self.err, self.elapsed = rc, out, err, elapsed
        self.stats, self.killed, self.timed_out = stats, killed, timed_out

    def counter(self, dotted):
        return run.lookup(self.stats, dotted)


class Env:
    """One emulated machine (its --state file carries it across agent runs) and, unless
    SERVER is None, one test provisioning server; all files in TMP."""

    def __init__(self, paths, tmp, profile="amt11-pre", tls=False, lms=False, server=True):
        self.paths, self.tmp, self.profile_name = paths, tmp, profile
        self.profile = load_profile(profile)
        amt = self.profile["amt"]
        self.uuid = amt["uuid"]
        self.realm = amt.get("digest_realm") or default_realm(self.uuid)
        self.address = amt["wired"]["ipv4"]
        self.case = {"profile": profile, "tls": tls, "lms": lms}
        self.m = guard(run.Machine, paths, self.case, tmp)
        self.srv = guard(run.Server, {}, tmp) if server else None
        self.runs = []  # every Result, for the secret search

    # ---- agent runs ----

    def expand(self, args):
        return [run.expand(a, self.m, self.srv) for a in args]

    def agent_run(self, args, faults=(), timeout=60, kill_after=None, relay=None, env=None,
                  agent=None):
        """One agent run with its own emulator process (FAULTS for this run only). KILL_AFTER:
        SIGKILL the agent that many seconds after it started. RELAY: a function (socket path
        -> (device socket path, closer)) to put between the agent and the emulator."""
        n = len(self.runs)
        stats_path = os.path.join(self.tmp, f"stats-{n}.json")
        sim, sock = guard(self.m.listen, stats_path, faults=list(faults))
        closer = None
        try:
            if relay:
                sock, closer = relay(sock)
            cmd = [agent or self.paths.agent, "--device", "unix:" + sock] + self.expand(args)
            res = run_process(cmd, timeout, kill_after, env)
        finally:
            if closer:
                closer()
            guard(run.stop, sim)
        res.stats = run.load_json(stats_path)
        self.runs.append(res)
        return res

    # ---- what there is to see ----

    def machine(self):
        """The emulated AMT's state: the --state file, or the profile's state before any
        change was written."""
        if os.path.exists(self.m.state_file):
            with open(self.m.state_file) as f:
                return json.load(f)
        amt = self.profile["amt"]
        pw = amt.get("admin_password")
        return {"control_mode": amt["control_mode"],
                "provisioning_state": amt["provisioning_state"],
                "admin_ha1": ha1(pw, self.realm) if pw else None}

    def records(self):
        """The state directory's records: [{uuid, user, password, status}]."""
        out = []
        state = os.path.join(self.tmp, "state")
        if os.path.isdir(state):
            for name in sorted(os.listdir(state)):
                path = os.path.join(state, name)
                if name.endswith(".json"):
                    with open(path) as f:
                        out.append(json.load(f))
        return out

    def state_dir_leftovers(self):
        """Files in the state directory that are not records or its lock (temporary files left
        behind)."""
        state = os.path.join(self.tmp, "state")
        if not os.path.isdir(state):
            return []
        return [n for n in os.listdir(state) if not n.endswith(".json") and n != ".lock"]

    def record(self):
        return self.srv.control("/_record") if self.srv else {}

    def server_documents(self, record):
        """The documents the server accepted for this machine, in order."""
        docs = record.get("enlist", {}).get("nodes", {}).get(self.uuid, {}).get("documents", [])
        return [d.get("document", d) if "power_type" not in d else d for d in docs]

    def server_current(self, record):
        return record.get("enlist", {}).get("nodes", {}).get(self.uuid, {}).get("current")

    def verify_lms(self, password):
        """[problems]: AMT must accept PASSWORD as admin (Digest, through --lms) and refuse a
        wrong one."""
        port = run.free_port()
        sim, _ = guard(self.m.listen, os.path.join(self.tmp, "verify-stats.json"),
                       ["--lms", str(port)])
        out = []
        try:
            cafile = os.path.join(self.m.certs, "ca.pem") if self.case["tls"] else None
            got = run.wsman_get_as_admin(port, password, cafile)
            if got != 200:
                out.append(f"AMT does not accept the saved password as admin (HTTP {got})")
            got = run.wsman_get_as_admin(port, password + WRONG, cafile)
            if got != 401:
                out.append(f"AMT does not refuse a wrong admin password (HTTP {got})")
        finally:
            guard(run.stop, sim)
        return out

    def close(self):
        if self.srv:
            self.srv.stop()
            self.srv = None

    # ---- the invariants ----

    def check_consistency(self, record, lms=True, strays=True):
        """No lockout, no lost password: [problems]. AMT holding an admin password means the
        state directory holds exactly that password (HA1 compared, and a Digest GET through
        --lms when LMS is true), every document the server holds for the machine carries it,
        and the first of them was a pending one (written ahead of Setup). STRAYS: temporary
        files left in the state directory are a problem (a SIGKILL between writing one and
        renaming it leaves one behind: the kill test counts them apart)."""
        problems = []
        mach = self.machine()
        recs = [r for r in self.records() if r.get("uuid") == self.uuid]
        if len(self.records()) != len(recs):
            problems.append("the state directory holds records of another UUID")
        if len(recs) > 1:
            problems.append(f"the state directory holds {len(recs)} records for the machine")
        leftovers = self.state_dir_leftovers()
        if leftovers and strays:
            problems.append(f"the state directory holds stray files: {leftovers}")
        saved = recs[0]["password"] if len(recs) == 1 else None
        docs = self.server_documents(record) if self.srv else []
        served = {d.get("power_parameters", {}).get("power_pass") for d in docs}
        if mach.get("admin_ha1"):
            if saved is None:
                problems.append("LOCKOUT: AMT has an admin password and the state directory "
                                "holds none")
            elif ha1(saved, self.realm) != mach["admin_ha1"]:
                problems.append("LOCKOUT: AMT's admin password is not the one in the state "
                                "directory")
            elif lms:
                problems += self.verify_lms(saved)
            if self.srv and mach.get("control_mode") != "none":
                if not docs:
                    problems.append("AMT was activated and the server holds no document "
                                    "(nothing written ahead)")
                elif docs[0].get("state") != "pending":
                    problems.append("the server's first document was not pending")
        if saved is not None and served - {saved}:
            problems.append("LOST PASSWORD: the server holds a password that is not the one "
                            "in the state directory")
        if saved is None and served:
            problems.append("the server holds a password and the state directory none")
        return problems

    def check_final(self, record):
        """After a successful hand-off: AMT in client control mode, post; the server's current
        document final with the saved password, AMT's address and port 16992."""
        problems = []
        mach = self.machine()
        if (mach.get("control_mode"), mach.get("provisioning_state")) != ("ccm", "post"):
            problems.append(f"AMT is in {mach.get('control_mode')}/"
                            f"{mach.get('provisioning_state')}, not ccm/post")
        recs = self.records()
        cur = self.server_current(record)
        if not cur:
            problems.append("the server holds no current document")
            return problems
        pp = cur.get("power_parameters", {})
        if cur.get("state", "final") != "final":
            problems.append(f"the server's current document is {cur.get('state')!r}")
        if len(recs) != 1 or pp.get("power_pass") != recs[0]["password"]:
            problems.append("LOST PASSWORD: the server's current document does not carry the "
                            "saved password")
        if pp.get("power_address") != self.address:
            problems.append(f"power_address {pp.get('power_address')!r}, AMT's is "
                            f"{self.address!r}")
        if pp.get("power_user") != "admin":
            problems.append(f"power_user {pp.get('power_user')!r}")
        return problems

    def secrets(self, record):
        out = {r["password"] for r in self.records() if r.get("password")}
        for d in self.server_documents(record) if self.srv else []:
            pw = d.get("power_parameters", {}).get("power_pass")
            if pw:
                out.add(pw)
        return out

    def check_secrets(self, record):
        problems = []
        for pw in self.secrets(record):
            for i, r in enumerate(self.runs):
                if pw in r.out or pw in r.err:
                    problems.append(f"run {i + 1}: the admin password appears in the output")
        return problems


def run_process(cmd, timeout, kill_after=None, env=None):
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    killed = timed_out = False
    if kill_after is not None:
        try:
            p.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            killed = True
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        timed_out = True
    return Result(p.returncode, out, err, time.monotonic() - start, {}, killed, timed_out)


def machine_summary(mach):
    return (f"{mach.get('control_mode')}/{mach.get('provisioning_state')}"
            f"{' admin' if mach.get('admin_ha1') else ''}")


def tail(text, n=6):
    lines = text.strip().splitlines()
    return "\n".join("    " + x for x in lines[-n:])


def stderr_claims(err):
    """What the agent's message says of AMT's state after a failure: 'untouched', 'activated',
    'unknown' or None."""
    if re.search(r"AMT is left untouched", err):
        return "untouched"
    if re.search(r"AMT is in \w+ control mode with the password saved", err):
        return "activated"
    if re.search(r"AMT's state is unknown", err):
        return "unknown"
    return None
