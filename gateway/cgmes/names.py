"""gridgate names (letters, digits, _ . -, at most 64) from CIM names, unique within their scope."""

from __future__ import annotations

import re

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


def name_of(raw: str, fallback: str) -> str:
    """A gridgate Name (letters, digits, _ . -, ≤64) from a CIM name."""
    n = _NAME_BAD.sub("_", raw.strip()).strip("_.-")[:64]
    return n if n and n[0].isalnum() else (fallback if not n else f"X{n}"[:64])


def unique(n: str, used: set[str]) -> str:
    base, i = n, 2
    while n in used:
        n = f"{base[:60]}_{i}"
        i += 1
    used.add(n)
    return n
