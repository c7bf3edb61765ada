"""The generated IED model and its errors: a bad model must say where and how to fix it."""

import pytest

from devices.iec61850.model import DATASET_LIMIT, ModelError, plan
from devices.iec61850.server import Iec61850Ied
from tests.iec61850.support import ied_device


def test_plan_builds_standard_bay_and_chunks_datasets():
    d = ied_device(extra=250)
    pl = plan(d)
    lns = pl.lds["F1PROT"]
    assert lns["MMXU1"]["TotW"] == ("MV", 0)
    assert lns["MMXU1"]["PhV"][0] == "WYE"
    assert lns["XCBR1"]["Pos"] == ("DPC", 4)  # SBO with enhanced security
    assert lns["PTOC1"]["Op"][0] == "ACT" and lns["PTOC1"]["Str"][0] == "ACD"
    assert lns["MMTR1"]["TotWh"][0] == "BCR"
    assert set(lns) >= {"LLN0", "LPHD1", "CSWI1", "GGIO1"}
    chunks = pl.datasets["F1PROT"]
    # one FCD per referenced data object (7 bay DOs + 250 GGIO AnIn) and the 4 the IED derives from the
    # breaker (CSWI1.Pos, XCBR1.OpCnt/BlkOpn/BlkCls), split at the limit
    assert [len(c) for c in chunks] == [DATASET_LIMIT, DATASET_LIMIT, 261 - 2 * DATASET_LIMIT]
    assert chunks[-1][-4:] == [("CSWI1", "ST", "Pos"), ("XCBR1", "ST", "OpCnt"), ("XCBR1", "ST", "BlkOpn"),
                               ("XCBR1", "ST", "BlkCls")]
    assert chunks[0][0] == ("MMXU1", "MX", "TotW") and ("XCBR1", "ST", "Pos") in chunks[0]


def test_direct_mode_gives_direct_normal():
    assert plan(ied_device(breaker_mode="direct")).lds["F1PROT"]["XCBR1"]["Pos"] == ("DPC", 1)


def _dev(ref: str, **extra):
    d = ied_device()
    data = d.model_dump()
    data["points"][0]["reference"] = ref
    data.update(extra)
    return type(d).model_validate(data)


@pytest.mark.parametrize(
    "ref, words",
    [
        ("F1PROT/MMXU1.Foo.bar", ["points[0] (P)", "no common data class", "MMXU.Foo"]),
        ("XXPROT/MMXU1.TotW.mag.f", ["points[0] (P)", "IED name 'F1'", "iec61850.ied_name"]),
        ("F1PROT/MMXU1.TotW.mag.f.x", ["points[0] (P)", "not in the served model"]),
    ],
)
def test_bad_reference_is_named(ref, words):
    ied = Iec61850Ied(_dev(ref))
    with pytest.raises(ModelError) as e:
        ied.start()
    ied.stop()
    for w in words:
        assert w in str(e.value)


def test_scl_errors_are_clear(tmp_path):
    cid = tmp_path / "bay.cid"
    cid.write_text("<SCL/>")
    with pytest.raises(ModelError, match=r"line 1: root element is <SCL>, expected <SCL xmlns="):
        Iec61850Ied(_dev("F1PROT/MMXU1.TotW.mag.f", iec61850={"scl": str(cid)})).start()
    with pytest.raises(ModelError, match="does not exist"):
        Iec61850Ied(_dev("F1PROT/MMXU1.TotW.mag.f", iec61850={"scl": str(tmp_path / "nope.cfg")})).start()
    bad = tmp_path / "bad.cfg"
    bad.write_text("this is not a model\n")
    with pytest.raises(ModelError, match="not a valid libiec61850 config-file model"):
        Iec61850Ied(_dev("F1PROT/MMXU1.TotW.mag.f", iec61850={"scl": str(bad)})).start()


def test_config_rejects_malformed_reference():
    with pytest.raises(ValueError, match="LD/LN.DO"):
        _dev("not-a-reference")


