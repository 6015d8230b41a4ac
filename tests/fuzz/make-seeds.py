#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""make-seeds: real messages for the fuzz corpora (tests/fuzz/corpus/TARGET/).

    tests/fuzz/make-seeds.py BUILD_DIR [OUT_DIR]

BUILD_DIR is a built tree (meson setup BUILD && ninja -C BUILD): its amtsim and provserver.py
are run. OUT_DIR (default tests/fuzz/corpus) gets one directory per fuzz target; existing files
of the same name are replaced, nothing else is touched. What it writes:

  amthi     every AMTHI reply the emulator sends for each profile with an AMT (and the replies
            its faults make: not-ready, wrong-echo, oversize, truncate)
  watchdog  IsChangeToAMTEnabled and SetAmtOperationalState replies
  apf_session  a handshake and a channel, frames as the emulator sends them
  apf       every APF frame the emulator's LME side sends in a handshake, a channel with an
            HTTP exchange, a refused channel, an unknown global request and a protocol error;
            plus the host's own frames (they are APF too)
  wsman     tests/fixtures/wsman/*.xml
  maas_yaml provserver.py's cloud-config in both styles (block, maas) and the enlist variant
  sysfs     the profiles' fw_ver, fw_status and dev_state as the kernel prints them
  others    (cmdline, state, server_reply, proc_tcp, settings) are written by hand below

Standard library only. Deterministic except for what the emulator and server make random
(credentials in the cloud-config, nonces); run it again only to refresh the seeds.
"""
import glob
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GUID_AMTHI = uuid.UUID("12F80028-B4B7-4B2D-ACA8-46E0FF65814C").bytes_le
GUID_LME = uuid.UUID("6733A4DB-0476-4E7B-B3AF-BCFC29BEE7A7").bytes_le
GUID_WATCHDOG = uuid.UUID("05B79A6F-4628-4D7F-899D-A91514CB32AB").bytes_le

CMD = {
    "code_versions": 0x0400001A,
    "provisioning_state": 0x04000011,
    "control_mode": 0x0400006B,
    "uuid": 0x0400005C,
    "lan_settings": 0x04000048,
    "dns_suffix": 0x04000036,
    "remote_access": 0x04000046,
    "power_policy": 0x04000047,
    "hash_handles": 0x0400002C,
    "cert_hash": 0x0400002D,
    "local_account": 0x04000067,
    "mac_addresses": 0x04000025,
    "unprovision": 0x04000010,
    "start_configuration_hbased": 0x0400008B,
    "stop_configuration": 0x0400005E,
}


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


class Sim:
    """amtsim --listen on a temporary socket."""

    def __init__(self, build, profile, faults=()):
        self.dir = tempfile.mkdtemp(prefix="amt-seeds.")
        self.sock = os.path.join(self.dir, "sim.sock")
        args = [os.path.join(build, "tests", "amtsim", "amtsim"), "--profile", profile]
        for f in faults:
            args += ["--fault", f]
        self.proc = subprocess.Popen(args + ["--listen", self.sock])
        for _ in range(200):
            if os.path.exists(self.sock):
                return
            time.sleep(0.02)
        raise RuntimeError("amtsim did not listen")

    def connect(self, guid):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(self.sock)
        s.send(guid)
        reply = s.recv(64)
        err, max_len = struct.unpack_from("<II", reply)
        if err != 0:
            s.close()
            return None, 0
        return s, max_len

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def recv(s, timeout=2.0):
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except socket.timeout:
        return None
    return data if data else None


def amthi_request(command, payload=b""):
    return struct.pack("<BBHII", 1, 1, 0, command, len(payload)) + payload


def amthi_seeds(build, out, profile, tag, faults=(), only=None):
    """Every reply; with ONLY, just the ONLY-th (the one a fault spoiled)."""
    sim = Sim(build, profile, faults)
    try:
        s, _ = sim.connect(GUID_AMTHI)
        if s is None:
            return
        n = 0

        def ask(name, payload=b"", suffix=""):
            nonlocal n
            s.send(amthi_request(CMD[name], payload))
            data = recv(s)
            n += 1
            if data and (only is None or only == n):
                write(out, "amthi", "%s-%s%s.bin" % (tag, name.replace("_", "-"), suffix), data)
            return data

        ask("code_versions")
        ask("provisioning_state")
        ask("control_mode")
        ask("uuid")
        ask("lan_settings", struct.pack("<I", 0), "-wired")
        ask("lan_settings", struct.pack("<I", 1), "-wireless")
        ask("dns_suffix")
        ask("remote_access")
        ask("power_policy")
        handles = ask("hash_handles")
        if handles and len(handles) >= 20:
            count = struct.unpack_from("<I", handles, 16)[0]
            for i in range(min(count, 3)):
                h = struct.unpack_from("<I", handles, 20 + 4 * i)[0]
                ask("cert_hash", struct.pack("<I", h), "-%d" % i)
        ask("cert_hash", struct.pack("<I", 0xDEAD), "-bad-handle")
        ask("local_account", bytes(40))
        ask("mac_addresses")
        if not faults:
            # SHA-256 of a provisioning certificate, no VPN, one DNS suffix (rpc-go's layout)
            suffixes = b"example.com\0"
            ask("start_configuration_hbased", bytes([2]) + bytes(range(32)) + bytes(32) +
                bytes([0]) + struct.pack("<I", len(suffixes)) + suffixes.ljust(320, b"\0"))
            ask("stop_configuration")
            ask("unprovision", struct.pack("<I", 0))
        s.close()
    finally:
        sim.close()


def amthi_reply(command, payload, status=0):
    return struct.pack("<BBHIII", 1, 1, 0, command | 0x00800000, 4 + len(payload), status) + payload


def amthi_by_hand(out):
    """Successful StartConfigurationHBased replies (the emulator answers them only with a
    provisioning certificate AMT trusts): algorithm and hash, and rpc-go's variant with a
    leading status byte."""
    cmd = CMD["start_configuration_hbased"]
    digest = bytes(range(0x40, 0x40 + 48))
    write(out, "amthi", "hand-start-configuration-hbased-sha384.bin",
          amthi_reply(cmd, bytes([3]) + digest + bytes(16)))
    write(out, "amthi", "hand-start-configuration-hbased-lead-byte.bin",
          amthi_reply(cmd, bytes([0, 2]) + digest[:32] + bytes(32)))


def watchdog_seeds(build, out, profile, tag):
    sim = Sim(build, profile)
    try:
        s, _ = sim.connect(GUID_WATCHDOG)
        if s is None:
            return
        s.send(bytes([0x05, 0x02, 0x51, 0x10]))
        data = recv(s)
        if data:
            write(out, "watchdog", "%s-is-change-to-amt-enabled.bin" % tag, data)
        s.send(bytes([0x05, 0x03, 0x53, 0x10, 0x01]))
        data = recv(s, 0.5)
        if data:
            write(out, "watchdog", "%s-set-operational.bin" % tag, data)
        s.close()
    finally:
        sim.close()


# ---- APF, big-endian, strings with a u32 length ----

def astr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def apf_version(major=1, minor=0, trigger=254):
    return struct.pack(">BIII", 192, major, minor, trigger) + bytes(16) + bytes(64)


def apf_service(t, name):
    return bytes([t]) + astr(name)


def apf_success_port(port):
    return struct.pack(">BI", 81, port)


def apf_open(ctype, sender, window, addr, port, oaddr, oport):
    return (bytes([90]) + astr(ctype) + struct.pack(">III", sender, window, 0xFFFFFFFF) +
            astr(addr) + struct.pack(">I", port) + astr(oaddr) + struct.pack(">I", oport))


def apf_data(recipient, payload):
    return struct.pack(">BI", 94, recipient) + astr(payload)


def apf_close(recipient):
    return struct.pack(">BI", 97, recipient)


def apf_global(name, want, addr=None, port=None):
    m = bytes([80]) + astr(name) + bytes([1 if want else 0])
    if addr is not None:
        m += astr(addr) + struct.pack(">I", port)
    return m


class Frames:
    def __init__(self, out, tag):
        self.out, self.tag, self.seen = out, tag, {}

    def keep(self, data, what):
        k = self.seen.get(what, 0)
        self.seen[what] = k + 1
        if k < 2:
            write(self.out, "apf", "%s-fw-%s%s.bin" % (self.tag, what, "" if k == 0 else "-2"),
                  data)


NAMES = {1: "disconnect", 5: "service-request", 6: "service-accept", 80: "global-request",
         81: "request-success", 82: "request-failure", 90: "channel-open",
         91: "open-confirmation", 92: "open-failure", 93: "window-adjust", 94: "channel-data",
         97: "channel-close", 192: "protocol-version"}


def handshake(s, frames):
    """Answer the firmware until both forwards are agreed; returns the WS-Man port."""
    s.send(apf_version())
    ports = []
    while True:
        data = recv(s, 1.0)
        if data is None:
            break
        frames.keep(data, NAMES.get(data[0], "type-%d" % data[0]))
        if data[0] == 5:
            s.send(apf_service(6, data[5:]))
        elif data[0] == 80:
            nl = struct.unpack_from(">I", data, 1)[0]
            p = 1 + 4 + nl + 1
            al = struct.unpack_from(">I", data, p)[0]
            port = struct.unpack_from(">I", data, p + 4 + al)[0]
            ports.append(port)
            s.send(apf_success_port(port))
            if len(ports) == 2:
                break
    return 16993 if 16993 in ports else 16992


def apf_seeds(build, out, profile, tag):
    sim = Sim(build, profile)
    frames = Frames(out, tag)
    try:
        s, _ = sim.connect(GUID_LME)
        if s is None:
            return
        port = handshake(s, frames)
        # A channel with one HTTP exchange (answered 401: no credentials).
        s.send(apf_open("forwarded-tcpip", 7, 4096, "127.0.0.1", port, "127.0.0.1", 40000))
        data = recv(s)
        if data:
            frames.keep(data, NAMES.get(data[0], "x"))
        if data and data[0] == 91:
            fw_id = struct.unpack_from(">I", data, 5)[0]
            req = (b"POST /wsman HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                   b"application/soap+xml;charset=UTF-8\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n" % port)
            s.send(apf_data(fw_id, req))
            for _ in range(8):
                data = recv(s, 1.0)
                if data is None:
                    break
                frames.keep(data, NAMES.get(data[0], "x"))
                if data[0] == 97:
                    break
            s.send(apf_close(fw_id))
            data = recv(s, 0.5)
            if data:
                frames.keep(data, NAMES.get(data[0], "x"))
        # A channel to a port that is not forwarded, and an unknown global request.
        s.send(apf_global("keepalive@openssh.com", True))
        data = recv(s, 1.0)
        if data:
            frames.keep(data, NAMES.get(data[0], "x"))
        s.send(apf_open("direct-tcpip", 8, 4096, "127.0.0.1", 1234, "127.0.0.1", 40001))
        data = recv(s, 1.0)
        if data:
            frames.keep(data, NAMES.get(data[0], "x"))
        # A malformed frame: the firmware says DISCONNECT (protocol error).
        s.send(bytes([93, 0, 0]))
        data = recv(s, 1.0)
        if data:
            frames.keep(data, NAMES.get(data[0], "x"))
        s.close()
    finally:
        sim.close()


def apf_host_frames(out):
    """What the host sends, and messages the emulator never sends: all valid APF."""
    host = {
        "protocol-version": apf_version(),
        "protocol-version-2-0": apf_version(2, 0),
        "service-accept-pfwd": apf_service(6, "pfwd@amt.intel.com"),
        "service-request-auth": apf_service(5, "auth@amt.intel.com"),
        "userauth-request-password": bytes([50]) + astr("admin") + astr("pfwd@amt.intel.com") +
        astr("password") + bytes([0]) + astr("secret"),
        "userauth-request-none": bytes([50]) + astr("") + astr("pfwd@amt.intel.com") +
        astr("none"),
        "userauth-failure": bytes([51]) + astr("password") + bytes([0]),
        "userauth-success": bytes([52]),
        "request-success-port": apf_success_port(16992),
        "request-success-bare": bytes([81]),
        "request-failure": bytes([82]),
        "global-cancel-forward": apf_global("cancel-tcpip-forward", True, "127.0.0.1", 16992),
        "channel-open-direct": apf_open("direct-tcpip", 1, 4096, "127.0.0.1", 16992,
                                        "127.0.0.1", 50000),
        "channel-open-session": bytes([90]) + astr("session") + struct.pack(">III", 1, 4096, 0),
        "open-confirmation": struct.pack(">BIIII", 91, 3, 1, 4096, 0xFFFFFFFF),
        "open-failure": struct.pack(">BIIII", 92, 3, 4, 0, 0),
        "window-adjust": struct.pack(">BII", 93, 3, 4096),
        "channel-data-empty": apf_data(3, b""),
        "channel-close": apf_close(3),
        "disconnect-by-application": struct.pack(">BI", 1, 11) + bytes(2),
    }
    for name, data in host.items():
        write(out, "apf", "host-%s.bin" % name, data)


def apf_session_seeds(out, seeds):
    """Inputs of fuzz_apf_session: max_msg_length and window selectors, then u16-length frames,
    as the emulator's LME side sends them to a host whose first channel is number 1."""
    def frames(*msgs, sel=0, win=0):
        return bytes([sel, win]) + b"".join(struct.pack(">H", len(m)) + m for m in msgs)

    def fw(name):
        path = os.path.join(seeds, "apf", "amt11-pre-fw-%s.bin" % name)
        return open(path, "rb").read() if os.path.exists(path) else None

    version = fw("protocol-version") or apf_version()
    pfwd = fw("service-request") or apf_service(5, "pfwd@amt.intel.com")
    fwd = [apf_global("tcpip-forward", True, "127.0.0.1", 16992),
           apf_global("tcpip-forward", True, "127.0.0.1", 623)]
    hs = [version, pfwd] + fwd
    http = fw("channel-data")
    body = http[9:] if http else b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
    confirm = struct.pack(">BIIII", 91, 1, 0, 4096, 0xFFFFFFFF)
    cases = {
        "handshake": frames(*hs),
        "channel-http-401": frames(*hs, confirm, struct.pack(">BII", 93, 1, 4096),
                                   apf_data(1, body), apf_close(1)),
        "channel-refused": frames(*hs, struct.pack(">BIIII", 92, 1, 2, 0, 0)),
        "channel-window-1": frames(*hs, struct.pack(">BIIII", 91, 1, 0, 1, 0xFFFFFFFF),
                                   struct.pack(">BII", 93, 1, 1), apf_data(1, body[:1]),
                                   apf_close(1), win=1),
        "disconnect-in-channel": frames(*hs, confirm, struct.pack(">BI", 1, 10) + bytes(2)),
        "tls-ports": frames(version, pfwd, apf_global("tcpip-forward", True, "127.0.0.1", 16993),
                            apf_global("tcpip-forward", True, "127.0.0.1", 664)),
        "version-2": frames(apf_version(2, 0), pfwd),
        "small-max-msg": frames(*hs, sel=3),
        "extras": frames(version, apf_service(5, "auth@amt.intel.com"),
                         bytes([50]) + astr("") + astr("pfwd@amt.intel.com") + astr("none"),
                         pfwd, apf_global("keepalive@openssh.com", True), *fwd,
                         apf_global("cancel-tcpip-forward", True, "127.0.0.1", 623),
                         apf_open("forwarded-tcpip", 5, 4096, "127.0.0.1", 16992, "1.2.3.4", 1)),
    }
    for name, data in cases.items():
        write(out, "apf_session", name + ".bin", data)


# ---- sysfs: three attribute files in one input (see fuzz_sysfs.c for the layout) ----

def sysfs_input(dev_state, fw_ver, fw_status):
    parts = [dev_state, fw_ver, fw_status]
    mask = sum(1 << i for i, p in enumerate(parts) if p is not None)
    return bytes([mask]) + b"\0".join((p or "").encode() for p in parts)


def sysfs_seeds(out):
    for path in sorted(glob.glob(os.path.join(SRC, "tests", "amtsim", "profiles", "*.json"))):
        prof = json.load(open(path))
        fs = prof.get("sysfs", {})
        tag = os.path.basename(path)[:-5]
        fw_ver = "".join(v + "\n" for v in fs.get("fw_ver", [])) or None
        fw_status = "".join(v + "\n" for v in fs.get("fw_status", [])) or None
        write(out, "sysfs", tag + ".bin", sysfs_input("ENABLED", fw_ver, fw_status))
    write(out, "sysfs", "initializing.bin", sysfs_input("INITIALIZING\n", None, None))
    write(out, "sysfs", "no-files.bin", sysfs_input(None, None, None))


# ---- provserver's cloud-config ----

def maas_yaml_seeds(out):
    server = os.path.join(SRC, "tests", "server", "provserver.py")
    for style in ("block", "maas"):
        d = tempfile.mkdtemp(prefix="amt-seeds.")
        creds = os.path.join(d, "creds.yaml")
        p = subprocess.Popen(["/usr/bin/python3", server, "--maas-creds-out", creds,
                              "--maas-creds-style", style], stdout=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            url = line.rsplit(" ", 1)[-1].strip()
            write(out, "maas_yaml", "provserver-%s.yaml" % style, open(creds, "rb").read())
            with urllib.request.urlopen(url + "/cloud-config/enlist") as r:
                write(out, "maas_yaml", "provserver-%s-enlist.yaml" % style, r.read())
        finally:
            p.terminate()
            p.wait(timeout=10)
            shutil.rmtree(d, ignore_errors=True)
    # The file cloud-init writes from a kernel command line's cloud-config-url (flat variant).
    write(out, "maas_yaml", "flat.yaml",
          "metadata_url: http://10.0.0.1:5248/MAAS/metadata/\nconsumer_key: Xh2a\n"
          "token_key: 7nS9\ntoken_secret: q8Zk\n")


def by_hand(out):
    cmdlines = {
        "maas-commissioning": "BOOT_IMAGE=/casper/vmlinuz root=squash:http://10.0.0.1:5248/"
        "images/ubuntu/amd64/ga-22.04/jammy/stable/squashfs ip=::::maas-node:BOOTIF "
        "ip6=off overlayroot=tmpfs overlayroot_cfgdisk=disabled cc:{'datasource_list': "
        "['MAAS']}end_cc cloud-config-url=http://10.0.0.1:5248/MAAS/metadata/latest/"
        "by-id/abc123/?op=get_preseed apparmor=0 log_host=10.0.0.1 log_port=5247 "
        "BOOTIF=01-3c-fd-fe-d6-57-18\n",
        "quoted": 'quiet "cloud-config-url=http://10.0.0.1/a b" BOOTIF="01-AA-BB-CC-DD-EE-FF"',
        "repeated": "cloud-config-url=http://a/ cloud-config-url=https://b:8443/x?y#z",
        "empty-values": "cloud-config-url= BOOTIF=",
    }
    for name, text in cmdlines.items():
        write(out, "cmdline", name + ".txt", text)
    rec_uuid = "6c3fcf6e-fdee-41bf-8caf-5d4920d19618"
    write(out, "state", "pending.json", json.dumps(
        {"uuid": rec_uuid, "user": "admin", "password": "P4ss-w0rd!x", "status": "pending"},
        indent=2))
    write(out, "state", "activated.json", json.dumps(
        {"uuid": rec_uuid, "user": "admin", "password": "P4ss-w0rd!x", "status": "activated"}))
    replies = {
        "provserver-400.json": '{"error": "power_parameters.port must be \\"16992\\" or '
        '\\"16993\\""}',
        "message.json": '{"result": "refused", "message": "node is deployed"}',
        "maas-401.txt": "Authorization Error: 'Expired timestamp: given 1700000000 and now "
        "1700000900 has a greater difference than threshold 300'",
        "html-502.html": "\r\n<html><head><title>502 Bad Gateway</title></head>\n<body>"
        "</body></html>\n",
        "retry-after-date.txt": "Wed, 21 Oct 2015 07:28:00 GMT",
        "retry-after-seconds.txt": "120",
    }
    for name, text in replies.items():
        write(out, "server_reply", name, text)
    tcp = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
           "  timeout inode\n"
           "   0: 0100007F:4220 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
           "        0 12345 1 0000000000000000 100 0 0 10 0\n"
           "   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
           "        0 2345 1 0000000000000000 100 0 0 10 0\n")
    tcp6 = ("  sl  local_address                         remote_address                        "
            "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            "   0: 00000000000000000000000000000000:4220 00000000000000000000000000000000:0000 "
            "0A 00000000:00000000 00:00000000 00000000  1000        0 3456 1 0000000000000000 "
            "100 0 0 10 0\n")
    write(out, "settings", "typical.conf",
          "# /etc/amt-enlist.conf\nserver = https://maas.example.com:5443/enlist\n"
          "cacert = /etc/ssl/certs/maas-ca.pem\ndeadline = 600\nno-amt-ok = yes\n"
          "maas = yes\nstate-dir = \"/var/lib/amt-enlist\"\r\n\n  # indented comment\n"
          "bmc-config=/tmp/bmc-config.yaml\n")
    write(out, "settings", "all.conf", "".join(
        "%s = %s\n" % kv for kv in [
            ("device", "unix:/run/amtsim.sock"), ("json", "true"), ("ready-timeout", "20"),
            ("me-timeout", "10"), ("lms-port", "16992"), ("sysfs-root", "/sys"),
            ("insecure", "no"), ("report-unknown", "1"), ("password-file", "/root/amt.pw"),
            ("reprovision", "false"), ("show-password", "0"), ("amt-ca", "/etc/amt-ca.pem"),
            ("verbose", "yes"), ("quiet", "no")]))
    write(out, "settings", "bad-quotes.conf", 'server = "https://a/\n')
    write(out, "settings", "bad-key.conf", "token_secret = s3cr3t-value-here\n")
    write(out, "proc_tcp", "lms-root.bin", tcp + "\0")
    write(out, "proc_tcp", "lms-root-and-user-v6.bin", tcp + "\0" + tcp6)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(SRC, "tests", "fuzz", "corpus")
    profiles = os.path.join(SRC, "tests", "amtsim", "profiles")
    for name in ("amt11-pre", "amt16-ccm", "amt19-tls"):
        amthi_seeds(build, out, os.path.join(profiles, name + ".json"), name)
        watchdog_seeds(build, out, os.path.join(profiles, name + ".json"), name)
        apf_seeds(build, out, os.path.join(profiles, name + ".json"), name)
    for fault, n in (("not-ready=1", 1), ("wrong-echo@1", 1), ("oversize@2", 2),
                     ("truncate@3", 3)):
        amthi_seeds(build, out, os.path.join(profiles, "amt16-ccm.json"),
                    "fault-" + fault.split("=")[0].split("@")[0], [fault], n)
    amthi_by_hand(out)
    apf_host_frames(out)
    apf_session_seeds(out, out)
    for path in sorted(glob.glob(os.path.join(SRC, "tests", "fixtures", "wsman", "*.xml"))):
        write(out, "wsman", os.path.basename(path), open(path, "rb").read())
    sysfs_seeds(out)
    maas_yaml_seeds(out)
    by_hand(out)


if __name__ == "__main__":
    main()
