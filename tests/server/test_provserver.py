#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tests of provserver.py over real HTTP: the server runs as a subprocess, as the agent's tests
run it. Run by /usr/bin/python3 (Debian's python3-oauthlib)."""

import email.utils
import http.client
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

from oauthlib.oauth1 import SIGNATURE_PLAINTEXT, Client

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "provserver.py")
MAKE_CERTS = os.path.join(HERE, "make-certs.sh")
PYTHON = "/usr/bin/python3"
SIGNAL_PATH = "/MAAS/metadata/2012-03-01/"
MACHINES_PATH = "/MAAS/api/2.0/machines/"
UUID = "4c4c4544-0042-3510-8052-b4c04f384d32"
PASSWORD = "Xq7!rT2.mK9-pL4+"


class Server:
    """provserver.py as a subprocess."""

    def __init__(self, *args, tmp):
        self.tmp = tmp
        self.record_path = os.path.join(tmp, "record-%s.json" % secrets.token_hex(4))
        self.creds_path = os.path.join(tmp, "creds-%s.cfg" % secrets.token_hex(4))
        self.proc = subprocess.Popen(
            [PYTHON, SERVER, "--record", self.record_path, "--maas-creds-out", self.creds_path]
            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.fullmatch(r"provserver: listening on (https?)://127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("server did not start: %r %r" % (line, self.proc.stderr.read()))
        self.scheme, self.port = m.group(1), int(m.group(2))
        self.url = "%s://127.0.0.1:%d" % (self.scheme, self.port)
        self.ssl_context = None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out.decode(), err.decode()

    def conn(self, timeout=10):
        if self.scheme == "https":
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        c = self.conn(timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def post_doc(self, doc, **kw):
        return self.request("POST", "/enlist", doc, **kw)

    def record(self):
        status, _, body = self.request("GET", "/_record")
        assert status == 200
        return json.loads(body)

    def record_file(self):
        with open(self.record_path) as f:
            return json.load(f)

    def control(self, path, obj):
        status, _, body = self.request("POST", path, obj)
        return status, json.loads(body)

    def faults(self, *specs):
        status, body = self.control("/_fault", {"set": list(specs)})
        assert status == 200, body

    def reset(self):
        self.faults()
        self.control("/_reset", {})

    def creds(self):
        with open(self.creds_path) as f:
            text = f.read()
        out = {}  # block or flow style; the datasource comes first, so setdefault keeps it
        for k, v in re.findall(r'(\w+): ("[^"]*")', text):
            out.setdefault(k, json.loads(v))
        return out


def document(**over):
    doc = {
        "schema": "amt-enlist/1",
        "uuid": UUID,
        "power_type": "amt",
        "power_parameters": {"power_address": "192.0.2.17", "power_user": "admin",
                             "power_pass": PASSWORD, "port": "16992"},
        "host": {"hostname": "node17", "architecture": "amd64/generic",
                 "mac_addresses": ["52:54:00:12:34:56"]},
        "amt": {"version": "16.1.25", "control_mode": "client", "tls_enforced": False},
    }
    for k, v in over.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return doc


def multipart(fields, files=()):
    boundary = "----provserver" + secrets.token_hex(8)
    out = []
    for name, value in fields:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                    % (boundary, name, value)).encode())
    for name, filename, data in files:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name, filename)
                    ).encode() + data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def oauth_header(server, creds=None, timestamp=None, nonce=None, token_secret=None,
                 token_key=None, consumer_key=None):
    """The Authorization header oauthlib's Client makes (PLAINTEXT, as cloud-init and MAAS's
    own helpers sign)."""
    c = creds or server.creds()
    client = Client(consumer_key or c["consumer_key"], client_secret="",
                    resource_owner_key=token_key or c["token_key"],
                    resource_owner_secret=token_secret or c["token_secret"],
                    signature_method=SIGNATURE_PLAINTEXT,
                    timestamp=None if timestamp is None else str(int(timestamp)), nonce=nonce)
    _, headers, _ = client.sign(server.url + SIGNAL_PATH + "?op=signal", http_method="POST")
    return headers["Authorization"]


def signal_request(server, fields, auth, files=(), query="?op=signal"):
    body, ctype = multipart(fields, files)
    headers = {"Content-Type": ctype}
    if auth:
        headers["Authorization"] = auth
    return server.request("POST", SIGNAL_PATH + query, body, headers)


