#!/usr/bin/python3
"""One integration case: the unchanged amt-enlist binary against the firmware emulator.

A case is a JSON file (tests/integration/cases/) that states the machine, the faults, what the
agent is asked, and what must come out; this runner is generic, in the manner of curl's tests.

Keys of a case:
  description   one line
  profile       name of a profile in tests/amtsim/profiles/
  profile_patch {"amt": {"power_schemes": [...]}}: merged into the profile (objects key by key,
                anything else replaced) for this case only
  faults        ["busy=2", ...] passed to amtsim as --fault (every step)
  lms           true: the emulator also serves WS-Man on a loopback port as LMS would;
                {lms_port} names it. The agent takes that route only when the listener belongs
                to root, so such a case is skipped (exit 77) when not run as root
  tmpfs         true: {shm} is a fresh directory on /dev/shm (tmpfs), removed afterwards
  tls           true: make a test CA and AMT's "AMT RCFG" certificate for the emulator
  acm           true or {"cn": NAME, "intermediate": bool, "plain_leaf": bool, "trusted": bool}:
                make a provisioning PKI (tests/amtsim/make-provisioning-cert.sh); unless
                "trusted" is false the emulator trusts its root (amtsim --trust-ca). {pfx},
                {pfx_pass} and {acm_ca} name the PKCS#12 file, its password file and the root;
                the PKCS#12 password is searched for in every output like the saved passwords
  files         {"NAME": "content"}: files made in the case's directory before the steps
  steps         a list of agent runs against the same emulated machine, each with the keys
                below; a case without "steps" is one step made of its own keys
  verify_admin  true: after the steps, a separate Digest-authenticated WS-Man call (through the
                emulator's LMS stand-in) must accept the password in the state directory as
                "admin", and refuse a wrong one; when the state directory holds a MEBx password,
                the emulated firmware must hold that one (the SHA-256 in its state file)
  machine       what the emulator's state file must hold at the end (subset match), e.g.
                {"control_mode": "acm", "opt_in_required": 0}
  server        start the test provisioning server (tests/server/provserver.py) for the case:
                {"faults": [...], "tls": bool, "node_status": "COMMISSIONING", "args": [...]};
                {server} is its base URL, {maas_cfg} cloud-init's MAAS datasource file with its
                credentials, {server_ca} the CA of its certificate
  handoff       what the server (and files) must hold at the end, compared with the machine:
                "server_final" (the current document carries the saved password, AMT's address
                and port), "server_pending_first" (a pending document with the same password came
                first, then exactly one final), "maas_power" (the MAAS node's power settings),
                "bmc_config" ({tmp}/bmc.yaml holds them), "server_nothing" (nothing received),
                "maas_nothing" (no power settings stored), "server_mebx" (every document the
                server holds carries the saved MEBx password at its top level, none in
                power_parameters)
Keys of a step:
  args          the agent's arguments (the runner adds --device); {tmp}, {state} and {ca} are
                replaced by the case's directory, its state directory and the test CA
  fault_env     faults for this step only
  env           {"NAME": "value"} in the agent's environment; {pfx_password} there is the
                PKCS#12 password itself (it never goes on a command line)
  exit          expected exit code
  stdout_json   a JSON object that the agent's stdout must contain (subset match)
  expect_profile  true: stdout (info --json) must show the state the profile describes
  stdout        regular expressions that must match stdout
  stderr        regular expressions that must match stderr
  stderr_lines  the most lines stderr may have
  stats         {"amthi.connects": 1, "amthi.commands.GetUUID": 1, ...}: emulator counters of
                this step
  max_seconds   wall-time bound of the agent's run (a hang is a failure)
  server_faults faults of the test server for this step (replacing the case's)
  show_password true: the step may print the admin (and MEBx) password (it must not otherwise:
                every output of every step is searched for them)

Usage: run.py --transport unix|umockdev --agent PATH --amtsim PATH CASE.json
"""

