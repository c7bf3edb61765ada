"""Opening a spool's segment log, migrating an SQLite spool file found at its path (issue 18).

Until issue 18 the spool was one SQLite file at the configured path; now the path is a
directory of segment files. Found at open: an SQLite file is read into a new segment log
beside it (``<path>.migrating``), which then takes the path; the SQLite file is kept as
``<path>.sqlite-old`` (logged: delete it once the gateway runs well). An SQLite file that cannot
be read is moved aside under the same name and the spool starts empty (logged as an error).
Any other file at the path is refused: it is not ours to move.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from gateway.northbound.message import KINDS, ValueMessage
from gateway.northbound.segment_log import Row, SegmentLog

log = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH = 10_000


def open_log(path: Path, error: type[Exception], *, segment_bytes: int, fsync: bool) -> SegmentLog:
    """The segment log at ``path`` (migrated from SQLite if need be); ``error`` names the path and the fix."""
    staged = path.with_name(path.name + ".migrating")
    old = path.with_name(path.name + ".sqlite-old")
    try:
        if not path.exists() and staged.is_dir() and old.exists():
            staged.rename(path)  # a migration finished writing but crashed before taking the path
        elif staged.exists():
            shutil.rmtree(staged)  # a migration cut short: the SQLite file is still the truth
        if path.is_file():
            with open(path, "rb") as f:
                magic = f.read(len(_SQLITE_MAGIC))
            if magic != _SQLITE_MAGIC:
                raise error(f"spool {path}: is a file that is neither a spool directory nor an SQLite spool; "
                            "move the file aside (or set spool.path elsewhere) to start an empty spool")
            _migrate(path, staged, old, segment_bytes)
        return SegmentLog(path, segment_bytes=segment_bytes, fsync=fsync)
    except BlockingIOError as exc:
        raise error(f"spool {path}: used by another process; give each gateway its own spool.path") from exc
    except OSError as exc:
        raise error(f"spool {path}: cannot open ({exc}); check the path and its permissions, or move it aside "
                    "to start an empty spool") from exc


def _migrate(path: Path, staged: Path, old: Path, segment_bytes: int) -> None:
    import sqlite3  # only ever needed once per site

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            high = db.execute("SELECT v FROM meta WHERE k = 'last_seq'").fetchone()
            rows = db.execute("SELECT seq, kind, topic, payload, qos, retain, expiry, t FROM spool ORDER BY seq")
            slog = SegmentLog(staged, segment_bytes=segment_bytes, fsync=True)
            n, top, bad = 0, 0, 0
            while batch := rows.fetchmany(_BATCH):
                out: list[Row] = [ValueMessage(topic, bytes(payload), qos, bool(retain), expiry, t, KINDS[kind], seq)
                                  for seq, kind, topic, payload, qos, retain, expiry, t in batch
                                  if 0 <= kind < len(KINDS)]
                bad += len(batch) - len(out)
                top = max(top, batch[-1][0])
                if out:
                    slog.append(out, None, ())
                    n += len(out)
            slog.append([], max(top, high[0] if high else 0), (), probe=True)
            slog.close()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        _aside(path, old)
        log.error("spool %s: the SQLite spool of an earlier version cannot be read (%s); moved aside as %s and "
                  "starting an empty spool — its values are not delivered", path, exc, old.name)
        return
    _aside(path, old)
    staged.rename(path)
    if bad:
        log.error("spool %s: %d value(s) of the SQLite spool have no known kind (code outside 0..%d); not migrated",
                  path, bad, len(KINDS) - 1)
    log.warning("spool %s: migrated %d undelivered value(s) from the SQLite spool of an earlier version (seq up to "
                "%d) to a segment log; the old file is kept as %s — delete it once the gateway runs well",
                path, n, max(top, high[0] if high else 0), old.name)


def _aside(path: Path, old: Path) -> None:
    if old.exists():
        old.rename(old.with_name(f"{old.name}.{int(time.time())}"))
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(old.with_name(old.name + suffix))
    path.rename(old)
