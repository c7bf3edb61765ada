"""The deterministic noise source, bit-identical to the C core (ggfw.c).

A tick's key is a hash of (seed, bits of t); a point's sample is a hash of (key, index).
So noise depends on the simulated time, not on how many ticks came before.
"""

from __future__ import annotations

import struct

M32 = 0xFFFFFFFF
KEY_FAULT = 0x5DEECE66
KEY_VOLT = 0x3C6EF372
SQRT3_F32 = struct.unpack("f", struct.pack("f", 1.7320508))[0]


def mix32(x: int) -> int:
    """lowbias32 (Wellons): a 32-bit integer hash."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def gauss(key: int, i: int) -> float:
    """Approximately standard normal (Irwin-Hall of four 16-bit uniforms), bounded at ±3.46."""
    h1 = mix32(key ^ ((i * 0x9E3779B9) & M32))
    h2 = mix32((h1 + 0x6A09E667) & M32)
    s = (h1 >> 16) + (h1 & 0xFFFF) + (h2 >> 16) + (h2 & 0xFFFF)
    return (s / 65536.0 - 2.0) * SQRT3_F32


def tick_key(seed: int, t: float) -> int:
    tb = struct.unpack("<Q", struct.pack("<d", t))[0]
    k = mix32((seed >> 32) & M32)
    k = mix32((tb >> 32) ^ k)
    k = mix32((tb & M32) ^ k)
    return mix32((seed & M32) ^ k)