import argparse
import hashlib
import socket
import ssl
import urllib.request
import json
import os
import re
import shutil
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
        self.lms_port = free_port() if case.get("lms") else None
        self.empty_settings = os.path.join(tmp, "empty.conf")
        open(self.empty_settings, "w").close()
        # A directory on tmpfs, for the cases about a state directory that a reboot erases.
        self.shm = tempfile.mkdtemp(prefix="amt-enlist-case-", dir="/dev/shm") \
            if case.get("tmpfs") else None
        self.certs = os.path.join(tmp, "certs")
        if case.get("tls"):
            subprocess.run(["sh", os.path.join(HERE, "..", "amtsim", "make-test-certs.sh"),
                            self.certs], check=True, capture_output=True)
        self.pki = os.path.join(tmp, "pki")
        self.acm = case.get("acm")
        if self.acm is True:
            self.acm = {}
        if self.acm is not None:
            opts = []
            if "cn" in self.acm:
                opts += ["--cn", self.acm["cn"]]
            if not self.acm.get("intermediate", True):
                opts.append("--no-intermediate")
            if self.acm.get("plain_leaf"):
                opts.append("--plain-leaf")
            subprocess.run(["sh", os.path.join(HERE, "..", "amtsim", "make-provisioning-cert.sh")]
                           + opts + [self.pki], check=True, capture_output=True)

    def pfx_password(self):
        if self.acm is None:
            return None
        with open(os.path.join(self.pki, "prov-pass.txt")) as f:
            return f.readline().strip()

    def profile_path(self):
        path = os.path.join(PROFILES, self.case["profile"] + ".json")
        patch = self.case.get("profile_patch")
        if patch is None:
            return path
        with open(path) as f:
            profile = merge(json.load(f), patch)
        path = os.path.join(self.tmp, "profile.json")
        with open(path, "w") as f:
            json.dump(profile, f)
        return path

    def sim_command(self, stats_path, faults=()):
        c = self.case
        cmd = [self.args.amtsim, "--profile", self.profile_path(), "--stats", stats_path]
        cmd += ["--state", self.state_file]  # the machine carries over from run to run
        if c.get("tls"):
            cmd += ["--tls-cert", os.path.join(self.certs, "amt.pem"),
                    "--tls-key", os.path.join(self.certs, "amt.key")]
        if self.acm is not None and self.acm.get("trusted", True):
            cmd += ["--trust-ca", os.path.join(self.pki, "prov-root.pem")]
        for f in list(c.get("faults", [])) + list(faults):
            cmd += ["--fault", f]
        if self.lms_port:
            cmd += ["--lms", str(self.lms_port)]
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


