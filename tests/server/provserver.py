#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""provserver: the test provisioning server of amt-enlist.

It plays the three servers the agent hands AMT's power parameters to, records what it received,
and misbehaves on request. Python standard library plus python3-oauthlib (Debian's, hence
/usr/bin/python3). Listens on 127.0.0.1 (port 0: the kernel picks one), plain HTTP or HTTPS, and
prints exactly one line on stdout once it accepts connections:

    provserver: listening on http://127.0.0.1:PORT          (https:// with --tls-cert)

Command line
  --port N                 0 (default): any free port
  --tls-cert PEM --tls-key PEM   serve HTTPS (tests/server/make-certs.sh makes test certificates)
  --host ADDR              IPv4 address to listen on (default 127.0.0.1)
  --record FILE            the record as JSON, rewritten atomically (temp file + rename) after every
                           request, before the reply is sent (one write serves all the requests
                           that arrived meanwhile)
  --record-interval S      benchmarks: write the record at most every S seconds, replies not
                           waiting for it (GET /_record is always current)
  --enlist-path PATH       the JSON endpoint (default /enlist)
  --node-status STATUS     the MAAS node's status (default COMMISSIONING; MAAS's NODE_STATUS names)
  --node-power-type T, --node-power-parameters JSON   the node's power settings at start (for
                           tests that an operator's working settings are not erased)
  --deployed-signals ignore|process   ignore (default, as PROTOCOL.md 7 says): a DEPLOYED node's
                           signal changes nothing. process: as MAAS 3.x's signal() does for hardware
                           sync (DEPLOYED handled by _process_commissioning, power settings stored)
  --maas-creds-out FILE    write cloud-init's MAAS datasource YAML with this run's credentials
  --maas-creds-style block|maas   block (default): datasource only, block style; maas: flow-style
                           mappings plus a reporting section, the way MAAS's preseed looks
  --fault SPEC             repeatable; see Faults
  --log-limit N            at most N entries in the record's request log (default 10000)
  -v                       one line per request on stderr (method, path, status, fault; no bodies)
  --self-test              measure this server's capacity (a server subprocess, load processes
                           posting a small document: keep-alive, a connection per request, and the
                           429 path of rate=10), print it, exit 0 when the best reaches
                           --self-test-min requests/s (default 1000). --self-test-seconds (per
                           phase), --self-test-clients (per load process), --self-test-record
  Stops cleanly (exit 0) on SIGTERM or SIGINT. Nothing secret is printed.

Endpoints (every reply has Content-Length and a Date header from the server's clock)
  POST <enlist-path>       the JSON document (DESIGN.md "Contracts"). Content-Type application/json.
                           201 {"result": "created", ...} for a new uuid, 200 {"result": "updated" |
                           "duplicate", ...} after; 400 {"error": "..."} naming what is wrong.
  POST /MAAS/metadata/(2012-03-01|latest)/?op=signal    MAAS's metadata signal (op in the query or
                           in the form). multipart/form-data or urlencoded fields: status,
                           power_type, power_parameters (JSON string), error, files. OAuth 1.0a
                           (PLAINTEXT or HMAC-SHA1) checked by oauthlib; 401 "Authorization Error:
                           ..." with WWW-Authenticate on a bad signature, unknown consumer or token,
                           replayed nonce, or a timestamp more than 300 s from the server's clock.
                           Then as MAAS's VersionIndexHandler.signal: unknown status 400; node
                           COMMISSIONING: power settings stored (power_type given: the whole dict
                           REPLACED by power_parameters; empty power_parameters keep the old dict),
                           OK -> READY, FAILED -> FAILED_COMMISSIONING, TESTING -> TESTING,
                           WORKING no change; other signalable states: 200 and nothing changes;
                           states MAAS does not take signals in (ALLOCATED, RETIRED, ...): 409.
  POST /MAAS/api/2.0/machines/   anonymous enlistment (form: architecture, mac_addresses repeated,
                           hostname, domain, power_type, power_parameters JSON, commission). A
                           machine in NEW or COMMISSIONING with one of the MACs is updated, one in
                           another state is a 400; otherwise a machine is created. 200 with JSON.
  GET  /MAAS/api/2.0/machines/?op=is_registered&mac_address=X    true / false (JSON)
  GET  /cloud-config       the same YAML as --maas-creds-out (what cloud-config-url= points to)
  GET  /cloud-config/enlist   the enlistment variant: metadata_url only
  GET  /_record            the record (below)
  GET|POST /_fault         the faults; POST {"set": [SPEC...]} | {"add": [SPEC...]} | {"clear": true}
  GET|POST /_node          the MAAS node; POST {"status", "power_type", "power_parameters"} (any)
  POST /_reset             forget what was received (documents, signals, machines, counters)
  Control endpoints (/_*) are never subject to faults or the rate limit.

Faults: NAME[=ARGS][@SCOPE]. SCOPE: enlist, signal, machines, cloud-config, handoff (the default:
enlist + signal + machines) or all. Counted faults (=N) form a queue in the order given: a request
takes the first counted fault in scope that has requests left, so "500=2" then "429=1:3" answers
500, 500, 429, then normally. Requests are counted when the whole request has been read.
  500=N          500 {"error": ...}; nothing processed
  503=N[:S]      503, with Retry-After S when given; nothing processed
  429=N:S        429 with Retry-After S (delta seconds); nothing processed
  429date=N:S    429 with Retry-After as an HTTP date S seconds ahead of the server's clock
  hang=N[:S]     read the request, then never answer: wait until the client closes the connection
                 (or S seconds, or the server stops); nothing processed
  reset=N        close the connection without answering, with an RST (SO_LINGER 0); nothing
                 processed
  garbage=N      the request IS processed and recorded, but a successful reply becomes 200 with a
                 body that is not JSON (Content-Type application/json): the client must cope
                 with a bad body (refusals, e.g. 400 for an invalid document, are sent as usual)
  badstatus=N    a malformed HTTP status line, then the connection is closed; nothing processed
  slow=N:S       the reply is sent S seconds late (processed normally)
  400[=N]        every (or the next N) request refused: 400 {"error": "refused by test fault"}
  refuse-pending a "pending" document gets 409 {"error": ...} (final ones are accepted)
  skew=S         the server's clock (Date headers, OAuth timestamp check) is S seconds ahead
  rate=C[/W]     at most C requests in any W-second window (default 1) pass; the others get 429
                 with Retry-After = when the oldest request in the window leaves it (>= 1 s)

Record (GET /_record, --record FILE): a JSON object
  server     {url, pid, started, enlist_path}
  requests   {total, by_endpoint, by_status, faults_applied, log: [{seq, t, method, path,
             endpoint, status, fault}], log_dropped}: every request but the control ones; status
             is the HTTP status sent, or "hang", "reset", "badstatus"
  enlist     {documents: [{seq, t, uuid, state, result, document}] (every accepted document, in
             order), nodes: {uuid: {documents: [...], current, state, received, duplicates,
             repeats, pending_after_final, first_t, last_t}}, duplicates (final documents received
             again with identical content), refused: [{seq, t, status, error, document}]}
  maas       {node: {status, power_type, power_parameters, error}, consumer_key, token_key,
             signals: [{seq, t, http_status, result (stored|ignored|refused|unauthorized), reason,
             status, power_type, power_parameters, error, fields, files, content_type,
             node_status_before, node_status_after, oauth: {consumer_key, token, nonce, timestamp,
             signature_method}}], status_changes: [{t, from, to, source}],
             power_changes: [{t, power_type, power_parameters, previous_type, previous_parameters}]}
  machines   {machines: {system_id: {...}}, requests: [{seq, t, op, http_status, fields, result}]}
  rate       {limit, window, passed, limited, max_in_window} or null
  faults     [{spec, name, remaining, applied}]
