"""What a Sparkplug edge node must remember across restarts: its last bdSeq and its metric aliases.

Sparkplug 3.0 wants ``bdSeq`` to advance with every new MQTT session *across process restarts*
(a host must never mistake the will of an old session for the death of the current one), and
hosts cache aliases from the births: an alias that changes meaning under a host mixes metrics
up. So both live in one small JSON file beside the spool (written atomically, fsynced):

``{"bdSeq": 7, "aliases": {"meter1/INC1/CB/LineCurrent/A": 1, ...}, "nextAlias": 42}``

Aliases are small integers (1, 2, 3, …, far below 2^53 so JavaScript hosts keep them exact),
assigned once per ``device/metric`` and never reused: a config edit that does not touch a point
keeps its alias; a new point gets the next free one; a removed point's alias stays reserved.
Without a file (no ``sparkplug.state`` and no spool) nothing survives a restart: aliases are then
numbered in sorted name order and bdSeq starts from 0 — said once in the log.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MAX_ALIAS = (1 << 53) - 1  # exact in a JavaScript number


class SparkplugStateError(ValueError):
    """The state file cannot be used; the message names the file and the fix."""


class SparkplugState:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.bd_seq = -1  # the last bdSeq used; the next session takes bd_seq + 1 (mod 256)
        self.aliases: dict[str, int] = {}
        self.next_alias = 1
        if path is None:
            log.warning("sparkplug: no state file (set sparkplug.state or a spool): bdSeq restarts at 0 and aliases "
                        "follow the config's point names after a restart")
            return
        if path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        fix = f"fix it or delete it (hosts then see new aliases and bdSeq 0): {path}"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SparkplugStateError(f"Sparkplug state file {path} is unreadable ({exc}); {fix}") from None
        ok = (isinstance(data, dict) and isinstance(data.get("bdSeq"), int) and -1 <= data["bdSeq"] <= 255
              and isinstance(data.get("aliases"), dict) and isinstance(data.get("nextAlias"), int))
        aliases = data.get("aliases", {}) if ok else {}
        if ok and not all(isinstance(v, int) and 1 <= v < data["nextAlias"] <= MAX_ALIAS for v in aliases.values()):
            ok = False
        if ok and len(set(aliases.values())) != len(aliases):
            ok = False
        if not ok:
            raise SparkplugStateError(f"Sparkplug state file {path} is not a gridgate Sparkplug state "
                                      "({bdSeq: -1..255, aliases: {name: unique int >= 1}, nextAlias}); " + fix)
        self.bd_seq, self.aliases, self.next_alias = data["bdSeq"], dict(aliases), data["nextAlias"]

    def assign(self, names: list[str]) -> dict[str, int]:
        """name → alias for ``names``: known names keep theirs, new ones get the next free integers."""
        new = sorted(n for n in set(names) if n not in self.aliases)
        for n in new:
            self.aliases[n] = self.next_alias
            self.next_alias += 1
        if new:
            self.save()
        return {n: self.aliases[n] for n in names}

    def new_session(self) -> int:
        """The bdSeq of a new MQTT session (last + 1 mod 256), saved before the CONNECT carries it."""
        self.bd_seq = (self.bd_seq + 1) % 256
        self.save()
        return self.bd_seq

    def save(self) -> None:
        if self.path is None:
            return
        body = json.dumps({"bdSeq": self.bd_seq, "aliases": self.aliases, "nextAlias": self.next_alias},
                          sort_keys=True, indent=0).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            # a session must still start; the host may then see a repeated bdSeq after the next restart
            log.error("sparkplug: cannot write the state file %s (%s): bdSeq/aliases will not survive a restart; "
                      "check the directory's permissions and free space", self.path, exc)
