"""The catalog's and validation's mRID texts (gateway/site/cimtypes.py ``uuid5_text``) are exactly
``str(uuid.uuid5(...))``: a changed derived mRID would rename every measurement of every site."""

from __future__ import annotations

import random
import uuid

from gateway.site.cimtypes import MRID_NAMESPACE, uuid5_text, uuid_bytes
from tests.support.sites import modbus_site


def test_uuid5_text_equals_uuid5() -> None:
    rng = random.Random(18)
    alphabet = "abcXYZ019/_- .éß€😀\u0000"
    namespaces = [MRID_NAMESPACE, uuid.NAMESPACE_DNS, *(uuid.UUID(int=rng.getrandbits(128)) for _ in range(50))]
    for ns in namespaces:
        for n in range(60):
            name = "".join(rng.choice(alphabet) for _ in range(n))
            expected = str(uuid.uuid5(ns, name))
            assert uuid5_text(ns.bytes, name) == expected
            assert uuid5_text(uuid_bytes(str(ns)), name) == expected
            assert uuid_bytes(expected) == uuid.UUID(expected).bytes


def test_measurement_mrid_text_equals_measurement_mrid(tmp_path) -> None:
    from gateway.cim import build_catalog
    from gateway.config import load_config

    _, path = modbus_site(tmp_path)
    cfg = load_config(path)
    points = [p for d in cfg.devices for p in d.points]
    assert points
    for p in points:
        assert cfg.measurement_mrid_text(p) == str(cfg.measurement_mrid(p))
    catalog = build_catalog(cfg)
    for d in cfg.devices:
        for p in d.points:
            e = catalog[f"{d.name}/{p.name}"]
            mrid = cfg.measurement_mrid(p)
            assert e.value_mrid == str(uuid.uuid5(mrid, "value"))
            assert f'"measurement":{{"mRID":"{mrid}"' in e.json_prefix
    explicit = points[0].measurement.model_copy(update={"mrid": uuid.UUID("12345678-1234-5678-1234-567812345678")})
    p0 = points[0].model_copy(update={"measurement": explicit})
    assert cfg.measurement_mrid_text(p0) == "12345678-1234-5678-1234-567812345678" == str(cfg.measurement_mrid(p0))