Times are Unix seconds (t, real clock) with ms resolution.
"""

import argparse
import collections
import email.parser
import email.policy
import email.utils
import hmac
import http.server
import ipaddress
import json
import math
import os
import re
import secrets
import select
import signal
import socket
import ssl
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from oauthlib.oauth1 import RequestValidator, ResourceEndpoint
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1, SIGNATURE_PLAINTEXT

SCHEMA = "amt-enlist/1"
MAX_BODY = 1 << 20
OAUTH_WINDOW = 300
AMT_PORTS = ("16992", "16993")
POWER_KEYS = {"power_address", "power_user", "power_pass", "port"}
DOC_KEYS = {"schema", "uuid", "power_type", "power_parameters", "host", "amt", "state",
            "credentials", "address_source", "mebx_password"}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
KEY_CHARS = set(string.ascii_letters + string.digits)

# MAAS's NODE_STATUS names, and how its metadata signal() treats each (src/metadataserver/api.py).
NODE_STATUSES = (
    "NEW", "COMMISSIONING", "FAILED_COMMISSIONING", "MISSING", "READY", "RESERVED", "ALLOCATED",
    "DEPLOYING", "DEPLOYED", "RETIRED", "BROKEN", "FAILED_DEPLOYMENT", "RELEASING",
    "FAILED_RELEASING", "DISK_ERASING", "FAILED_DISK_ERASING", "RESCUE_MODE",
    "ENTERING_RESCUE_MODE", "FAILED_ENTERING_RESCUE_MODE", "EXITING_RESCUE_MODE",
    "FAILED_EXITING_RESCUE_MODE", "TESTING", "FAILED_TESTING")
SIGNALABLE_STATES = {
    "BROKEN", "COMMISSIONING", "FAILED_COMMISSIONING", "DEPLOYING", "FAILED_DEPLOYMENT", "READY",
    "DISK_ERASING", "RELEASING", "ENTERING_RESCUE_MODE", "RESCUE_MODE",
    "FAILED_ENTERING_RESCUE_MODE", "TESTING", "FAILED_TESTING", "NEW"}
SIGNAL_STATUSES = ("OK", "FAILED", "WORKING", "COMMISSIONING", "TESTING", "TIMEDOUT", "INSTALLING",
                   "APPLYING_NETCONF")
POWER_TYPES = ("", "amt", "apc", "dli", "eaton", "hmc", "hmcz", "ipmi", "lxd", "manual", "moonshot",
               "mscm", "msftocs", "nova", "openbmc", "proxmox", "recs_box", "redfish", "sm15k",
               "ucsm", "vmware", "webhook", "wedge", "virsh")

HANDOFF = ("enlist", "signal", "machines")
SCOPES = ("enlist", "signal", "machines", "cloud-config", "handoff", "all")
COUNTED_FAULTS = ("500", "503", "429", "429date", "hang", "reset", "garbage", "badstatus", "slow",
                  "400")
GARBAGE_BODY = b"<html><body>upstream said: \xff\xfe not json {\"result\": </body></html>\n"


def now_t():
    return round(time.time(), 3)


class FaultError(ValueError):
    pass


class Fault:
    """One --fault SPEC: NAME[=ARGS][@SCOPE]."""

    def __init__(self, spec):
        self.spec = spec
        text, _, scope = spec.partition("@")
        self.scope = scope or "handoff"
        if self.scope not in SCOPES:
            raise FaultError("fault %r: unknown scope %r (one of %s)" % (spec, scope,
                                                                         ", ".join(SCOPES)))
        name, has_args, args = text.partition("=")
        self.name = name
        self.remaining = None  # None: not counted (persistent)
        self.applied = 0
        self.seconds = None
        self.limit = None
        self.window = 1.0
        parts = args.split(":") if has_args else []
        try:
            self._parse(parts, has_args)
        except (ValueError, IndexError) as e:
            raise FaultError("fault %r: %s" % (spec, e)) from None

    def _parse(self, parts, has_args):
        n = self.name
        if n in ("500", "reset", "garbage", "badstatus"):
            self._count(parts, 1)
        elif n in ("503", "hang"):
            self._count(parts, 2, optional_seconds=True)
        elif n in ("429", "429date", "slow"):
            self._count(parts, 2)
            if len(parts) != 2:
                raise ValueError("needs N:SECONDS")
        elif n == "400":
            if has_args:
                self._count(parts, 1)
        elif n == "refuse-pending":
            if has_args:
                raise ValueError("takes no arguments")
        elif n == "skew":
            if len(parts) != 1:
                raise ValueError("needs SECONDS")
            self.seconds = float(parts[0])
        elif n == "rate":
            if len(parts) != 1:
                raise ValueError("needs C[/WINDOW]")
            c, _, w = parts[0].partition("/")
            self.limit = int(c)
            self.window = float(w) if w else 1.0
            if self.limit < 1 or self.window <= 0:
                raise ValueError("rate must be at least 1 per a positive window")
        else:
            raise ValueError("unknown fault %r" % n)

    def _count(self, parts, max_parts, optional_seconds=False):
        if not parts or len(parts) > max_parts:
            raise ValueError("needs N" + (":SECONDS" if max_parts == 2 else ""))
        self.remaining = int(parts[0])
        if self.remaining < 0:
            raise ValueError("N must not be negative")
        if len(parts) == 2:
            self.seconds = float(parts[1])
        elif max_parts == 2 and not optional_seconds:
            raise ValueError("needs N:SECONDS")

    def in_scope(self, endpoint):
        if self.scope == "all":
            return True
        if self.scope == "handoff":
            return endpoint in HANDOFF
        return endpoint == self.scope

    def describe(self):
        return {"spec": self.spec, "name": self.name, "scope": self.scope,
                "remaining": self.remaining, "applied": self.applied}


class Faults:
    def __init__(self, specs):
        self.lock = threading.Lock()
        self.items = [Fault(s) for s in specs]

    def set(self, specs):
        new = [Fault(s) for s in specs]
        with self.lock:
            self.items = new

    def add(self, specs):
        new = [Fault(s) for s in specs]
        with self.lock:
            self.items.extend(new)

    def take(self, endpoint):
        """The first counted fault in scope with requests left, consumed; or None."""
        with self.lock:
            for f in self.items:
                if f.name in COUNTED_FAULTS and f.remaining is not None and f.remaining > 0 \
                        and f.in_scope(endpoint):
                    f.remaining -= 1
                    f.applied += 1
                    return f
        return None

    def persistent(self, name, endpoint=None):
        with self.lock:
            for f in self.items:
                if f.name == name and f.remaining is None and \
                        (endpoint is None or f.in_scope(endpoint)):
                    return f
        return None

    def mark_applied(self, fault):
        with self.lock:
            fault.applied += 1

    def skew(self):
        f = self.persistent("skew")
        return f.seconds if f else 0.0

    def describe(self):
        with self.lock:
            return [f.describe() for f in self.items]


class RateLimiter:
    """At most LIMIT requests pass in any WINDOW seconds (a sliding log of pass times)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.passed_times = collections.deque()
        self.stats = None
        self.next_slot = 0.0

    def admit(self, fault):
        """None when the request may pass, else the Retry-After seconds."""
        now = time.monotonic()
        with self.lock:
            if self.stats is None or self.stats["limit"] != fault.limit or \
                    self.stats["window"] != fault.window:
                self.stats = {"limit": fault.limit, "window": fault.window, "passed": 0,
                              "limited": 0, "max_in_window": 0}
                self.passed_times.clear()
                self.next_slot = 0.0
            q = self.passed_times
            while q and q[0] <= now - fault.window:
                q.popleft()
            if len(q) >= fault.limit:
                # Each refused client gets the next free slot, not the same second as all the
                # others: a crowd told "1 s" comes back at once (tests/bench/RESULTS.md).
                self.stats["limited"] += 1
                self.next_slot = max(self.next_slot, q[0] + fault.window) + \
                    fault.window / fault.limit
                return max(1, math.ceil(self.next_slot - now))
            q.append(now)
            self.stats["passed"] += 1
            self.stats["max_in_window"] = max(self.stats["max_in_window"], len(q))
            return None

    def describe(self):
        with self.lock:
            return dict(self.stats) if self.stats else None


