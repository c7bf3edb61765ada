"""Requests/s of the emulated Modbus server, side by side with a libmodbus C server.

Both servers run single-threaded in their own process; the load comes from a compiled C
epoll client (several connections, ``depth`` FC3 requests in flight on each, fixed duration),
so the client is not the bottleneck and both servers see exactly the same load.
On a 2-core machine server and client each get roughly one core.

    python bench/bench_modbus_server.py [--duration 3] [--repeat 3] [--only "1 in flight"]
    python bench/bench_modbus_server.py --baseline-tree /tmp/before   # + another gridgate tree, same run

Prints per scenario req/s and server CPU per request of both, the req/s ratio
gridgate/libmodbus, and the ratio of requests per server CPU-second (the fairer figure on a
shared machine: wall-clock throughput swings with other load, CPU per request much less).
With ``--baseline-tree`` (e.g. a ``git archive`` export of the base commit) the gridgate
server of that tree is measured in the same interleaved runs (before → after, same minute).
Needs gcc and libmodbus-dev (``./run setup test`` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support import load_average, proc_stats, stop  # noqa: E402

SIZES = dict(coil=2005, discrete_input=2005, holding=200, input=50)

LIBMODBUS_SERVER_C = r"""
/* N libmodbus TCP devices in one select() loop; prints "PORT p" per device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <modbus.h>

#define MAXFD 1024
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    modbus_t *ctx[n]; modbus_mapping_t *map[n]; int lfd[n];
    int owner[MAXFD]; /* fd -> device index, -1 free */
    for (int i = 0; i < MAXFD; i++) owner[i] = -1;
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    fd_set all; FD_ZERO(&all); int maxfd = 0;
    for (int i = 0; i < n; i++) {
        ctx[i] = modbus_new_tcp("127.0.0.1", 0);
        map[i] = modbus_mapping_new(2005, 2005, 200, 50);
        for (int a = 0; a < 200; a++) map[i]->tab_registers[a] = 1000 + a;
        lfd[i] = modbus_tcp_listen(ctx[i], 128);
        if (lfd[i] < 0) { fprintf(stderr, "listen: %s\n", modbus_strerror(errno)); return 1; }
        struct sockaddr_in sa; socklen_t sl = sizeof sa;
        getsockname(lfd[i], (struct sockaddr *)&sa, &sl);
        printf("PORT %d\n", ntohs(sa.sin_port));
        FD_SET(lfd[i], &all); if (lfd[i] > maxfd) maxfd = lfd[i];
        owner[lfd[i]] = i;
    }
    fflush(stdout);
    for (;;) {
        fd_set rd = all;
        if (select(maxfd + 1, &rd, NULL, NULL, NULL) < 0) { if (errno == EINTR) continue; return 1; }
        for (int fd = 0; fd <= maxfd; fd++) {
            if (!FD_ISSET(fd, &rd) || owner[fd] < 0) continue;
            int d = owner[fd];
            if (fd == lfd[d]) {
                int c = accept(fd, NULL, NULL);
                if (c < 0 || c >= MAXFD) { if (c >= 0) close(c); continue; }
                FD_SET(c, &all); if (c > maxfd) maxfd = c; owner[c] = d;
            } else {
                modbus_set_socket(ctx[d], fd);
                int rc = modbus_receive(ctx[d], q);
                if (rc > 0) modbus_reply(ctx[d], q, rc, map[d]);
                else if (rc == -1) { close(fd); FD_CLR(fd, &all); owner[fd] = -1; }
            }
        }
    }
}
"""

LOAD_C = r"""
/* Load client: usage load SECONDS DEPTH CONNS_PER_PORT PORT...; keeps DEPTH FC3 requests
 * (10 holding registers) in flight per connection; prints "OK n BAD m". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { int fd; unsigned char buf[8192]; int len; unsigned short tid; } conn_t;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static void send_req(conn_t *c, int k) {
    unsigned char out[12 * 64]; int n = 0;
    for (int i = 0; i < k; i++) {
        unsigned short t = c->tid++;
        unsigned char r[12] = {t >> 8, t & 0xff, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10};
        memcpy(out + n, r, 12); n += 12;
    }
    int off = 0;
    while (off < n) { int w = send(c->fd, out + off, n - off, MSG_NOSIGNAL); if (w <= 0) { perror("send"); exit(1); } off += w; }
}

int main(int argc, char **argv) {
    double secs = atof(argv[1]); int depth = atoi(argv[2]); int per = atoi(argv[3]);
    int nports = argc - 4, nc = nports * per;
    conn_t *cs = calloc(nc, sizeof(conn_t));
    int ep = epoll_create1(0);
    for (int i = 0; i < nc; i++) {
        struct sockaddr_in sa = {0}; sa.sin_family = AF_INET; sa.sin_port = htons(atoi(argv[4 + i / per]));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1; setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(cs[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    for (int i = 0; i < nc; i++) send_req(&cs[i], depth);
    long ok = 0, bad = 0; double end = now() + secs;
    struct epoll_event evs[256];
    while (now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < n; e++) {
            conn_t *c = &cs[evs[e].data.u32];
            int r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
            if (r == 0) { fprintf(stderr, "server closed a connection\n"); return 1; }
            if (r < 0) { if (errno == EAGAIN) continue; perror("recv"); return 1; }
            c->len += r;
            int off = 0, got = 0;
            while (c->len - off >= 7) {
                int l = (c->buf[off + 4] << 8) | c->buf[off + 5];
                if (c->len - off < 6 + l) break;
                if (c->buf[off + 7] == 3 && l == 3 + 20) ok++; else bad++;
                off += 6 + l; got++;
            }
            memmove(c->buf, c->buf + off, c->len - off); c->len -= off;
            if (got) send_req(c, got);
        }
    }
    printf("OK %ld BAD %ld\n", ok, bad);
    return 0;
}
"""


# ---------------------------------------------------------------- the gridgate server process


async def serve(n: int, io: str) -> None:
    from devices.modbus import ArrayDataModel, ModbusServer  # from --root when given (see main)

    servers = []
    extra = {"io": io} if io != "auto" else {}  # a --baseline-tree from before the io option takes none
    for _ in range(n):
        m = ArrayDataModel(**SIZES)
        for a in range(SIZES["holding"]):
            m.set_register("holding", a, 1000 + a)
        s = ModbusServer(m, max_connections=64, **extra)
        await s.start()
        servers.append(s)
        print("PORT", s.port)
    sys.stdout.flush()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    total = sum(s.stats.requests for s in servers)
    exc = sum(sum(s.stats.exceptions.values()) for s in servers)
    print(f"SERVED {total} EXCEPTIONS {exc}", file=sys.stderr)
    for s in servers:
        await s.stop()


# ---------------------------------------------------------------- driver


def build(tmp: Path) -> tuple[Path, Path]:
    gcc = shutil.which("gcc")
    if gcc is None or not Path("/usr/include/modbus/modbus.h").exists():
        sys.exit("bench needs gcc and libmodbus-dev (apt-get install gcc libmodbus-dev)")
    (tmp / "mbserver.c").write_text(LIBMODBUS_SERVER_C)
    (tmp / "load.c").write_text(LOAD_C)
    subprocess.run([gcc, "-O2", "-I/usr/include/modbus", str(tmp / "mbserver.c"), "-o", str(tmp / "mbserver"), "-lmodbus"], check=True, timeout=120)
    subprocess.run([gcc, "-O2", str(tmp / "load.c"), "-o", str(tmp / "load")], check=True, timeout=120)
    return tmp / "mbserver", tmp / "load"


def start_server(cmd: list[str], n: int) -> tuple[subprocess.Popen, list[int]]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = []
    assert p.stdout is not None
    while len(ports) < n:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"server {cmd} died: {p.stderr.read() if p.stderr else ''}")
        ports.append(int(line.split()[1]))
    return p, ports


def run_load(load: Path, ports: list[int], duration: float, depth: int, per: int) -> float:
    out = subprocess.run(
        [str(load), str(duration), str(depth), str(per), *map(str, ports)],
        capture_output=True, text=True, timeout=duration + 30, check=True,
    ).stdout.split()
    ok, bad = int(out[1]), int(out[3])
    if bad:
        raise RuntimeError(f"{bad} bad responses")
    return ok / duration


def measure(server_cmd: list[str], n: int, load: Path, duration: float, depth: int, per: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request)"""
    p, ports = start_server(server_cmd, n)
    try:
        cpu0 = proc_stats(p.pid)[0]
        rate = run_load(load, ports, duration, depth, per)
        cpu = proc_stats(p.pid)[0] - cpu0
        return rate, 1e6 * cpu / (rate * duration)
    finally:
        stop(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell, interleaved; the median is shown")
    ap.add_argument("--only", default="", help="run only the scenarios whose label contains this text")
    ap.add_argument("--baseline-tree", type=Path, help="also measure the gridgate server of this source tree (before → after)")
    ap.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
        help="event loop of the gridgate servers: auto (what `gridgate emulate` runs: uvloop where installed, "
        "else asyncio), or force asyncio / uvloop to see how much of the cost is the loop",
    )
    ap.add_argument(
        "--io", choices=("auto", "readers", "transports"), default="auto",
        help="I/O path of the gridgate servers (ModbusServer io=): auto (readers on asyncio's loop, transports on "
        "uvloop), or force one, e.g. --io transports to see what the add_reader path saves on asyncio",
    )
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        if args.root:
            sys.path.insert(0, str(args.root.resolve()))
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(serve(args.serve, args.io))
        else:
            asyncio.run(serve(args.serve, args.io))
        return
    scenarios = [
        # (label, devices, connections per device, requests in flight per connection)
        ("1 device, 1 conn, 1 in flight", 1, 1, 1),
        ("1 device, 4 conns, 1 in flight", 1, 4, 1),
        ("1 device, 4 conns, 16 in flight", 1, 4, 16),
        ("100 devices, 1 conn each, 1 in flight", 100, 1, 1),
        ("100 devices, 1 conn each, 4 in flight", 100, 1, 4),
    ]
    scenarios = [sc for sc in scenarios if args.only in sc[0]]
    if not scenarios:
        sys.exit(f"no scenario label contains {args.only!r}; leave --only out to run them all")
    base = args.baseline_tree
    if args.loop == "auto":
        from gateway.runtime import resolve_loop

        args.loop = resolve_loop("auto")
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            sys.exit("--loop uvloop: uvloop is not installed in this Python; pip install uvloop, or leave --loop out")
    if base is not None and not (base / "devices" / "modbus" / "server.py").is_file():
        sys.exit(f"--baseline-tree {base}: no devices/modbus/server.py there; give a gridgate source tree")
    with tempfile.TemporaryDirectory(prefix="gg-bench-modbus-") as d:
        mbserver, load = build(Path(d))
        print(
            f"FC3 read of 10 holding registers, {args.duration:g} s per run, median of {args.repeat} interleaved runs, "
            f"{os.cpu_count()} CPUs (server and load client share them), load average {load_average()}\n"
            "req/s: answered requests per second; CPU µs/req: server user+system CPU per request; "
            "ratio: gridgate/libmodbus req/s; CPU ratio: gridgate/libmodbus requests per server CPU-second"
            + f"\ngridgate servers on the {args.loop} event loop, io={args.io}"
            + (f"\nbefore: the gridgate server of {base}" if base else "")
            + "\n"
        )
        cols = [("gridgate req/s", 15), ("libmodbus req/s", 16), ("ratio", 6), ("gg CPU µs/req", 14),
                ("lm CPU µs/req", 14), ("CPU ratio", 9)]
        if base:
            cols += [("before req/s", 13), ("ratio", 6), ("CPU µs/req", 11), ("CPU ratio", 9)]
        head = f"{'scenario':40}" + "".join(f" {c:>{w}}" for c, w in cols)
        print(head)
        print("-" * len(head))
        ours_cmd = [sys.executable, __file__, "--loop", args.loop, "--serve"]
        for label, n, per, depth in scenarios:
            ours, theirs, before = [], [], []
            for _ in range(args.repeat):
                ours.append(measure([*ours_cmd, str(n), "--io", args.io], n, load, args.duration, depth, per))
                theirs.append(measure([str(mbserver), str(n)], n, load, args.duration, depth, per))
                if base:
                    before.append(measure([*ours_cmd, str(n), "--root", str(base)], n, load, args.duration, depth, per))
            o, t = median(ours), median(theirs)
            row = [f"{o[0]:,.0f}", f"{t[0]:,.0f}", f"{o[0] / t[0]:.2f}", f"{o[1]:.1f}", f"{t[1]:.1f}", f"{t[1] / o[1]:.2f}"]
            if base:
                b = median(before)
                row += [f"{b[0]:,.0f}", f"{b[0] / t[0]:.2f}", f"{b[1]:.1f}", f"{t[1] / b[1]:.2f}"]
            print(f"{label:40}" + "".join(f" {v:>{w}}" for v, (_, w) in zip(row, cols)), flush=True)
        print(f"\nload average at the end {load_average()}")


def median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """per-column median"""
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


if __name__ == "__main__":
    main()
