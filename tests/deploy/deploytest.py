#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks shared by the deployment tests (tests/deploy/*.sh). Debian's python3 and python3-yaml.

Every command prints one line per problem and exits 1 when there is one, 0 otherwise. Passwords
are read from the files that hold them, never taken from the command line, and never printed.

  free-port
  record URL                              the test server's record (JSON) on stdout
  reset URL                               the test server forgets what it received
  server-final URL PROFILE STATE_DIR      the server holds a final document for the profile's
                                          machine, with the password saved in STATE_DIR
  server-nothing URL                      the server received no document and no MAAS power change
  bmc-matches-maas BMC_YAML URL           bmc-config YAML (0600) == the MAAS node's power settings
  wsman-admin PORT (--bmc BMC_YAML | --state STATE_DIR)   AMT (the emulator's LMS stand-in on
                                          127.0.0.1:PORT) accepts that password as admin, and
                                          refuses a wrong one
  state-passwords-absent STATE_DIR FILE...   no saved password appears in FILEs
  maas-header SCRIPT                      the MAAS 1.0 metadata, read the way MAAS's ScriptForm
                                          reads it, has what a bmc-config commissioning script needs
  conf-keys CLOUD_CONFIG HELP_TEXT        the /etc/amt-enlist.conf in a cloud-config uses only long
                                          options from `amt-enlist --help`, booleans yes/no
"""

import json
import os
import re
import socket
import ssl
import stat
import sys
import urllib.error
import urllib.request
from datetime import timedelta

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = os.path.join(HERE, "..", "amtsim", "profiles")


def done(problems):
    for p in problems:
        print("problem: " + p)
    sys.exit(1 if problems else 0)


def control(url, path, body=None):
    """A control endpoint of the test server (loopback; its test CA is not checked here)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        return json.load(r)


def record(url):
    return control(url, "/_record")


def state_passwords(state_dir):
    out = []
    if os.path.isdir(state_dir):
        for name in sorted(os.listdir(state_dir)):
            if name.endswith(".json"):
                with open(os.path.join(state_dir, name)) as f:
                    out.append(json.load(f)["password"])
    return out


def cmd_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_server_final(url, profile, state_dir):
    with open(os.path.join(PROFILES, profile + ".json")) as f:
        amt = json.load(f)["amt"]
    passwords = state_passwords(state_dir)
    problems = []
    if len(passwords) != 1:
        problems.append(f"{len(passwords)} passwords in the state directory, expected 1")
    node = record(url).get("enlist", {}).get("nodes", {}).get(amt["uuid"])
    if not node or not node.get("current"):
        return done(problems + [f"the server holds no document for {amt['uuid']}"])
    doc = node["current"]
    pp = doc.get("power_parameters", {})
    if doc.get("state", "final") != "final":
        problems.append(f"the current document is {doc.get('state')!r}, not final")
    if doc.get("power_type") != "amt":
        problems.append(f"power_type is {doc.get('power_type')!r}")
    if pp.get("power_address") != amt["wired"]["ipv4"]:
        problems.append(f"power_address {pp.get('power_address')!r}, AMT's is "
                        f"{amt['wired']['ipv4']!r}")
    if pp.get("port") != "16992" or pp.get("power_user") != "admin":
        problems.append(f"port {pp.get('port')!r} / user {pp.get('power_user')!r}")
    if passwords and pp.get("power_pass") != passwords[0]:
        problems.append("the document's password is not the one saved in the state directory")
    done(problems)


def cmd_server_nothing(url):
    rec = record(url)
    docs = rec.get("enlist", {}).get("documents", [])
    changes = rec.get("maas", {}).get("power_changes", [])
    signals = rec.get("maas", {}).get("signals", [])
    problems = []
    if docs:
        problems.append(f"the server received {len(docs)} documents")
    if changes or signals:
        problems.append(f"MAAS received {len(signals)} signals, {len(changes)} power changes")
    done(problems)


