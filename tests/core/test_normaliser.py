"""Report-by-exception, integrity republish and seq, on the real catalog of a site."""

from __future__ import annotations

import json

import pytest

from gateway.cim import MeasurementValue, build_catalog
from gateway.normaliser import Normaliser, Publication
from gateway.pipeline import Reading
from gateway.site.quality import COMMS_LOST, Q
from tests.support.sites import modbus_site


@pytest.fixture
def norm(tmp_path):
    cfg, _ = modbus_site(tmp_path)
    out: list[Publication] = []
    n = Normaliser(build_catalog(cfg), out.append)
    return n, out


def test_deadband_relative_to_last_published(norm):
    n, out = norm  # meter1/Ia has deadband 0 in the test site: use P with a deadband set here
    n.catalog["meter1/Ia"].deadband = 1.0
    for v in (100.0, 100.5, 100.9, 101.2, 101.0, 100.1):
        n(Reading("meter1/Ia", v, 0, 1000.0, "holding:10"))
    assert [json.loads(p.payload)["value"] for p in out] == [100.0, 101.2, 100.1]
    assert n.stats.suppressed == 3 and n.stats.published == 3


def test_quality_change_always_published(norm):
    n, out = norm
    n(Reading("meter1/Ia", 5.0, 0, 1.0))
    n(Reading("meter1/Ia", 5.0, int(COMMS_LOST), 1.0))
    n(Reading("meter1/Ia", 5.0, int(COMMS_LOST), 1.0))
    n(Reading("meter1/Ia", 5.0, 0, 2.0))
    qs = [json.loads(p.payload)["quality"] for p in out]
    assert qs == [
        {"validity": "GOOD", "source": "PROCESS"},
        {"validity": "INVALID", "source": "PROCESS", "failure": True, "oldData": True},
        {"validity": "GOOD", "source": "PROCESS"},
    ]


def test_discrete_any_change_qos1_retained_and_alias(norm):
    n, out = norm
    for v in (2, 2, 1, 0, 3):
        n(Reading("meter1/CB", v, 0, 1.0, "discrete_input:3"))
    bodies = [json.loads(p.payload) for p in out]
    assert [(b["value"], b["valueAlias"]) for b in bodies] == [(2, "closed"), (1, "open"), (0, "intermediate"), (3, "bad")]
    assert all(p.qos == 1 and p.retain for p in out)


def test_events_bypass_deadband_and_seq_is_gap_free(norm):
    n, out = norm
    n.catalog["meter1/Ia"].deadband = 10
    n(Reading("meter1/Ia", 1.0, 0, 1.0))
    n(Reading("meter1/Ia", 1.0, 0, 2.0, event=True))
    n(Reading("meter1/P", 7.0, int(Q.SUBSTITUTED), 3.0))
    assert [p.seq for p in out] == [1, 2, 3]
    assert [json.loads(p.payload)["seq"] for p in out] == [1, 2, 3]
    assert json.loads(out[2].payload)["quality"] == {"validity": "GOOD", "source": "SUBSTITUTED"}


def test_integrity_republishes_every_known_point(norm):
    n, out = norm
    n(Reading("meter1/Ia", 1.0, 0, 1.0))
    n(Reading("meter1/Hz", 50.0, 0, 1.0))
    assert n.republish_all() == 2
    assert [p.key for p in out[2:]] == ["meter1/Ia", "meter1/Hz"]


def test_unknown_key_counted_not_silent(norm, caplog):
    n, out = norm
    n(Reading("nope/x", 1.0))
    n(Reading("nope/x", 2.0))
    assert out == [] and n.stats.unknown == 2
    assert caplog.text.count("unknown point 'nope/x'") == 1


def test_payload_validates_against_published_schema(norm):
    n, out = norm
    n(Reading("meter1/P", 4321.5, int(Q.QUESTIONABLE | Q.INACCURATE), 1700000000.123, "holding:0"))
    n(Reading("meter1/CB", None, int(COMMS_LOST), 1700000000.0))
    for p in out:
        MeasurementValue.model_validate_json(p.payload)  # raises if the JSON drifts from the schema
    b = json.loads(out[0].payload)
    assert b["timeStamp"] == "2023-11-14T22:13:20.123Z"
    assert b["quality"] == {"validity": "QUESTIONABLE", "source": "PROCESS", "inaccurate": True}
    assert json.loads(out[1].payload)["value"] is None


def test_comms_lost_turns_questionable_into_invalid():
    from gateway.pipeline import mark_comms_lost

    out: list[Reading] = []
    last = {"d/a": Reading("d/a", 1.5, int(Q.QUESTIONABLE | Q.INACCURATE), 10.0, "x"), "d/b": Reading("d/b", 2, 0, 11.0)}
    mark_comms_lost(["d/a", "d/b", "d/c"], last, out.append, 99.0)
    assert [(r.key, r.value, r.timestamp) for r in out] == [("d/a", 1.5, 10.0), ("d/b", 2, 11.0), ("d/c", None, 99.0)]
    assert all(r.quality & 0x3 == int(Q.INVALID) for r in out)
    assert out[0].quality & Q.INACCURATE and out[0].quality & Q.FAILURE and out[0].quality & Q.OLD_DATA
    last = {r.key: r for r in out}
    again: list[Reading] = []
    mark_comms_lost(["d/a", "d/b", "d/c"], last, again.append, 100.0)
    assert again == []  # nothing new for points already marked


