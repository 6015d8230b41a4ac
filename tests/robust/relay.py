#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A recording relay between the agent's unix: device and amtsim's --listen socket.

The fault matrix needs to know which AMTHI request is the N-th of a run (amtsim's reset@N,
no-reply@N, ... count AMTHI requests) and which WS-Man call is the N-th authenticated one
(lme-disconnect@N). amtsim's --stats only counts them; this relay sees them in order.

The relay itself, and the wire convention, are tests/helpers/meirelay.py's. AMTHI requests carry
their command code at offset 4 (little-endian). LME messages are APF: CHANNEL_DATA (94) is
u8 type, u32 recipient channel, u32 length, data; the data host -> firmware is HTTP (plain on
profiles without TLS on local ports).
"""

import os
import re
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import meirelay  # noqa: E402  (tests/helpers/meirelay.py)

APF_CHANNEL_OPEN = 90
APF_CHANNEL_DATA = 94


class Relay(meirelay.Relay):
    """Listen on LISTEN_PATH, forward every connection to UPSTREAM, record what the host sent."""

    def __init__(self, listen_path, upstream):
        self.amthi = []          # AMTHI request names, in the order the host sent them
        self.channel_data = {}   # LME channel key -> bytes the host sent on it
        self.channel_order = []  # channel keys in the order they were first used
        super().__init__(listen_path, upstream)

    def host_message(self, conn, b):
        with self.lock:
            if conn.client == "amthi" and len(b) >= 8:
                self.amthi.append(meirelay.amthi_name(b))
            elif conn.client == "lme" and len(b) >= 9 and b[0] == APF_CHANNEL_DATA:
                chan, n = struct.unpack_from(">II", b, 1)
                key = (conn.index, chan)
                if key not in self.channel_data:
                    self.channel_data[key] = b""
                    self.channel_order.append(key)
                self.channel_data[key] += b[9:9 + n]

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