def cmd_bmc_matches_maas(path, url):
    problems = []
    if not os.path.exists(path):
        return done(["no bmc-config file was written"])
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode != 0o600:
        problems.append(f"bmc-config mode is {mode:o}, not 600")
    with open(path) as f:
        got = yaml.safe_load(f)
    node = record(url).get("maas", {}).get("node", {})
    want = {"power_type": node.get("power_type")}
    want.update(node.get("power_parameters") or {})
    if node.get("power_type") != "amt":
        problems.append(f"the MAAS node's power_type is {node.get('power_type')!r}")
    if not isinstance(got, dict):
        problems.append("bmc-config is not a YAML mapping")
    elif got != want:
        keys = sorted(set(got) | set(want))
        diff = [k for k in keys if got.get(k) != want.get(k)]
        problems.append(f"bmc-config and the MAAS node differ in {diff}")
    elif sorted(got) != ["port", "power_address", "power_pass", "power_type", "power_user"]:
        problems.append(f"bmc-config keys {sorted(got)}")
    elif not all(isinstance(v, str) and v for v in got.values()):
        problems.append("bmc-config has a value that is not a non-empty string")
    done(problems)


WSMAN_GET = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
    '<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get'
    '</a:Action><a:To s:mustUnderstand="true">/wsman</a:To>'
    '<w:ResourceURI s:mustUnderstand="true">'
    'http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings</w:ResourceURI>'
    '<a:MessageID s:mustUnderstand="true">uuid:1</a:MessageID><a:ReplyTo><a:Address>'
    'http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>'
    '</s:Header><s:Body/></s:Envelope>').encode()


def wsman_status(port, password):
    url = f"http://127.0.0.1:{port}/wsman"
    mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    mgr.add_password(None, url, "admin", password)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(mgr))
    req = urllib.request.Request(url, data=WSMAN_GET, headers={
        "Content-Type": "application/soap+xml; charset=utf-8"})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def cmd_wsman_admin(port, how, path):
    if how == "--bmc":
        with open(path) as f:
            passwords = [yaml.safe_load(f)["power_pass"]]
    else:
        passwords = state_passwords(path)
    if len(passwords) != 1:
        return done([f"{len(passwords)} passwords found, expected 1"])
    problems = []
    if wsman_status(port, passwords[0]) != 200:
        problems.append("AMT does not accept the password as admin")
    if wsman_status(port, passwords[0] + "x") != 401:
        problems.append("AMT accepts a wrong admin password")
    done(problems)


def cmd_state_passwords_absent(state_dir, *files):
    problems = []
    for pw in state_passwords(state_dir):
        for name in files:
            if os.path.exists(name):
                with open(name, errors="replace") as f:
                    if pw in f.read():
                        problems.append(f"the admin password appears in {os.path.basename(name)}")
    done(problems)


# MAAS's ScriptForm._read_script (src/maasserver/forms/script.py): the delimiter lines, then every
# non-blank line between them must hold a "#"; the text after the first "#" is YAML.
MAAS_DELIM = re.compile(r"\s*#\s*-+\s*(Start|End) MAAS (?P<version>\d+\.\d+) script metadata\s+-+",
                        re.I)


def maas_metadata(text):
    lines = text.splitlines()
    problems = []
    if not lines or not lines[0].startswith("#!/"):
        problems.append("the script does not start with a shebang")
    found, body, ended = None, "", False
    for line in lines[1:]:
        m = MAAS_DELIM.search(line)
        if m:
            if found is None and m.group("version") == "1.0":
                found = m.group("version")
                continue
            if found == m.group("version"):
                ended = True
                break
        elif found is not None and line.strip():
            if "#" not in line:
                problems.append('a metadata line has no "#"')
                return None, problems
            body += line.split("#", 1)[1] + "\n"
    if found is None or not ended:
        problems.append("no complete '--- Start/End MAAS 1.0 script metadata ---' block")
        return None, problems
    return yaml.safe_load(body), problems


def parse_timeout(value):
    if isinstance(value, int):
        return timedelta(seconds=value)
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d)", str(value))
    if not m:
        return None
    h, mi, s = (int(x) for x in m.groups())
    return timedelta(hours=h, minutes=mi, seconds=s)