async def test_own_config_file_model_reports_and_polls(tmp_path):
    """A user's libiec61850 .cfg model: RCB found by browsing, Ind2 (in no data set) polled."""
    import asyncio
    import os

    from gateway.protocols.iec61850.config import Iec61850Device
    from gateway.southbound.iec61850 import MmsSource
    from tests.iec61850.conftest import fast_backoff, running
    from tests.iec61850.support import HERE, IedProcess
    from tests.support.mosquitto import free_port

    eq = "S1/F1/CB1"
    dev = Iec61850Device.model_validate({
        "name": "own", "kind": "ied", "protocol": "iec61850", "port": free_port(), "timeout": 1.0, "poll_interval": 0.2,
        "iec61850": {"ied_name": "OWN", "scl": os.path.join(HERE, "data", "own_model.cfg")},
        "points": [
            {"name": "P", "reference": "OWNLD0/MMXU1.TotW.mag.f", "measurement": {"equipment": eq, "type": "ThreePhaseActivePower"}},
            {"name": "A1", "reference": "OWNLD0/GGIO1.Ind1.stVal", "fc": "ST", "measurement": {"equipment": eq, "type": "SwitchPosition"},
             "value_map": {0: 1, 1: 2}},
            {"name": "A2", "reference": "OWNLD0/GGIO1.Ind2.stVal", "fc": "ST", "measurement": {"equipment": eq, "type": "TapPosition"}},
        ],
    })
    with IedProcess(dev) as ied:
        src = MmsSource(dev, fast_backoff())
        async with running(src) as sink:
            await sink.wait(lambda: src.connected and sink.of("P") and sink.of("A1") and sink.of("A2"), what="GI + poll")
            assert [r.ref for r in src._rcbs] == ["OWNLD0/LLN0.BR.MeasBRCB01"]
            assert list(src._polled) == [("OWNLD0/GGIO1.Ind2", "ST")]
            assert src._factors == {}  # an old-style model without units: the points' scale stays
            ts = ied.update("A1", 2, 0)  # closed → Ind1.stVal true (value_map undone by the IED)
            r = await sink.wait(lambda: [x for x in sink.of("A1") if x.timestamp == ts], what="Ind1 report")
            assert r[-1].value == 2 and r[-1].event  # value_map: true → closed again
            ts = ied.update("A2", True, 0)
            r = await sink.wait(lambda: [x for x in sink.of("A2") if x.timestamp == ts], what="Ind2 poll")
            assert r[-1].value == 1 and not r[-1].event
            # the model's IntgPd (300 ms) keeps integrity reports coming without any change
            n = len(sink.of("P"))
            await asyncio.sleep(1.0)
            integrity = sink.of("P")[n:]
            assert len(integrity) >= 2 and not any(x.event for x in integrity)


def test_port_in_use_is_a_clear_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        ied = Iec61850Ied(ied_device(port=s.getsockname()[1]))
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            ied.start()
        assert not ied.running
    finally:
        s.close()


def test_every_breaker_gets_its_controller_with_mandatory_objects():
    d = ied_device()
    data = d.model_dump()
    pos2 = dict(data["points"][5], name="Pos2", reference="F1PROT/XCBR2.Pos.stVal")
    data["points"].append(pos2)
    lns = plan(type(d).model_validate(data)).lds["F1PROT"]
    assert lns["CSWI2"]["Pos"] == ("DPC", 4) and "Beh" in lns["CSWI2"]
    assert {"Loc", "OpCnt", "BlkOpn", "BlkCls", "Beh"} <= set(lns["XCBR2"])


def test_scale_that_units_cannot_state_is_named():
    d = ied_device()
    data = d.model_dump()
    data["points"][0]["scale"] = 2.5
    ied = Iec61850Ied(type(d).model_validate(data))
    with pytest.raises(ModelError) as e:
        ied.start()
    ied.stop()
    assert "point P (F1PROT/MMXU1.TotW.mag.f)" in str(e.value) and "not a power of ten" in str(e.value)
    data["points"][0]["scale"], data["points"][0]["offset"] = 1000.0, 5.0
    with pytest.raises(ModelError, match="offset 5.0 cannot be stated"):
        Iec61850Ied(type(d).model_validate(data)).start()
