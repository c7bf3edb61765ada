"""Air-gap courier: the gateway writes its northbound spool as signed, checksummed,
sequenced bundles into a transfer directory (USB stick, sneakernet); on the other side
:func:`import_dir` verifies each bundle and yields them strictly in order.

A bundle is one file ``{source}-{seq:010d}.ggb``: a JSON manifest line, then the body
(JSON lines of records). The manifest carries the body's SHA-256, the previous bundle's
body hash (a chain, so a swapped or replayed bundle is caught) and an Ed25519 signature over
the manifest (gateway/conduits/signing.py): the field side signs with its private key, the
control side verifies with the public key only, so it cannot forge a bundle. Anything that fails verification is rejected with the file and the reason;
a missing sequence number stops the import there (nothing after a gap is published out
of order) and is reported, never skipped silently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.conduits.records import Record
from gateway.conduits.signing import SIGNATURE_BYTES, verifies

FORMAT = "gridgate-courier/2"
GENESIS = "0" * 64
NAME = re.compile(r"^(?P<source>[A-Za-z0-9_.-]+)-(?P<seq>\d{10})\.ggb$")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    source: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seq: int = Field(ge=1)
    created: float
    count: int = Field(ge=0)
    body_sha256: str
    prev_sha256: str
    signature: str = Field("", description="Ed25519 over signing_bytes(), base64")

    def signing_bytes(self) -> bytes:
        return json.dumps(self.model_dump(exclude={"signature"}), sort_keys=True, separators=(",", ":")).encode()


def _sign(m: Manifest, key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(m.signing_bytes())).decode()


def _signature_ok(m: Manifest, key: Ed25519PublicKey) -> bool:
    try:
        sig = base64.b64decode(m.signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(sig) == SIGNATURE_BYTES and verifies(key, sig, m.signing_bytes())


def bundle_name(source: str, seq: int) -> str:
    return f"{source}-{seq:010d}.ggb"


def write_bundle(transfer_dir: str | Path, records: Iterable[Record], key: Ed25519PrivateKey, source: str, seq: int,
                 prev_sha256: str = GENESIS) -> tuple[Path, Manifest]:
    """Write one bundle atomically (tmp file, fsync, rename) so a pulled USB stick never
    holds half a bundle under a valid name."""
    body = b"".join(json.dumps(r.to_wire(), separators=(",", ":")).encode() + b"\n" for r in records)
    m = Manifest(source=source, seq=seq, created=time.time(), count=body.count(b"\n"),
                 body_sha256=hashlib.sha256(body).hexdigest(), prev_sha256=prev_sha256)
    m.signature = _sign(m, key)
    d = Path(transfer_dir)
    d.mkdir(parents=True, exist_ok=True)
    final = d / bundle_name(source, seq)
    tmp = d / f".{final.name}.tmp"
    with open(tmp, "wb") as f:
        f.write(m.model_dump_json().encode() + b"\n" + body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final, m


class CourierWriter:
    """Gateway side: batch records into bundles; remembers seq and chain in ``state``."""

    def __init__(self, transfer_dir: str | Path, key: Ed25519PrivateKey, source: str, state: str | Path, max_records: int = 1000) -> None:
        self.dir, self.key, self.source, self.state = Path(transfer_dir), key, source, Path(state)
        self.max_records = max_records
        self.pending: list[Record] = []
        st = json.loads(self.state.read_text()) if self.state.exists() else {"seq": 0, "prev": GENESIS}
        self.seq, self.prev = st["seq"], st["prev"]

    def add(self, rec: Record) -> Path | None:
        self.pending.append(rec)
        return self.flush() if len(self.pending) >= self.max_records else None

    def flush(self) -> Path | None:
        if not self.pending:
            return None
        path, m = write_bundle(self.dir, self.pending, self.key, self.source, self.seq + 1, self.prev)
        self.seq, self.prev = m.seq, m.body_sha256
        self.state.write_text(json.dumps({"seq": self.seq, "prev": self.prev}))
        self.pending = []
        return path


class BundleError(ValueError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: rejected: {reason}")
        self.path, self.reason = path, reason


def read_bundle(path: str | Path, key: Ed25519PublicKey) -> tuple[Manifest, list[Record]]:
    """Verify signature, checksum and record count; return the manifest and records."""
    p = Path(path)
    raw = p.read_bytes()
    head, sep, body = raw.partition(b"\n")
    if not sep:
        raise BundleError(p, "no manifest line (truncated file?)")
    try:
        m = Manifest.model_validate_json(head)
    except ValidationError as e:
        raise BundleError(p, f"manifest unreadable: {e.errors()[0]['msg']}") from None
    if m.format != FORMAT:
        raise BundleError(p, f"format {m.format!r}, expected {FORMAT!r}")
    if not _signature_ok(m, key):
        raise BundleError(p, "bad signature (tampered manifest, or not signed by the key pair of this public key)")
    if hashlib.sha256(body).hexdigest() != m.body_sha256:
        raise BundleError(p, "body checksum mismatch (tampered or corrupted body)")
    try:
        recs = [Record.from_wire(json.loads(line)) for line in body.splitlines()]
    except (ValueError, ValidationError) as e:
        raise BundleError(p, f"record unreadable: {e}") from None
    if len(recs) != m.count:
        raise BundleError(p, f"{len(recs)} records, manifest says {m.count}")
    m_name = NAME.match(p.name)
    if not m_name or m_name["source"] != m.source or int(m_name["seq"]) != m.seq:
        raise BundleError(p, f"file name does not match manifest ({bundle_name(m.source, m.seq)})")
    return m, recs


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    records: int = 0
    already: list[str] = field(default_factory=list)  # seen in an earlier import: skipped
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    missing: list[tuple[str, int]] = field(default_factory=list)  # (source, seq) not in the directory
    waiting: list[str] = field(default_factory=list)  # valid, but behind a gap or a rejected bundle
    stray: list[str] = field(default_factory=list)  # files that are not bundles

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.missing)

    def summary(self) -> str:
        s = f"imported {len(self.imported)} bundles ({self.records} records)"
        if self.already:
            s += f", {len(self.already)} already imported"
        for f, why in self.rejected:
            s += f"\n  REJECTED {f}: {why}"
        for src, seq in self.missing:
            s += f"\n  MISSING {bundle_name(src, seq)}: bring it, then import again"
        if self.waiting:
            s += f"\n  held back (after a gap/rejection, to keep order): {', '.join(self.waiting)}"
        if self.stray:
            s += f"\n  ignored non-bundle files: {', '.join(self.stray)}"
        return s


@dataclass
class Bundle:
    manifest: Manifest
    records: list[Record]
    path: Path


def import_dir(transfer_dir: str | Path, key: Ed25519PublicKey, state: str | Path, report: ImportReport | None = None) -> Iterator[Bundle]:
    """Yield verified bundles per source in sequence order, continuing from ``state``.

    The state (last seq and chain hash per source) is advanced only after the consumer
    has taken a bundle, i.e. when the generator is resumed, so a crash mid-publish re-imports
    that bundle (at-least-once) rather than losing it.
    """
    rep = report if report is not None else ImportReport()
    st_path = Path(state)
    st: dict[str, dict] = json.loads(st_path.read_text()) if st_path.exists() else {}
    by_source: dict[str, dict[int, Path]] = {}
    for p in sorted(Path(transfer_dir).iterdir()):
        m = NAME.match(p.name)
        if not m:
            if not p.name.startswith("."):
                rep.stray.append(p.name)
            continue
        by_source.setdefault(m["source"], {})[int(m["seq"])] = p
    for source, files in sorted(by_source.items()):
        last = st.get(source, {"seq": 0, "prev": GENESIS})
        for seq in sorted(files):
            if seq <= last["seq"]:
                rep.already.append(files[seq].name)
        todo = sorted(s for s in files if s > last["seq"])
        expect = last["seq"] + 1
        for i, seq in enumerate(todo):
            path = files[seq]
            if seq != expect:
                rep.missing += [(source, s) for s in range(expect, seq)]
                rep.waiting += [files[s].name for s in todo[i:]]
                break
            try:
                man, recs = read_bundle(path, key)
                if man.prev_sha256 != last["prev"]:
                    raise BundleError(path, "chain broken: previous-bundle hash does not match the last imported bundle")
            except BundleError as e:
                rep.rejected.append((path.name, e.reason))
                rep.waiting += [files[s].name for s in todo[i + 1:]]
                break
            yield Bundle(man, recs, path)
            last = {"seq": man.seq, "prev": man.body_sha256}
            st[source] = last
            st_path.write_text(json.dumps(st))
            rep.imported.append(path.name)
            rep.records += len(recs)
            expect += 1
