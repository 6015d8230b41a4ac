#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""retrysim: a model of the fleet section, to weigh retry policies without running 400 processes.

N agents reach the server at once (the fleet section holds the server until they have), each
must get D documents accepted (2 today: "pending" then "final"; 1 when the pending document is
skipped), a few ms apart. The server admits at most C requests in any 1-s window (provserver's
rate=C: a sliding log of the accepted requests) and answers the others 429 with a Retry-After:
  window   provserver today: ceil(when the oldest accepted request leaves the window), i.e. 1 s
           for every refused client
  reserve  each refusal gets the next free slot (one per 1/C s), so refused clients are spread
A policy maps (Retry-After, consecutive refusals k) to the wait. Printed per combination, the
mean over --seeds runs: completion (first request to last acceptance), the peak number of
requests in any 1-s window after the first second, and the total number of requests.

The model reproduces the measured fleet (provserver today, 2 documents, exact Retry-After:
20 s and ~210 requests/s measured, 19-20 s and ~215/s modelled). Usage: retrysim.py [--n 200]
[--c 20] [--seeds 5]
"""

import argparse
import collections
import heapq
import math
import random


def run(n, c, docs, policy, server, seed, gap=0.03, launch=0.05):
    rnd = random.Random(seed)
    ev = [(rnd.uniform(0, launch), i) for i in range(n)]
    heapq.heapify(ev)
    left, k, done = [docs] * n, [0] * n, [None] * n
    window, arrivals = collections.deque(), []
    slot = 0.0
    while ev:
        t, i = heapq.heappop(ev)
        arrivals.append(t)
        while window and window[0] <= t - 1.0:
            window.popleft()
        if len(window) < c:
            window.append(t)
            left[i] -= 1
            k[i] = 0
            if left[i] == 0:
                done[i] = t
            else:
                heapq.heappush(ev, (t + gap, i))
            continue
        if server == "window":
            ra = max(1, math.ceil(window[0] + 1.0 - t))
        else:
            slot = max(slot, window[0] + 1.0) + 1.0 / c
            ra = max(1, math.ceil(slot - t))
        wait = policy(ra, k[i], rnd)
        k[i] += 1
        heapq.heappush(ev, (t + wait, i))
    first = min(arrivals)
    later = sorted(a for a in arrivals if a >= first + 1.0)
    peak, j = 0, 0
    for x in range(len(later)):
        while later[x] - later[j] >= 1.0:
            j += 1
        peak = max(peak, x - j + 1)
    return max(done) - first, peak, len(arrivals)


POLICIES = {
    "Retry-After exactly (agent today)": lambda ra, k, r: ra,
    "RA + U(0, 1 s)": lambda ra, k, r: ra + r.uniform(0, 1),
    "RA + U(0, 0.5 s * 2^k), cap 30": lambda ra, k, r: ra + r.uniform(0, min(30, 0.5 * 2 ** k)),
    "RA + U(0, 4 s * 2^k), cap 30": lambda ra, k, r: ra + r.uniform(0, min(30, 4 * 2 ** k)),
    "RA + U(0, 10 s) (tuned to N/C)": lambda ra, k, r: ra + r.uniform(0, 10),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--c", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args()
    print("N=%d C=%d: targets peak <= %.0f/s after the first second, completion <= %.0f s"
          % (a.n, a.c, 1.2 * a.c, 1.3 * a.n / a.c))
    print("%-8s %-4s %-36s %12s %10s %9s" % ("server", "docs", "policy", "completion", "peak",
                                              "requests"))
    for server in ("window", "reserve"):
        for docs in (2, 1):
            for name, pol in POLICIES.items():
                rs = [run(a.n, a.c, docs, pol, server, s) for s in range(a.seeds)]
                print("%-8s %-4d %-36s %10.1f s %8d/s %9.0f" % (
                    server, docs, name, sum(r[0] for r in rs) / len(rs),
                    max(r[1] for r in rs), sum(r[2] for r in rs) / len(rs)))


if __name__ == "__main__":
    main()