def merge(base, patch):
    """PATCH over BASE: objects merged key by key, anything else replaced."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return patch
    out = dict(base)
    for k, v in patch.items():
        out[k] = merge(base.get(k), v)
    return out


def stop(sim):
    sim.send_signal(signal.SIGTERM)
    try:
        sim.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sim.kill()
        fail("amtsim did not stop on SIGTERM")


SERVER = os.path.join(HERE, "..", "server")


class Server:
    """The test provisioning server of one case."""

    def __init__(self, spec, tmp):
        self.tmp = tmp
        self.certs = os.path.join(tmp, "server-certs")
        self.maas_cfg = os.path.join(tmp, "maas.cfg")
        cmd = ["/usr/bin/python3", os.path.join(SERVER, "provserver.py"), "--port", "0",
               "--record", os.path.join(tmp, "record.json"), "--maas-creds-out", self.maas_cfg,
               "--node-status", spec.get("node_status", "COMMISSIONING")]
        self.ctx = None
        if spec.get("tls"):
            subprocess.run(["sh", os.path.join(SERVER, "make-certs.sh"), self.certs],
                           check=True, capture_output=True)
            cmd += ["--tls-cert", os.path.join(self.certs, "server.pem"),
                    "--tls-key", os.path.join(self.certs, "server.key")]
            self.ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.pem"))
        for f in spec.get("faults", []):
            cmd += ["--fault", f]
        cmd += spec.get("args", [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.proc.kill()
            fail(f"provserver did not start: {line!r} {self.proc.stderr.read()}")
        self.url = m.group(1)

    def control(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
            return json.load(r)

    def stop(self):
        stop(self.proc)


def expand(arg, m, srv=None):
    arg = (arg.replace("{tmp}", m.tmp).replace("{state}", os.path.join(m.tmp, "state"))
           .replace("{lms_port}", str(m.lms_port)).replace("{shm}", str(m.shm))
           .replace("{ca}", os.path.join(m.certs, "ca.pem"))
           .replace("{pfx}", os.path.join(m.pki, "prov.pfx"))
           .replace("{pfx_pass}", os.path.join(m.pki, "prov-pass.txt"))
           .replace("{acm_ca}", os.path.join(m.pki, "prov-root.pem")))
    if srv:
        arg = (arg.replace("{server}", srv.url).replace("{maas_cfg}", srv.maas_cfg)
               .replace("{server_ca}", os.path.join(srv.certs, "ca.pem")))
    return arg


def step_env(m, step, srv):
    """The agent's environment: ours and the step's "env"."""
    env = dict(os.environ)
    for name, value in step.get("env", {}).items():
        env[name] = expand(value, m, srv).replace("{pfx_password}", m.pfx_password() or "")
    return env


def run_step(m, step, transport, stats_path, srv):
    """One agent run against the machine: its own emulator process, so per-step faults and
    counters are the step's own; the machine's state carries over through --state."""
    agent_args = [expand(a, m, srv) for a in step["args"]]
    if not any(a == "--config" or a.startswith("--config=") for a in agent_args):
        # The host's /etc/amt-enlist.conf must not change what a case does.
        agent_args = ["--config", m.empty_settings] + agent_args
    env = step_env(m, step, srv)
    if srv and "server_faults" in step:
        srv.control("/_fault", {"set": step["server_faults"]})
    faults = step.get("fault_env", [])
    if transport == "umockdev":
        cmd = m.sim_command(stats_path, faults)
        return run_agent(cmd + ["--run", "--", m.args.agent] + agent_args, step, env)
    sim, sock = m.listen(stats_path, faults=faults)
    try:
        return run_agent([m.args.agent, "--device", "unix:" + sock] + agent_args, step, env)
    finally:
        stop(sim)


def run_agent(cmd, step, env):
    bound = step.get("max_seconds", 30)
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=bound + 5, env=env)
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


def saved_records(tmp):
    """Every record of the case's state directory."""
    out = []
    state = os.path.join(tmp, "state")
    if os.path.isdir(state):
        for name in os.listdir(state):
            if name.endswith(".json"):
                with open(os.path.join(state, name)) as f:
                    out.append(json.load(f))
    return out


def saved_passwords(tmp):
    """Every admin password in the case's state directory (to verify and hand off)."""
    return [r["password"] for r in saved_records(tmp)]


def saved_secrets(tmp):
    """Every password of the state directory, the MEBx ones too (to search outputs for)."""
    out = []
    for r in saved_records(tmp):
        out += [r["password"]] + ([r["mebx_password"]] if r.get("mebx_password") else [])
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


def verify_mebx(m, record, problems):
    """The emulated firmware holds the saved MEBx password (its SHA-256, in its state file)."""
    held = load_json(m.state_file).get("mebx_sha256")
    want = hashlib.sha256(record["mebx_password"].encode()).hexdigest()
    if held != want:
        problems.append("the emulated AMT does not hold the saved MEBx password"
                        if held else "the emulated AMT holds no MEBx password")


def verify_admin(m, problems):
    passwords = saved_passwords(m.tmp)
    if len(passwords) != 1:
        problems.append(f"expected one password in the state directory, found {len(passwords)}")
        return
    record = saved_records(m.tmp)[0]
    if record.get("mebx_password"):
        verify_mebx(m, record, problems)
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


