#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""meitrace: a tracing relay between the agent's unix: device and amtsim's --listen socket.

One SOCK_SEQPACKET connection is one MEI client connection (tests/amtsim/amtsim.h): the client's
first message is the 16-byte client GUID, the server's first answer the 12-byte connect reply,
then every packet is one MEI message. The relay (tests/helpers/meirelay.py) forwards packets
unchanged in both directions; this one keeps, per connection, the client's name and every message
with its direction, so the benchmark can count connects and messages per client and find requests
sent twice with identical bytes.

Used by tests/bench/bench.py for the round-trip section only (the relay adds a hop; timing
sections talk to amtsim directly).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import meirelay  # noqa: E402  (tests/helpers/meirelay.py)

APF_NAMES = {
    1: "DISCONNECT", 5: "SERVICE_REQUEST", 6: "SERVICE_ACCEPT", 50: "USERAUTH_REQUEST",
    51: "USERAUTH_FAILURE", 52: "USERAUTH_SUCCESS", 80: "GLOBAL_REQUEST", 81: "REQUEST_SUCCESS",
    82: "REQUEST_FAILURE", 90: "CHANNEL_OPEN", 91: "CHANNEL_OPEN_CONFIRMATION",
    92: "CHANNEL_OPEN_FAILURE", 93: "CHANNEL_WINDOW_ADJUST", 94: "CHANNEL_DATA",
    97: "CHANNEL_CLOSE", 192: "PROTOCOL_VERSION",
}


class Conn(meirelay.Conn):
    def __init__(self, index):
        super().__init__(index)
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
        return meirelay.amthi_name(b)
    if client == "watchdog" and b:
        return "WDT cmd 0x%02X" % b[0]
    return "%d bytes" % len(b)


class Relay(meirelay.Relay):
    def __init__(self, listen_path, upstream_path):
        self.conns = []
        super().__init__(listen_path, upstream_path)

    def new_conn(self, index):
        c = Conn(index)
        with self.lock:
            self.conns.append(c)
        return c

    def host_message(self, conn, b):
        conn.msgs.append((time.monotonic(), "out", b))

    def firmware_message(self, conn, b):
        conn.msgs.append((time.monotonic(), "in", b))

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
