"""The c104 adapter's pure parts and the site-file model: quality descriptor mapping both ways, value
conversions, the APDU header check, and validation errors that name the YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, load_config
from gateway.protocols.iec104.adapter import MalformedApdu, parse_apdu, q_to_quality, quality_to_q, to_engineering, to_raw
from gateway.site.quality import COMMS_LOST, Q
from tests.iec104.support import asdu, device, i_frame

SAMPLE = Path(__file__).resolve().parents[2] / "gateway/protocols/iec104/sample-site.yaml"


@pytest.mark.parametrize(
    ("qds", "q"),
    [
        (0x00, 0),
        (0x80, int(Q.INVALID)),
        (0x40, int(Q.QUESTIONABLE | Q.OLD_DATA)),
        (0x20, int(Q.SUBSTITUTED)),
        (0x10, int(Q.OPERATOR_BLOCKED)),
        (0x01, int(Q.QUESTIONABLE | Q.OVERFLOW)),
        (0xC1, int(Q.INVALID | Q.OLD_DATA | Q.OVERFLOW)),  # IV wins over NT's and OV's QUESTIONABLE
        (0xB0, int(Q.INVALID | Q.SUBSTITUTED | Q.OPERATOR_BLOCKED)),
    ],
)
def test_quality_descriptor_maps_to_gridgate_quality_and_back(qds: int, q: int) -> None:
    assert quality_to_q(qds) == q
    assert q_to_quality(q) == qds


def test_gridgate_only_qualities_map_to_the_nearest_descriptor() -> None:
    assert q_to_quality(int(COMMS_LOST)) == 0x80 | 0x40  # INVALID + oldData → IV NT
    assert q_to_quality(int(Q.QUESTIONABLE)) == 0x40  # questionable without a detail → NT
    assert q_to_quality(int(Q.DEFAULTED)) == 0x20


def test_values_convert_with_scale_offset_and_value_map_and_clamp_to_the_type() -> None:
    d = device()
    pts = {p.name: p for p in d.points}
    assert to_raw(pts["Ia"], 180.34) == 1803 and to_engineering(pts["Ia"], 1803) == pytest.approx(180.3)
    assert to_raw(pts["Ia"], 1e9) == 32767  # Int16
    assert to_raw(pts["Tap"], 99) == 63  # Int7
    assert to_raw(pts["Pos"], 2) == 2 and to_engineering(pts["Pos"], 2) == 2
    mapped = pts["Trip"].model_copy(update={"value_map": {0: 1, 1: 2}})
    assert to_raw(mapped, 2) == 1 and to_engineering(mapped, 1) == 2
    assert to_engineering(pts["E"], 98765) == 98765 and isinstance(to_engineering(pts["E"], 98765), int)


def test_parse_apdu_reads_the_header_and_names_what_is_wrong() -> None:
    a = parse_apdu(i_frame(3, 4, asdu(46, 0x47, 7, 1200, bytes([0x81]))))
    assert (a.fmt, a.type_id, a.cot, a.negative, a.ca, a.ioa, a.select) == ("I", 46, 7, True, 7, 1200, True)
    assert parse_apdu(bytes.fromhex("680401000200")).fmt == "S"
    assert parse_apdu(bytes.fromhex("680443000000")).u_function == 0x43
    cases = [
        (b"\x68\x04\x07", "bad_start"),
        (bytes.fromhex("690407000000"), "bad_start"),
        (bytes.fromhex("680507000000"), "bad_length"),
        (i_frame(0, 0, asdu(100, 6, 7, 0, b"\x14"))[:10], "bad_length"),
        (bytes.fromhex("680800000000") + bytes([100, 1, 6, 0]), "truncated_asdu"),
        (i_frame(0, 0, asdu(99, 6, 7, 0, b"\x14")), "unknown_type"),
        (i_frame(0, 0, asdu(100, 6, 7, 0, b"\x14", vsq=0)), "truncated_asdu"),
    ]
    for frame, reason in cases:
        with pytest.raises(MalformedApdu) as e:
            parse_apdu(frame)
        assert e.value.reason == reason, (frame.hex(" "), str(e.value))


def _broken(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(SAMPLE.read_text())
    mutate(data["devices"][0])
    p = tmp_path / "site.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


@pytest.mark.parametrize(
    ("mutate", "where", "says"),
    [
        (lambda d: d["iec104"].update(t2=20), "devices[0].iec104", "t2 (20 s) must be shorter than t1 (15 s)"),
        (lambda d: d["iec104"].update(w=12), "devices[0].iec104", "w (12) should not exceed two thirds of k (12)"),
        (lambda d: d["iec104"].update(backup={"host": "127.0.0.1", "port": 70000}), "devices[0].iec104.backup.port", "65535"),
        (lambda d: d["iec104"].update(backup={"host": d["host"], "port": d["port"]}), "devices[0]",
         "iec104.backup is the device's own address"),
        (lambda d: d["iec104"].update(max_time_skew="soon"), "devices[0].iec104.max_time_skew", "soon"),
        (lambda d: d["points"][0].update(type="M_XX_NA_1"), "devices[0].points[0].type", "M_ME_NC_1"),
        (lambda d: d["points"][2].update(command={"enabled": True}), "devices[0].points[2]", "integrated totals have no command"),
        (lambda d: d["points"][1].update(ioa=1001), "devices[0].points[1].ioa", "overlaps point 'P'"),
        (lambda d: d["points"][0].update(ioa=3001), "devices[0].points[3].ioa", "overlaps point 'P'"),  # P's IOA = Pos's command IOA
    ],
    ids=["t2-not-below-t1", "w-above-two-thirds-k", "backup-port-out-of-range", "backup-same-as-primary",
         "max-time-skew-not-a-duration", "unknown-type", "command-on-counter", "duplicate-ioa", "command-ioa-clash"],
)
def test_site_file_errors_name_the_yaml_path(tmp_path: Path, mutate, where: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(_broken(tmp_path, mutate))
    (problem,) = e.value.problems
    assert problem.startswith(where) and says in problem, problem


def test_the_sample_and_the_example_site_validate() -> None:
    cfg = load_config(SAMPLE)
    d = cfg.devices[0]
    assert (d.iec104.common_address, d.iec104.k, d.iec104.w, d.iec104.t1) == (1, 12, 8, 15.0)
    ex = load_config(Path(__file__).resolve().parents[2] / "configs/iec104-rtu.yaml")
    assert {p.type for p in ex.devices[0].points} >= {"M_ME_TF_1", "M_ME_NB_1", "M_ST_TB_1", "M_DP_TB_1", "M_SP_TB_1", "M_IT_TB_1"}