class Log:
    """An append-only list of record entries, each serialised to JSON once, when appended (the
    record is rewritten after every request: re-encoding everything each time would not scale).
    Entries are not changed after they are appended."""

    def __init__(self):
        self.items = []
        self.texts = []

    def append(self, obj):
        self.items.append(obj)
        self.texts.append(json.dumps(obj))

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def text(self):
        return "[" + ",".join(self.texts) + "]"


class DocNode:
    """What the JSON endpoint received for one uuid."""

    def __init__(self, t):
        self.documents = Log()
        self.current = None
        self.current_text = "null"
        self.counters = {"state": None, "received": 0, "duplicates": 0, "repeats": 0,
                         "pending_after_final": 0, "first_t": t, "last_t": t}
        self.cached = None

    def add(self, doc, state, t):
        self.documents.append(doc)
        self.current = doc
        self.current_text = self.documents.texts[-1]
        self.counters["state"] = state
        self.counters["received"] += 1
        self.counters["last_t"] = t
        self.cached = None

    def bump(self, name):
        self.counters[name] += 1
        self.cached = None

    def text(self):
        if self.cached is None:
            self.cached = '{"documents":%s,"current":%s,%s' % (
                self.documents.text(), self.current_text, json.dumps(self.counters)[1:])
        return self.cached


def to_json(obj):
    if isinstance(obj, (Log, DocNode)):
        return obj.text()
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + to_json(v) for k, v in obj.items()) + "}"
    return json.dumps(obj)


class Record:
    """What the server received, as one JSON document; written by one thread (group commit:
    a request's reply waits for a write that includes it, and one write serves every request
    that arrived while the previous one was being written)."""

    def __init__(self, path, log_limit, interval=0.0):
        self.path = path
        self.log_limit = log_limit
        self.interval = interval  # > 0: written at most this often, replies do not wait
        self.lock = threading.RLock()
        self.cond = threading.Condition()
        self.generation = 0
        self.written = 0
        self.stopping = False
        self.extra = lambda: {}
        self.data = {}
        self.seq = 0
        self.clear()
        self.thread = None
        if path:
            self.thread = threading.Thread(target=self._writer, name="record", daemon=True)
            self.thread.start()

    def clear(self):
        with self.lock:
            old_maas = self.data.get("maas", {})
            self.data = {
                "server": self.data.get("server", {}),
                "requests": {"total": 0, "by_endpoint": {}, "by_status": {},
                             "faults_applied": {}, "log": Log(), "log_dropped": 0},
                "enlist": {"documents": Log(), "nodes": {}, "duplicates": 0, "refused": Log()},
                "maas": {"node": old_maas.get("node"),
                         "consumer_key": old_maas.get("consumer_key"),
                         "token_key": old_maas.get("token_key"),
                         "signals": Log(), "status_changes": Log(), "power_changes": Log()},
                "machines": {"machines": {}, "requests": Log()},
            }

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def log_request(self, entry):
        with self.lock:
            r = self.data["requests"]
            r["total"] += 1
            ep = entry["endpoint"] or "unknown"
            r["by_endpoint"][ep] = r["by_endpoint"].get(ep, 0) + 1
            st = str(entry["status"])
            r["by_status"][st] = r["by_status"].get(st, 0) + 1
            if entry.get("fault"):
                fa = r["faults_applied"]
                fa[entry["fault"]] = fa.get(entry["fault"], 0) + 1
            if len(r["log"]) < self.log_limit:
                r["log"].append(entry)
            else:
                r["log_dropped"] += 1

    def snapshot(self):
        with self.lock:
            doc = dict(self.data)
            doc.update(self.extra())
            return to_json(doc)

    def commit(self):
        """Mark the record changed; return the generation to wait for."""
        if not self.path:
            return 0
        with self.cond:
            self.generation += 1
            self.cond.notify_all()
            return self.generation

    def wait(self, generation, timeout=30):
        if not self.path or self.interval > 0:
            return
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.written < generation and not self.stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def _writer(self):
        while True:
            with self.cond:
                while self.written >= self.generation and not self.stopping:
                    self.cond.wait()
                if self.stopping and self.written >= self.generation:
                    return
                stopping = self.stopping
            if self.interval > 0 and not stopping:
                time.sleep(self.interval)  # let changes gather (benchmarks)
            with self.cond:
                target = self.generation
            try:
                self.write_now()
            except OSError as e:
                sys.stderr.write("provserver: cannot write the record %s: %s\n" % (self.path, e))
            with self.cond:
                self.written = max(self.written, target)
                self.cond.notify_all()

    def write_now(self):
        text = self.snapshot()
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".record.", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def stop(self):
        if not self.path:
            return
        with self.cond:
            self.generation += 1
            self.stopping = True
            self.cond.notify_all()
        if self.thread:
            self.thread.join(10)


class MaasValidator(RequestValidator):
    """OAuth 1.0a as MAAS's metadata server accepts it: one node's consumer (empty secret) and
    token, keys of MAAS's lengths (18), nonces remembered, timestamps within +-300 s of the
    server's (possibly skewed) clock. Reasons for a refusal are left on the request."""

    enforce_ssl = False
    allowed_signature_methods = (SIGNATURE_PLAINTEXT, SIGNATURE_HMAC_SHA1)
    # oauthlib compares against time.time(); the window is checked here against the server's
    # clock instead (validate_timestamp_and_nonce), so the skew fault is seen.
    timestamp_lifetime = 10 ** 10
    dummy_client = "dummyconsumerkey00"
    dummy_access_token = "dummytokenkey00000"

    def __init__(self, app):
        super().__init__()
        self.app = app
        self.nonce_lock = threading.Lock()
        self.nonces = {}

    # MAAS's keys are 18 alphanumerics; its nonces come from whatever client signs (oauthlib's
    # are 20-30 digits). MAAS's own server looks keys up and never checks nonce characters.
    def check_client_key(self, client_key):
        return 1 <= len(client_key) <= 255 and set(client_key) <= KEY_CHARS

    def check_access_token(self, request_token):
        return 1 <= len(request_token) <= 255 and set(request_token) <= KEY_CHARS

    def check_nonce(self, nonce):
        return 1 <= len(nonce) <= 255 and all(33 <= ord(c) <= 126 for c in nonce)

    @staticmethod
    def _why(request, reason):
        if not getattr(request, "provserver_reason", None):
            request.provserver_reason = reason

    def validate_client_key(self, client_key, request):
        ok = hmac.compare_digest(client_key.encode(), self.app.creds["consumer_key"].encode())
        if not ok:
            self._why(request, "unknown consumer key")
        return ok

    def validate_access_token(self, client_key, token, request):
        ok = hmac.compare_digest(token.encode(), self.app.creds["token_key"].encode())
        if not ok:
            self._why(request, "unknown token")
        return ok

    def get_client_secret(self, client_key, request):
        return ""

    def get_access_token_secret(self, client_key, token, request):
        if hmac.compare_digest(token.encode(), self.app.creds["token_key"].encode()):
            return self.app.creds["token_secret"]
        return "dummy"

    def validate_realms(self, client_key, token, request, uri=None, realms=None):
        return True

    def validate_timestamp_and_nonce(self, client_key, timestamp, nonce, request,
                                     request_token=None, access_token=None):
        server_now = self.app.now()
        ts = int(timestamp)
        if abs(server_now - ts) > OAUTH_WINDOW:
            self._why(request, "timestamp %d is %+d s from the server's clock (window %d s)"
                      % (ts, ts - int(server_now), OAUTH_WINDOW))
            return False
        key = (client_key, access_token or request_token, nonce)
        with self.nonce_lock:
            if key in self.nonces:
                self._why(request, "nonce already used")
                return False
            self.nonces[key] = ts
            if len(self.nonces) > 4096:
                horizon = server_now - 2 * OAUTH_WINDOW
                self.nonces = {k: t for k, t in self.nonces.items() if t >= horizon}
        return True


