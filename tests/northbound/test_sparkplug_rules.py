"""Sparkplug B 3.0 rules that need no broker: one timestamp rule, small persisted aliases, bdSeq state."""

from __future__ import annotations

import random
from datetime import datetime

from gateway.encoding import epoch_ms, iso_ms
from gateway.northbound.sparkplug import SparkplugNode
from tests.northbound import pbdecode


def _iso_to_ms(text: str) -> int:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(t.timestamp()) * 1000 + t.microsecond // 1000


def test_one_timestamp_rule_for_cim_and_sparkplug():
    rng = random.Random(20)
    node = SparkplugNode("g", "e", {"d": [("x", "Double")]})
    node.will()
    node.node_birth()
    # readings with sub-ms fractions, including .xxx5 and .xxx9996 that rounding and truncation split
    times = [1_790_000_000 + rng.random() * 1000 for _ in range(2000)]
    times += [1_790_000_000.0005, 1_790_000_000.0015, 1_790_000_000.9999996, 1_790_000_000.1239]
    split = 0
    for t in times:
        cim = _iso_to_ms(iso_ms(t))
        spb = pbdecode.payload(node.device_data("d", [("x", 1.0, 0, t)]).payload)["metrics"][0]["timestamp"]
        assert cim == spb == epoch_ms(t), (t, iso_ms(t), spb)
        split += int(round(t * 1000)) != cim  # where the old rounding path differed
    assert split > 500  # the sample does exercise the readings that used to differ by 1 ms
