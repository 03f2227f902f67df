"""bench/loop/walmon.py: checkpoint pressure on a carteiro store, and a
record of what the WAL did meanwhile.

    walmon.py DB SECONDS OUT.json [HOLD_S] [GAP_S]

Two threads for SECONDS:

 - the "reader/checkpointer" (a second process on the store, as
   carteiroctl or a POP3 session is): BEGIN; SELECT ...; keeps that read
   transaction open HOLD_S seconds (the WAL cannot be copied past its
   snapshot, so it grows past the writer's 4000-frame top-up point), ends
   it, then runs PRAGMA wal_checkpoint(PASSIVE) at once (which now has
   the whole backlog to copy and fsync into the database file), waits
   GAP_S and starts over. HOLD_S=0 leaves only the PASSIVE checkpoints.
 - the sampler: every 2 ms reads the WAL index header out of DB-shm (the
   file SQLite maps; layout: https://sqlite.org/walformat.html) -
   mxFrame (last valid frame in the WAL) and nBackfill (frames already
   copied into the database). A rise of nBackfill is a checkpoint that
   copied frames, whoever ran it (carteiro's checkpoint thread, its
   writer's top-ups, or us); mxFrame falling is a WAL restart.

Writes OUT.json: counts (frames appended, frames checkpointed, checkpoint
steps, WAL restarts, longest WAL) and the time line of events, on the same
clock as probe.py (time.perf_counter_ns, CLOCK_MONOTONIC).
"""

import json
import os
import sqlite3
import struct
import sys
import threading
import time


def sampler(db, deadline, out):
    path = db + "-shm"
    fd = None
    last = None
    app = ckpt = steps = restarts = maxwal = 0
    steps_t = []
    while time.monotonic() < deadline:
        time.sleep(0.002)
        try:
            if fd is None:
                fd = os.open(path, os.O_RDONLY)
            b = os.pread(fd, 136, 0)
        except OSError:
            continue
        if len(b) < 136:
            continue
        mx, = struct.unpack_from("=I", b, 16)
        nb, = struct.unpack_from("=I", b, 96)
        now = time.perf_counter_ns()
        maxwal = max(maxwal, mx)
        if last is not None:
            lmx, lnb = last
            if mx < lmx:		# restarted from frame 1
                restarts += 1
                app += mx
                ckpt += max(0, lmx - lnb)  # the rest was copied first
            else:
                app += mx - lmx
                if nb > lnb:
                    ckpt += nb - lnb
                    steps += 1
                    steps_t.append(now)
        last = (mx, nb)
    if fd is not None:
        os.close(fd)
    out.update(frames_appended=app, frames_checkpointed=ckpt,
               checkpoint_steps=steps, wal_restarts=restarts,
               wal_max_frames=maxwal, checkpoint_step_times=steps_t)


def checkpointer(db, deadline, hold, gap, out):
    con = sqlite3.connect(db, timeout=5, isolation_level=None)
    ev = []
    while time.monotonic() < deadline:
        if hold > 0:
            t0 = time.perf_counter_ns()
            con.execute("BEGIN")
            con.execute("SELECT count(*) FROM mailbox").fetchone()
            time.sleep(min(hold, max(0, deadline - time.monotonic())))
            con.execute("COMMIT")
            ev.append(["hold", t0, time.perf_counter_ns() - t0])
        t0 = time.perf_counter_ns()
        busy, log, done = con.execute(
            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        ev.append(["passive", t0, time.perf_counter_ns() - t0, busy, log,
                   done])
        time.sleep(gap)
    con.close()
    out["events"] = ev


def main():
    db, seconds, outp = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    gap = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    deadline = time.monotonic() + seconds
    out = {"hold_s": hold, "gap_s": gap}
    ts = [threading.Thread(target=sampler, args=(db, deadline, out)),
          threading.Thread(target=checkpointer,
                           args=(db, deadline, hold, gap, out))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    tmp = outp + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.rename(tmp, outp)


if __name__ == "__main__":
    main()
