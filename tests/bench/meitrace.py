#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""meitrace: a tracing relay between the agent's unix: device and amtsim's --listen socket.

One SOCK_SEQPACKET connection is one MEI client connection (tests/amtsim/amtsim.h): the client's
first message is the 16-byte client GUID, the server's first answer the 12-byte connect reply,
then every packet is one MEI message. The relay forwards packets unchanged in both directions and
keeps, per connection, the client's name and every message with its direction, so the benchmark
can count connects and messages per client and find requests sent twice with identical bytes.

Used by tests/bench/bench.py for the round-trip section only (the relay adds a hop; timing
sections talk to amtsim directly).
"""

import os
import select
import socket
import struct
import threading
import time

GUIDS = {
    # wire order (little-endian GUID) of the three ME clients (mei/mei.h)
    bytes.fromhex("2800f812b7b42d4baca846e0ff65814c"): "amthi",
    bytes.fromhex("dba4336776047b4eb3afbcfc29bee7a7"): "lme",
    bytes.fromhex("6f9ab70528467f4d899da91514cb32ab"): "watchdog",
}

APF_NAMES = {
    1: "DISCONNECT", 5: "SERVICE_REQUEST", 6: "SERVICE_ACCEPT", 50: "USERAUTH_REQUEST",
    51: "USERAUTH_FAILURE", 52: "USERAUTH_SUCCESS", 80: "GLOBAL_REQUEST", 81: "REQUEST_SUCCESS",
    82: "REQUEST_FAILURE", 90: "CHANNEL_OPEN", 91: "CHANNEL_OPEN_CONFIRMATION",
    92: "CHANNEL_OPEN_FAILURE", 93: "CHANNEL_WINDOW_ADJUST", 94: "CHANNEL_DATA",
    97: "CHANNEL_CLOSE", 192: "PROTOCOL_VERSION",
}

# AMTHI command codes (requests), as amtsim names them in its counters
AMTHI_NAMES = {
    0x0400001A: "GetCodeVersions", 0x04000011: "GetProvisioningState",
    0x0400006B: "GetControlMode", 0x04000048: "GetLANInterfaceSettings",
    0x0400005C: "GetUUID", 0x04000036: "GetDnsSuffix",
    0x04000046: "GetRemoteAccessConnectionStatus", 0x04000047: "GetCurrentPowerPolicy",
    0x04000025: "GetMacAddresses", 0x0400002C: "EnumerateHashHandles",
    0x0400002D: "GetCertHashEntry", 0x04000067: "GetLocalSystemAccount",
    0x04000008: "GetProvisioningMode", 0x04000010: "Unprovision",
    0x04000029: "StartConfiguration", 0x04000056: "GetFQDN",
    0x0400005E: "StopConfiguration", 0x0400008B: "StartConfigurationHBased",
}

BUF = 1 << 17


class Conn:
    def __init__(self, index):
        self.index = index
        self.client = "?"
        self.connected = False
        self.msgs = []  # (t, "out" | "in", bytes)

    def exchanges(self):
        """The host's messages as (label, bytes, the next message from the firmware or None);
        for AMTHI and the watchdog that is the request's reply."""
        out = []
        for k, (_, d, b) in enumerate(self.msgs):
            if d != "out":
                continue
            reply = None
            for _, d2, b2 in self.msgs[k + 1:]:
                if d2 == "in":
                    reply = b2
                    break
                break
            out.append((label(self.client, b), b, reply))
        return out

    def describe_out(self):
        """The host's messages as (label, bytes)."""
        out = []
        for _, d, b in self.msgs:
            if d != "out":
                continue
            out.append((label(self.client, b), b))
        return out


def label(client, b):
    if client == "lme" and b:
        return "APF " + APF_NAMES.get(b[0], "type%d" % b[0])
    if client == "amthi" and len(b) >= 12:
        code = struct.unpack_from("<I", b, 4)[0]
        return AMTHI_NAMES.get(code, "0x%08X" % code)
    if client == "watchdog" and b:
        return "WDT cmd 0x%02X" % b[0]
    return "%d bytes" % len(b)


class Relay:
    def __init__(self, listen_path, upstream_path):
        self.listen_path = listen_path
        self.upstream = upstream_path
        self.conns = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if os.path.exists(listen_path):
            os.unlink(listen_path)
        self.sock.bind(listen_path)
        self.sock.listen(16)
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.threads = []
        self.thread.start()

    def _accept(self):
        while True:
            r, _, _ = select.select([self.sock, self.stop_r], [], [])
            if self.stop_r in r:
                return
            a, _ = self.sock.accept()
            with self.lock:
                c = Conn(len(self.conns))
                self.conns.append(c)
            t = threading.Thread(target=self._pump, args=(a, c), daemon=True)
            self.threads.append(t)
            t.start()

    def _pump(self, a, c):
        u = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            u.connect(self.upstream)
        except OSError:
            a.close()
            return
        first_out, first_in = True, True
        try:
            while True:
                r, _, _ = select.select([a, u, self.stop_r], [], [])
                if self.stop_r in r:
                    break
                if a in r:
                    b = a.recv(BUF)
                    if not b:
                        break
                    if first_out:
                        c.client = GUIDS.get(b[:16], "guid:" + b[:16].hex())
                        first_out = False
                    else:
                        c.msgs.append((time.monotonic(), "out", b))
                    u.sendall(b)
                if u in r:
                    b = u.recv(BUF)
                    if not b:
                        break
                    if first_in:
                        first_in = False
                        c.connected = len(b) >= 4 and struct.unpack_from("<I", b)[0] == 0
                    else:
                        c.msgs.append((time.monotonic(), "in", b))
                    a.sendall(b)
        except OSError:
            pass
        finally:
            a.close()
            u.close()

    def close(self):
        os.write(self.stop_w, b"x")
        self.thread.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()
        if os.path.exists(self.listen_path):
            os.unlink(self.listen_path)

    def summary(self):
        """Per client: connects, host messages, and the requests sent more than once."""
        out = {}
        for c in self.conns:
            s = out.setdefault(c.client, {"connects": 0, "refused": 0, "messages": 0,
                                          "labels": {}, "repeats": []})
            if c.connected:
                s["connects"] += 1
            else:
                s["refused"] += 1
            s.setdefault("rereads", [])
            seen = {}
            for lab, b, reply in c.exchanges():
                s["messages"] += 1
                s["labels"][lab] = s["labels"].get(lab, 0) + 1
                seen.setdefault(b, []).append((lab, reply))
            for b, sent in seen.items():
                if len(sent) < 2:
                    continue
                # the same request again: redundant when it got the same answer as before;
                # a re-read when the answer changed (the firmware's state moved meanwhile)
                replies = [r for _, r in sent]
                same = len(replies) - len(set(replies)) if None not in replies else len(sent) - 1
                if c.client == "lme" or same:
                    s["repeats"].append((sent[0][0], len(sent)))
                else:
                    s["rereads"].append((sent[0][0], len(sent)))
        return out