def power_fields(status="WORKING", params=None, power_type="amt"):
    params = params if params is not None else {
        "power_address": "192.0.2.17", "power_user": "admin", "power_pass": PASSWORD,
        "port": "16993"}
    return [("status", status), ("power_type", power_type),
            ("power_parameters", json.dumps(params))]


TMP = None
MAIN = None


def setUpModule():
    global TMP, MAIN
    TMP = tempfile.mkdtemp(prefix="test-provserver.")
    MAIN = Server(tmp=TMP)


def tearDownModule():
    code, out, err = MAIN.stop()
    shutil.rmtree(TMP, ignore_errors=True)
    assert code == 0, (code, err)


class Base(unittest.TestCase):
    def setUp(self):
        self.s = MAIN
        self.s.reset()
        self.s.control("/_node", {"status": "COMMISSIONING", "power_type": "",
                                  "power_parameters": {}})


class TestEnlist(Base):
    def test_final_created_then_duplicate(self):
        st, h, body = self.s.post_doc(document())
        self.assertEqual(st, 201)
        self.assertEqual(json.loads(body)["result"], "created")
        self.assertIn("date", h)
        st, _, body = self.s.post_doc(document(uuid=UUID.upper()))
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["result"], "updated")  # content differs (uuid case)
        st, _, body = self.s.post_doc(document(uuid=UUID.upper()))
        self.assertEqual((st, json.loads(body)["result"]), (200, "duplicate"))
        rec = self.s.record()
        node = rec["enlist"]["nodes"][UUID]
        self.assertEqual(node["received"], 3)
        self.assertEqual(node["duplicates"], 1)
        self.assertEqual(rec["enlist"]["duplicates"], 1)
        self.assertEqual(len(node["documents"]), 3)
        self.assertEqual(node["current"], document(uuid=UUID.upper()))
        self.assertEqual([d["result"] for d in rec["enlist"]["documents"]],
                         ["created", "updated", "duplicate"])
        self.assertEqual(self.s.record_file(), rec)  # written before the reply

    def test_pending_then_final(self):
        st, _, _ = self.s.post_doc(document(state="pending"))
        self.assertEqual(st, 201)
        st, _, _ = self.s.post_doc(document(state="pending"))  # a retry: not a duplicate
        self.assertEqual(st, 200)
        st, _, body = self.s.post_doc(document(state="final"))
        self.assertEqual((st, json.loads(body)["state"]), (200, "final"))
        st, _, body = self.s.post_doc(document())  # absent state = final, same content?
        self.assertEqual(json.loads(body)["result"], "updated")  # no: the key differs
        rec = self.s.record()
        node = rec["enlist"]["nodes"][UUID]
        self.assertEqual(node["state"], "final")
        self.assertEqual(node["repeats"], 1)
        self.assertEqual(node["duplicates"], 0)
        self.assertEqual([d["state"] for d in rec["enlist"]["documents"]],
                         ["pending", "pending", "final", "final"])
        times = [d["t"] for d in rec["enlist"]["documents"]]
        self.assertEqual(times, sorted(times))
        self.s.post_doc(document(state="pending"))
        self.assertEqual(self.s.record()["enlist"]["nodes"][UUID]["pending_after_final"], 1)

    def test_credentials_unknown(self):
        pp = {"power_address": "192.0.2.17", "power_user": "admin", "port": "16993"}
        st, _, _ = self.s.post_doc(document(credentials="unknown", power_parameters=pp))
        self.assertEqual(st, 201)
        st, _, body = self.s.post_doc(document(credentials="unknown"))
        self.assertEqual(st, 400)
        self.assertIn("power_pass", json.loads(body)["error"])
        st, _, _ = self.s.post_doc(document(credentials="unknown", state="pending",
                                            power_parameters=pp))
        self.assertEqual(st, 400)
        st, _, _ = self.s.post_doc(document(credentials="known"))
        self.assertEqual(st, 400)

    def test_validation(self):
        def pp(**kw):
            d = dict(document()["power_parameters"], **kw)
            return {k: v for k, v in d.items() if v is not None}

        cases = [
            (document(schema="amt-enlist/2"), "schema"),
            (document(uuid="not-a-uuid"), "uuid"),
            (document(uuid=None), "uuid"),
            (document(power_type="ipmi"), "power_type"),
            (document(power_parameters=pp(port=16992)), "port"),
            (document(power_parameters=pp(port="80")), "port"),
            (document(power_parameters=pp(power_user=None)), "power_user"),
            (document(power_parameters=pp(password="x")), "password"),
            (document(power_parameters=pp(power_address="amt.example")), "power_address"),
            (document(power_parameters=pp(power_pass="alllowercase1!")), "power_pass"),
            (document(power_parameters=pp(power_pass="Sh0rt!")), "power_pass"),
            (document(power_parameters=pp(power_pass="Ab1:colon!x")), "power_pass"),
            (document(host={"hostname": "x", "architecture": "amd64/generic",
                            "mac_addresses": ["52-54-00-12-34-56"]}), "mac_addresses"),
            (document(host={"hostname": "x", "architecture": "amd64/generic",
                            "mac_addresses": []}), "mac_addresses"),
            (document(host={"architecture": "amd64/generic",
                            "mac_addresses": ["52:54:00:12:34:56"]}), "hostname"),
            (document(host="node17"), "host"),
            (document(amt=None), "amt"),
            (document(amt=[]), "amt"),
            (document(state="done"), "state"),
            (document(extra=1), "extra"),
            ([1, 2], "object"),
        ]
        for doc, word in cases:
            with self.subTest(word=word, doc=doc):
                st, h, body = self.s.post_doc(doc)
                self.assertEqual(st, 400)
                self.assertEqual(h["content-type"], "application/json")
                err = json.loads(body)["error"]
                self.assertIn(word, err)
                self.assertNotIn("alllowercase", err)  # no secret in a message
        st, _, body = self.s.request("POST", "/enlist", json.dumps(document()).encode(),
                                     {"Content-Type": "text/plain"})
        self.assertEqual(st, 400)
        self.assertIn("Content-Type", json.loads(body)["error"])
        st, _, body = self.s.request("POST", "/enlist", b"{not json",
                                     {"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(st, 400)
        self.assertIn("not JSON", json.loads(body)["error"])
        st, _, _ = self.s.request("GET", "/enlist")
        self.assertEqual(st, 405)
        rec = self.s.record()
        self.assertEqual(rec["enlist"]["documents"], [])
        self.assertEqual(len(rec["enlist"]["refused"]), len(cases) + 2)

    def test_chunked_body(self):
        body = json.dumps(document()).encode()
        c = self.s.conn()
        c.putrequest("POST", "/enlist")
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        for i in range(0, len(body), 100):
            part = body[i:i + 100]
            c.send(b"%x\r\n%s\r\n" % (len(part), part))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        r.read()
        c.close()
        self.assertEqual(r.status, 201)

    def test_keepalive_and_unknown_paths(self):
        c = self.s.conn()
        for path, want in (("/nothing", 404), ("/cloud-config", 200), ("/_record", 200)):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, want)
        c.close()


class TestFaults(Base):
    def test_sequence_500_then_429(self):
        self.s.faults("500=2", "429=1:7")
        got = []
        for _ in range(4):
            st, h, body = self.s.post_doc(document())
            got.append((st, h.get("retry-after")))
            json.loads(body)
        self.assertEqual(got, [(500, None), (500, None), (429, "7"), (201, None)])
        rec = self.s.record()
        self.assertEqual(rec["requests"]["faults_applied"], {"500": 2, "429": 1})
        self.assertEqual(len(rec["enlist"]["documents"]), 1)
        self.assertEqual([f["remaining"] for f in rec["faults"]], [0, 0])

    def test_503_and_retry_after_date(self):
        self.s.faults("503=1:4", "429date=1:60")
        st, h, _ = self.s.post_doc(document())
        self.assertEqual((st, h["retry-after"]), (503, "4"))
        st, h, _ = self.s.post_doc(document())
        self.assertEqual(st, 429)
        after = email.utils.parsedate_to_datetime(h["retry-after"]).timestamp()
        date = email.utils.parsedate_to_datetime(h["date"]).timestamp()
        self.assertAlmostEqual(after - date, 60, delta=2)

    def test_reset(self):
        self.s.faults("reset=1")
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)) as cm:
            self.s.post_doc(document())
        self.assertIsInstance(cm.exception, ConnectionResetError)  # an RST, not a FIN
        st, _, _ = self.s.post_doc(document())
        self.assertEqual(st, 201)
        self.assertEqual(len(self.s.record()["enlist"]["documents"]), 1)

    def test_hang_until_the_client_gives_up(self):
        self.s.faults("hang=1")
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            self.s.post_doc(document(), timeout=0.3)
        self.assertLess(time.monotonic() - t0, 3)
        st, _, _ = self.s.post_doc(document())
        self.assertEqual(st, 201)
        rec = self.s.record()
        self.assertEqual([e["status"] for e in rec["requests"]["log"]
                          if e["endpoint"] == "enlist"], ["hang", 201])

    def test_garbage_is_processed_badstatus_is_not(self):
        self.s.faults("garbage=1", "badstatus=1")
        st, h, body = self.s.post_doc(document())
        self.assertEqual((st, h["content-type"]), (200, "application/json"))
        with self.assertRaises(ValueError):
            json.loads(body)
        with self.assertRaises(http.client.HTTPException):
            self.s.post_doc(document(state="pending"))
        rec = self.s.record()
        self.assertEqual([d["state"] for d in rec["enlist"]["documents"]], ["final"])

    def test_slow(self):
        self.s.faults("slow=1:0.25")
        t0 = time.monotonic()
        st, _, _ = self.s.post_doc(document())
        self.assertEqual(st, 201)
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)

    def test_refuse_all_and_refuse_pending(self):
        self.s.faults("400")
        for _ in range(2):
            st, _, body = self.s.post_doc(document())
            self.assertEqual(st, 400)
            self.assertEqual(json.loads(body)["error"], "refused by test fault")
        self.s.faults("refuse-pending")
        st, _, body = self.s.post_doc(document(state="pending"))
        self.assertEqual(st, 409)
        self.assertIn("pending", json.loads(body)["error"])
        st, _, _ = self.s.post_doc(document())
        self.assertEqual(st, 201)

    def test_scope_and_control_endpoints(self):
        self.s.faults("500=5@signal", "500=1@all")
        st, _, _ = self.s.request("GET", "/_record")  # control: never faulted
        self.assertEqual(st, 200)
        st, _, _ = self.s.request("GET", "/cloud-config")  # @all
        self.assertEqual(st, 500)
        st, _, _ = self.s.post_doc(document())  # not in the signal scope
        self.assertEqual(st, 201)
        st, body = self.s.control("/_fault", {"add": ["nonsense=1"]})
        self.assertEqual(st, 400)
        st, body = self.s.control("/_fault", {"add": ["500=x"]})
        self.assertEqual(st, 400)

    def test_rate_limit_burst(self):
        self.s.faults("rate=5/10")
        results = []
        lock = threading.Lock()

        def worker(i):
            for j in range(5):
                st, h, _ = self.s.post_doc(document(uuid="00000000-0000-4000-8000-%012d"
                                                    % (i * 10 + j)))
                with lock:
                    results.append((st, h.get("retry-after")))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [r for r in results if r[0] == 201]
        limited = [r for r in results if r[0] == 429]
        self.assertEqual((len(ok), len(limited)), (5, 35))
        # Each refused request is given its own later slot (window / limit = 2 s apart), so the
        # Retry-After values spread over 10 s + 35 x 2 s instead of all saying the same second.
        waits = sorted(int(r[1]) for r in limited)
        self.assertGreaterEqual(waits[0], 1)
        self.assertLessEqual(waits[-1], 10 + 35 * 2 + 1)
        self.assertGreaterEqual(len(set(waits)), 30)
        rate = self.s.record()["rate"]
        self.assertEqual((rate["passed"], rate["limited"], rate["max_in_window"]), (5, 35, 5))

    def test_rate_limit_window_moves(self):
        self.s.faults("rate=3/0.3")
        sts = [self.s.post_doc(document())[0] for _ in range(5)]
        self.assertEqual(sts, [201, 200, 200, 429, 429])
        time.sleep(0.35)
        self.assertEqual(self.s.post_doc(document())[0], 200)


