"""Air-gap courier: bundles are verified and imported complete and in order; tampering,
wrong keys, gaps and replays are rejected or reported — and, in the air-gapped profile,
bundles carried across by ``courier-import`` reach a real broker in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from devices.netlab import Lab
from gateway.conduits.courier import CourierWriter, ImportReport, import_dir, read_bundle
from gateway.conduits.records import KeyError_, Record
from gateway.conduits.signing import keygen, load_signing_key, load_verify_key
from tests.netlab.conftest import PY, collect, needs_lab, subscriber, zone_broker

KEY = Ed25519PrivateKey.generate()  # the field side signs
PUB = KEY.public_key()  # the control side only verifies


def _records(start: int, n: int) -> list[Record]:
    return [Record(topic=f"gg/p/{i % 3}", payload=json.dumps({"seq": i, "value": i * 0.5}).encode(), t=1000.0 + i)
            for i in range(start, start + n)]


def _write(d: Path, recs: list[Record], per: int = 5) -> CourierWriter:
    w = CourierWriter(d, KEY, "sub01", d.parent / "writer.json", max_records=per)
    for r in recs:
        w.add(r)
    w.flush()
    return w


def _import(d: Path, key: Ed25519PublicKey = PUB) -> tuple[list[Record], ImportReport]:
    rep = ImportReport()
    out = [r for b in import_dir(d, key, d.parent / "reader.json", rep) for r in b.records]
    return out, rep


def test_bundles_import_complete_and_in_order(tmp_path: Path) -> None:
    d = tmp_path / "usb"
    recs = _records(0, 23)
    w = _write(d, recs)
    assert w.seq == 5 and sorted(p.name for p in d.iterdir())[0] == "sub01-0000000001.ggb"
    got, rep = _import(d)
    assert got == recs and rep.ok and rep.records == 23 and len(rep.imported) == 5
    again, rep2 = _import(d)  # re-import of the same stick publishes nothing twice
    assert again == [] and len(rep2.already) == 5 and rep2.ok


@pytest.mark.parametrize(
    "tamper,reason",
    [
        (lambda raw: raw[:-10] + bytes([raw[-10] ^ 1]) + raw[-9:], "body checksum mismatch"),
        (lambda raw: raw.replace(b'"count":5', b'"count":4', 1), "bad signature"),
        (lambda raw: raw.split(b"\n", 1)[0], "truncated"),
    ],
)
def test_tampered_bundle_is_rejected_and_later_ones_held_back(tmp_path: Path, tamper, reason: str) -> None:  # noqa: ANN001
    d = tmp_path / "usb"
    recs = _records(0, 15)
    _write(d, recs)
    victim = d / "sub01-0000000002.ggb"
    victim.write_bytes(tamper(victim.read_bytes()))
    got, rep = _import(d)
    assert got == recs[:5]
    assert rep.rejected == [("sub01-0000000002.ggb", rep.rejected[0][1])] and reason in rep.rejected[0][1]
    assert rep.waiting == ["sub01-0000000003.ggb"] and not rep.ok
    assert "REJECTED sub01-0000000002.ggb" in rep.summary()


def test_wrong_key_is_rejected(tmp_path: Path) -> None:
    d = tmp_path / "usb"
    _write(d, _records(0, 5))
    other = Ed25519PrivateKey.generate().public_key()
    got, rep = _import(d, key=other)
    assert got == [] and "bad signature" in rep.rejected[0][1]
    with pytest.raises(Exception, match="bad signature"):
        read_bundle(d / "sub01-0000000001.ggb", other)


def test_the_control_side_cannot_forge_a_bundle(tmp_path: Path) -> None:
    """With only the public key (all the importer holds), a re-signed manifest does not verify."""
    import base64
    import hashlib

    d = tmp_path / "usb"
    _write(d, _records(0, 5))
    f = d / "sub01-0000000001.ggb"
    head, body = f.read_bytes().split(b"\n", 1)
    forged_body = body.replace(b"gg/p/", b"gg/X/")
    m = json.loads(head)
    m["body_sha256"] = hashlib.sha256(forged_body).hexdigest()
    for sig in ("", base64.b64encode(bytes(64)).decode(), m["signature"], "!!"):
        m["signature"] = sig
        f.write_bytes(json.dumps(m).encode() + b"\n" + forged_body)
        got, rep = _import(d)
        assert got == [] and "bad signature" in rep.rejected[0][1]


def test_missing_bundle_stops_the_import_and_is_reported_then_resumes(tmp_path: Path) -> None:
    d = tmp_path / "usb"
    recs = _records(0, 15)
    _write(d, recs)
    held = tmp_path / "held.ggb"
    (d / "sub01-0000000002.ggb").rename(held)
    got, rep = _import(d)
    assert got == recs[:5] and rep.missing == [("sub01", 2)] and rep.waiting == ["sub01-0000000003.ggb"]
    held.rename(d / "sub01-0000000002.ggb")  # the courier brings the missing stick
    got2, rep2 = _import(d)
    assert got2 == recs[5:] and rep2.ok


def test_bundle_from_another_chain_is_rejected(tmp_path: Path) -> None:
    """A correctly signed bundle that does not follow the last imported one (replayed from
    an older spool, or swapped) breaks the hash chain."""
    a, c = tmp_path / "a" / "usb", tmp_path / "c" / "usb"
    _write(a, _records(0, 10))
    _write(c, _records(200, 15))
    got, _ = _import(a)
    assert len(got) == 10
    (a / "sub01-0000000003.ggb").write_bytes((c / "sub01-0000000003.ggb").read_bytes())
    got, rep = _import(a)
    assert got == [] and "chain broken" in rep.rejected[0][1]


def test_key_file_errors_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match="keygen"):
        load_signing_key(tmp_path / "nokey")
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(KeyError_, match="not an unencrypted PEM private key"):
        load_signing_key(tmp_path / "short")
    keygen(tmp_path / "k.pem", tmp_path / "k.pub")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyError_, match="is a private key"):
        load_verify_key(tmp_path / "k.pem")  # the control side must not be able to sign
    with pytest.raises(KeyError_, match="never overwrites"):
        keygen(tmp_path / "k.pem", tmp_path / "other.pub")
    # PEM read byte for byte: a key file with trailing whitespace/newlines is still the same key
    (tmp_path / "k2.pem").write_bytes((tmp_path / "k.pem").read_bytes() + b"\n\n")
    priv, pub = load_signing_key(tmp_path / "k2.pem"), load_verify_key(tmp_path / "k.pub")
    pub.verify(priv.sign(b"x"), b"x")


@needs_lab
@pytest.mark.netns
def test_air_gapped_profile_courier_carries_bundles_to_the_broker_in_order(tmp_path: Path) -> None:
    key, pub = tmp_path / "courier.key", tmp_path / "courier.pub"
    keygen(key, pub)
    usb = tmp_path / "usb"
    lines = "".join(json.dumps({"topic": "gg/airgap", "payload": json.dumps({"seq": i})}) + "\n" for i in range(40))
    bad_lines = "".join(json.dumps({"topic": "gg/airgap", "payload": json.dumps({"seq": i})}) + "\n" for i in range(40, 60))
    with Lab("air-gapped") as lab, zone_broker(lab, "control", tmp_path) as broker:
        # no network path north at all: the gateway knows only the field subnet
        routes = lab.run_in("gateway", ["ip", "-4", "route"]).stdout.splitlines()
        assert [r.split()[0] for r in routes] == [lab.plan.segments[0].subnet]
        r = lab.run_in("gateway", [PY, "-m", "devices.netlab.probe", "connect", "10.200.99.1:1883", "--timeout", "0.5"])
        assert json.loads(r.stdout) == {"10.200.99.1:1883": "unreachable"}
        w = lab.run_in("gateway", [PY, "-m", "gateway.conduits.run", "courier-write", str(usb), "--key-file", str(key),
                                   "--source", "sub01", "--state", str(tmp_path / "w.json"), "--per-bundle", "10"], input=lines)
        assert w.returncode == 0 and json.loads(w.stdout)["last_seq"] == 4, w.stderr
        sub = subscriber(lab, "control", broker, "gg/airgap", count=50, timeout=8)
        imp = lab.run_in("control", [PY, "-m", "gateway.conduits.run", "courier-import", str(usb), "--key-file", str(pub),
                                     "--state", str(tmp_path / "r.json"), "--broker", f"{broker}:1883"])
        assert imp.returncode == 0, imp.stderr
        assert json.loads(imp.stdout)["records"] == 40
        # a second trip: bundle 6 is tampered on the way
        lab.run_in("gateway", [PY, "-m", "gateway.conduits.run", "courier-write", str(usb), "--key-file", str(key),
                               "--source", "sub01", "--state", str(tmp_path / "w.json"), "--per-bundle", "10"], input=bad_lines)
        b6 = usb / "sub01-0000000006.ggb"
        b6.write_bytes(b6.read_bytes().replace(b'"topic":"gg/airgap"', b'"topic":"gg/airgaq"', 1))
        imp2 = lab.run_in("control", [PY, "-m", "gateway.conduits.run", "courier-import", str(usb), "--key-file", str(pub),
                                      "--state", str(tmp_path / "r.json"), "--broker", f"{broker}:1883"])
        msgs = collect(sub, 15)
    assert imp2.returncode == 2 and "REJECTED sub01-0000000006.ggb: body checksum mismatch" in imp2.stderr
    assert [m["payload"]["seq"] for m in msgs] == list(range(50))
