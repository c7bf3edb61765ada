"""A spool writer for the kill -9 test: appends, takes and acknowledges (out of order) flat out.

``python -m tests.northbound.spool_writer DIR``: value ``s`` is acknowledged at once when
``s % 3``, the others only once 600 newer values were written (out of order, and a backlog
that keeps compaction busy). After each flush it prints ``ok C H``: every value up to C is
written, every one up to C with ``s % 3`` and every one up to H is acknowledged.
"""

import random
import sys

from gateway.northbound.spool import Spool


def payload(seq: int) -> bytes:
    return b"v%d:" % seq + b"x" * (seq % 97)


def main(path: str) -> None:
    sp = Spool(path, max_bytes=1 << 20, batch=1 << 30, max_delay=3600)
    rng = random.Random(1)
    seq, lagging = sp.last_seq, []
    while True:
        for _ in range(rng.randint(50, 400)):
            seq += 1
            sp.append(seq, "event" if seq % 3 == 0 else "analog", f"gg/{seq % 5}", payload(seq), qos=1,
                      retain=seq % 2 == 0, expiry=seq % 7 or None)
        taken = []
        while (item := sp.take()) is not None:
            taken.append(item[0])
        rng.shuffle(taken)
        for s in taken:
            if s % 3:
                sp.done(s)
            else:
                lagging.append(s)
        horizon = seq - 600
        for s in [s for s in lagging if s <= horizon]:
            sp.done(s)
        lagging = [s for s in lagging if s > horizon]
        sp.flush()
        print("ok", sp.committed_seq, max(0, horizon), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