class Reply:
    def __init__(self, status, body=b"", ctype="application/json", headers=None):
        self.status = status
        if isinstance(body, (dict, list)) or body is True or body is False:
            body = (json.dumps(body) + "\n").encode()
        elif isinstance(body, str):
            body = body.encode()
        self.body = body
        self.ctype = ctype
        self.headers = headers or {}


def json_reply(status, obj, headers=None):
    return Reply(status, obj, "application/json", headers)


def error_reply(status, message, headers=None):
    return Reply(status, {"error": message}, "application/json", headers)


def text_reply(status, text, headers=None):
    return Reply(status, text, "text/plain; charset=utf-8", headers)


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


# ---- the JSON document ----

def check_password(pw):
    """Intel's AMT admin password rules (PROTOCOL.md 6); None when good, else the reason."""
    if not 8 <= len(pw) <= 32:
        return "power_pass must have 8 to 32 characters"
    if any(not 32 <= ord(c) <= 126 or c in ':,"' for c in pw):
        return "power_pass has a character AMT refuses (ASCII 32-126 only, not : , \")"
    if not any(c.isdigit() for c in pw) or not any(c.isupper() for c in pw) or \
            not any(c.islower() for c in pw) or \
            not any(not c.isalnum() and c not in "_ " for c in pw):
        return "power_pass needs a digit, an upper-case and a lower-case letter and a symbol"
    return None


def validate_document(doc):
    """None when DOC is a valid amt-enlist/1 document, else what is wrong (no secret in it)."""
    if not isinstance(doc, dict):
        return "the document is not a JSON object"
    unknown = sorted(set(doc) - DOC_KEYS)
    if unknown:
        return "unknown key(s): " + ", ".join(unknown)
    for key in ("schema", "uuid", "power_type", "power_parameters", "host", "amt"):
        if key not in doc:
            return "missing key: " + key
    if doc["schema"] != SCHEMA:
        return "schema must be %r" % SCHEMA
    if not isinstance(doc["uuid"], str) or not UUID_RE.match(doc["uuid"]):
        return "uuid must be a UUID string (8-4-4-4-12 hex digits)"
    if doc["power_type"] != "amt":
        return "power_type must be \"amt\""
    state = doc.get("state", "final")
    if state not in ("pending", "final"):
        return "state must be \"pending\" or \"final\""
    creds = doc.get("credentials")
    if "credentials" in doc and creds != "unknown":
        return "credentials, when present, must be \"unknown\""
    if creds == "unknown" and state == "pending":
        return "a pending document carries a generated password: credentials \"unknown\" " \
            "cannot be pending"
    pp = doc["power_parameters"]
    if not isinstance(pp, dict):
        return "power_parameters must be an object"
    want = POWER_KEYS - {"power_pass"} if creds == "unknown" else POWER_KEYS
    if set(pp) != want:
        missing = sorted(want - set(pp))
        extra = sorted(set(pp) - want)
        what = []
        if missing:
            what.append("missing " + ", ".join(missing))
        if extra:
            what.append("unexpected " + ", ".join(extra))
        return "power_parameters must have exactly %s: %s" % (", ".join(sorted(want)),
                                                               "; ".join(what))
    for key in want:
        if not isinstance(pp[key], str):
            return "power_parameters.%s must be a string" % key
    try:
        ipaddress.ip_address(pp["power_address"])
    except ValueError:
        return "power_parameters.power_address must be an IP address"
    if not 1 <= len(pp["power_user"]) <= 32:
        return "power_parameters.power_user must have 1 to 32 characters"
    if "power_pass" in pp:
        why = check_password(pp["power_pass"])
        if why:
            return "power_parameters." + why
    if pp["port"] not in AMT_PORTS:
        return "power_parameters.port must be the string \"16992\" or \"16993\""
    host = doc["host"]
    if not isinstance(host, dict):
        return "host must be an object"
    for key in ("hostname", "architecture"):
        if not isinstance(host.get(key), str) or not host[key]:
            return "host.%s must be a non-empty string" % key
    macs = host.get("mac_addresses")
    if not isinstance(macs, list) or not macs:
        return "host.mac_addresses must be a non-empty list"
    for m in macs:
        if not isinstance(m, str) or not MAC_RE.match(m):
            return "host.mac_addresses has an entry that is not a MAC address (aa:bb:cc:dd:ee:ff)"
    if not isinstance(doc["amt"], dict):
        return "amt must be an object"
    return None


# ---- forms ----