def machine_facts(m):
    """What the hand-off must carry for this machine: UUID, address, port, saved password."""
    with open(os.path.join(PROFILES, m.case["profile"] + ".json")) as f:
        amt = json.load(f)["amt"]
    passwords = saved_passwords(m.tmp)
    return {"uuid": amt["uuid"], "power_address": amt["wired"]["ipv4"], "port": "16992",
            "power_user": "admin", "power_pass": passwords[0] if len(passwords) == 1 else None}


def check_server_final(m, record):
    want = machine_facts(m)
    node = record.get("enlist", {}).get("nodes", {}).get(want["uuid"])
    if not node or not node.get("current"):
        return ["the server holds no document for this machine"]
    doc = node["current"]
    out = []
    if doc.get("state", "final") != "final":
        out.append(f"the server's current document is {doc.get('state')!r}, not final")
    pp = doc.get("power_parameters", {})
    for k in ("power_address", "port", "power_user", "power_pass"):
        if pp.get(k) != want[k]:
            out.append(f"server document {k} is {'(hidden)' if k == 'power_pass' else pp.get(k)!r}"
                       f", the machine's is {'(hidden)' if k == 'power_pass' else want[k]!r}")
    if doc.get("power_type") != "amt" or doc.get("schema") != "amt-enlist/1":
        out.append("server document lacks power_type amt or schema amt-enlist/1")
    return out


def check_server_pending_first(m, record):
    want = machine_facts(m)
    docs = record.get("enlist", {}).get("nodes", {}).get(want["uuid"], {}).get("documents", [])
    states = [d.get("state", "final") if isinstance(d, dict) and "power_type" in d
              else d.get("document", {}).get("state", "final") for d in docs]
    bodies = [d if "power_type" in d else d.get("document", {}) for d in docs]
    out = []
    if not states or states[0] != "pending":
        out.append(f"the first document was not pending: {states}")
    elif bodies[0]["power_parameters"].get("power_pass") != want["power_pass"]:
        out.append("the pending document's password is not the one AMT was set to")
    finals = [s for s in states if s == "final"]
    if len(finals) != 1:
        out.append(f"expected exactly one final document, got states {states}")
    return out


def check_maas_power(m, record):
    want = machine_facts(m)
    node = record.get("maas", {}).get("node", {})
    out = []
    if node.get("power_type") != "amt":
        out.append(f"MAAS node power_type is {node.get('power_type')!r}")
    pp = node.get("power_parameters") or {}
    expect = {k: want[k] for k in ("power_address", "power_user", "power_pass", "port")}
    if pp != expect:
        out.append("MAAS node power_parameters differ from the machine's "
                   f"(keys {sorted(pp)}, address {pp.get('power_address')!r})")
    return out


def check_bmc_config(m, record):
    del record
    want = machine_facts(m)
    path = os.path.join(m.tmp, "bmc.yaml")
    if not os.path.exists(path):
        return ["no bmc-config file was written"]
    import yaml  # Debian's python3-yaml
    with open(path) as f:
        got = yaml.safe_load(f)
    expect = {"power_type": "amt"}
    expect.update({k: want[k] for k in ("power_address", "power_user", "power_pass", "port")})
    out = []
    if got != expect:
        out.append(f"bmc-config holds keys {sorted(got or {})}, not the machine's parameters")
    if os.stat(path).st_mode & 0o777 != 0o600:
        out.append("bmc-config is not mode 0600")
    return out


def check_server_mebx(m, record):
    """Every document carries the saved MEBx password at its top level, never among the power
    parameters (MAAS's keys)."""
    records = saved_records(m.tmp)
    want = records[0].get("mebx_password") if len(records) == 1 else None
    uuid = machine_facts(m)["uuid"]
    docs = record.get("enlist", {}).get("nodes", {}).get(uuid, {}).get("documents", [])
    bodies = [d if "power_type" in d else d.get("document", {}) for d in docs]
    out = []
    if not want:
        out.append("the state directory holds no MEBx password")
    if not bodies:
        out.append("the server holds no document for this machine")
    for i, b in enumerate(bodies):
        if b.get("mebx_password") != want:
            out.append(f"document {i + 1} ({b.get('state', 'final')}) does not carry the saved "
                       "MEBx password")
        if "mebx_password" in b.get("power_parameters", {}):
            out.append(f"document {i + 1} has the MEBx password among its power parameters")
    return out