def cmd_maas_header(script):
    with open(script) as f:
        meta, problems = maas_metadata(f.read())
    if meta is None:
        return done(problems)
    if not isinstance(meta, dict):
        return done(problems + ["the metadata is not a YAML mapping"])
    base = os.path.basename(script)
    for key in ("name", "title", "description", "script_type", "tags", "parallel", "timeout",
                "packages"):
        if key not in meta:
            problems.append(f"metadata has no {key}")
    if meta.get("name") != base:
        problems.append(f"name {meta.get('name')!r} is not the file name {base!r}")
    if meta.get("script_type") != "commissioning":
        problems.append(f"script_type {meta.get('script_type')!r}")
    tags = meta.get("tags")
    tags = tags.split(",") if isinstance(tags, str) else tags
    if not isinstance(tags, list) or not {"bmc-config", "enlisting"} <= set(tags):
        problems.append(f"tags {tags!r} lack bmc-config and enlisting")
    # BMC_CONFIG_PATH is given to serial scripts only (maas_run_remote_scripts run_scripts()).
    if meta.get("parallel") != "disabled":
        problems.append(f"parallel {meta.get('parallel')!r}: MAAS gives BMC_CONFIG_PATH only to "
                        "parallel: disabled")
    t = parse_timeout(meta.get("timeout"))
    if t is None or not timedelta(minutes=5) <= t <= timedelta(minutes=30):
        problems.append(f"timeout {meta.get('timeout')!r} is not between 00:05:00 and 00:30:00")
    pk = meta.get("packages")
    if not isinstance(pk, dict) or not set(pk) & {"apt", "url", "snap"}:
        problems.append(f"packages {pk!r} names no apt, url or snap source")
    else:
        for key in ("apt", "url"):  # ScriptForm.clean_packages
            items = pk.get(key, [])
            items = items if isinstance(items, list) else [items]
            if not all(isinstance(i, str) for i in items):
                problems.append(f"packages {key}: every item must be a string")
        for u in pk.get("url", []) if isinstance(pk.get("url"), list) else [pk.get("url")]:
            if u is not None and not re.match(r"https?://[^/\s]+/\S+\.deb$", u):
                problems.append(f"packages url {u!r} is not an http(s) URL of a .deb")
    for key in ("name", "title", "description"):
        if key in meta and not (isinstance(meta[key], str) and meta[key].strip()):
            problems.append(f"{key} is not a non-empty string")
    if not problems:
        print(f"metadata: name {meta['name']}, tags {tags}, parallel {meta['parallel']}, "
              f"timeout {meta['timeout']}, packages {sorted(pk)}")
    done(problems)


def cmd_conf_keys(cloud_config, help_file):
    with open(help_file) as f:
        options = set(re.findall(r"--([a-z][a-z0-9-]*)", f.read()))
    with open(cloud_config) as f:
        cfg = yaml.safe_load(f)
    files = [w for w in cfg.get("write_files", []) if w.get("path") == "/etc/amt-enlist.conf"]
    if len(files) != 1:
        return done(["the cloud-config writes no (or several) /etc/amt-enlist.conf"])
    problems, keys = [], []
    mode = files[0].get("permissions")
    if mode != "0600":
        problems.append(f"/etc/amt-enlist.conf permissions {mode!r}, not '0600'")
    booleans = {o for o in options if o in ("no-amt-ok", "insecure", "report-unknown", "json",
                                            "reprovision", "verbose", "quiet")}
    for n, line in enumerate(files[0].get("content", "").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        m = re.fullmatch(r"([a-z][a-z0-9-]*)\s*=\s*(\S.*)", text)
        if not m:
            problems.append(f"line {n} is not 'key = value': {text!r}")
            continue
        key, value = m.groups()
        keys.append(key)
        if key not in options:
            problems.append(f"line {n}: '{key}' is not a long option of amt-enlist --help")
        if key in ("help", "version", "show-password"):
            problems.append(f"line {n}: '{key}' makes no sense in the configuration file")
        if key in booleans and value not in ("yes", "no"):
            problems.append(f"line {n}: '{key}' is a boolean: yes or no, not {value!r}")
    if "server" not in keys and "maas" not in keys:
        problems.append("the configuration names no hand-off (server or maas)")
    if not problems:
        print(f"/etc/amt-enlist.conf keys: {', '.join(keys)}")
    done(problems)


COMMANDS = {
    "free-port": (cmd_free_port, 0),
    "record": (lambda url: print(json.dumps(record(url), indent=1)), 1),
    "reset": (lambda url: control(url, "/_reset", {}), 1),
    "server-final": (cmd_server_final, 3),
    "server-nothing": (cmd_server_nothing, 1),
    "bmc-matches-maas": (cmd_bmc_matches_maas, 2),
    "wsman-admin": (cmd_wsman_admin, 3),
    "state-passwords-absent": (cmd_state_passwords_absent, None),
    "maas-header": (cmd_maas_header, 1),
    "conf-keys": (cmd_conf_keys, 2),
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    fn, nargs = COMMANDS[sys.argv[1]]
    args = sys.argv[2:]
    if nargs is not None and len(args) != nargs:
        sys.exit(__doc__)
    fn(*args)


if __name__ == "__main__":
    main()