def parse_form(content_type, body):
    """(fields [(name, str)], files [(name, filename, bytes)]) of a POST body."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        head = ("Content-Type: %s\r\nMIME-Version: 1.0\r\n\r\n" % content_type).encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        if not msg.is_multipart() or msg.defects:
            raise BadRequest(400, "malformed multipart/form-data body")
        fields, files = [], []
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                raise BadRequest(400, "a multipart part has no name")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is None:
                try:
                    fields.append((name, payload.decode("utf-8")))
                except UnicodeDecodeError:
                    raise BadRequest(400, "field %s is not UTF-8" % name) from None
            else:
                files.append((name, filename, payload))
        return fields, files
    if ctype in ("application/x-www-form-urlencoded", ""):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(400, "form body is not UTF-8") from None
        return urllib.parse.parse_qsl(text, keep_blank_values=True), []
    raise BadRequest(400, "unsupported Content-Type %s for a form" % ctype)


def first(fields, name, default=None):
    for k, v in fields:
        if k == name:
            return v
    return default


# ---- the server ----

class App:
    def __init__(self, args):
        self.args = args
        self.verbose = args.verbose
        self.enlist_path = args.enlist_path
        self.faults = Faults(args.fault or [])
        self.rate = RateLimiter()
        self.stop_event = threading.Event()
        self.url = None
        self.creds = {"consumer_key": random_key(18), "token_key": random_key(18),
                      "token_secret": random_key(32)}
        self.validator = MaasValidator(self)
        self.oauth = ResourceEndpoint(self.validator)
        self.record = Record(args.record, args.log_limit, args.record_interval)
        power_params = {}
        if args.node_power_parameters:
            power_params = json.loads(args.node_power_parameters)
        self.record.data["maas"]["node"] = {
            "status": args.node_status, "power_type": args.node_power_type or "",
            "power_parameters": power_params, "error": ""}
        self.record.data["maas"]["consumer_key"] = self.creds["consumer_key"]
        self.record.data["maas"]["token_key"] = self.creds["token_key"]
        self.record.extra = lambda: {"rate": self.rate.describe(),
                                     "faults": self.faults.describe()}

    def now(self):
        return time.time() + self.faults.skew()

    def started(self, url):
        self.url = url
        with self.record.lock:
            self.record.data["server"] = {"url": url, "pid": os.getpid(), "started": now_t(),
                                          "enlist_path": self.enlist_path}
        self.record.wait(self.record.commit())

    def classify(self, path):
        if path == self.enlist_path:
            return "enlist"
        if re.fullmatch(r"/MAAS/metadata/(2012-03-01|latest)/?", path):
            return "signal"
        if re.fullmatch(r"/MAAS/api/2\.0/machines/?", path):
            return "machines"
        if path in ("/cloud-config", "/cloud-config/enlist"):
            return "cloud-config"
        if path in ("/_record", "/_fault", "/_node", "/_reset"):
            return path
        return None

    # -- cloud-config --

    def cloud_config(self, enlist=False):
        ds = {"metadata_url": self.url + "/MAAS/metadata/"}
        if not enlist:
            ds.update(self.creds)
        style = self.args.maas_creds_style
        if style == "maas":
            # What MAAS's preseed looks like to cloud-init: PyYAML's default flow style for
            # inner mappings, and a reporting section with the same credentials beside it.
            def flow(d):
                return "{" + ", ".join("%s: %s" % (k, json.dumps(v)) for k, v in sorted(d.items())) \
                    + "}"
            lines = ["#cloud-config", "datasource:", "  MAAS: " + flow(ds)]
            if not enlist:
                rep = {k: v for k, v in self.creds.items()}
                rep["endpoint"] = self.url + "/MAAS/metadata/status/node-1"
                rep["type"] = "webhook"
                lines += ["reporting:", "  maas: " + flow(rep)]
            lines += ["power_state: {condition: test ! -e /tmp/block-poweroff, delay: now, "
                      "mode: poweroff, timeout: 1800}"]
        else:
            lines = ["#cloud-config", "datasource:", "  MAAS:"]
            for k in ("metadata_url", "consumer_key", "token_key", "token_secret"):
                if k in ds:
                    lines.append("    %s: %s" % (k, json.dumps(ds[k])))
        return "\n".join(lines) + "\n"

    def write_creds(self, path):
        text = self.cloud_config()
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".creds.", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    # -- the JSON endpoint --

    def handle_enlist(self, method, headers, body, garbage):
        if method != "POST":
            return error_reply(405, "use POST", {"Allow": "POST"})
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        seq = self.record.next_seq()
        if ctype != "application/json":
            return self._refuse(seq, 400, "Content-Type must be application/json", None)
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return self._refuse(seq, 400, "the body is not JSON: %s" % e.__class__.__name__,
                                None)
        why = validate_document(doc)
        if why:
            return self._refuse(seq, 400, why, doc)
        state = doc.get("state", "final")
        if self.faults.persistent("400", "enlist"):
            self.faults.mark_applied(self.faults.persistent("400", "enlist"))
            return self._refuse(seq, 400, "refused by test fault", doc)
        refuse = self.faults.persistent("refuse-pending", "enlist")
        if refuse and state == "pending":
            self.faults.mark_applied(refuse)
            return self._refuse(seq, 409, "this server does not accept pending documents", doc)
        uuid = doc["uuid"].lower()
        t = now_t()
        with self.record.lock:
            en = self.record.data["enlist"]
            node = en["nodes"].get(uuid)
            if node is None:
                node = DocNode(t)
                en["nodes"][uuid] = node
                result, status = "created", 201
            else:
                result, status = "updated", 200
                if node.current == doc:
                    node.bump("repeats")
                    if state == "final" and node.counters["state"] == "final":
                        node.bump("duplicates")
                        en["duplicates"] += 1
                        result = "duplicate"
                if state == "pending" and node.counters["state"] == "final":
                    node.bump("pending_after_final")
            node.add(doc, state, t)
            en["documents"].append({"seq": seq, "t": t, "uuid": uuid, "state": state,
                                    "result": result, "document": doc})
            received = node.counters["received"]
        reply = json_reply(status, {"result": result, "uuid": uuid, "state": state,
                                    "received": received})
        if garbage:
            reply = Reply(200, GARBAGE_BODY, "application/json")
        return reply

    def _refuse(self, seq, status, message, doc):
        with self.record.lock:
            self.record.data["enlist"]["refused"].append(
                {"seq": seq, "t": now_t(), "status": status, "error": message, "document": doc})
        return error_reply(status, message)

    # -- MAAS metadata signal --

    def check_oauth(self, method, path, headers):
        """None when the request is signed by this node's token, else the reason."""
        auth = headers.get("Authorization")
        if not auth or not auth.strip().lower().startswith("oauth "):
            return "no OAuth Authorization header"
        uri = self.url + path
        hdrs = {"Authorization": auth}
        try:
            valid, request = self.oauth.validate_protected_resource_request(
                uri, http_method=method, body=None, headers=hdrs)
        except Exception as e:  # oauthlib raises on some malformed headers
            return "malformed OAuth header (%s)" % e.__class__.__name__
        if valid:
            return None
        if request is None:
            return "malformed OAuth Authorization header"
        reason = getattr(request, "provserver_reason", None)
        if reason:
            return reason
        log = request.validator_log
        if not log:
            try:
                self.oauth._check_mandatory_parameters(request)
            except Exception as e:  # the description of oauthlib's own check
                return "invalid OAuth parameters: %s" % getattr(e, "description", e)
            if not request.resource_owner_key:
                return "no oauth_token"
            return "invalid OAuth parameters"
        if not log.get("signature", True):
            return "signature does not match"
        return "not authorised"

    def handle_signal(self, method, path, query, headers, body, garbage):
        if method != "POST":
            return text_reply(405, "Method not allowed", {"Allow": "POST"})
        seq = self.record.next_seq()
        t = now_t()
        entry = {"seq": seq, "t": t, "http_status": None, "result": None, "reason": None,
                 "status": None, "power_type": None, "power_parameters": None, "error": None,
                 "fields": {}, "files": {}, "content_type": headers.get("Content-Type"),
                 "node_status_before": None, "node_status_after": None, "oauth": None}
        entry["oauth"] = oauth_params(headers.get("Authorization"))
        try:
            fields, files = parse_form(headers.get("Content-Type"), body)
        except BadRequest as e:
            fields, files, form_error = [], [], e.message
        else:
            form_error = None
        for k, v in fields:
            entry["fields"].setdefault(k, v)
        for name, filename, data in files:
            entry["files"][name] = {"filename": filename, "size": len(data),
                                    "content": data[:4096].decode("utf-8", "replace")}
        entry["status"] = first(fields, "status")
        entry["power_type"] = first(fields, "power_type")
        raw_pp = first(fields, "power_parameters")
        entry["error"] = first(fields, "error")
        if raw_pp is not None:
            try:
                entry["power_parameters"] = json.loads(raw_pp)
            except ValueError:
                entry["power_parameters"] = None
                entry["power_parameters_raw"] = raw_pp

        def done(reply, result, reason=None):
            entry["http_status"] = reply.status
            entry["result"] = result
            entry["reason"] = reason
            with self.record.lock:
                node = self.record.data["maas"]["node"]
                entry["node_status_after"] = node["status"]
                self.record.data["maas"]["signals"].append(entry)
            return reply

        with self.record.lock:
            entry["node_status_before"] = self.record.data["maas"]["node"]["status"]
        why = self.check_oauth(method, path + ("?" + query if query else ""), headers)
        if why:
            return done(text_reply(401, "Authorization Error: %s\n" % why,
                                   {"WWW-Authenticate": 'OAuth realm="OAuth"'}),
                        "unauthorized", why)
        op = (urllib.parse.parse_qs(query).get("op") or [None])[0] or first(fields, "op")
        if op != "signal":
            return done(text_reply(400, "Unrecognised signature: method=POST op=%s\n" % op),
                        "refused", "op is not signal")
        if form_error:
            return done(text_reply(400, form_error + "\n"), "refused", form_error)
        f400 = self.faults.persistent("400", "signal")
        if f400:
            self.faults.mark_applied(f400)
            return done(text_reply(400, "refused by test fault\n"), "refused", "test fault")
        status = entry["status"]
        if not status:
            return done(text_reply(400, "No provided status!\n"), "refused", "no status")
        if status not in SIGNAL_STATUSES:
            return done(text_reply(400, "Unknown status: '%s'\n" % status), "refused",
                        "unknown status")
        with self.record.lock:
            maas = self.record.data["maas"]
            node = maas["node"]
            ns = node["status"]
            if ns == "COMMISSIONING" or (ns == "DEPLOYED" and
                                         self.args.deployed_signals == "process"):
                why = self._check_power(entry, raw_pp)
                if why:
                    return done(text_reply(400, why + "\n"), "refused", why)
                self._store_power(entry, raw_pp)
                target = {"OK": "READY", "FAILED": "FAILED_COMMISSIONING",
                          "TESTING": "TESTING"}.get(status)
                result = "stored"
            elif ns == "DEPLOYED" or ns in SIGNALABLE_STATES:
                target = self._other_transition(ns, status)
                result = "ignored"
            else:
                msg = "Machine status isn't valid (status is %s)" % ns
                return done(text_reply(409, msg + "\n"), "refused", msg)
            if target is not None and target != ns:
                self.set_node_status(target, "signal %s" % status)
                node["error"] = entry["error"] or ""
        reply = text_reply(200, "OK")
        if garbage:
            reply = Reply(200, GARBAGE_BODY, "text/plain")
        return done(reply, result)

    @staticmethod
    def _other_transition(ns, status):
        """What MAAS does to a node outside commissioning (power settings never stored)."""
        if ns == "NEW" and status == "COMMISSIONING":
            return "COMMISSIONING"
        if ns == "TESTING":
            return {"OK": "READY", "FAILED": "FAILED_TESTING"}.get(status)
        if ns == "DEPLOYING" and status == "FAILED":
            return "FAILED_DEPLOYMENT"
        if ns == "DISK_ERASING" and status == "FAILED":
            return "FAILED_DISK_ERASING"
        if ns == "RELEASING" and status == "FAILED":
            return "FAILED_RELEASING"
        if ns == "ENTERING_RESCUE_MODE":
            return {"OK": "RESCUE_MODE", "WORKING": "RESCUE_MODE",
                    "FAILED": "FAILED_ENTERING_RESCUE_MODE"}.get(status)
        return None

    def _check_power(self, entry, raw_pp):
        """MAAS's store_node_power_parameters checks, before anything changes."""
        ptype = entry["power_type"]
        if ptype is None:
            return None
        if ptype not in POWER_TYPES:
            return "Bad power_type '%s'" % ptype
        if raw_pp and entry["power_parameters"] is None:
            return "Failed to parse JSON power_parameters"
        if raw_pp and not isinstance(entry["power_parameters"], dict):
            return "Failed to parse JSON power_parameters"
        return None

    def _store_power(self, entry, raw_pp):
        """set_power_config: the power_parameters REPLACE the node's whole dict."""
        ptype = entry["power_type"]
        if ptype is None:
            return
        node = self.record.data["maas"]["node"]
        params = entry["power_parameters"] if raw_pp else node["power_parameters"]
        self.record.data["maas"]["power_changes"].append(
            {"t": now_t(), "signal_seq": entry["seq"], "power_type": ptype,
             "power_parameters": params, "previous_type": node["power_type"],
             "previous_parameters": node["power_parameters"]})
        node["power_type"] = ptype
        node["power_parameters"] = params

    def set_node_status(self, status, source):
        with self.record.lock:
            node = self.record.data["maas"]["node"]
            self.record.data["maas"]["status_changes"].append(
                {"t": now_t(), "from": node["status"], "to": status, "source": source})
            node["status"] = status

    # -- MAAS anonymous enlistment --

    def handle_machines(self, method, query, headers, body, garbage):
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        op = (q.get("op") or [None])[0]
        seq = self.record.next_seq()
        log = {"seq": seq, "t": now_t(), "op": op or ("create" if method == "POST" else "read"),
               "http_status": None, "fields": None, "result": None}

        def done(reply, result):
            log["http_status"] = reply.status
            log["result"] = result
            with self.record.lock:
                self.record.data["machines"]["requests"].append(log)
            if garbage and reply.status == 200:
                reply = Reply(200, GARBAGE_BODY, "application/json")
            return reply

        if method == "GET" and op == "is_registered":
            mac = (q.get("mac_address") or [None])[0]
            log["fields"] = {"mac_address": mac}
            if not mac:
                return done(text_reply(400, "mac_address: This field is required.\n"), "refused")
            if not MAC_RE.match(mac):
                return done(text_reply(400, "Invalid MAC address: %s\n" % mac), "refused")
            with self.record.lock:
                found = self._machine_by_macs([mac.lower()]) is not None
            return done(json_reply(200, found), str(found).lower())
        if method == "GET":
            return done(text_reply(401, "Unauthorized\n"), "unauthorized")
        if method != "POST" or op not in (None, "create"):
            return done(text_reply(400, "Unrecognised signature: method=%s op=%s\n"
                                   % (method, op)), "refused")
        f400 = self.faults.persistent("400", "machines")
        if f400:
            self.faults.mark_applied(f400)
            return done(text_reply(400, "refused by test fault\n"), "refused")
        try:
            fields, _ = parse_form(headers.get("Content-Type"), body)
        except BadRequest as e:
            return done(text_reply(400, e.message + "\n"), "refused")
        log["fields"] = {}
        for k, v in fields:
            if k == "mac_addresses":
                log["fields"].setdefault(k, []).append(v)
            else:
                log["fields"][k] = v
        errors = {}
        arch = first(fields, "architecture")
        macs = [v.lower() for k, v in fields if k == "mac_addresses"]
        if not arch:
            errors["architecture"] = ["This field is required."]
        elif not re.fullmatch(r"[a-z0-9_]+(/[a-z0-9_.-]+)?", arch):
            errors["architecture"] = ["'%s' is not a valid architecture." % arch]
        if not macs:
            errors["mac_addresses"] = ["This field is required."]
        elif any(not MAC_RE.match(m) for m in macs):
            errors["mac_addresses"] = ["Enter a valid MAC address (e.g. AA:BB:CC:DD:EE:FF)."]
        ptype = first(fields, "power_type")
        raw_pp = first(fields, "power_parameters")
        params = {}
        if ptype is not None and ptype not in POWER_TYPES:
            errors["power_type"] = ["Select a valid choice. %s is not one of the available "
                                    "choices." % ptype]
        if raw_pp:
            try:
                params = json.loads(raw_pp)
            except ValueError:
                params = None
            if not isinstance(params, dict):
                errors["power_parameters"] = ["Failed to parse JSON power_parameters"]
        if errors:
            return done(json_reply(400, errors), "refused")
        if "/" not in arch:
            arch += "/generic"
        commission = (first(fields, "commission") or "").lower() in ("true", "1", "yes", "on")
        with self.record.lock:
            machines = self.record.data["machines"]["machines"]
            existing = self._machine_by_macs(macs)
            if existing is not None:
                m = machines[existing]
                if m["status"] not in ("NEW", "COMMISSIONING"):
                    return done(json_reply(400, {"mac_addresses": [
                        "MAC address already in use by a machine in state %s." % m["status"]]}),
                        "refused")
                result = "updated"
            else:
                system_id = random_system_id()
                m = {"system_id": system_id, "status": "NEW", "mac_addresses": [],
                     "hostname": None, "domain": "maas", "architecture": arch,
                     "power_type": "", "power_parameters": {}, "created_t": now_t()}
                machines[system_id] = m
                result = "created"
            for mac in macs:
                if mac not in m["mac_addresses"]:
                    m["mac_addresses"].append(mac)
            m["architecture"] = arch
            m["hostname"] = first(fields, "hostname") or m["hostname"] or "node-" + \
                m["system_id"]
            m["domain"] = first(fields, "domain") or m["domain"]
            if ptype is not None:
                m["power_type"] = ptype
                m["power_parameters"] = params if raw_pp else m["power_parameters"]
            if commission:
                m["status"] = "COMMISSIONING"
            m["updated_t"] = now_t()
            out = {"system_id": m["system_id"], "hostname": m["hostname"],
                   "domain": {"name": m["domain"]}, "fqdn": m["hostname"] + "." + m["domain"],
                   "architecture": m["architecture"], "status_name": m["status"].title(),
                   "power_type": m["power_type"],
                   "interface_set": [{"mac_address": x} for x in m["mac_addresses"]]}
        return done(json_reply(200, out), result)

    def _machine_by_macs(self, macs):
        for sid, m in self.record.data["machines"]["machines"].items():
            if any(x in m["mac_addresses"] for x in macs):
                return sid
        return None

    # -- control --

    def handle_control(self, endpoint, method, body):
        if endpoint == "/_record":
            if method != "GET":
                return error_reply(405, "use GET", {"Allow": "GET"})
            return Reply(200, self.record.snapshot().encode(), "application/json")
        if method not in ("GET", "POST"):
            return error_reply(405, "use GET or POST", {"Allow": "GET, POST"})
        req = {}
        if method == "POST":
            try:
                req = json.loads(body.decode("utf-8") or "{}")
            except ValueError:
                return error_reply(400, "the body is not JSON")
            if not isinstance(req, dict):
                return error_reply(400, "the body is not a JSON object")
        if endpoint == "/_fault":
            try:
                if req.get("clear"):
                    self.faults.set([])
                if "set" in req:
                    self.faults.set(list(req["set"]))
                if "add" in req:
                    self.faults.add(list(req["add"]))
            except (FaultError, TypeError) as e:
                return error_reply(400, str(e))
            return json_reply(200, {"faults": self.faults.describe()})
        if endpoint == "/_node":
            with self.record.lock:
                node = self.record.data["maas"]["node"]
                if "status" in req:
                    if req["status"] not in NODE_STATUSES:
                        return error_reply(400, "unknown node status")
                    if req["status"] != node["status"]:
                        self.set_node_status(req["status"], "control")
                if "power_type" in req:
                    node["power_type"] = req["power_type"]
                if "power_parameters" in req:
                    node["power_parameters"] = req["power_parameters"]
                return json_reply(200, node)
        if endpoint == "/_reset":
            if method != "POST":
                return error_reply(405, "use POST", {"Allow": "POST"})
            self.record.clear()
            with self.rate.lock:
                self.rate.stats = None
                self.rate.passed_times.clear()
            return json_reply(200, {"result": "reset"})
        return error_reply(404, "no such endpoint")


