"""The cached hot-path encoders produce exactly the bytes of the straightforward encoders."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

from gateway import encoding as fast
from gateway.cim import build_catalog
from gateway.config import load_config
from gateway.site import quality as qmod
from gateway.site.model import SWITCH_POSITIONS

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "primary-substation.yaml"


def _iso_reference(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_quality_json_equals_reference_for_every_16_bit_flag_value() -> None:
    for flags in range(0x10000):
        assert fast.quality_json(flags) == json.dumps(qmod.to_cim(flags), separators=(",", ":")), hex(flags)
    assert fast.quality_json(int(qmod.COMMS_LOST)) == '{"validity":"INVALID","source":"PROCESS","failure":true,"oldData":true}'


def test_iso_ms_equals_datetime_formatting() -> None:
    rng = random.Random(18)
    stamps = [0.0, 0.0005, 0.9995, 0.9999995, 0.9999994, 1.0, 1764982800.0, 1764982800.9996,
              1764982800.9999996, 1764982859.999, 4102444799.9999999, 951782400.5]  # incl. 2000-02-29
    stamps += [rng.uniform(0, 4.2e9) for _ in range(20000)]
    base = 1764982800.0
    stamps += [base + i / 1000 + rng.choice((0, 0.0004999, 0.0005, 0.0009999)) for i in range(5000)]
    for t in stamps:
        assert fast.iso_ms(t) == _iso_reference(t), repr(t)
    # the per-second cache must follow time backwards too (a late reading after a newer one)
    assert fast.iso_ms(base + 5.25) == "2025-12-06T01:00:05.250Z"
    assert fast.iso_ms(base + 1.5) == "2025-12-06T01:00:01.500Z"
    assert fast.iso_ms(-1.5) == _iso_reference(-1.5)


def _payload_reference(e, value, flags, ts, seq, address) -> bytes:
    """The payload as the catalog entry built it before caching: full json.dumps of every part."""
    body: dict = {"mRID": e.value_mrid, "measurement": json.loads(e.json_prefix.removesuffix(',"value":') + "}")["measurement"]}
    if value is None or value != value:
        body["value"] = None
    elif e.kind != "Analog" and isinstance(value, float) and abs(value) != float("inf"):
        body["value"] = round(value)  # DiscreteValue/AccumulatorValue are integers in every path
    else:
        body["value"] = round(value, 6) if isinstance(value, float) else value
    if e.is_switch and value is not None:
        body["valueAlias"] = SWITCH_POSITIONS.get(int(value), "bad")
    body["timeStamp"] = _iso_reference(ts)
    body["quality"] = qmod.to_cim(flags)
    body["seq"] = seq
    body["provenance"] = {"device": e.device, "protocol": e.protocol, "address": address}
    return json.dumps(body, separators=(",", ":")).encode()


def test_payloads_equal_the_uncached_encoding_on_the_example_site() -> None:
    catalog = build_catalog(load_config(EXAMPLE_CONFIG))
    assert len(catalog) > 50
    rng = random.Random(7)
    seq = 0
    for rnd in range(3):
        for e in catalog.values():
            seq += 1
            value = rng.choice([None, 0, 1, 2, 3, 17, 230.125, -0.5, 11000.000001, rng.uniform(-1e6, 1e6)])
            flags = rng.choice([0, 0x80, 0x03, int(qmod.COMMS_LOST), 0x0400 | 0x0008, 0x4000, 0x8000 | 0x0800])
            ts = 1764982800.0 + rnd + rng.random()
            address = rng.choice(["holding:100", "analog:3", f"{e.device}:{rnd}"])  # a changed address re-encodes
            got = e.payload(value, flags, ts, seq, address)
            assert got == _payload_reference(e, value, flags, ts, seq, address)  # byte-identical
            assert got.startswith(b'{"mRID":"' + e.value_mrid.encode() + b'","measurement":{')
            assert b'"provenance":{"device":"' + e.device.encode() + b'","protocol":"' + e.protocol.encode() in got


def test_catalog_json_is_the_same_in_full_and_compact_payload_modes() -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    full = build_catalog(cfg)
    cfg.gateway.northbound.payload = "compact"
    compact = build_catalog(cfg)
    assert full.keys() == compact.keys()
    for key, e in full.items():
        c = compact[key]
        m = json.loads(e.measurement_json)
        assert set(m) == {"mRID", "name", "kind", "measurementType", "cimMeasurementType", "unitSymbol", "unitMultiplier", "phases",
                          "powerSystemResource", "topic"}
        assert e.measurement_json == c.measurement_json == json.dumps(m, separators=(",", ":"))
        assert e.mrid == c.mrid == m["mRID"] and m["topic"] == e.topic
        assert e.measurement == m
        assert e.json_prefix == '{"mRID":"' + e.value_mrid + '","measurement":' + e.measurement_json + ',"value":'
        assert c.json_prefix == '{"mRID":"' + c.value_mrid + '","measurement":{"mRID":"' + m["mRID"] + '"},"value":'


def test_catalog_build_looks_equipment_paths_up_once_not_per_point(monkeypatch) -> None:
    """Start-up stays linear in points: the path table is built once per catalog."""
    from gateway.config import Config

    cfg = load_config(EXAMPLE_CONFIG)
    calls = []
    real = Config.equipment_paths
    monkeypatch.setattr(Config, "equipment_paths", lambda self: calls.append(1) or real(self))
    catalog = build_catalog(cfg)
    assert len(catalog) > 50
    assert len(calls) == 1


def test_analog_number_text_is_repr_of_the_value_rounded_to_6_decimals() -> None:
    """The payload formats analog numbers with a fixed-point fast path; its text is exactly
    ``repr(round(v, 6))`` (what json.dumps writes) at every magnitude, either side of the fast path's bounds."""
    import struct

    e = next(e for e in build_catalog(load_config(EXAMPLE_CONFIG)).values() if e.analog)
    rng = random.Random(18)
    values = [0.0, -0.0, 1e-4, -1e-4, 9.99999e-5, 0.00010000049, 0.0001000005, 4294967295.9999995, 4294967296.0,
              -4294967296.0, 123.4000000000001, 0.1 + 0.2, 1e15 - 1, 5e-7, -5e-7, 1.0000005, 2.5e-6]
    values += [raw * s for raw in range(0, 65536, 7) for s in (0.1, 0.01, 0.001, 1 / 3, 2.5e-5)]
    values += [rng.choice((1, -1)) * 10 ** rng.uniform(-7, 14.9) for _ in range(100000)]
    values += [k / 1e6 + d for k in (rng.randrange(-10**12, 10**12) for _ in range(20000)) for d in (0, 5e-7, -5e-7)]
    values += [v for v in (struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0] for _ in range(20000)) if v == v]
    for v in values:
        if abs(v) >= 1e15:
            continue
        body = e.payload(v, 0, 1764982800.0, 1, "holding:1")
        text = body[len(e.json_prefix):body.index(b',"timeStamp"')].decode()
        assert text == repr(round(v, 6)), repr(v)
