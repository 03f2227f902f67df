"""bench/loop/trace.py: how long carteiro-smtpd's loop thread spent inside
each SQLite-touching call, how long of that it slept and on what, from
uprobes and scheduler events (bench/loop/run with TRACE=1).

    perf script --ns -F tid,time,event,trace -i perf.data |
        trace.py LOOP_TID [CHAINS [SLEEPS.json]]

Input: "TID SECONDS.NANOS: GROUP:FUNC:" for a call, "GROUP:FUNC_r__return:"
for its return, sched_switch lines (prev_pid/prev_state/next_pid) and
sched_wakeup lines (pid) for the loop thread. CHAINS, if given, is the
perf script output (-F time,event,trace,ip,sym) of a second recording of
the loop thread's switches away in state S/D and of its wakeups by threads
of its own process, with their call chains (kernel and user frames, one
per line); a sleep is matched to its chain and to the chain of the
thread that woke it (the one that released the lock) by the time stamp.
SLEEPS.json gets each sleep inside a store call: [t_off, t_on, slept_ns,
label] (perf's clock: CLOCK_MONOTONIC when recorded with -k mono, the
probe's clock).

While a call is open, every stretch the loop thread spends off the CPU is
charged to it:
  slept  left in state S/D (a futex, a sleep, the disk) until woken: the
         loop waiting on SQLite or on a lock another thread holds;
  runq   waiting for a CPU (preempted, or woken and not yet running): the
         machine's other work, which no change in carteiro removes.
Each sleep is labelled from its call chain: the kernel wait (futex,
nanosleep, io, ...) and the first user frames, e.g. "futex:
___pthread_mutex_lock <- sqlite3Malloc".
"""

import bisect
import json
import re
import sys

LINE = re.compile(r"^\s*(\d+)\s+(\d+)\.(\d+):\s+(\w+):(\w+):(.*)$")
FRAME = re.compile(r"^\t\s*([0-9a-f]+) (\S+)(?: \(inlined\))?(?: \((.*)\))?")
SWITCH = re.compile(r"prev_pid=(\d+) .*prev_state=(\S+) ==> .*next_pid=(\d+)")
WAKE = re.compile(r"\bpid=(\d+)")
KWAIT = (("futex_wait", "futex"), ("do_nanosleep", "nanosleep"),
         ("do_epoll_wait", "epoll"), ("io_schedule", "io"),
         ("rwsem_down", "rwsem"), ("mutex_lock", "kmutex"),
         ("do_sys_poll", "poll"))
USKIP = ("__GI___lll_lock_wait", "lll_mutex_lock_optimized", "futex_wait",
         "__GI___clock_nanosleep", "__GI___nanosleep", "[unknown]")


def pct(d, p):
    return d[min(len(d) - 1, int(len(d) * p))] if d else 0


def why(frames):
    """A sleep's label: the kernel wait and the first user frames."""
    kern = [s for a, s, _ in frames if a.startswith("ffffffff")]
    user = [s for a, s, _ in frames if not a.startswith("ffffffff")]
    k = next((lab for fr in kern for pat, lab in KWAIT if pat in fr), "other")
    u = [s for s in user if s not in USKIP][:2]
    return "%s: %s" % (k, " <- ".join(u) if u else "?")


def waker(frames):
    """A wakeup's label: where the waking thread was (its first frames
    past glibc's unlock/wake) and its outermost carteiro function."""
    user = [(s, d) for a, s, d in frames if not a.startswith("ffffffff")]
    u = [s for s, d in user if "libc.so" not in (d or "") and
         s not in USKIP][:2]
    own = [s for s, d in user if d and "carteiro" in d and s != "[unknown]"]
    return "%s%s" % (" <- ".join(u) if u else "?",
                     " ... " + own[-1] if own and own[-1] not in u else "")