def oauth_params(auth):
    """The oauth_* parameters of an Authorization header, for the record (best effort)."""
    if not auth or not auth.strip().lower().startswith("oauth "):
        return None
    out = {}
    for m in re.finditer(r'([A-Za-z_]+)\s*=\s*"([^"]*)"', auth):
        k, v = m.group(1), urllib.parse.unquote(m.group(2))
        if k == "oauth_signature":
            continue  # it is the token secret under PLAINTEXT
        out[k[6:] if k.startswith("oauth_") else k] = v
    return out


def random_key(n):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def random_system_id():
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provserver/1"
    sys_version = ""
    timeout = 60
    # Headers and body leave in one write (flushed by handle_one_request): with an unbuffered
    # writer they go in two segments and Nagle plus delayed ACK stall keep-alive clients.
    wbufsize = -1

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def handle_expect_100(self):
        self.send_response_only(100)
        self.end_headers()
        self.wfile.flush()  # the writer is buffered: the client waits for this line
        return True

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.app.verbose:
            sys.stderr.write("provserver: %s\n" % (fmt % args))

    def log_request(self, code="-", size="-"):
        pass

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.server.app.now() if timestamp is None else timestamp,
                                      usegmt=True)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BadRequest(400, "truncated chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise BadRequest(413, "body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BadRequest(400, "bad Content-Length") from None
        if n < 0:
            raise BadRequest(400, "bad Content-Length")
        if n > MAX_BODY:
            raise BadRequest(413, "body too large")
        data = self.rfile.read(n)
        if len(data) != n:
            raise BadRequest(400, "truncated body")
        return data

    def dispatch(self, method):
        app = self.server.app
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, split.query
        endpoint = app.classify(path)
        entry = {"seq": None, "t": now_t(), "method": method, "path": path,
                 "endpoint": endpoint, "status": None, "fault": None}
        try:
            body = self.read_body()
        except (BadRequest, ValueError) as e:
            status = e.status if isinstance(e, BadRequest) else 400
            self.close_connection = True
            return self.finish_request(entry, error_reply(status, str(e)))
        if endpoint is None:
            return self.finish_request(entry, error_reply(404, "no such endpoint: " + path))
        if endpoint.startswith("/_"):
            return self.finish_request(None, app.handle_control(endpoint, method, body))

        fault = app.faults.take(endpoint)
        garbage = False
        delay = 0.0
        if fault is not None:
            entry["fault"] = fault.name
            name = fault.name
            if name == "reset":
                return self.reset(entry)
            if name == "hang":
                return self.hang(entry, fault.seconds)
            if name == "badstatus":
                return self.bad_status(entry)
            if name == "500":
                return self.finish_request(entry, error_reply(500, "internal error (test fault)"))
            if name == "503":
                hdrs = {"Retry-After": "%d" % fault.seconds} if fault.seconds is not None else {}
                return self.finish_request(entry, error_reply(503, "unavailable (test fault)",
                                                              hdrs))
            if name == "429":
                return self.finish_request(entry, error_reply(
                    429, "too many requests (test fault)",
                    {"Retry-After": "%d" % fault.seconds}))
            if name == "429date":
                when = email.utils.formatdate(app.now() + fault.seconds, usegmt=True)
                return self.finish_request(entry, error_reply(
                    429, "too many requests (test fault)", {"Retry-After": when}))
            if name == "400":
                return self.finish_request(entry, error_reply(400, "refused by test fault"))
            if name == "garbage":
                garbage = True
            if name == "slow":
                delay = fault.seconds

        rate = app.faults.persistent("rate", endpoint)
        if rate is not None:
            retry = app.rate.admit(rate)
            if retry is not None:
                entry["fault"] = "rate"
                return self.finish_request(entry, error_reply(
                    429, "rate limit: %d requests per %g s" % (rate.limit, rate.window),
                    {"Retry-After": str(retry)}))

        try:
            if endpoint == "enlist":
                reply = app.handle_enlist(method, self.headers, body, garbage)
            elif endpoint == "signal":
                reply = app.handle_signal(method, path, query, self.headers, body, garbage)
            elif endpoint == "machines":
                reply = app.handle_machines(method, query, self.headers, body, garbage)
            else:
                if method != "GET":
                    reply = error_reply(405, "use GET", {"Allow": "GET"})
                else:
                    reply = text_reply(200, app.cloud_config(enlist=path.endswith("/enlist")))
                    reply.ctype = "text/cloud-config; charset=utf-8"
                    if garbage:
                        reply = Reply(200, GARBAGE_BODY, "text/plain")
        except BadRequest as e:
            reply = error_reply(e.status, e.message)
        if delay:
            if app.stop_event.wait(delay):
                self.close_connection = True
                return None
        return self.finish_request(entry, reply)

    def log_entry(self, entry):
        app = self.server.app
        entry["seq"] = app.record.next_seq()
        app.record.log_request(entry)
        app.record.wait(app.record.commit())
        if app.verbose:
            sys.stderr.write("provserver: %s %s -> %s%s\n" % (
                entry["method"], entry["path"], entry["status"],
                " (fault %s)" % entry["fault"] if entry["fault"] else ""))

    def finish_request(self, entry, reply):
        """Log ENTRY (None: a control request, not logged), then send REPLY."""
        if entry is not None:
            entry["status"] = reply.status
            self.log_entry(entry)
        elif self.command != "GET":
            app = self.server.app
            app.record.wait(app.record.commit())
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.ctype)
        self.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)
        return None

    def reset(self, entry):
        entry["status"] = "reset"
        self.log_entry(entry)
        self.close_connection = True
        conn = self.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the makefile reference, so that close() closes the descriptor now
        conn.close()
        return None

    def hang(self, entry, seconds):
        entry["status"] = "hang"
        self.log_entry(entry)
        self.close_connection = True
        app = self.server.app
        deadline = None if seconds is None else time.monotonic() + seconds
        conn = self.connection
        while not app.stop_event.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                readable, _, _ = select.select([conn], [], [], 0.2)
                if readable and not conn.recv(4096):
                    break  # the client gave up
            except (OSError, ValueError):
                break
        return None

    def bad_status(self, entry):
        entry["status"] = "badstatus"
        self.log_entry(entry)
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 2OO OKAY-ISH\r\nContent-Type: text/plain\r\n\r\n"
                         b"this is not HTTP\r\n")
        return None


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, BrokenPipeError)):
            if self.app.verbose:
                sys.stderr.write("provserver: connection from %s: %s\n" % (client_address[0],
                                                                          exc))
            return
        sys.stderr.write("provserver: error handling a request from %s: %r\n"
                         % (client_address[0], exc))
        if self.app.verbose:
            super().handle_error(request, client_address)


