#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The benchmark of amt-enlist: the unchanged agent against the firmware emulator (amtsim) and the
test provisioning server (provserver.py). It prints figures in one table; it is not a timed test
and passes or fails nothing (the exit code is 0 unless the benchmark itself could not run).

Sections (--sections, comma-separated; default all):
  rt        round trips: connects and messages per ME client (AMTHI, LME, watchdog) for `info`
            and for a full `enlist` (unprovisioned -> CCM -> posted), requests sent twice with
            identical bytes, and what a connect-per-command design needs for the same facts.
            Traced by a relay (meitrace.py) between the agent and amtsim, cross-checked with
            amtsim's own counters.
  overhead  wall time of `info` and `enlist` against the firmware time amtsim reports, with the
            per-message latency at 0, 5 and 20 ms (--latencies) and settle=1500 ms; median of
            --repeat runs. With it, the fixed cost of starting the agent (`--version`) and the
            emulator's own cost per message (an ideal client's round trip minus the latency),
            so the agent's residual can be told apart.
  cpu       instructions (valgrind --tool=callgrind) and user+system time for info and enlist at
            0 ms latency.
  footprint stripped agent size, peak RSS (wait4's ru_maxrss) of info and enlist, its private
            part (Private_Dirty + anonymous, from /proc/self/smaps at exit, when a C compiler is
            there), and the size of what an initramfs hook copies: the agent plus its library
            closure by ldd (bytes, and gzip -9 of them as an initramfs would compress them).
  fleet     N emulated machines (N amtsim processes, profiles generated from amt11-pre with
            distinct UUID, MACs and IPv4 from the documentation ranges) and N agents started at
            once against provserver limited to C requests/s (429 + Retry-After above it):
            enlisted / N, lost, duplicates after dedup by UUID, the server's peak request rate
            (all requests and accepted ones) against C after the first second, completion time
            against N / C; and provserver --self-test (its own capacity).

Usage: bench.py --agent PATH --amtsim PATH [--sections ...] [--fleet-n 200] [--fleet-c 20]
                [--repeat 5] [--workdir DIR] [--json FILE]
The work directory must not be on tmpfs (the agent refuses to activate without a durable state
directory): by default a fresh directory under the current directory (scripts/bench runs it in
the build tree).
"""

import argparse
import collections
import gzip
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PROFILES = os.path.join(ROOT, "tests", "amtsim", "profiles")
PROVSERVER = os.path.join(ROOT, "tests", "server", "provserver.py")
PYTHON = "/usr/bin/python3"
SETTLE_MS = 1500  # the profile default: how long "in" lasts after Unprovision, as on real AMT

sys.path.insert(0, HERE)
import meitrace  # noqa: E402


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- processes

class Sim:
    """One amtsim --listen process."""

    def __init__(self, amtsim, profile, sock, stats=None, state=None, faults=(), stderr=None):
        cmd = [amtsim, "--profile", profile]
        if stats:
            cmd += ["--stats", stats]
        if state:
            cmd += ["--state", state]
        for f in faults:
            cmd += ["--fault", f]
        cmd += ["--listen", sock]
        self.sock, self.stats = sock, stats
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=stderr or subprocess.DEVNULL, text=True)

    def wait_ready(self):
        line = self.proc.stdout.readline()
        if "listening" not in line:
            self.proc.kill()
            raise RuntimeError("amtsim did not start: %r" % line)
        return self

    def stop(self):
        """SIGTERM, then reap; self.cpu is the emulator's user+system seconds (or None)."""
        self.cpu = None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while True:
                pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    self.cpu = ru.ru_utime + ru.ru_stime
                    break
                if time.monotonic() > deadline:
                    self.proc.kill()
                    self.proc.wait()
                    break
                time.sleep(0.002)
        self.proc.stdout.close()

    def read_stats(self):
        with open(self.stats) as f:
            return json.load(f)


class Server:
    """provserver.py on 127.0.0.1, any port."""

    def __init__(self, faults=(), args=()):
        cmd = [PYTHON, PROVSERVER, "--port", "0", "--log-limit", "1000000"] + list(args)
        for f in faults:
            cmd += ["--fault", f]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("provserver did not start: %r" % line)
        self.url = m.group(1)

    def control(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def accept_queue(port):
    """Connections waiting in the accept queue of the TCP listener on 127.0.0.1:PORT."""
    with open("/proc/net/tcp") as f:
        for line in f:
            x = line.split()
            if len(x) > 4 and x[1].endswith(":%04X" % port) and x[3] == "0A":
                return int(x[4].split(":")[1], 16)
    return 0


class Run:
    """One finished agent run: exit code, wall seconds, resource usage, output."""

    def __init__(self, rc, wall, ru, out, err):
        self.rc, self.wall, self.ru, self.out, self.err = rc, wall, ru, out, err

    @property
    def cpu(self):
        return self.ru.ru_utime + self.ru.ru_stime


def run_agent(cmd, env=None, timeout=120):
    """Run CMD; wall time from fork to reaped exit; rusage of that child alone (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.0005)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(p.returncode, wall, ru, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"))


def run_agent_blocking(cmd, env=None):
    """As run_agent, but blocking in wait4 (no polling loop: for precise wall times)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(p.returncode, wall, ru, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"))


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.a = args
        self.agent = os.path.abspath(args.agent)
        self.amtsim = os.path.abspath(args.amtsim)
        self.work = args.workdir
        self.rows = []       # (section, measure, value, target, verdict)
        self.data = {}       # everything measured, for --json
        self.seq = 0

    # -- helpers --

    def row(self, section, measure, value, target="", verdict=""):
        self.rows.append((section, measure, value, target, verdict))

    def fresh_dir(self, name):
        self.seq += 1
        d = os.path.join(self.work, "%s-%03d" % (name, self.seq))
        os.makedirs(d)
        return d

    def profile(self, name="amt11-pre"):
        return os.path.join(PROFILES, name + ".json")

    def info_cmd(self, sock):
        return [self.agent, "--device", "unix:" + sock, "info", "--json"]

    def enlist_cmd(self, sock, url, state_dir):
        return [self.agent, "--device", "unix:" + sock, "enlist", "--server", url + "/enlist",
                "--state-dir", state_dir, "--json"]

    def one(self, kind, faults=(), server=None, trace=False, env=None, wrap=(), blocking=True):
        """One agent run of KIND (info | enlist) against a fresh machine. Returns (run, stats,
        relay summary or None)."""
        d = self.fresh_dir(kind)
        sock, stats = os.path.join(d, "mei.sock"), os.path.join(d, "stats.json")
        sim = Sim(self.amtsim, self.profile(), sock, stats=stats,
                  state=os.path.join(d, "machine.json"), faults=faults).wait_ready()
        relay = None
        dev = sock
        if trace:
            dev = os.path.join(d, "trace.sock")
            relay = meitrace.Relay(dev, sock)
        try:
            if kind == "info":
                cmd = self.info_cmd(dev)
            else:
                cmd = self.enlist_cmd(dev, server.url, os.path.join(d, "state"))
            cmd = list(wrap) + cmd
            r = (run_agent_blocking if blocking else run_agent)(cmd, env=env)
        finally:
            if relay:
                time.sleep(0.05)
                relay.close()
            sim.stop()
        st = sim.read_stats()
        r.sim_cpu = sim.cpu
        if r.rc != 0:
            raise RuntimeError("%s exited %d: %s" % (kind, r.rc, r.err.strip()[-400:]))
        if kind == "enlist" and st["machine"]["control_mode"] != "ccm":
            raise RuntimeError("enlist did not leave the machine in CCM: %s" % st["machine"])
        return r, st, relay.summary() if relay else None

    # -- 1. round trips --

    def section_rt(self):
        srv = Server(args=["--record-interval", "1"])
        try:
            res = {}
            for kind in ("info", "enlist"):
                r, st, tr = self.one(kind, server=srv, trace=True)
                res[kind] = (st, tr)
        finally:
            srv.stop()
        out = {}
        for kind, (st, tr) in res.items():
            kout = {}
            for client in ("amthi", "lme", "watchdog"):
                t = tr.get(client, {"connects": 0, "refused": 0, "messages": 0, "labels": {},
                                    "repeats": []})
                s = st["clients"][client]
                if (t["connects"], t["messages"]) != (s["connects"], s["messages"]):
                    log("warning: relay and amtsim disagree for %s %s: %s vs %s" %
                        (kind, client, (t["connects"], t["messages"]),
                         (s["connects"], s["messages"])))
                c = {"connects": s["connects"], "refused": s["refused"],
                     "messages": s["messages"], "labels": t["labels"],
                     "repeats": t["repeats"], "rereads": t.get("rereads", [])}
                # A connect-per-command design: AMTHI and watchdog connect once per command;
                # LME: one LME connection (and APF handshake) per WS-Man HTTP request.
                if client in ("amthi", "watchdog"):
                    c["cpc_connects"] = s["messages"]
                    c["cpc_messages"] = s["messages"]
                else:
                    chans = s.get("channels", 0)
                    hs = sum(n for lab, n in t["labels"].items()
                             if not lab.startswith("APF CHANNEL"))
                    c["handshake_messages"] = hs
                    c["channels"] = chans
                    c["cpc_connects"] = chans
                    c["cpc_messages"] = s["messages"] + max(chans - 1, 0) * hs
                kout[client] = c
            kout["wsman"] = st["wsman"]
            out[kind] = kout
        self.data["rt"] = out
        for kind in ("info", "enlist"):
            k = out[kind]
            tot_c = sum(k[c]["connects"] for c in ("amthi", "lme", "watchdog"))
            tot_m = sum(k[c]["messages"] for c in ("amthi", "lme", "watchdog"))
            cpc_c = sum(k[c]["cpc_connects"] for c in ("amthi", "lme", "watchdog"))
            cpc_m = sum(k[c]["cpc_messages"] for c in ("amthi", "lme", "watchdog"))
            one_each = all(k[c]["connects"] <= 1 for c in ("amthi", "lme", "watchdog"))
            for c in ("amthi", "lme", "watchdog"):
                reps = ", ".join("%s x%d" % (lab, n) for lab, n in k[c]["repeats"]) or "none"
                if k[c]["rereads"]:
                    reps += "; re-read after a state change: " + ", ".join(
                        "%s x%d" % (lab, n) for lab, n in k[c]["rereads"])
                extra = ""
                if c == "lme" and k[c]["connects"]:
                    w = k["wsman"]
                    extra = "; APF channels %d, WS-Man HTTP %d (%d x 401, %s)" % (
                        k[c]["channels"], w["requests"], w["unauthorized"],
                        ", ".join("%s %d" % (m, w[m]) for m in sorted(w)
                                  if m not in ("requests", "authenticated", "unauthorized",
                                               "faults")))
                self.row("1 round trips", "%s %s: connects / messages" % (kind, c),
                         "%d / %d (repeated: %s%s)" % (k[c]["connects"], k[c]["messages"], reps,
                                                       extra),
                         "1 connect, no repeat",
                         "met" if k[c]["connects"] <= 1 and not k[c]["repeats"] else
                         "MISSED")
            self.row("1 round trips", "%s total: connects + host messages" % kind,
                     "%d + %d = %d" % (tot_c, tot_m, tot_c + tot_m), "",
                     "met (1 connect/client)" if one_each else "MISSED")
            self.row("1 round trips", "%s, connect-per-command design" % kind,
                     "%d + %d = %d (%.1fx)" % (cpc_c, cpc_m, cpc_c + cpc_m,
                                               (cpc_c + cpc_m) / (tot_c + tot_m)),
                     "comparison", "")

    # -- 2. overhead --

    def calibrate_start(self, n):
        walls = [run_agent_blocking([self.agent, "--version"]).wall for _ in range(n)]
        return median(walls)

    def idle_sim_cpu(self, n):
        """The emulator's CPU for starting and stopping with no client (ms, median)."""
        cpus = []
        for _ in range(n):
            d = self.fresh_dir("idle")
            sim = Sim(self.amtsim, self.profile(), os.path.join(d, "mei.sock"),
                      stats=os.path.join(d, "stats.json"),
                      state=os.path.join(d, "machine.json")).wait_ready()
            sim.stop()
            if sim.cpu is not None:
                cpus.append(sim.cpu * 1000)
        return median(cpus)

    def calibrate_sim(self, latency, n=40):
        """An ideal client's round trip on amtsim (GetUUID over AMTHI) minus the latency: what
        the emulator itself adds per message (thread wake-ups, sleep overshoot)."""
        d = self.fresh_dir("cal")
        sock = os.path.join(d, "mei.sock")
        sim = Sim(self.amtsim, self.profile(), sock, faults=["latency=%d" % latency]).wait_ready()
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(sock)
            s.send(bytes.fromhex("2800f812b7b42d4baca846e0ff65814c"))
            s.recv(64)
            req = struct.pack("<BBHII", 1, 1, 0, 0x0400005C, 0)
            rtts = []
            for _ in range(n):
                t0 = time.perf_counter()
                s.send(req)
                s.recv(8192)
                rtts.append(time.perf_counter() - t0)
            s.close()
        finally:
            sim.stop()
        return median(rtts) * 1000 - latency

    def section_overhead(self):
        lats = self.a.latencies
        n = self.a.repeat
        srv = Server(args=["--record-interval", "1"])
        out = {"start_ms": self.calibrate_start(max(n, 10)) * 1000, "runs": {}, "sim": {},
               "sim_idle_cpu_ms": self.idle_sim_cpu(n)}
        try:
            for lat in lats:
                out["sim"][lat] = self.calibrate_sim(lat)
                for kind in ("info", "enlist"):
                    walls, fws, msgs, cpus, simcpus = [], [], [], [], []
                    for _ in range(n):
                        r, st, _ = self.one(kind, faults=["latency=%d" % lat,
                                                          "settle=%d" % SETTLE_MS], server=srv)
                        walls.append(r.wall * 1000)
                        if r.sim_cpu is not None:
                            simcpus.append(r.sim_cpu * 1000)
                        fws.append(st["firmware_ms"])
                        msgs.append(sum(c["messages"] for c in st["clients"].values()))
                        cpus.append(r.cpu * 1000)
                    out["runs"]["%s@%d" % (kind, lat)] = {
                        "wall_ms": walls, "firmware_ms": fws, "messages": msgs,
                        "cpu_ms": cpus, "sim_cpu_ms": simcpus}
        finally:
            srv.stop()
        out["sleeps"] = self.count_sleeps()
        self.data["overhead"] = out
        if out["sleeps"]:
            self.row("2 overhead", "sleep calls on the happy path @ 0 ms (strace -f)",
                     "; ".join("%s: %d (%s)" % (k, v["count"], v["calls"] or "none")
                               for k, v in out["sleeps"].items()),
                     "no fixed sleep", "met" if all(v["count"] == 0
                                                    for v in out["sleeps"].values())
                     else "MISSED")
        self.row("2 overhead", "agent start (--version: exec, 41 shared libraries, libcurl "
                 "init), median", "%.1f ms" % out["start_ms"], "", "")
        for lat in lats:
            for kind in ("info", "enlist"):
                x = out["runs"]["%s@%d" % (kind, lat)]
                fw = median(x["firmware_ms"])
                best, med = min(x["wall_ms"]), median(x["wall_ms"])
                m = median(x["messages"])
                simcost = out["sim"][lat] * m
                # Best of N: the machine's other load only ever adds time, so the shortest run
                # is the closest to the agent's own cost; the median is shown beside it.
                ratio = best / fw if fw else float("nan")
                if lat == 0:
                    target, ok = "own < 50 ms", best - fw < 50
                elif lat == 20:
                    target, ok = "wall/fw <= 1.05", ratio <= 1.05
                else:
                    target, ok = "", None
                self.row("2 overhead",
                         "%s @ %d ms/msg: wall / firmware (ratio); own = wall - firmware" % (
                             kind, lat),
                         "best of %d: %.0f / %.0f ms (%s), own %.0f ms; median %.0f ms (%s), "
                         "own %.0f ms; ~%.0f ms of own is the emulator's per-message cost (%d "
                         "msgs)" % (n, best, fw, "%.3f" % ratio if fw else "-", best - fw, med,
                                    "%.3f" % (med / fw) if fw else "-", med - fw, simcost, m),
                         target, "" if ok is None else ("met" if ok else "MISSED"))
            self.row("2 overhead", "emulator's own cost per message @ %d ms (ideal client)" % lat,
                     "%.2f ms" % out["sim"][lat], "", "")
            if lat == 0:
                for kind in ("info", "enlist"):
                    x = out["runs"]["%s@0" % kind]
                    a = min(x["cpu_ms"])
                    s = max(min(x["sim_cpu_ms"]) - out["sim_idle_cpu_ms"], 0) \
                        if x["sim_cpu_ms"] else float("nan")
                    out["critical_cpu_ms_%s" % kind] = a + s
                    self.row("2 overhead", "%s @ 0 ms: CPU on the critical path (load-"
                             "independent estimate of own time)" % kind,
                             "agent %.1f ms + emulator %.1f ms = %.1f ms (least of %d)" % (
                                 a, s, a + s, n), "own < 50 ms",
                             "met" if a + s < 50 else "MISSED")
            elif "critical_cpu_ms_info" in out:
                for kind in ("info", "enlist"):
                    x = out["runs"]["%s@%d" % (kind, lat)]
                    fw = median(x["firmware_ms"])
                    est = fw + out["sim"][lat] * median(x["messages"]) + \
                        out["critical_cpu_ms_%s" % kind]
                    self.row("2 overhead", "%s @ %d ms: wall / firmware estimated from CPU "
                             "(firmware + emulator per-msg cost + CPU critical path @ 0 ms)" % (
                                 kind, lat), "%.0f / %.0f ms (%.3f)" % (est, fw, est / fw),
                             "wall/fw <= 1.05" if lat == 20 else "",
                             ("met" if est / fw <= 1.05 else "MISSED") if lat == 20 else "")

    def count_sleeps(self):
        """nanosleep/clock_nanosleep calls of info and enlist at 0 ms (None without strace)."""
        if not shutil.which("strace"):
            return None
        srv = Server(args=["--record-interval", "1"])
        out = {}
        try:
            for kind in ("info", "enlist"):
                d = self.fresh_dir("strace")
                log_path = os.path.join(d, "strace.txt")
                self.one(kind, server=srv, wrap=[
                    "strace", "-f", "-qq", "-o", log_path, "-e",
                    "trace=nanosleep,clock_nanosleep,select,pselect6"])
                calls = collections.Counter()
                with open(log_path) as f:
                    for line in f:
                        m = re.search(r"(nanosleep|clock_nanosleep|select|pselect6)\((.*)", line)
                        if m and not ("NULL" in m.group(2).split(",")[-1] and
                                      m.group(1) in ("select", "pselect6")):
                            calls[m.group(1)] += 1
                out[kind] = {"count": sum(calls.values()),
                             "calls": ", ".join("%s x%d" % kv for kv in calls.items())}
        finally:
            srv.stop()
        return out

    # -- 3. cpu --

    def section_cpu(self):
        srv = Server(args=["--record-interval", "1"])
        out = {}
        try:
            for kind in ("info", "enlist"):
                d = self.fresh_dir("callgrind")
                cg = os.path.join(d, "callgrind.out")
                r, _, _ = self.one(kind, server=srv, wrap=[
                    "valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg,
                    "--trace-children=no"])
                ir = None
                with open(cg) as f:
                    for line in f:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            ir = int(line.split()[1])
                top = []
                try:
                    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", cg],
                                         capture_output=True, text=True, timeout=120).stdout
                    for line in ann.splitlines():
                        m = re.match(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$", line)
                        if m and "PROGRAM TOTALS" not in line:
                            top.append((int(m.group(1).replace(",", "")), m.group(3).strip()))
                        if len(top) >= 6:
                            break
                except (OSError, subprocess.TimeoutExpired):
                    pass
                times = [self.one(kind, server=srv)[0] for _ in range(self.a.repeat)]
                out[kind] = {"instructions": ir, "top": top,
                             "user_ms": median([t.ru.ru_utime * 1000 for t in times]),
                             "sys_ms": median([t.ru.ru_stime * 1000 for t in times]),
                             "cpu_min_ms": min(t.cpu * 1000 for t in times)}
            # the part of it that is starting the process (loading the library closure)
            d = self.fresh_dir("callgrind")
            cg = os.path.join(d, "callgrind.out")
            subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg,
                            self.agent, "--version"], capture_output=True)
            with open(cg) as f:
                for line in f:
                    if line.startswith("summary:") or line.startswith("totals:"):
                        out["version_instructions"] = int(line.split()[1])
            vt = [run_agent_blocking([self.agent, "--version"]) for _ in range(self.a.repeat)]
            out["version_user_ms"] = median([t.ru.ru_utime * 1000 for t in vt])
            out["version_sys_ms"] = median([t.ru.ru_stime * 1000 for t in vt])
        finally:
            srv.stop()
        self.data["cpu"] = out
        for kind in ("info", "enlist"):
            x = out[kind]
            self.row("3 cpu", "%s @ 0 ms: instructions (callgrind)" % kind,
                     "%.2f M (of which --version alone: %.2f M)" % (
                         x["instructions"] / 1e6, out["version_instructions"] / 1e6), "", "")
            self.row("3 cpu", "%s @ 0 ms: user + system (median of %d)" % (kind, self.a.repeat),
                     "%.1f + %.1f ms, least %.1f ms (--version: %.1f + %.1f ms)" % (
                         x["user_ms"], x["sys_ms"], x["cpu_min_ms"], out["version_user_ms"],
                         out["version_sys_ms"]), "", "")

    # -- 4. footprint --

    def smaps_preload(self):
        """A tiny preload library that copies /proc/self/smaps at exit (None without cc)."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            return None
        d = self.fresh_dir("smaps")
        src, so = os.path.join(HERE, "smaps_at_exit.c"), os.path.join(d, "smaps_at_exit.so")
        r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", so, src], capture_output=True)
        return so if r.returncode == 0 else None

    @staticmethod
    def smaps_figures(path):
        """(VmHWM, Private_Dirty summed, Rss summed) in kB, the helper's own mapping left out."""
        hwm, priv, rss = None, 0, 0
        skip = False
        with open(path) as f:
            for line in f:
                m = re.match(r"^VmHWM:\s+(\d+) kB", line)
                if m:
                    hwm = int(m.group(1))
                    continue
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    skip = "smaps_at_exit" in line
                    continue
                if skip:
                    continue
                m = re.match(r"^(Private_Dirty|Rss):\s+(\d+) kB", line)
                if m and m.group(1) == "Private_Dirty":
                    priv += int(m.group(2))
                elif m:
                    rss += int(m.group(2))
        return hwm, priv, rss

    def peak_rss(self, kind, srv, pre):
        """Peak RSS (kB) of one run, and its private part at exit (None when unknown)."""
        if pre:
            sm = os.path.join(self.fresh_dir("smaps"), "smaps.txt")
            env = dict(os.environ, LD_PRELOAD=pre, SMAPS_OUT=sm)
            if kind == "version":
                run_agent_blocking([self.agent, "--version"], env=env)
            else:
                self.one(kind, server=srv, env=env)
            hwm, priv, _ = self.smaps_figures(sm)
            return hwm, priv
        # GNU time forks the agent from its own small address space
        if os.path.exists("/usr/bin/time"):
            wrap = ["/usr/bin/time", "-f", "maxrss=%M"]
            if kind == "version":
                r = run_agent_blocking(wrap + [self.agent, "--version"])
            else:
                r = self.one(kind, server=srv, wrap=wrap)[0]
            m = re.search(r"maxrss=(\d+)", r.err)
            return (int(m.group(1)) if m else None), None
        return None, None

    def closure(self, binary):
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        files = [binary]
        for line in out.splitlines():
            m = re.search(r"(/\S+) \(0x", line)
            if m:
                files.append(os.path.realpath(m.group(1)))
        sizes = [(os.path.getsize(f), f) for f in files]
        comp = 0
        for _, f in sizes:
            with open(f, "rb") as fh:
                comp += len(gzip.compress(fh.read(), 9))
        return sizes, comp

    def section_footprint(self):
        d = self.fresh_dir("strip")
        stripped = os.path.join(d, "amt-enlist")
        shutil.copy(self.agent, stripped)
        subprocess.run(["strip", stripped], check=True)
        size = os.path.getsize(stripped)
        srv = Server(args=["--record-interval", "1"])
        pre = self.smaps_preload()
        out = {"stripped_bytes": size}
        try:
            for kind in ("version", "info", "enlist"):
                runs = [self.peak_rss(kind, srv, pre) for _ in range(self.a.repeat)]
                hwms = [h for h, _ in runs if h is not None]
                out[kind] = {"peak_rss_kb": max(hwms) if hwms else None, "runs_kb": hwms,
                             "private_dirty_kb": runs[0][1]}
        finally:
            srv.stop()
        sizes, comp = self.closure(stripped)
        out["closure_files"] = len(sizes)
        out["closure_bytes"] = sum(s for s, _ in sizes)
        out["closure_gzip_bytes"] = comp
        out["closure_largest"] = sorted(sizes, reverse=True)[:6]
        # the rest of what scripts/initramfs/hooks/amt-enlist adds: the CA bundle, mei modules
        extra = []
        ca = "/etc/ssl/certs/ca-certificates.crt"
        if os.path.exists(ca):
            extra.append(("CA bundle", os.path.getsize(os.path.realpath(ca))))
        mods = 0
        moddir = "/lib/modules/" + platform.release()
        if os.path.isdir(moddir):
            for dp, _, fs in os.walk(os.path.join(moddir, "kernel", "drivers", "misc", "mei")):
                for f in fs:
                    if re.match(r"^mei(-me)?\.ko", f):
                        mods += os.path.getsize(os.path.join(dp, f))
        extra.append(("mei modules", mods if mods else None))
        out["hook_extra"] = extra
        self.data["footprint"] = out
        self.row("4 footprint", "agent, stripped", "%.1f KB (%d bytes)" % (size / 1024, size),
                 "<= 250 KB", "met" if size <= 250 * 1024 else "MISSED")
        for kind in ("info", "enlist"):
            x = out[kind]
            priv = (", private (dirty + anonymous) at exit %.1f MB" % (
                x["private_dirty_kb"] / 1024) if x["private_dirty_kb"] is not None else "")
            if x["peak_rss_kb"] is None:
                self.row("4 footprint", "%s: peak RSS" % kind, "not measured (no cc, no "
                         "/usr/bin/time)", "<= 8 MB", "")
                continue
            self.row("4 footprint", "%s: peak RSS (VmHWM, max of %d runs)" % (kind, self.a.repeat),
                     "%.1f MB (--version alone %.1f MB%s)" % (
                         x["peak_rss_kb"] / 1024, out["version"]["peak_rss_kb"] / 1024, priv),
                     "<= 8 MB", "met" if x["peak_rss_kb"] <= 8 * 1024 else "MISSED")
        big = ", ".join("%s %.1f MB" % (os.path.basename(f), s / 1e6)
                        for s, f in out["closure_largest"][:4])
        self.row("4 footprint", "initramfs copy: agent + ldd closure (copy_exec)",
                 "%d files, %.1f MB (gzip -9: %.1f MB); largest: %s" % (
                     out["closure_files"], out["closure_bytes"] / 1e6,
                     out["closure_gzip_bytes"] / 1e6, big), "", "")
        self.row("4 footprint", "initramfs copy: the hook's other files",
                 "; ".join("%s %s" % (k, "%.2f MB" % (v / 1e6) if v else "not on this machine")
                           for k, v in out["hook_extra"]), "", "")

    # -- 5. fleet --

    @staticmethod
    def machine_identity(i):
        uuid = "6c3fcf6e-fdee-41bf-8caf-%012x" % (0x5d4920d10000 + i)
        mac = "3c:fd:fe:%02x:%02x:%02x" % ((i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)
        # documentation ranges (RFC 5737): data in the profile, never an address contacted
        nets = ("192.0.2.", "198.51.100.", "203.0.113.")
        ip = nets[i // 250 % 3] + str(i % 250 + 1)
        return uuid, mac, ip

    def make_profiles(self, d, n):
        with open(self.profile()) as f:
            base = json.load(f)
        paths, ids = [], []
        for i in range(n):
            uuid, mac, ip = self.machine_identity(i)
            p = json.loads(json.dumps(base))
            amt = p["amt"]
            amt["uuid"] = uuid
            amt["mac_addresses"] = {"dedicated": mac, "host": mac}
            amt["wired"]["mac"] = mac
            amt["wired"]["ipv4"] = ip
            p["description"] = "bench fleet machine %d" % i
            path = os.path.join(d, "m%04d.json" % i)
            with open(path, "w") as f:
                json.dump(p, f)
            paths.append(path)
            ids.append((uuid, mac, ip))
        return paths, ids

    def self_test(self):
        r = subprocess.run([PYTHON, PROVSERVER, "--self-test", "--self-test-seconds", "2"],
                           capture_output=True, text=True, timeout=300)
        cap = re.search(r"capacity (\d+) requests/s", r.stdout)
        lim = re.search(r"rate=10 \(429 path\): \d+ requests in [\d.]+ s = (\d+)", r.stdout)
        return (int(cap.group(1)) if cap else None, int(lim.group(1)) if lim else None,
                r.stdout.strip())

    def section_fleet(self):
        n, c = self.a.fleet_n, self.a.fleet_c
        d = self.fresh_dir("fleet")
        pdir = os.path.join(d, "profiles")
        os.makedirs(pdir)
        profiles, ids = self.make_profiles(pdir, n)
        sims = []
        log("fleet: starting %d amtsim machines" % n)
        errf = open(os.path.join(d, "amtsim.stderr"), "w")
        try:
            for i in range(n):
                sims.append(Sim(self.amtsim, profiles[i], os.path.join(d, "m%04d.sock" % i),
                                stats=os.path.join(d, "m%04d.stats.json" % i),
                                state=os.path.join(d, "m%04d.machine.json" % i),
                                faults=["settle=%d" % SETTLE_MS], stderr=errf))
            for s in sims:
                s.wait_ready()
            srv = Server(faults=["rate=%d" % c], args=["--record-interval", "1"])
            try:
                log("fleet: %d agents against %s limited to %d requests/s" % (n, srv.url, c))
                # Every agent is started behind a gate (a shell that stops itself before it
                # execs the agent); once all have stopped, one SIGCONT each lets them go at once,
                # so the launcher's own pace does not spread the fleet's first requests.
                procs = []
                for i in range(n):
                    sd = os.path.join(d, "state-%04d" % i)
                    cmd = ["/bin/sh", "-c", 'kill -STOP $$; exec "$@"', "gate"] + \
                        self.enlist_cmd(sims[i].sock, srv.url, sd)
                    o = open(os.path.join(d, "agent-%04d.out" % i), "w")
                    e = open(os.path.join(d, "agent-%04d.err" % i), "w")
                    procs.append((subprocess.Popen(cmd, stdout=o, stderr=e), o, e))
                for p, _, _ in procs:
                    _, status = os.waitpid(p.pid, os.WUNTRACED)
                    if not os.WIFSTOPPED(status):
                        raise RuntimeError("an agent's gate did not stop")
                port = int(srv.url.rsplit(":", 1)[1])
                if self.a.fleet_hold:
                    # N machines would reach the server within milliseconds of each other; here
                    # 2 cores start N agents and N emulators, which spreads the first requests
                    # over seconds. The server is held (SIGSTOP: the kernel still queues the
                    # connections) until every agent's first request waits in its accept queue.
                    os.kill(srv.proc.pid, signal.SIGSTOP)
                t_wall0 = time.time()
                t0 = time.perf_counter()
                for p, _, _ in procs:
                    os.kill(p.pid, signal.SIGCONT)
                t_launched = time.perf_counter() - t0
                t_hold = None
                if self.a.fleet_hold:
                    limit = time.perf_counter() + 120
                    while accept_queue(port) < n and time.perf_counter() < limit and \
                            any(p.poll() is None for p, _, _ in procs):
                        time.sleep(0.01)
                    queued = accept_queue(port)
                    t_hold = time.perf_counter() - t0
                    os.kill(srv.proc.pid, signal.SIGCONT)
                    log("fleet: %d first requests queued %.2f s after the release; server "
                        "continued" % (queued, t_hold))
                ends, rcs = [None] * n, [None] * n
                left = n
                bound = t0 + self.a.fleet_timeout
                while left:
                    for i, (p, o, e) in enumerate(procs):
                        if rcs[i] is None and p.poll() is not None:
                            rcs[i], ends[i] = p.returncode, time.perf_counter() - t0
                            o.close()
                            e.close()
                            left -= 1
                    if time.perf_counter() > bound:
                        for i, (p, o, e) in enumerate(procs):
                            if rcs[i] is None:
                                p.kill()
                                p.wait()
                                rcs[i], ends[i] = "killed", time.perf_counter() - t0
                                left -= 1
                        break
                    time.sleep(0.01)
                completion = max(ends)
                completion_from_server = completion - t_hold if t_hold is not None else None
                record = srv.control("/_record")
            finally:
                srv.stop()
        finally:
            for s in sims:
                s.stop()
            errf.close()
        cap, cap429, self_test_out = self.self_test()
        res = self.fleet_figures(d, n, c, ids, record, rcs, ends, completion, t_wall0)
        res.update({"launch_s": t_launched, "hold_s": t_hold, "hold": self.a.fleet_hold,
                    "completion_from_server_s": completion_from_server,
                    "self_test_capacity": cap,
                    "self_test_429_rate": cap429, "self_test": self_test_out})
        self.data["fleet"] = res
        self.fleet_rows(res, n, c)

    def fleet_figures(self, d, n, c, ids, record, rcs, ends, completion, t_wall0):
        nodes = record["enlist"]["nodes"]
        enlisted, wrong = 0, []
        finals_per_node = collections.Counter()
        for doc in record["enlist"]["documents"]:
            if doc["state"] == "final":
                finals_per_node[doc["uuid"]] += 1
        for i, (uuid, _, ip) in enumerate(ids):
            node = nodes.get(uuid)
            pw = None
            sd = os.path.join(d, "state-%04d" % i)
            if os.path.isdir(sd):
                for name in os.listdir(sd):
                    if name.endswith(".json"):
                        with open(os.path.join(sd, name)) as f:
                            pw = json.load(f).get("password")
            cur = node and node.get("current")
            ok = bool(cur) and cur.get("state", "final") == "final" and \
                cur["power_parameters"]["power_address"] == ip and \
                cur["power_parameters"]["power_pass"] == pw and pw
            mstate = {}
            try:
                with open(os.path.join(d, "m%04d.stats.json" % i)) as f:
                    mstate = json.load(f)["machine"]
            except (OSError, ValueError, KeyError):
                pass
            if ok and mstate.get("control_mode") == "ccm":
                enlisted += 1
            else:
                wrong.append(i)
        log_entries = record["requests"]["log"]
        ts = sorted(e["t"] for e in log_entries)
        ok_ts = sorted(e["t"] for e in log_entries if isinstance(e["status"], int) and
                       200 <= e["status"] < 300)
        first = ts[0] if ts else t_wall0

        def peak(times, start):
            best, j = 0, 0
            xs = [t for t in times if t >= start]
            for i in range(len(xs)):
                while xs[i] - xs[j] >= 1.0:
                    j += 1
                best = max(best, i - j + 1)
            return best

        per_second = collections.Counter(int(t - first) for t in ts)
        ok_per_second = collections.Counter(int(t - first) for t in ok_ts)
        statuses = collections.Counter(str(e["status"]) for e in log_entries)
        docs = collections.Counter(doc["state"] for doc in record["enlist"]["documents"])
        return {
            "n": n, "c": c, "enlisted": enlisted, "not_enlisted": wrong[:20],
            "lost": n - enlisted,
            "agents_ok": sum(1 for r in rcs if r == 0),
            "agent_exit_codes": dict(collections.Counter(str(r) for r in rcs)),
            "duplicates_server": record["enlist"]["duplicates"],
            "nodes_with_more_than_one_final": sum(1 for v in finals_per_node.values() if v > 1),
            "nodes": len(nodes),
            "requests": len(log_entries), "statuses": dict(statuses),
            "documents": dict(docs),
            "peak_all_after_1s": peak(ts, first + 1.0),
            "peak_accepted_after_1s": peak(ok_ts, first + 1.0),
            "peak_all_first_s": peak([t for t in ts if t < first + 1.0], first),
            "per_second_all": [per_second.get(s, 0) for s in range(int(ts[-1] - first) + 1)]
            if ts else [],
            "per_second_accepted": [ok_per_second.get(s, 0)
                                    for s in range(int(ts[-1] - first) + 1)] if ts else [],
            "rate_record": record.get("rate"),
            "completion_s": completion,
            "first_exit_s": min(e for e in ends if e is not None),
            "median_exit_s": median([e for e in ends if e is not None]),
            "first_request_delay_s": first - t_wall0,
        }

    def fleet_rows(self, r, n, c):
        sec = "5 fleet"
        self.row(sec, "N=%d, C=%d/s: enlisted / N (lost)" % (n, c),
                 "%d / %d (lost %d); agents exit 0: %d; exits %s" % (
                     r["enlisted"], n, r["lost"], r["agents_ok"], r["agent_exit_codes"]),
                 "all, none lost", "met" if r["enlisted"] == n else "MISSED")
        self.row(sec, "duplicates after dedup by UUID",
                 "%d nodes for %d machines; %d identical finals re-sent; %d machines with >1 "
                 "final" % (r["nodes"], n, r["duplicates_server"],
                            r["nodes_with_more_than_one_final"]),
                 "0", "met" if r["nodes"] == n and r["nodes_with_more_than_one_final"] == 0
                 and r["duplicates_server"] == 0 else "MISSED")
        self.row(sec, "requests: total, by status; documents",
                 "%d %s; documents %s" % (r["requests"], r["statuses"], r["documents"]), "", "")
        lim = 1.2 * c
        self.row(sec, "server peak rate after the 1st s (any 1-s window): all requests",
                 "%d/s = %.2f x C (first second: %d)" % (
                     r["peak_all_after_1s"], r["peak_all_after_1s"] / c, r["peak_all_first_s"]),
                 "<= 1.2 x C = %.0f" % lim,
                 "met" if r["peak_all_after_1s"] <= lim else "MISSED")
        self.row(sec, "server peak rate after the 1st s: accepted (2xx)",
                 "%d/s = %.2f x C" % (r["peak_accepted_after_1s"],
                                      r["peak_accepted_after_1s"] / c),
                 "<= 1.2 x C", "met" if r["peak_accepted_after_1s"] <= lim else "MISSED")
        self.row(sec, "requests per second from the first (all / accepted)",
                 " ".join("%d/%d" % (a, k) for a, k in zip(r["per_second_all"],
                                                           r["per_second_accepted"])), "", "")
        self.row(sec, "agents released (SIGCONT to all) in / first request after release",
                 "%.3f s / %.2f s%s; first agent done %.1f s, median %.1f s" % (
                     r["launch_s"], r["first_request_delay_s"],
                     " (server held until all %d first requests were queued)" % n
                     if r["hold"] else " (server not held)",
                     r["first_exit_s"], r["median_exit_s"]), "", "")
        bound = 1.3 * n / c
        doc_note = "N/C = %.0f s; 2 documents per machine: 2N/C = %.0f s" % (n / c, 2 * n / c)
        if r["completion_from_server_s"] is not None:
            comp = r["completion_from_server_s"]
            self.row(sec, "completion: server released to last agent exit",
                     "%.1f s = %.2f x N/C (%s); from the agents' release %.1f s" % (
                         comp, comp / (n / c), doc_note, r["completion_s"]),
                     "<= 1.3 x N/C = %.0f s" % bound, "met" if comp <= bound else "MISSED")
        else:
            comp = r["completion_s"]
            self.row(sec, "completion: agents' release to last exit",
                     "%.1f s = %.2f x N/C (%s)" % (comp, comp / (n / c), doc_note),
                     "<= 1.3 x N/C = %.0f s" % bound, "met" if comp <= bound else "MISSED")
        self.row(sec, "provserver capacity (--self-test, keep-alive / new connection best)",
                 "%s requests/s = %.0f x C; 429 path %s requests/s" % (
                     r["self_test_capacity"], (r["self_test_capacity"] or 0) / c,
                     r["self_test_429_rate"]),
                 ">> C", "met" if (r["self_test_capacity"] or 0) >= 10 * c else "MISSED")

    # -- the table --

    def table(self):
        head = ("section", "measure", "value", "target", "verdict")
        rows = [head] + [tuple(str(x) for x in r) for r in self.rows]
        w = [min(max(len(r[i]) for r in rows), 200) for i in range(5)]
        lines = []
        for k, r in enumerate(rows):
            lines.append("| " + " | ".join(r[i].ljust(w[i]) for i in range(5)) + " |")
            if k == 0:
                lines.append("|" + "|".join("-" * (w[i] + 2) for i in range(5)) + "|")
        return "\n".join(lines)


def machine_description(agent):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = "%.0f GiB" % (int(f.readline().split()[1]) / 1024 / 1024)
    except (OSError, ValueError):
        pass
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "commit": rev + (" + uncommitted changes" if dirty else ""),
            "agent": agent, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--amtsim", required=True)
    ap.add_argument("--sections", default="rt,overhead,cpu,footprint,fleet")
    ap.add_argument("--latencies", default="0,5,20",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fleet-n", type=int, default=200)
    ap.add_argument("--fleet-c", type=int, default=20)
    ap.add_argument("--fleet-timeout", type=float, default=400.0)
    ap.add_argument("--fleet-hold", default="yes", choices=("yes", "no"),
                    help="hold the server until every agent's first request is queued (default "
                    "yes: N machines reach it at once; no: as 2 cores start them)")
    ap.add_argument("--provserver", help="another test server (experiments); default "
                    "tests/server/provserver.py")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", help="write every figure as JSON to this file")
    args = ap.parse_args()
    args.fleet_hold = args.fleet_hold == "yes"
    if args.provserver:
        global PROVSERVER
        PROVSERVER = os.path.abspath(args.provserver)
    own_dir = args.workdir is None
    if own_dir:
        args.workdir = tempfile.mkdtemp(prefix="bench-", dir=os.getcwd())
    else:
        os.makedirs(args.workdir, exist_ok=True)
    b = Bench(args)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    machine = machine_description(os.path.abspath(args.agent))
    t0 = time.time()
    loads = []
    try:
        for s in sections:
            before = os.getloadavg()[0]
            log("section %s (load average %.2f)" % (s, before))
            getattr(b, "section_" + s)()
            loads.append("%s %.1f-%.1f" % (s, before, os.getloadavg()[0]))
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    print("amt-enlist benchmark: %s, %s cores, %s, Linux %s; commit %s; %s (%.0f s)" % (
        machine["cpu"], machine["cores"], machine["memory"], machine["kernel"],
        machine["commit"], machine["date"], time.time() - t0))
    print("load average (1 min) before-after each section: %s" % ", ".join(loads))
    print(b.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": sys.argv, "loads": loads, "rows": b.rows,
                       "data": b.data}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
