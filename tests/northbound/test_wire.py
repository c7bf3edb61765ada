"""Our hot-path PUBLISH encoder must produce byte-identical packets to gmqtt's own encoder."""

import gmqtt
import pytest
from gmqtt.mqtt.package import PublishPacket

from gateway.northbound.wire import append_publish0, publish_head, publish_packet, varint


class _Proto:
    def __init__(self, version: int) -> None:
        self.proto_ver = version
        self.id_generator = self

    def next_id(self) -> int:
        return 4242


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize("retain", [False, True])
@pytest.mark.parametrize("size", [0, 1, 120, 300, 20_000, 2_100_000])
def test_publish_packet_matches_gmqtt(version, qos, retain, size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    for expiry in ((None, 30) if version == 5 else (None,)):
        kw = {"message_expiry_interval": expiry} if expiry else {}
        _, ref = PublishPacket.build_package(gmqtt.Message("gridgate/v1/gw1/ü", payload, qos=qos, retain=retain, **kw),
                                             _Proto(version))
        mine = publish_packet("gridgate/v1/gw1/ü".encode(), payload, qos, retain, 4242 if qos else None, version == 5, expiry)
        assert mine == bytes(ref)
        head = publish_head("gridgate/v1/gw1/ü", len(payload), qos, retain, 4242 if qos else None, version == 5, expiry)
        assert bytes(head) + payload == bytes(ref)  # the send loop's encoder (cached topic field)
        if not qos:
            for _ in range(2):  # the second time from the per-topic cache
                out = bytearray(b"before")
                append_publish0(out, "gridgate/v1/gw1/ü", payload, retain, version == 5, expiry)
                assert out == b"before" + bytes(ref)


def test_varint_spec_examples():  # MQTT 5 §1.5.5 table
    assert [varint(n) for n in (0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455)] == [
        b"\x00", b"\x7f", b"\x80\x01", b"\xff\x7f", b"\x80\x80\x01", b"\xff\xff\x7f", b"\x80\x80\x80\x01", b"\xff\xff\xff\x7f"]