class Loop:
    def __init__(self, tid):
        self.tid = tid
        self.open = {}		# func -> [[t0, slept, runq]]
        self.off = None		# [t_out, state, why, t_wake]
        self.durs, self.slept, self.longest = {}, {}, []
        self.sleeps = {}	# why -> [(slept_ns, runq_after_ns)]
        self.timeline = []	# (t_out, t_in, slept_ns, why) of each

    def inside(self):
        return any(self.open.values())

    def switch_out(self, t, state, w):
        self.off = [t, state[0], "in " + (w or "?"), None]

    def wakeup(self, t, by):
        if self.off is not None and self.off[3] is None:
            self.off[3] = t
            self.off[2] += "; woken from " + (by or "? (waker not recorded)")

    def switch_in(self, t):
        if self.off is None:
            return
        t_out, state, w, t_wake = self.off
        self.off = None
        if state in "SD":
            t_wake = t_wake if t_wake is not None else t
            sl, rq = t_wake - t_out, t - t_wake
        else:
            sl, rq = 0, t - t_out
        for calls in self.open.values():
            for c in calls:
                c[1] += sl
                c[2] += rq
        if state in "SD" and self.inside():
            self.sleeps.setdefault(w, []).append((sl, rq))
            self.timeline.append((t_out, t, sl, w))

    def call(self, t, ev):
        if ev.endswith("_r__return"):
            f = ev[:-len("_r__return")]
            calls = self.open.get(f)
            if calls:
                t0, sl, rq = calls.pop()
                self.durs.setdefault(f, []).append(t - t0)
                if sl:
                    self.slept.setdefault(f, []).append(sl)
                self.longest.append((t - t0, f, sl, rq))
        else:
            self.open.setdefault(ev, []).append([t, 0, 0])

    def report(self):
        if not self.durs:
            print("trace: the loop thread made none of the probed store calls")
            return 1
        print("%-17s %7s %7s %7s %7s %8s %6s %9s %9s" % (
            "loop thread in", "calls", "p50_ms", "p99_ms", "max_ms",
            "total_ms", "slept", "slept_max", "slept_tot"))
        for f in sorted(self.durs, key=lambda f: -max(self.durs[f])):
            d = sorted(self.durs[f])
            s = self.slept.get(f, [])
            print("%-17s %7d %7.3f %7.3f %7.3f %8.1f %6d %9.3f %9.1f" % (
                f, len(d), pct(d, .5) / 1e6, pct(d, .99) / 1e6,
                d[-1] / 1e6, sum(d) / 1e6, len(s), max(s, default=0) / 1e6,
                sum(s) / 1e6))
        self.longest.sort(reverse=True)
        print("longest calls, ms = slept + runq + on CPU: " + ", ".join(
            "%s %.2f = %.2f + %.2f + %.2f" % (
                f, d / 1e6, sl / 1e6, rq / 1e6, (d - sl - rq) / 1e6)
            for d, f, sl, rq in self.longest[:3]))
        allsl = sorted(s for v in self.sleeps.values() for s, _ in v)
        print("the loop thread slept inside store calls %d times: p50 %.3f "
              "ms, p99 %.3f ms, max %.3f ms, total %.1f ms; by what:" % (
                  len(allsl), pct(allsl, .5) / 1e6, pct(allsl, .99) / 1e6,
                  (allsl[-1] if allsl else 0) / 1e6, sum(allsl) / 1e6))
        for w, v in sorted(self.sleeps.items(),
                           key=lambda kv: -max(s for s, _ in kv[1]))[:10]:
            sl = sorted(s for s, _ in v)
            print("  %5d x max %7.3f total %7.1f ms (then runq up to %.3f)"
                  " %s" % (len(v), sl[-1] / 1e6, sum(sl) / 1e6,
                           max(r for _, r in v) / 1e6, w))
        return 0


CHAIN_T = re.compile(r"^\s*(?:\d+\s+)?(\d+)\.(\d+):\s+sched:(\w+):")


class Chains:
    """Call chains of a second recording, found again by time stamp:
    the loop thread's switches away asleep, and the wakeups of the loop
    thread done by its own process's threads (with the waker's chain)."""

    def __init__(self, path):
        ev = {"sched_switch": [], "sched_wakeup": []}
        t = kind = None
        frames = []

        def done():
            if t is not None and kind in ev:
                ev[kind].append((t, why(frames) if kind == "sched_switch"
                                 else waker(frames)))
        if path:
            with open(path) as f:
                for ln in f:
                    m = CHAIN_T.match(ln)
                    if m:
                        done()
                        t = int(m.group(1)) * 1_000_000_000 + int(
                            m.group(2).ljust(9, "0"))
                        kind = m.group(3)
                        frames = []
                        continue
                    fm = FRAME.match(ln)
                    if fm and t is not None:
                        frames.append(fm.groups())
            done()
        self.ev = {k: sorted(v) for k, v in ev.items()}
        self.t = {k: [x for x, _ in v] for k, v in self.ev.items()}

    def find(self, kind, t):
        i = bisect.bisect_left(self.t[kind], t - 20_000)
        if i < len(self.t[kind]) and self.t[kind][i] <= t + 20_000:
            return self.ev[kind][i][1]
        return None


def main():
    lp = Loop(sys.argv[1])
    chains = Chains(sys.argv[2] if len(sys.argv) > 2 else None)
    for ln in sys.stdin:
        m = LINE.match(ln)
        if not m:
            continue
        t = int(m.group(2)) * 1_000_000_000 + int(m.group(3).ljust(9, "0"))
        grp, ev, rest = m.group(4), m.group(5), m.group(6)
        if grp == "sched" and ev == "sched_switch":
            sm = SWITCH.search(rest)
            if not sm:
                continue
            if sm.group(1) == lp.tid:
                lp.switch_out(t, sm.group(2), chains.find("sched_switch", t))
            elif sm.group(3) == lp.tid:
                lp.switch_in(t)
        elif grp == "sched" and ev == "sched_wakeup":
            wm = WAKE.search(rest)
            if wm and wm.group(1) == lp.tid:
                lp.wakeup(t, chains.find("sched_wakeup", t))
        elif m.group(1) == lp.tid:
            lp.call(t, ev)
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w") as f:
            json.dump(lp.timeline, f)
    return lp.report()


if __name__ == "__main__":
    sys.exit(main())
