# SPDX-License-Identifier: Apache-2.0
"""A relay between the agent's unix: device and amtsim's --listen socket, for the scripts that
watch what the host sends: tests/bench/meitrace.py (messages and round trips per ME client) and
tests/robust/relay.py (which AMTHI request, which WS-Man call is the N-th).

Wire convention (tests/amtsim/amtsim.h): one SOCK_SEQPACKET connection is one MEI client
connection; the host's first packet is the 16-byte client GUID, the emulator's first answer the
12-byte connect reply; then every packet is one MEI message. The relay forwards packets unchanged
in both directions, one thread per connection, and shows every MEI message to a subclass's hooks.
"""

import os
import select
import socket
import struct
import threading

GUIDS = {
    # wire order (little-endian GUID) of the three ME clients (mei/mei.h)
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

BUF = 1 << 17


def amthi_name(b):
    """The name of the AMTHI request B (its command code at offset 4, little-endian)."""
    code = struct.unpack_from("<I", b, 4)[0]
    return AMTHI_NAMES.get(code, "0x%08X" % code)


class Conn:
    """One host connection: its number (0, 1, ... as accepted), the ME client it is for, and
    whether the emulator took it."""

    def __init__(self, index):
        self.index = index
        self.client = "?"
        self.connected = False


class Relay:
    """Listen on LISTEN_PATH and forward every connection to UPSTREAM. Subclasses set up what
    their hooks use before calling this __init__ (the relay serves from its end), and override:
      new_conn(index)               the Conn for a new connection (called in accept order)
      host_message(conn, b)         an MEI message from the host
      firmware_message(conn, b)     an MEI message from the emulator
    The message hooks run on the connection's own thread; self.lock is theirs to use."""

    def __init__(self, listen_path, upstream):
        self.listen_path = listen_path
        self.upstream = upstream
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if os.path.exists(listen_path):
            os.unlink(listen_path)
        self.sock.bind(listen_path)
        self.sock.listen(16)
        self.stop_r, self.stop_w = os.pipe()
        self.accepted = 0
        self.threads = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def new_conn(self, index):
        return Conn(index)

    def host_message(self, conn, b):
        pass

    def firmware_message(self, conn, b):
        pass

    def _accept(self):
        while True:
            r, _, _ = select.select([self.sock, self.stop_r], [], [])
            if self.stop_r in r:
                return
            a, _ = self.sock.accept()
            c = self.new_conn(self.accepted)
            self.accepted += 1
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
                        self.host_message(c, b)
                    u.sendall(b)
                if u in r:
                    b = u.recv(BUF)
                    if not b:
                        break
                    if first_in:
                        c.connected = len(b) >= 4 and struct.unpack_from("<I", b)[0] == 0
                        first_in = False
                    else:
                        self.firmware_message(c, b)
                    a.sendall(b)
        except OSError:
            pass
        finally:
            a.close()
            u.close()

    def close(self):
        os.write(self.stop_w, b"x")
        self.thread.join(timeout=5)
        for t in self.threads:
            t.join(timeout=5)
        self.sock.close()
        os.close(self.stop_r)
        os.close(self.stop_w)
        if os.path.exists(self.listen_path):
            os.unlink(self.listen_path)