def check_server_nothing(m, record):
    del m
    docs = record.get("enlist", {}).get("documents", [])
    return [f"the server received {len(docs)} documents"] if docs else []


def check_server_unknown(m, record):
    want = machine_facts(m)
    node = record.get("enlist", {}).get("nodes", {}).get(want["uuid"])
    doc = node.get("current") if node else None
    if not doc:
        return ["the server was not told about the machine"]
    out = []
    if doc.get("credentials") != "unknown":
        out.append(f"the document says credentials {doc.get('credentials')!r}, not 'unknown'")
    if "power_pass" in doc.get("power_parameters", {}):
        out.append("the document carries a power_pass")
    return out


def check_maas_nothing(m, record):
    del m
    node = record.get("maas", {}).get("node", {})
    changes = record.get("maas", {}).get("power_changes", [])
    return [f"MAAS power settings changed: {node.get('power_type')}"] if changes else []


HANDOFF_CHECKS = {
    "server_final": check_server_final,
    "server_pending_first": check_server_pending_first,
    "maas_power": check_maas_power,
    "bmc_config": check_bmc_config,
    "server_mebx": check_server_mebx,
    "server_nothing": check_server_nothing,
    "server_unknown": check_server_unknown,
    "maas_nothing": check_maas_nothing,
}


def load_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def run_case(args, case, tmp):
    m = Machine(args, case, tmp)
    reports, problems = [], []
    srv = Server(case["server"], tmp) if "server" in case else None
    for name, content in case.get("files", {}).items():
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(expand(content, m, srv))
        os.chmod(path, 0o600)
    try:
        for i, step in enumerate(case.get("steps", [case])):
            stats_path = os.path.join(tmp, f"stats-{i}.json")
            p, elapsed = run_step(m, step, args.transport, stats_path, srv)
            stats = load_json(stats_path)
            step_problems = check(case, step, p, stats)
            reports.append((i, step, p, elapsed, stats, step_problems))
            problems += [f"step {i + 1}: {x}" for x in step_problems]
        record = srv.control("/_record") if srv else {}
    finally:
        if srv:
            srv.stop()
        if m.shm:
            shutil.rmtree(m.shm, ignore_errors=True)
    if case.get("verify_admin"):
        verify_admin(m, problems)
    if "machine" in case:
        problems += [f"machine state: {x}" for x in subset(case["machine"],
                                                           load_json(m.state_file))]
    for name in case.get("handoff", []):
        problems += HANDOFF_CHECKS[name](m, record)
    for pw in saved_secrets(tmp):
        for i, step, p, _, _, _ in reports:
            if not step.get("show_password") and (pw in p.stdout or pw in p.stderr):
                problems.append(f"step {i + 1}: a saved password appears in the output")
    pfx_password = m.pfx_password()
    for i, step, p, _, _, _ in reports:
        if pfx_password and (pfx_password in p.stdout or pfx_password in p.stderr):
            problems.append(f"step {i + 1}: the PKCS#12 password appears in the output")
    for secret in maas_secrets(srv):
        for i, step, p, _, _, _ in reports:
            if secret in p.stdout or secret in p.stderr:
                problems.append(f"step {i + 1}: the MAAS token secret appears in the output")
    return reports, problems


def maas_secrets(srv):
    """The OAuth token secret the server handed out (it must never be printed)."""
    if not srv or not os.path.exists(srv.maas_cfg):
        return []
    with open(srv.maas_cfg) as f:
        m = re.search(r"token_secret\W+([A-Za-z0-9]+)", f.read())
    return [m.group(1)] if m else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", choices=["unix", "umockdev"], required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--amtsim", required=True)
    ap.add_argument("case")
    args = ap.parse_args()
    with open(args.case) as f:
        case = json.load(f)
    if case.get("lms") and os.geteuid() != 0:
        print("skip: the LMS route needs a listener owned by root, and this is not root")
        sys.exit(77)
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
