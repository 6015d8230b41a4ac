#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A recording relay between the agent's unix: device and amtsim's --listen socket.

The fault matrix needs to know which AMTHI request is the N-th of a run (amtsim's reset@N,
no-reply@N, ... count AMTHI requests) and which WS-Man call is the N-th authenticated one
(lme-disconnect@N). amtsim's --stats only counts them; this relay sees them in order.

Wire convention (tests/amtsim/amtsim.h): one SOCK_SEQPACKET connection is one MEI client
connection; the host's first packet is the 16-byte client GUID, the emulator's first answer the
12-byte connect reply; then every packet is one MEI message. AMTHI requests carry their command
code at offset 4 (little-endian). LME messages are APF: CHANNEL_DATA (94) is
u8 type, u32 recipient channel, u32 length, data; the data host -> firmware is HTTP (plain on
profiles without TLS on local ports).
"""

import os
import re
import select
import socket
import struct
import threading

GUIDS = {
    bytes.fromhex("2800f812b7b42d4baca846e0ff65814c"): "amthi",
    bytes.fromhex("dba4336776047b4eb3afbcfc29bee7a7"): "lme",
    bytes.fromhex("6f9ab70528467f4d899da91514cb32ab"): "watchdog",
}

# AMTHI request codes, named as amtsim's counters name them
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

APF_CHANNEL_OPEN = 90
APF_CHANNEL_DATA = 94
BUF = 1 << 17


class Relay:
    """Listen on LISTEN_PATH, forward every connection to UPSTREAM, record what the host sent."""

    def __init__(self, listen_path, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.amthi = []          # AMTHI request names, in the order the host sent them
        self.channel_data = {}   # LME channel key -> bytes the host sent on it
        self.channel_order = []  # channel keys in the order they were first used
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if os.path.exists(listen_path):
            os.unlink(listen_path)
        self.sock.bind(listen_path)
        self.sock.listen(16)
        self.stop_r, self.stop_w = os.pipe()
        self.conn_seq = 0
        self.threads = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            r, _, _ = select.select([self.sock, self.stop_r], [], [])
            if self.stop_r in r:
                return
            a, _ = self.sock.accept()
            self.conn_seq += 1
            t = threading.Thread(target=self._pump, args=(a, self.conn_seq), daemon=True)
            self.threads.append(t)
            t.start()

    def _record(self, client, conn_no, b):
        with self.lock:
            if client == "amthi" and len(b) >= 8:
                code = struct.unpack_from("<I", b, 4)[0]
                self.amthi.append(AMTHI_NAMES.get(code, "0x%08X" % code))
            elif client == "lme" and len(b) >= 9 and b[0] == APF_CHANNEL_DATA:
                chan, n = struct.unpack_from(">II", b, 1)
                key = (conn_no, chan)
                if key not in self.channel_data:
                    self.channel_data[key] = b""
                    self.channel_order.append(key)
                self.channel_data[key] += b[9:9 + n]

    def _pump(self, a, conn_no):
        u = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            u.connect(self.upstream)
        except OSError:
            a.close()
            return
        client, first = "?", True
        try:
            while True:
                r, _, _ = select.select([a, u, self.stop_r], [], [])
                if self.stop_r in r:
                    break
                if a in r:
                    b = a.recv(BUF)
                    if not b:
                        break
                    if first:
                        client, first = GUIDS.get(b[:16], "?"), False
                    else:
                        self._record(client, conn_no, b)
                    u.send(b)
                if u in r:
                    b = u.recv(BUF)
                    if not b:
                        break
                    a.send(b)
        except OSError:
            pass
        finally:
            a.close()
            u.close()

    def wsman_calls(self):
        """The WS-Man requests the host sent, in order: [(authenticated, "Class.Method")]."""
        out = []
        with self.lock:
            streams = [self.channel_data[k] for k in self.channel_order]
        for data in streams:
            text = data.decode("latin-1")
            for m in re.finditer(r"POST \S+ HTTP/1\.[01]\r\n(.*?)\r\n\r\n", text, re.S):
                headers = m.group(1)
                length = re.search(r"(?im)^content-length:\s*(\d+)", headers)
                body = text[m.end():m.end() + int(length.group(1))] if length else ""
                action = re.search(r"<(?:\w+:)?Action[^>]*>([^<]+)<", body)
                resource = re.search(r"<(?:\w+:)?ResourceURI[^>]*>([^<]+)<", body)
                method = action.group(1).rsplit("/", 1)[-1] if action else "?"
                cls = resource.group(1).rsplit("/", 1)[-1] if resource else "?"
                out.append(("authorization: digest" in headers.lower(), f"{cls}.{method}"))
        return out

    def close(self):
        os.write(self.stop_w, b"x")
        self.thread.join(timeout=5)
        for t in self.threads:
            t.join(timeout=5)
        self.sock.close()
        os.close(self.stop_r)
        os.close(self.stop_w)
