"""Every bench script starts as a new user starts it and answers ``--help``, and every command the
docs (README, docs/, the scripts' own docstrings) give for a bench script names only options that
script has: option drift between bench/ and its docs fails here, not in a reader's terminal.

The scripts really run (``python bench/NAME.py --help`` from another folder, no PYTHONPATH: each
puts the repository on its path itself), in parallel; nothing is measured (figures are the
scripts' job, never a test's). Plus bench/support.py's process stop, on a real child that ignores
SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PY_SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "support.py")
SH_SCRIPTS = sorted(p.name for p in BENCH.glob("*.sh"))
DOCS = [ROOT / "README.md", *(p for d in ("docs", "gateway", "devices", "firmware_sim") for p in sorted((ROOT / d).rglob("*.md"))),
        *(BENCH / n for n in PY_SCRIPTS + SH_SCRIPTS)]
#: a bench command in prose: the script's name, then its arguments up to the end of the code span or line
COMMAND = re.compile(r"\b((?:bench|soak)_\w+\.py)([^`\n;|#]*)")


def _help(name: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(BENCH / name)] if name.endswith(".py") else ["bash", str(BENCH / name)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([*argv, "--help"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def helps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("elsewhere")
    names = PY_SCRIPTS + SH_SCRIPTS
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(names, pool.map(lambda n: _help(n, cwd), names)))


def test_there_are_bench_scripts() -> None:
    assert {"bench_gateway.py", "bench_emulator_scale.py", "modbus_loadgen.py"} <= set(PY_SCRIPTS)
    assert "bench_aarch64_gateway.sh" in SH_SCRIPTS


@pytest.mark.parametrize("name", PY_SCRIPTS)
def test_python_script_answers_help(helps: dict[str, subprocess.CompletedProcess], name: str) -> None:
    r = helps[name]
    assert r.returncode == 0, f"{name} --help exited {r.returncode}:\n{r.stderr[-2000:]}"
    assert r.stdout.startswith(f"usage: {name}"), f"{name} --help printed no usage (does it parse arguments?):\n{r.stdout[:500]}"
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name", SH_SCRIPTS)
def test_shell_script_answers_help(helps: dict[str, subprocess.CompletedProcess], name: str) -> None:
    r = helps[name]
    assert r.returncode == 0, f"{name} --help exited {r.returncode}:\n{r.stderr[-2000:]}"
    assert f"bench/{name}" in r.stdout, f"{name} --help printed no usage line:\n{r.stdout[:500]}"


def test_documented_bench_commands_use_existing_options(helps: dict[str, subprocess.CompletedProcess]) -> None:
    known = {name: set(re.findall(r"--[\w-]+", r.stdout)) for name, r in helps.items()}
    wrong, seen = [], 0
    for doc in DOCS:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            for m in COMMAND.finditer(line):
                script, rest = m.group(1), m.group(2).split(" bench/")[0]
                seen += 1
                if script not in known:
                    wrong.append(f"{doc.relative_to(ROOT)}:{n}: {script} is not in bench/")
                    continue
                wrong += [f"{doc.relative_to(ROOT)}:{n}: {script} has no {flag}"
                          for flag in re.findall(r"(?<![\w-])--[\w-]+", rest) if flag not in known[script]]
    assert seen > 50  # the docs do name bench commands: the pattern still finds them
    assert not wrong, "\n".join(wrong)


def test_stop_kills_what_ignores_sigterm() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.support import stop

    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    stubborn = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "up\n"
    t0 = time.monotonic()
    stop(stubborn, None, polite, grace=0.5)
    assert stubborn.returncode == -signal.SIGKILL and polite.returncode == -signal.SIGTERM
    assert time.monotonic() - t0 < 5
    stop(stubborn)  # an ended process is left alone
    assert stubborn.returncode == -signal.SIGKILL
