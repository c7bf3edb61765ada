"""Build and run bench/modbus_loadgen.c: paced Modbus/TCP polling of many devices from C.

The bench's asyncio clients need more CPU per request than the emulator answering them (~44 µs
a reply), so from ~5,000 devices polled every second they queued requests themselves and the
latency printed was theirs. The C generator polls 10,000 devices at 1 s with ~20 µs CPU a
request (its own CPU is in its report, so saturation shows).

It is compiled on first use with the system C compiler (``$CC``, else the compiler Python was
built with, as setuptools picks it for firmware_sim's C core, else ``cc``/``gcc``/``clang``) into
the gridgate cache directory, keyed by the source and the compiler; nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SOURCE = Path(__file__).with_name("modbus_loadgen.c")
CFLAGS = ["-O2", "-std=c11", "-Wall"]


def compiler() -> list[str] | None:
    """The C compiler command, or None when there is none on this machine."""
    candidates = [os.environ.get("CC", ""), sysconfig.get_config_var("CC") or "", "cc", "gcc", "clang"]
    for c in candidates:
        argv = shlex.split(c)
        if argv and shutil.which(argv[0]):
            return argv
    return None


def _cache_dir() -> Path:
    from gateway.site.configcache import cache_dir

    d = cache_dir()
    return (d if d is not None else Path(tempfile.gettempdir()) / "gridgate-bench") / "bench"


def build() -> tuple[Path | None, str]:
    """(path of the built generator, "") or (None, why not). Built once per source and compiler."""
    cc = compiler()
    if cc is None:
        return None, "no C compiler found (set CC, or install cc/gcc/clang)"
    src = SOURCE.read_bytes()
    key = hashlib.sha256(src + "\0".join(cc + CFLAGS).encode()).hexdigest()[:16]
    out = _cache_dir() / f"modbus_loadgen-{key}"
    if out.is_file() and os.access(out, os.X_OK):
        return out, ""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    r = subprocess.run([*cc, *CFLAGS, str(SOURCE), "-o", str(tmp), "-lm"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        return None, f"{' '.join(cc)} could not compile {SOURCE.name}: {r.stderr.strip()[:500]}"
    os.replace(tmp, out)
    return out, ""


@dataclass(frozen=True)
class Load:
    """What to ask of the devices; see the usage line of modbus_loadgen.c."""

    registers: int = 20
    interval: float = 1.0
    warmup: float = 3.0
    seconds: float = 20.0
    timeout: float = 5.0
    connect_timeout: float = 60.0

    def argv(self) -> list[str]:
        return ["--registers", str(self.registers), "--interval", repr(self.interval), "--warmup", repr(self.warmup),
                "--seconds", repr(self.seconds), "--timeout", repr(self.timeout),
                "--connect-timeout", repr(self.connect_timeout)]


async def run(binary: Path, ports: list[int] | list[tuple[str, int]], load: Load,
              on_window: Callable[[str], None] | None = None) -> dict:
    """Poll ``ports`` (127.0.0.1:port, or (127.x address, port) pairs; unit 1) as ``load`` says; returns the
    generator's JSON report.

    ``on_window("start")`` / ``on_window("end")`` are called as the measured window opens and
    closes (the caller samples the server's CPU there)."""
    proc = await asyncio.create_subprocess_exec(
        str(binary), *load.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write("".join(f"{p[0]}:{p[1]}\n" if isinstance(p, tuple) else f"{p}\n" for p in ports).encode())
    await proc.stdin.drain()
    proc.stdin.close()
    report: dict | None = None
    try:
        while line := (await proc.stdout.readline()).decode():
            if line.startswith("# window "):
                if on_window is not None:
                    on_window(line.split()[2])
            elif line.startswith("{"):
                report = json.loads(line)
        err = (await proc.stderr.read()).decode().strip()
        rc = await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if rc != 0 or report is None:
        raise RuntimeError(f"modbus_loadgen exited with {rc}: {err or 'no report'}")
    return report


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build bench/modbus_loadgen.c (once per source and compiler) and print "
                                             "its path; bench_emulator_scale.py runs it.")
    ap.parse_args()
    path, why = build()
    if path is None:
        raise SystemExit(f"modbus_loadgen: {why}")
    print(path)


if __name__ == "__main__":
    main()