def test_compact_payload_is_small_and_valid(tmp_path):
    import yaml

    from gateway.config import load_config

    cfg, path = modbus_site(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["gateway"]["northbound"]["payload"] = "compact"
    path.write_text(yaml.safe_dump(data))
    full_out: list[Publication] = []
    compact_out: list[Publication] = []
    Normaliser(build_catalog(cfg), full_out.append)(Reading("meter1/Ia", 182.4, 0, 1.0, "holding:10"))
    Normaliser(build_catalog(load_config(path)), compact_out.append)(Reading("meter1/Ia", 182.4, 0, 1.0, "holding:10"))
    full, compact = json.loads(full_out[0].payload), json.loads(compact_out[0].payload)
    assert compact["measurement"] == {"mRID": full["measurement"]["mRID"]}
    assert {k: v for k, v in compact.items() if k != "measurement"} == {k: v for k, v in full.items() if k != "measurement"}
    assert len(compact_out[0].payload) < 0.5 * len(full_out[0].payload)
    MeasurementValue.model_validate_json(compact_out[0].payload)


def test_batch_publishes_what_one_by_one_publishes(tmp_path):
    """``many`` (a poll's readings at once, the Modbus driver's path) and ``__call__`` (one by one) give the
    same messages, seq, counters and sink order; ``sink_many`` gets the batch in one call."""
    cfg, _ = modbus_site(tmp_path)
    readings = [
        Reading("meter1/Ia", 182.4, 0, 1000.25, "holding:10"),
        Reading("meter1/CB", 2.0, 0, 1000.25, "discrete_input:3"),  # a discrete carried as a float: an integer
        Reading("meter1/nope", 1.0, 0, 1000.25),  # not in the catalog: counted, never published
        Reading("meter1/Ia", 182.4, 0, 1000.75, "holding:10"),  # unchanged: suppressed
        Reading("meter1/Ia", 182.4, 0, 1001.0, "holding:10", event=True),  # an event: always published
        Reading("meter1/Ia", 182.4, int(COMMS_LOST), 1001.5, "holding:10"),
    ]
    one: list[Publication] = []
    n1 = Normaliser(build_catalog(cfg), one.append, analog_expiry=30, first_seq=7)
    for r in readings:
        n1(r)
    batches: list[list[Publication]] = []
    n2 = Normaliser(build_catalog(cfg), lambda p: batches.append([p]), analog_expiry=30, first_seq=7, sink_many=batches.append)
    n2.many(readings)
    assert len(batches) == 1
    fields = ("topic", "payload", "qos", "retain", "expiry", "kind", "seq", "key", "event")
    assert [[getattr(p, f) for f in fields] for p in batches[0]] == [[getattr(p, f) for f in fields] for p in one]
    assert [(p.kind, p.seq, p.qos, p.expiry) for p in one] == [
        ("analog", 7, 0, 30), ("discrete", 8, 1, None), ("event", 9, 0, 30), ("analog", 10, 0, 30)]
    assert json.loads(one[1].payload)["value"] == 2 and json.loads(one[1].payload)["valueAlias"] == "closed"
    assert (n1.stats, n1.seq) == (n2.stats, n2.seq) and (n2.stats.unknown, n2.stats.suppressed, n2.stats.readings) == (1, 1, 6)
    for p in one:
        MeasurementValue.model_validate_json(p.payload)


def test_batch_and_one_by_one_agree_on_a_random_stream(tmp_path):
    """The batch loop inlines the change test (deadband, quality, None, events): on a random stream of
    readings of every kind of point, both paths publish the same messages and count the same."""
    import random

    cfg, _ = modbus_site(tmp_path)
    cat1, cat2 = build_catalog(cfg), build_catalog(cfg)
    for cat in (cat1, cat2):
        cat["meter1/P"].deadband = 0.5
    keys = list(cat1)
    rng = random.Random(18)
    values = [None, 0, 1, 2, 2.0, 3, 10.0, 10.25, 10.75, 11.0, float("nan")]  # NaN: analogs only (a switch has no alias for it)
    readings = []
    for i in range(3000):
        key = rng.choice(keys)
        value = rng.choice(values if cat1[key].analog else values[:-1])
        readings.append(Reading(key, value, rng.choice([0, 0, 0, int(COMMS_LOST), int(Q.SUBSTITUTED)]),
                                1000.0 + i // 7 + rng.choice((0, 0.5)), rng.choice(("holding:10", "holding:11")),
                                event=rng.random() < 0.05))
    one: list[Publication] = []
    n1 = Normaliser(cat1, one.append)
    for r in readings:
        n1(r)
    many: list[Publication] = []
    n2 = Normaliser(cat2, many.append, sink_many=many.extend)
    for i in range(0, len(readings), 50):
        n2.many(readings[i:i + 50])
    fields = ("topic", "payload", "qos", "retain", "expiry", "born", "kind", "seq", "key", "event")
    assert [[getattr(p, f) for f in fields] for p in many] == [[getattr(p, f) for f in fields] for p in one]
    assert sum(b'"value":null' in p.payload for p in one) > 50  # NaN and None both published as null
    assert n1.stats == n2.stats and n1.stats.suppressed > 100 and n1.stats.published > 500
    assert {k: repr((v.value, v.quality, v.timestamp, v.address)) for k, v in n1.last.items()} == \
        {k: repr((v.value, v.quality, v.timestamp, v.address)) for k, v in n2.last.items()}