class TestMaasSignal(Base):
    def test_credentials_file_and_cloud_config(self):
        c = self.s.creds()
        self.assertEqual(c["metadata_url"], self.s.url + "/MAAS/metadata/")
        for key, n in (("consumer_key", 18), ("token_key", 18), ("token_secret", 32)):
            self.assertRegex(c[key], r"^[A-Za-z0-9]{%d}$" % n)
        with open(self.s.creds_path) as f:
            text = f.read()
        self.assertTrue(text.startswith("#cloud-config\ndatasource:\n  MAAS:\n"))
        self.assertEqual(os.stat(self.s.creds_path).st_mode & 0o777, 0o600)
        st, h, body = self.s.request("GET", "/cloud-config")
        self.assertEqual((st, body.decode()), (200, text))
        st, _, body = self.s.request("GET", "/cloud-config/enlist")
        self.assertIn("metadata_url", body.decode())
        self.assertNotIn("token", body.decode())

    def test_signed_signal_stores_power_while_commissioning(self):
        auth = oauth_header(self.s)
        st, h, body = signal_request(self.s, power_fields(), auth,
                                     files=[("50-amt-enlist.out", "50-amt-enlist.out",
                                             b"script output\n")])
        self.assertEqual((st, body), (200, b"OK"))
        self.assertIn("date", h)
        rec = self.s.record()
        node = rec["maas"]["node"]
        self.assertEqual(node["status"], "COMMISSIONING")  # WORKING keeps it going
        self.assertEqual(node["power_type"], "amt")
        self.assertEqual(node["power_parameters"], dict(power_fields_params(), port="16993"))
        sig = rec["maas"]["signals"][-1]
        self.assertEqual((sig["result"], sig["status"], sig["power_type"]),
                         ("stored", "WORKING", "amt"))
        self.assertEqual(sig["power_parameters"]["port"], "16993")
        self.assertEqual(sig["files"]["50-amt-enlist.out"]["content"], "script output\n")
        nonce = re.search(r'oauth_nonce="([^"]+)"', auth).group(1)
        self.assertEqual(sig["oauth"]["nonce"], nonce)
        self.assertEqual(sig["oauth"]["signature_method"], "PLAINTEXT")
        self.assertRegex(sig["oauth"]["timestamp"], r"^\d{10}$")
        self.assertNotIn(self.s.creds()["token_secret"], json.dumps(rec))

    def test_power_parameters_replace_the_whole_dict(self):
        old = {"power_address": "192.0.2.5", "power_user": "admin", "power_pass": "Op3rator!pw",
               "port": "16992", "extra": "kept?"}
        self.s.control("/_node", {"power_type": "amt", "power_parameters": old})
        new = {"power_address": "192.0.2.17", "power_user": "admin", "port": "16992"}
        st, _, _ = signal_request(self.s, power_fields(params=new), oauth_header(self.s))
        self.assertEqual(st, 200)
        rec = self.s.record()
        self.assertEqual(rec["maas"]["node"]["power_parameters"], new)  # the password is gone
        change = rec["maas"]["power_changes"][-1]
        self.assertEqual((change["previous_parameters"], change["power_parameters"]), (old, new))
        # A signal without power_type changes no power setting.
        st, _, _ = signal_request(self.s, [("status", "WORKING")], oauth_header(self.s))
        self.assertEqual(st, 200)
        self.assertEqual(self.s.record()["maas"]["node"]["power_parameters"], new)

    def test_ok_ends_commissioning_then_nothing_is_stored(self):
        st, _, _ = signal_request(self.s, power_fields("OK"), oauth_header(self.s))
        self.assertEqual(st, 200)
        rec = self.s.record()
        self.assertEqual(rec["maas"]["node"]["status"], "READY")
        self.assertEqual(rec["maas"]["status_changes"][-1]["from"], "COMMISSIONING")
        self.assertEqual(rec["maas"]["status_changes"][-1]["to"], "READY")
        other = {"power_address": "192.0.2.99", "power_user": "x", "power_pass": PASSWORD,
                 "port": "16992"}
        st, _, body = signal_request(self.s, power_fields(params=other), oauth_header(self.s))
        self.assertEqual((st, body), (200, b"OK"))
        rec = self.s.record()
        self.assertEqual(rec["maas"]["node"]["power_parameters"]["port"], "16993")
        self.assertEqual(rec["maas"]["signals"][-1]["result"], "ignored")

    def test_deployed_changes_nothing(self):
        self.s.control("/_node", {"status": "DEPLOYED", "power_type": "amt",
                                  "power_parameters": {"power_address": "192.0.2.5"}})
        st, _, body = signal_request(self.s, power_fields("OK"), oauth_header(self.s))
        self.assertEqual((st, body), (200, b"OK"))
        node = self.s.record()["maas"]["node"]
        self.assertEqual((node["status"], node["power_parameters"]),
                         ("DEPLOYED", {"power_address": "192.0.2.5"}))
        self.s.control("/_node", {"status": "ALLOCATED"})
        st, _, body = signal_request(self.s, power_fields(), oauth_header(self.s))
        self.assertEqual(st, 409)
        self.assertIn(b"ALLOCATED", body)

    def test_replayed_nonce(self):
        auth = oauth_header(self.s)
        self.assertEqual(signal_request(self.s, power_fields(), auth)[0], 200)
        st, h, body = signal_request(self.s, power_fields(), auth)
        self.assertEqual(st, 401)
        self.assertIn("date", h)
        self.assertIn("oauth", h["www-authenticate"].lower())
        self.assertIn(b"nonce", body)
        sig = self.s.record()["maas"]["signals"][-1]
        self.assertEqual((sig["result"], sig["reason"]), ("unauthorized", "nonce already used"))

    def test_skewed_timestamp(self):
        for delta in (-400, 400):
            with self.subTest(delta=delta):
                auth = oauth_header(self.s, timestamp=time.time() + delta)
                st, h, body = signal_request(self.s, power_fields(), auth)
                self.assertEqual(st, 401)
                self.assertIn(b"timestamp", body)
                date = email.utils.parsedate_to_datetime(h["date"]).timestamp()
                self.assertAlmostEqual(date, time.time(), delta=5)
        auth = oauth_header(self.s, timestamp=time.time() - 250)
        self.assertEqual(signal_request(self.s, power_fields(), auth)[0], 200)
        self.assertEqual(self.s.record()["maas"]["node"]["status"], "COMMISSIONING")

    def test_bad_credentials(self):
        c = self.s.creds()
        cases = [
            ("wrong token secret", oauth_header(self.s, token_secret="x" * 32), b"signature"),
            ("unknown token", oauth_header(self.s, token_key="A" * 18), b"token"),
            ("unknown consumer", oauth_header(self.s, consumer_key="B" * 18), b"consumer"),
            ("no header", None, b"no OAuth"),
            ("garbled", "OAuth garbage", b""),
            ("empty consumer secret expected",
             'OAuth oauth_nonce="n1x", oauth_timestamp="%d", oauth_version="1.0", '
             'oauth_signature_method="PLAINTEXT", oauth_consumer_key="%s", oauth_token="%s", '
             'oauth_signature="cs%%26%s"' % (time.time(), c["consumer_key"], c["token_key"],
                                            c["token_secret"]), b"signature"),
        ]
        for name, auth, word in cases:
            with self.subTest(name):
                st, h, body = signal_request(self.s, power_fields(), auth)
                self.assertEqual(st, 401)
                self.assertIn("date", h)
                self.assertIn(word, body)
                self.assertNotIn(c["token_secret"].encode(), body)
        self.assertEqual(self.s.record()["maas"]["node"]["power_parameters"], {})

    def test_header_as_the_agent_writes_it(self):
        """PROTOCOL.md 7's header format, values percent-encoded, a hex nonce."""
        c = self.s.creds()
        q = urllib.parse.quote
        auth = ('OAuth oauth_nonce="%s", oauth_timestamp="%d", oauth_version="1.0", '
                'oauth_signature_method="PLAINTEXT", oauth_consumer_key="%s", oauth_token="%s", '
                'oauth_signature="%s"' % (secrets.token_hex(16), time.time(), q(c["consumer_key"]),
                                          q(c["token_key"]), q("&" + c["token_secret"], safe="")))
        st, _, body = signal_request(self.s, power_fields(), auth)
        self.assertEqual((st, body), (200, b"OK"))

    def test_form_variants(self):
        # op as a form field, urlencoded body (as MAAS's Django also accepts)
        body = urllib.parse.urlencode([("op", "signal")] + power_fields()).encode()
        st, _, _ = self.s.request("POST", SIGNAL_PATH, body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": oauth_header(self.s)})
        self.assertEqual(st, 200)
        st, _, body = signal_request(self.s, power_fields(), oauth_header(self.s), query="")
        self.assertEqual(st, 400)
        st, _, body = signal_request(self.s, power_fields("DONE"), oauth_header(self.s))
        self.assertEqual((st, body), (400, b"Unknown status: 'DONE'\n"))
        fields = power_fields()[:2] + [("power_parameters", "{not json")]
        st, _, body = signal_request(self.s, fields, oauth_header(self.s))
        self.assertEqual((st, body), (400, b"Failed to parse JSON power_parameters\n"))
        st, _, body = signal_request(self.s, power_fields(power_type="bogus"),
                                     oauth_header(self.s))
        self.assertEqual(st, 400)
        st, _, _ = signal_request(self.s, [("power_type", "amt")], oauth_header(self.s))
        self.assertEqual(st, 400)
        rec = self.s.record()
        self.assertEqual(rec["maas"]["power_changes"][-1]["power_type"], "amt")
        self.assertEqual(len(rec["maas"]["power_changes"]), 1)  # only the good signal stored

    def test_signal_faults(self):
        self.s.faults("500=1@signal")
        self.assertEqual(signal_request(self.s, power_fields(), oauth_header(self.s))[0], 500)
        self.assertEqual(signal_request(self.s, power_fields(), oauth_header(self.s))[0], 200)


def power_fields_params():
    return json.loads(dict(power_fields())["power_parameters"])


class TestMachines(Base):
    def test_enlist_and_is_registered(self):
        q = MACHINES_PATH + "?op=is_registered&mac_address=52:54:00:AA:BB:CC"
        st, _, body = self.s.request("GET", q)
        self.assertEqual((st, json.loads(body)), (200, False))
        fields = [("architecture", "amd64/generic"), ("mac_addresses", "52:54:00:aa:bb:cc"),
                  ("mac_addresses", "52:54:00:aa:bb:cd"), ("hostname", "node17"),
                  ("domain", "maas"), ("power_type", "amt"),
                  ("power_parameters", json.dumps(power_fields_params())), ("commission", "false")]
        body, ctype = multipart(fields)
        st, _, out = self.s.request("POST", MACHINES_PATH, body, {"Content-Type": ctype})
        self.assertEqual(st, 200)
        machine = json.loads(out)
        self.assertEqual(machine["status_name"], "New")
        st, _, body = self.s.request("GET", q)
        self.assertEqual((st, json.loads(body)), (200, True))
        # The same MAC again (machine NEW): updated, power settings replaced.
        body = urllib.parse.urlencode([("architecture", "amd64"),
                                       ("mac_addresses", "52:54:00:aa:bb:cd"),
                                       ("power_type", "amt"),
                                       ("power_parameters", json.dumps({"power_address": "x"})),
                                       ("commission", "true")]).encode()
        st, _, out = self.s.request("POST", MACHINES_PATH, body,
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(out)["system_id"], machine["system_id"])
        rec = self.s.record()["machines"]
        m = rec["machines"][machine["system_id"]]
        self.assertEqual((m["status"], m["power_parameters"]),
                         ("COMMISSIONING", {"power_address": "x"}))
        self.assertEqual([r["result"] for r in rec["requests"]],
                         ["false", "created", "true", "updated"])
        self.assertEqual(rec["requests"][1]["fields"]["mac_addresses"],
                         ["52:54:00:aa:bb:cc", "52:54:00:aa:bb:cd"])

    def test_refusals(self):
        for fields, word in (([("mac_addresses", "52:54:00:aa:bb:cc")], "architecture"),
                             ([("architecture", "amd64")], "mac_addresses"),
                             ([("architecture", "amd64"), ("mac_addresses", "nope")],
                              "mac_addresses"),
                             ([("architecture", "amd64"), ("mac_addresses", "52:54:00:aa:bb:cc"),
                               ("power_parameters", "{")], "power_parameters")):
            with self.subTest(word):
                body, ctype = multipart(fields)
                st, _, out = self.s.request("POST", MACHINES_PATH, body, {"Content-Type": ctype})
                self.assertEqual(st, 400)
                self.assertIn(word, json.loads(out))
        st, _, _ = self.s.request("GET", MACHINES_PATH + "?op=is_registered")
        self.assertEqual(st, 400)
        st, _, _ = self.s.request("GET", MACHINES_PATH + "?op=is_registered&mac_address=zz")
        self.assertEqual(st, 400)


class TestOtherServers(unittest.TestCase):
    """Behaviour chosen on the command line: each test starts its own server."""

    def test_skew_and_date_correction(self):
        s = Server("--fault", "skew=3600", "--fault", "500=1@cloud-config", tmp=TMP)
        try:
            st, h, _ = s.request("GET", "/cloud-config")
            self.assertEqual(st, 500)  # CLI faults apply
            date = email.utils.parsedate_to_datetime(h["date"]).timestamp()
            self.assertAlmostEqual(date - time.time(), 3600, delta=5)
            st, h, body = signal_request(s, power_fields(), oauth_header(s))
            self.assertEqual(st, 401)
            self.assertIn(b"timestamp", body)
            # What the agent does: take the skew from the reply's Date, sign again.
            server_now = email.utils.parsedate_to_datetime(h["date"]).timestamp()
            st, _, _ = signal_request(s, power_fields(), oauth_header(s, timestamp=server_now))
            self.assertEqual(st, 200)
        finally:
            code, out, err = s.stop()
        self.assertEqual((code, out), (0, ""))

    def test_deployed_signals_process_and_initial_power(self):
        old = {"power_address": "192.0.2.5", "power_pass": "Op3rator!pw"}
        s = Server("--node-status", "DEPLOYED", "--deployed-signals", "process",
                   "--node-power-type", "amt", "--node-power-parameters", json.dumps(old),
                   "--enlist-path", "/api/v1/amt", "--maas-creds-style", "maas", tmp=TMP)
        try:
            self.assertEqual(s.record()["maas"]["node"]["power_parameters"], old)
            st, _, _ = signal_request(s, power_fields(), oauth_header(s))
            self.assertEqual(st, 200)
            node = s.record()["maas"]["node"]
            self.assertEqual((node["status"], node["power_parameters"]["port"]),
                             ("DEPLOYED", "16993"))
            self.assertEqual(s.request("POST", "/api/v1/amt", document())[0], 201)
            self.assertEqual(s.request("POST", "/enlist", document())[0], 404)
            with open(s.creds_path) as f:
                text = f.read()
            self.assertRegex(text, r"(?m)^  MAAS: \{consumer_key: \"[A-Za-z0-9]{18}\", ")
            self.assertRegex(text, r"(?m)^reporting:\n  maas: \{")
        finally:
            self.assertEqual(s.stop()[0], 0)

    def test_sigterm_and_record_file(self):
        s = Server("-v", tmp=TMP)
        s.post_doc(document())
        code, out, err = s.stop()
        self.assertEqual((code, out), (0, ""))
        self.assertIn("POST /enlist -> 201", err)
        rec = s.record_file()
        self.assertEqual(len(rec["enlist"]["documents"]), 1)
        self.assertEqual(rec["server"]["url"], s.url)
        leftovers = [n for n in os.listdir(TMP) if n.startswith(".record.")]
        self.assertEqual(leftovers, [])
        self.assertNotIn(PASSWORD, out + err)

    def test_bad_command_lines(self):
        for args in (["--fault", "500"], ["--fault", "429=1"], ["--tls-cert", "x"]):
            with self.subTest(args=args):
                p = subprocess.run([PYTHON, SERVER] + args, capture_output=True, timeout=10)
                self.assertEqual(p.returncode, 2)
                self.assertEqual(p.stdout, b"")


@unittest.skipUnless(shutil.which("openssl"), "the openssl command is needed for certificates")
class TestTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(TMP, "certs")
        subprocess.run(["sh", MAKE_CERTS, cls.dir], check=True, timeout=60)

    def ctx(self, ca="ca.pem"):
        c = ssl.create_default_context(cafile=os.path.join(self.dir, ca))
        return c

    def server(self, name):
        return Server("--tls-cert", os.path.join(self.dir, name + ".pem"),
                      "--tls-key", os.path.join(self.dir, name + ".key"), tmp=TMP)

    def test_https_with_the_test_ca(self):
        s = self.server("server")
        try:
            self.assertTrue(s.url.startswith("https://"))
            self.assertTrue(s.creds()["metadata_url"].startswith("https://127.0.0.1:"))
            s.ssl_context = self.ctx("wrong-ca.pem")
            with self.assertRaises(ssl.SSLCertVerificationError):
                s.post_doc(document())
            s.ssl_context = self.ctx()
            self.assertEqual(s.post_doc(document())[0], 201)  # survived the failed handshake
            self.assertEqual(signal_request(s, power_fields(), oauth_header(s))[0], 200)
            s.faults("reset=1")
            with self.assertRaises(ConnectionResetError):
                s.post_doc(document())
            self.assertEqual(s.post_doc(document())[0], 200)
        finally:
            self.assertEqual(s.stop()[0], 0)

    def test_wrong_certificates_fail_verification(self):
        for name, word in (("wrong", "certificate verify failed"), ("wrongname", "mismatch")):
            with self.subTest(name):
                s = self.server(name)
                try:
                    s.ssl_context = self.ctx()
                    with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                        s.post_doc(document())
                    self.assertIn(word, str(cm.exception))
                finally:
                    self.assertEqual(s.stop()[0], 0)
                self.assertEqual(s.record_file()["enlist"]["documents"], [])


class TestCapacity(unittest.TestCase):
    def test_self_test(self):
        p = subprocess.run([PYTHON, SERVER, "--self-test", "--self-test-seconds", "0.25",
                            "--self-test-min", "200"], capture_output=True, text=True,
                           timeout=60)
        sys.stderr.write("\n" + p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"capacity \d+ requests/s")


if __name__ == "__main__":
    unittest.main(verbosity=2)
