"""Network lab figures: start/teardown time per profile, WAN RTT vs profile, emulator
throughput on the cellular uplink (devices/netlab: a user namespace with one network namespace per
zone; about 30 s).

    python bench/bench_netlab.py [--parts startup,rtt,throughput]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import load_average  # noqa: E402
from devices.netlab import Lab, available_profiles, load_profile  # noqa: E402

PY = sys.executable


def startup() -> None:
    for name in available_profiles():
        t0 = time.perf_counter()
        with Lab(name):
            t1 = time.perf_counter()
        t2 = time.perf_counter()
        print(f"{name:16s} start {1000 * (t1 - t0):6.0f} ms   teardown {1000 * (t2 - t1):5.0f} ms")


def rtt(name: str, count: int, interval: float) -> None:
    emu = next(l.emulate for l in load_profile(name).links if l.emulate)
    expected = 2 * emu.delay_ms / 1000 + 480 / (emu.rate_up_kbit * 1000) + 480 / (emu.rate_down_kbit * 1000)
    with Lab(name) as lab:
        ls = lab.popen("control", [PY, "-m", "devices.netlab.probe", "listen", "1883"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ls.stdout.readline()
        r = lab.run_in("gateway", [PY, "-m", "devices.netlab.probe", "rtt", f"{lab.address('control', 'gateway')}:1883",
                                   "--count", str(count), "--interval", str(interval), "--timeout", "3"], timeout=120)
        s = [x for x in json.loads(r.stdout) if x is not None]
        st = lab.link("north").stats()
        ls.stdin.close()
    print(f"{name:16s} RTT median {1000 * statistics.median(s):6.1f} ms (profile {1000 * expected:6.1f} ms), "
          f"p10 {1000 * sorted(s)[len(s) // 10]:6.1f}, p90 {1000 * sorted(s)[9 * len(s) // 10]:6.1f}, "
          f"{count - len(s)}/{count} handshakes > 3 s; link lost up/down {st['up']['lost']}/{st['down']['lost']}")


def throughput() -> None:
    """Bulk TCP upload gateway→control across wan-cellular (2 Mbit/s up)."""
    code_srv = ("import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',1883));s.listen()\n"
                "print('ready',flush=True)\nc,_=s.accept();n=0;t0=None\nwhile True:\n d=c.recv(65536)\n if not d: break\n"
                " t0=t0 or time.perf_counter();n+=len(d)\nprint(n*8/(time.perf_counter()-t0)/1e3)")
    with Lab("wan-cellular") as lab:
        srv = lab.popen("control", [PY, "-c", code_srv], stdout=subprocess.PIPE, text=True)
        srv.stdout.readline()
        code_cli = (f"import socket\ns=socket.create_connection(('{lab.address('control', 'gateway')}',1883))\n"
                    "s.sendall(b'x'*750_000)\ns.close()")
        lab.run_in("gateway", [PY, "-c", code_cli], timeout=60)
        kbit = float(srv.communicate(timeout=60)[0])
    print(f"wan-cellular     bulk upload {kbit:6.0f} kbit/s (profile 2000 kbit/s up, 1 % loss)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="startup,rtt,throughput", help="what to run, comma-separated: startup, rtt, "
                    "throughput (default: all)")
    parts = set(ap.parse_args().parts.split(","))
    if parts - {"startup", "rtt", "throughput"}:
        ap.error(f"--parts: use startup, rtt, throughput, not {','.join(sorted(parts - {'startup', 'rtt', 'throughput'}))}")
    if "startup" in parts:
        startup()
    if "rtt" in parts:
        rtt("wan-cellular", 100, 0.03)
        rtt("wan-radio-mesh", 60, 0.15)
    if "throughput" in parts:
        throughput()
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
