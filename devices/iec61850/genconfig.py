"""libiec61850's own SCL compiler (genconfig.jar, tools/model_generator): CID → libiec61850 ``.cfg``.

An engineering tool independent of gridgate's SCL code: a CID it compiles, and whose ``.cfg``
libiec61850 then serves, is SCL that libiec61850's Java SCL parser accepts. gridgate does not ship
the jar (build it from libiec61850's sources: ``tools/model_generator/build2.sh``); point
``GRIDGATE_GENCONFIG`` (or ``--genconfig``) at it. Java 8 or newer runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

ENV = "GRIDGATE_GENCONFIG"
TIMEOUT = 120.0


class GenconfigError(RuntimeError):
    """genconfig is missing or refused the file; the message says which and what to do."""


def find_jar(explicit: str | None = None) -> str:
    """The genconfig.jar to use: ``explicit``, else $GRIDGATE_GENCONFIG; an error names the fix."""
    jar = explicit or os.environ.get(ENV)
    if not jar:
        raise GenconfigError(f"no genconfig.jar: set {ENV} (or --genconfig) to libiec61850's genconfig.jar, built from "
                             "its tools/model_generator (build2.sh)")
    if not os.path.isfile(jar):
        raise GenconfigError(f"genconfig.jar {jar!r} does not exist; fix {ENV} (or --genconfig)")
    return jar


def java() -> str:
    exe = shutil.which("java")
    if exe is None:
        raise GenconfigError("genconfig needs Java (8 or newer) on PATH: install a JRE (Debian: default-jre-headless)")
    return exe


def to_cfg(scl: str, out: str, ied: str | None = None, jar: str | None = None) -> str:
    """Compile one IED of ``scl`` into the libiec61850 config file ``out``; returns genconfig's output."""
    cmd = [java(), "-jar", find_jar(jar), scl]
    if ied:
        cmd += ["-ied", ied]
    cmd.append(out)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise GenconfigError(f"genconfig took over {TIMEOUT:.0f} s on {scl}") from None
    log = (r.stdout + r.stderr).strip()
    # genconfig exits 0 even when its SCL parser refuses the file: its "ERROR:" line is the verdict
    errors = [line for line in log.splitlines() if "ERROR" in line or "Exception" in line]
    if r.returncode != 0 or errors or not os.path.isfile(out) or os.path.getsize(out) == 0:
        raise GenconfigError(f"genconfig refused {scl}: " + ("; ".join(errors) or log[-500:] or f"exit {r.returncode}"))
    return log
