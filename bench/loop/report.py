"""bench/loop/report.py: the numbers of one bench/loop run.

    report.py PROBE.json WALMON.json SECONDS LOCAL_MSGS REMOTE_MSGS RELAYED \
        TARGET_MS [SLEEPS.json]

SLEEPS.json (TRACE=1, from trace.py): the loop thread's sleeps inside
store calls; then the slow RCPTs are also matched against those.

Prints count/p50/p99/max per command kind, the store's side (writer rate,
checkpoint work), where the slow RCPTs fell, and last the verdict line
rcpt_rtt_p99_ms=X target<T PASS|FAIL (exit status 0 for PASS, 1 for FAIL).
"""

import bisect
import json
import math
import sys


def pct(sorted_ms, p):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_ms:
        return float("nan")
    i = max(0, math.ceil(p / 100.0 * len(sorted_ms)) - 1)
    return sorted_ms[min(i, len(sorted_ms) - 1)]


def main():
    probe = json.load(open(sys.argv[1]))
    wal = json.load(open(sys.argv[2]))
    secs = float(sys.argv[3])
    nloc, nrem, nrel = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    target = float(sys.argv[7])

    print("%-8s %7s %8s %8s %8s %8s %6s" % ("probe", "count", "p50_ms",
                                             "p99_ms", "p99.9_ms", "max_ms",
                                             ">5ms"))
    stats = {}
    for kind in ("rcpt", "rcpt550", "noop", "mail", "rset"):
        ms = sorted(r / 1e6 for _, r in probe.get(kind, []))
        stats[kind] = ms
        print("%-8s %7d %8.3f %8.3f %8.3f %8.3f %6d" % (
            kind, len(ms), pct(ms, 50), pct(ms, 99), pct(ms, 99.9),
            ms[-1] if ms else float("nan"), sum(1 for x in ms if x > 5)))

    print("writer: %d local + %d remote-bound messages in %.1f s = %.0f "
          "msgs/s committed (%d relayed out)" % (
              nloc, nrem, secs, (nloc + nrem) / secs, nrel))
    steps = wal.get("checkpoint_step_times", [])
    print("wal: %d frames appended, %d checkpointed in %d checkpoint steps, "
          "%d WAL restarts, longest WAL %d frames" % (
              wal.get("frames_appended", 0),
              wal.get("frames_checkpointed", 0),
              wal.get("checkpoint_steps", 0), wal.get("wal_restarts", 0),
              wal.get("wal_max_frames", 0)))
    ev = wal.get("events", [])
    holds = [e for e in ev if e[0] == "hold"]
    pas = [e for e in ev if e[0] == "passive"]
    if pas:
        print("walmon: %d long reads (%.1f s each), %d PASSIVE checkpoints "
              "(longest %.0f ms, %d frames copied by the largest)" % (
                  len(holds), wal.get("hold_s", 0), len(pas),
                  max(e[2] for e in pas) / 1e6, max(e[5] for e in pas)))

    # Where did the slow RCPTs fall? Near a checkpoint step (nBackfill
    # moved within 50 ms of the round trip), and with a slow NOOP within
    # 200 ms (then the whole process or machine stalled, not the store)?
    # Each against its base rate over all RCPTs: checkpoints run so often
    # that many RCPTs are near one by chance.
    steps.sort()
    noops = sorted(tuple(x) for x in probe.get("noop", []))

    def near_step(t, r):
        i = bisect.bisect_left(steps, t - 50_000_000)
        return i < len(steps) and steps[i] <= t + r + 50_000_000

    def near_slow_noop(t):
        j = bisect.bisect_left(noops, (t - 200_000_000, 0))
        for t2, r2 in noops[j:]:
            if t2 > t + 200_000_000:
                return False
            if r2 > 5e6:
                return True
        return False

    rc = probe.get("rcpt", [])
    slow = [(t, r) for t, r in rc if r > 5e6]
    if slow:
        def share(xs, f):
            return 100.0 * sum(1 for t, r in xs if f(t, r)) / len(xs)
        print("slow rcpt (>5 ms): %d; near a checkpoint step %.0f%% (all "
              "rcpt: %.0f%%); near a NOOP >5 ms %.0f%% (all rcpt: %.0f%%)" % (
                  len(slow), share(slow, near_step), share(rc, near_step),
                  share(slow, lambda t, r: near_slow_noop(t)),
                  share(rc, lambda t, r: near_slow_noop(t))))
    if len(sys.argv) > 8 and slow:
        # Sleeps inside SQLite that overlap a slow RCPT: the store's part.
        tl = sorted(json.load(open(sys.argv[8])))
        starts = [x[0] for x in tl]
        hit, why = 0, {}
        for t, r in slow:
            i = bisect.bisect_left(starts, t - 200_000_000)
            best = None
            for t_off, t_on, sl, w in tl[i:]:
                if t_off > t + r:
                    break
                if t_on >= t and (best is None or sl > best[0]):
                    best = (sl, w)
            if best and best[0] >= 1e6:
                hit += 1
                why[best[1]] = why.get(best[1], 0) + 1
        print("slow rcpt (>5 ms) during which the loop thread slept >= 1 ms "
              "inside a store call: %d of %d%s" % (
                  hit, len(slow), "".join(
                      "\n  %d x %s" % (n, w) for w, n in
                      sorted(why.items(), key=lambda kv: -kv[1])[:4])))
    if probe.get("errors"):
        print("probe errors: %d, first: %s" % (len(probe["errors"]),
                                               probe["errors"][0]))
    p99 = pct(stats["rcpt"], 99)
    print("control: noop_rtt_p99_ms=%.2f (no SQLite: what the scheduler "
          "alone costs now; load average %s)" % (
              pct(stats["noop"], 99),
              " ".join(open("/proc/loadavg").read().split()[:3])))
    ok = p99 < target and not probe.get("errors")
    print("rcpt_rtt_p99_ms=%.2f target<%g %s" % (p99, target,
                                                  "PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