def build(args):
    app = App(args)
    server = Server((args.host, args.port), Handler)
    server.app = app
    scheme = "http"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        scheme = "https"
    port = server.server_address[1]
    url = "%s://%s:%d" % (scheme, args.host, port)
    app.started(url)
    if args.maas_creds_out:
        app.write_creds(args.maas_creds_out)
    return app, server, url


def serve(args):
    app, server, url = build(args)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="serve", daemon=True)
    thread.start()
    sys.stdout.write("provserver: listening on %s\n" % url)
    sys.stdout.flush()
    while not stop.wait(3600):
        pass
    app.stop_event.set()
    server.shutdown()
    server.server_close()
    app.record.stop()
    return 0


# ---- self-test: this server's capacity ----

def _load_worker(port, body_bytes, duration, keepalive, conns, out_q):
    """One client process: CONNS threads, each posting BODY in a loop for DURATION seconds."""
    counts = []
    statuses = collections.Counter()
    lock = threading.Lock()
    req = (b"POST /enlist HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n%s\r\n" % (len(body_bytes), b"" if keepalive else
                                                b"Connection: close\r\n")) + body_bytes
    end = time.monotonic() + duration

    def one():
        n = 0
        local = collections.Counter()
        s = None
        buf = b""
        while time.monotonic() < end:
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf = b""
                s.sendall(req)
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                clen = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(rest) < clen:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    rest += chunk
                buf = rest[clen:]
                local[head.split(b" ", 2)[1].decode()] += 1
                n += 1
                if not keepalive:
                    s.close()
                    s = None
            except (OSError, ValueError, AttributeError):
                local["error"] += 1
                if s is not None:
                    s.close()
                s = None
        if s is not None:
            s.close()
        with lock:
            counts.append(n)
            statuses.update(local)

    threads = [threading.Thread(target=one) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out_q.put((sum(counts), dict(statuses)))


def _measure(port, body, duration, keepalive, procs, conns):
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    workers = [ctx.Process(target=_load_worker, args=(port, body, duration, keepalive, conns, q))
               for _ in range(procs)]
    start = time.monotonic()
    for w in workers:
        w.start()
    results = [q.get() for _ in workers]
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    total = sum(r[0] for r in results)
    statuses = collections.Counter()
    for r in results:
        statuses.update(r[1])
    return total, elapsed, dict(statuses)


def self_test(args):
    cmd = [sys.executable, os.path.abspath(__file__), "--port", "0"]
    tmpdir = tempfile.mkdtemp(prefix="provserver-selftest.")
    if args.self_test_record:
        cmd += ["--record", os.path.join(tmpdir, "record.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"provserver: listening on http://127\.0\.0\.1:(\d+)$", line.strip())
        if not m:
            print("provserver: self-test: the server did not start")
            return 1
        port = int(m.group(1))
        doc = {"schema": SCHEMA, "uuid": "8c8a7c5e-1f6b-4a38-9a4d-2f1c3b4d5e6f",
               "power_type": "amt",
               "power_parameters": {"power_address": "10.0.0.9", "power_user": "admin",
                                    "power_pass": "Aa1!bench-Pw", "port": "16992"},
               "host": {"hostname": "bench", "architecture": "amd64/generic",
                        "mac_addresses": ["00:11:22:33:44:55"]},
               "amt": {"version": "16.1.25"}}
        body = json.dumps(doc).encode()
        d = args.self_test_seconds
        procs = max(1, min(4, (os.cpu_count() or 2) - 1))
        results = {}
        conns = args.self_test_clients
        for label, keepalive in (("keep-alive", True), ("new connection", False)):
            total, elapsed, st = _measure(port, body, d, keepalive, procs, conns)
            rps = total / elapsed
            results[label] = rps
            print("provserver: self-test: %s: %d requests in %.2f s = %.0f requests/s "
                  "(%d clients) %s" % (label, total, elapsed, rps, procs * conns,
                                       json.dumps(st, sort_keys=True)))
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/_fault" % port,
                                      data=json.dumps({"set": ["rate=10"]}).encode(),
                                      headers={"Content-Type": "application/json"}),
                       timeout=10).read()
        total, elapsed, st = _measure(port, body, d, True, procs, conns)
        rps = total / elapsed
        print("provserver: self-test: rate=10 (429 path): %d requests in %.2f s = %.0f "
              "requests/s %s" % (total, elapsed, rps, json.dumps(st, sort_keys=True)))
        sys.stdout.flush()
        best = max(results.values())
        ok = best >= args.self_test_min
        print("provserver: self-test: capacity %.0f requests/s (minimum %d): %s"
              % (best, args.self_test_min, "ok" if ok else "TOO SLOW"))
        return 0 if ok else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for name in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, name))
        os.rmdir(tmpdir)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="provserver.py",
                                description="The test provisioning server of amt-enlist.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--record")
    p.add_argument("--enlist-path", default="/enlist")
    p.add_argument("--node-status", default="COMMISSIONING", choices=NODE_STATUSES)
    p.add_argument("--node-power-type", default="")
    p.add_argument("--node-power-parameters")
    p.add_argument("--deployed-signals", choices=("ignore", "process"), default="ignore")
    p.add_argument("--maas-creds-out")
    p.add_argument("--maas-creds-style", choices=("block", "maas"), default="block")
    p.add_argument("--fault", action="append", default=[])
    p.add_argument("--record-interval", type=float, default=0.0,
                   help="write the record at most every SECONDS, replies not waiting for it "
                   "(benchmarks); default 0: after every request, before the reply")
    p.add_argument("--log-limit", type=int, default=10000)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--self-test", action="store_true")
    p.add_argument("--self-test-seconds", type=float, default=1.0)
    p.add_argument("--self-test-min", type=int, default=1000)
    p.add_argument("--self-test-clients", type=int, default=8,
                   help="connections per load process")
    p.add_argument("--self-test-record", action="store_true",
                   help="measure with --record (the record rewritten after every request)")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if not args.enlist_path.startswith("/") or args.enlist_path.startswith("/_"):
        p.error("--enlist-path must start with / and not with /_")
    for spec in args.fault:
        try:
            Fault(spec)
        except FaultError as e:
            p.error(str(e))
    if args.node_power_parameters:
        try:
            if not isinstance(json.loads(args.node_power_parameters), dict):
                raise ValueError
        except ValueError:
            p.error("--node-power-parameters must be a JSON object")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        return self_test(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
