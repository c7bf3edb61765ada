"""DNP3 data link + transport over one TCP stream, shared by our master and our outstation.

dnp3py builds the frames (``DataLinkFrame``, CRC, transport segments); the parsing side is
ours because dnp3py's ``FrameParser`` and ``Reassembler`` skip bad CRCs and stray segments
without telling anyone — here every dropped frame or segment is counted in ``LinkStats``.
Link-layer housekeeping (REQUEST_LINK_STATUS keep-alives from opendnp3, RESET_LINK,
confirmed user data) is answered here so the application layers never see it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from dnp3.core.crc import compute_crc
from dnp3.datalink.control import ControlByte
from dnp3.datalink.frame import DataLinkFrame
from dnp3.transport.segmenter import segment_fragment

from gateway.site.ratelimit import PeerWarnings

log = logging.getLogger(__name__)

START = b"\x05\x64"
HEADER = 10
BLOCK = 16

# primary (PRM=1) link functions
RESET_LINK = 0
TEST_LINK = 2
CONFIRMED_USER_DATA = 3
UNCONFIRMED_USER_DATA = 4
REQUEST_LINK_STATUS = 9
# secondary (PRM=0) link functions
ACK = 0
LINK_STATUS = 11


@dataclass
class LinkStats:
    frames_in: int = 0
    frames_out: int = 0
    bad_header_crc: int = 0
    bad_length: int = 0
    bad_data_crc: int = 0
    wrong_address: int = 0
    wrong_source: int = 0  # frames from an address other than the configured peer: dropped
    bad_segments: int = 0  # transport: out of sequence, no FIR, oversize
    discarded_bytes: int = 0
    unsupported_link_function: int = 0

    @property
    def malformed(self) -> int:
        return self.bad_header_crc + self.bad_length + self.bad_data_crc + self.bad_segments

    def as_dict(self) -> dict[str, int]:
        return asdict(self) | {"malformed": self.malformed}


@dataclass(slots=True)
class Frame:
    control: int
    dest: int
    src: int
    data: bytes

    @property
    def primary(self) -> bool:
        return bool(self.control & 0x40)

    @property
    def function(self) -> int:
        return self.control & 0x0F


class FrameDecoder:
    """Byte stream → link frames; resynchronises on the 0x0564 start after any error."""

    def __init__(self, stats: LinkStats) -> None:
        self.buf = bytearray()
        self.stats = stats

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        out: list[Frame] = []
        buf = self.buf
        while True:
            i = buf.find(START)
            if i < 0:
                keep = 1 if buf[-1:] == b"\x05" else 0
                self.stats.discarded_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return out
            if i:
                self.stats.discarded_bytes += i
                del buf[:i]
            if len(buf) < HEADER:
                return out
            if compute_crc(bytes(buf[:8])) != int.from_bytes(buf[8:10], "little"):
                self.stats.bad_header_crc += 1
                del buf[:2]
                continue
            length = buf[2]
            if length < 5:
                self.stats.bad_length += 1
                del buf[:2]
                continue
            n = length - 5
            size = HEADER + n + 2 * ((n + BLOCK - 1) // BLOCK)
            if len(buf) < size:
                return out
            data_out = bytearray()
            pos, ok = HEADER, True
            while len(data_out) < n:
                k = min(BLOCK, n - len(data_out))
                block = bytes(buf[pos : pos + k])
                if compute_crc(block) != int.from_bytes(buf[pos + k : pos + k + 2], "little"):
                    ok = False
                    break
                data_out += block
                pos += k + 2
            if not ok:
                self.stats.bad_data_crc += 1
                del buf[:2]
                continue
            out.append(Frame(buf[3], int.from_bytes(buf[4:6], "little"), int.from_bytes(buf[6:8], "little"), bytes(data_out)))
            self.stats.frames_in += 1
            del buf[:size]


class Reassembler:
    """Transport segments → application fragments, counting every segment it has to drop."""

    def __init__(self, stats: LinkStats, max_size: int = 65536) -> None:
        self.stats = stats
        self.max_size = max_size
        self.buf: bytearray | None = None
        self.seq = 0

    def add(self, tpdu: bytes) -> bytes | None:
        if not tpdu:
            self.stats.bad_segments += 1
            return None
        h, payload = tpdu[0], tpdu[1:]
        fin, fir, seq = bool(h & 0x80), bool(h & 0x40), h & 0x3F
        if fir:
            if self.buf is not None:
                self.stats.bad_segments += 1  # previous fragment never finished
            self.buf = bytearray(payload)
        elif self.buf is None or seq != self.seq:
            self.stats.bad_segments += 1
            self.buf = None
            return None
        else:
            self.buf += payload
        if len(self.buf) > self.max_size:
            self.stats.bad_segments += 1
            self.buf = None
            return None
        self.seq = (seq + 1) & 0x3F
        if fin:
            frag, self.buf = bytes(self.buf), None
            return frag
        return None


class LinkChannel:
    """One DNP3 association over an asyncio stream: send and receive whole fragments."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        local: int,
        remote: int,
        is_master: bool,
        stats: LinkStats | None = None,
        warn: Callable[..., object] | None = None,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.local, self.remote, self.is_master = local, remote, is_master
        self.stats = stats or LinkStats()
        self.decoder = FrameDecoder(self.stats)
        self.reasm = Reassembler(self.stats)
        self.tseq = 0
        self._ready: list[bytes] = []
        #: ``warn(kind, msg, *args)``, one line per kind per 10 s with a count (the outstation passes its own, per peer)
        if warn is None:
            limiter = PeerWarnings(log)
            warn = lambda kind, msg, *args: limiter.warn("link", kind, msg, *args)  # noqa: E731
        self.warn = warn

    def send(self, fragment: bytes) -> None:
        """Segment, frame and write one application fragment (unconfirmed user data)."""
        out = bytearray()
        for seg in segment_fragment(fragment, self.tseq):
            self.tseq = (seg.sequence + 1) & 0x3F
            out += self._frame(UNCONFIRMED_USER_DATA, True, seg.to_bytes())
        self.writer.write(bytes(out))

    def _frame(self, func: int, primary: bool, data: bytes = b"") -> bytes:
        self.stats.frames_out += 1
        ctrl = ControlByte(dir_from_master=self.is_master, prm=primary, fcb=False, fcv=False, function_code=func)
        return DataLinkFrame.build(destination=self.remote, source=self.local, control=ctrl, user_data=data).to_bytes()

    async def recv(self) -> bytes:
        """The next complete application fragment; EOFError when the peer closes."""
        while not self._ready:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise EOFError("peer closed the connection")
            for f in self.decoder.feed(chunk):
                self._on_frame(f)
        return self._ready.pop(0)

    def _on_frame(self, f: Frame) -> None:
        if f.dest != self.local and f.dest < 0xFFFD:
            self.stats.wrong_address += 1
            self.warn("address", "dnp3 link: frame for address %d dropped (we are %d)", f.dest, self.local)
            return
        if f.src != self.remote:
            self.stats.wrong_source += 1  # a rogue or misconfigured station on this stream: never its data
            self.warn("source", "dnp3 link: frame from address %d dropped (we talk to %d only)", f.src, self.remote)
            return
        if not f.primary:
            return  # ACK / LINK_STATUS replies to nothing we ask for
        fn = f.function
        if fn == REQUEST_LINK_STATUS:
            self.writer.write(self._frame(LINK_STATUS, False))
        elif fn in (RESET_LINK, TEST_LINK):
            self.writer.write(self._frame(ACK, False))
        elif fn in (CONFIRMED_USER_DATA, UNCONFIRMED_USER_DATA):
            if fn == CONFIRMED_USER_DATA:
                self.writer.write(self._frame(ACK, False))
            frag = self.reasm.add(f.data)
            if frag is not None:
                self._ready.append(frag)
        else:
            self.stats.unsupported_link_function += 1
            self.warn("function", "dnp3 link: unsupported link function %d answered NOT_SUPPORTED", fn)
            self.writer.write(self._frame(15, False))

    async def close(self) -> None:
        try:
            self.writer.close()
            async with asyncio.timeout(1.0):  # not wait_for: 3.11's can swallow a cancel
                await self.writer.wait_closed()
        except (OSError, TimeoutError):
            pass
