"""t1 on the controlling station's own I-frames, watched from the raw APDU stream.

c104 2.2.1's client does not close the connection when its I-frames stay unacknowledged beyond t1
(measured: acknowledgements withheld for 6 s with t1 = 1.5 s, the link stayed up until the k window
was full and the next general interrogation could not be sent). IEC 60870-5-104 §5.3 says the
connection is closed at t1; the driver does that itself with this watch.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MOD = 32768  # sequence numbers are 15 bits


class AckWatch:
    """``sent`` every APDU the master sends, ``received`` every APDU from the RTU; ``overdue(t1)`` names the
    oldest unacknowledged I-frame once it has waited t1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unacked: deque[tuple[int, float]] = deque()  # (N(S), monotonic time sent)

    def reset(self) -> None:
        with self._lock:
            self._unacked.clear()

    def sent(self, data: bytes) -> None:
        if len(data) >= 6 and data[0] == 0x68 and data[2] & 0x01 == 0:
            ns = (data[2] | data[3] << 8) >> 1
            with self._lock:
                self._unacked.append((ns, time.monotonic()))

    def received(self, data: bytes) -> None:
        """An I- or S-frame's N(R) acknowledges every I-frame with N(S) < N(R)."""
        if len(data) < 6 or data[0] != 0x68 or data[2] & 0x03 == 0x03:
            return
        nr = (data[4] | data[5] << 8) >> 1
        with self._lock:
            while self._unacked and 0 < (nr - self._unacked[0][0]) % MOD <= MOD // 2:
                self._unacked.popleft()

    def overdue(self, t1: float) -> tuple[int, float] | None:
        """(N(S), seconds waiting) of the oldest I-frame unacknowledged for t1 or longer, else None."""
        with self._lock:
            if not self._unacked:
                return None
            ns, at = self._unacked[0]
        waited = time.monotonic() - at
        return (ns, waited) if waited >= t1 else None
