"""The pure-Python sampler: the oracle for the C core and the fallback without a compiler.

Same constructor and methods as ``firmware_sim._native.Sampler`` and the same semantics,
pass by pass (see ggfw.c); values agree within float32 rounding (the C core evaluates the
sine as a float polynomial). Computation happens under one lock, so readers always see a
whole tick.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from array import array

from firmware_sim import quality as Qb
from firmware_sim.plan import COUNTER, DERIVED, HOLD, NPARAM, PLANT, PROFILE, STEPS, WALK, WAVE
from firmware_sim.plant import NQ
from firmware_sim.plant_ref import PlantRef
from firmware_sim.rng import KEY_FAULT, KEY_VOLT, gauss, tick_key

TWO_PI = 2.0 * math.pi
SQRT3 = math.sqrt(3.0)
LATE_CAP = 65536
_INT_RANGE = {1: (-2147483648.0, 2147483647.0), 2: (-32768.0, 32767.0), 3: (0.0, 65535.0),
              4: (-2147483648.0, 2147483647.0), 5: (0.0, 4294967295.0)}
_F32 = struct.Struct(">f")


def _sin_cycles(x: float) -> float:
    """sin(2*pi*x), reducing the phase in cycles first exactly as the C core does."""
    return math.sin(TWO_PI * (x - round(x)))


def _check_buf(obj, name: str, code: str, count: int) -> None:
    if not isinstance(obj, array) or obj.typecode != code:
        raise TypeError(f"{name}: expected array.array({code!r}), got {type(obj).__name__}"
                        + (f"({obj.typecode!r})" if isinstance(obj, array) else ""))
    if len(obj) != count:
        raise ValueError(f"{name}: expected {count} items, got {len(obj)}")


class _Fault:
    __slots__ = ("pt", "kind", "a", "b", "c", "qflags", "t0", "held", "last")

    def __init__(self, pt, kind, a, b, c, qflags):
        self.pt, self.kind, self.a, self.b, self.c, self.qflags = pt, kind, a, b, c, qflags
        self.t0 = None
        self.held = 0.0
        self.last = 0


class RefSampler:
    def __init__(self, params: dict, values, quality, regs, bits, changed):
        P = params
        self.n = n = int(P["n"])
        self.n_wave, self.n_scalar_end, self.n_derived_end = int(P["n_wave"]), int(P["n_scalar_end"]), int(P["n_derived_end"])
        self.n_regs, self.n_bits = int(P["n_regs"]), int(P["n_bits"])
        if len(P["p"]) != NPARAM:
            raise ValueError(f"params.p: expected a list of {NPARAM} double arrays")
        _check_buf(values, "values", "f", n)
        _check_buf(quality, "quality", "H", n)
        _check_buf(regs, "regs", "H", self.n_regs)
        _check_buf(bits, "bits", "B", self.n_bits)
        _check_buf(changed, "changed", "B", n)
        self.seed = int(P["seed"])
        self.kind = list(P["kind"])
        self.p = [list(a) for a in P["p"]]
        self.noise = list(P["noise"])
        self.deadband = list(P["deadband"])
        self.report = list(P["report"])
        self.ref = list(P["ref"])
        self.reg_off, self.reg_type, self.reg_order = list(P["reg_off"]), list(P["reg_type"]), list(P["reg_order"])
        self.reg_scale, self.reg_offset = list(P["reg_scale"]), list(P["reg_offset"])
        self.harm = list(zip(P["harm_pt"], P["harm_freq"], P["harm_phase"], P["harm_amp"]))
        self.pool = list(P["pool"])
        pl = P.get("plant")
        self.plant = PlantRef(pl["ints"], pl["dbl"]) if pl else None
        self.out_values, self.out_quality, self.out_regs, self.out_bits, self.changed = values, quality, regs, bits, changed
        self.state = [self.p[1][i] if self.kind[i] == COUNTER else self.p[0][i] for i in range(n)]
        self.prev_src = [0.0] * n
        self.t_first = self.t_prev = 0.0
        self.started = False
        self.wv = array("f", [0.0]) * n
        self.wq = [0] * n
        self.wregs = array("H", [0]) * self.n_regs
        self.wbits = array("B", [0]) * self.n_bits
        self.rv = [math.nan] * n
        self.rq = [0] * n
        self.faults: list[_Fault] = []
        self.pub_t = 0.0
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._late: list[float] = []
        self._ticks = self._skipped = 0

    # ------------------------------------------------------------ computation

    def _compute(self, t: float) -> None:
        if not self.started:
            self.t_first = self.t_prev = t
        dt = max(0.0, t - self.t_prev)
        key = tick_key(self.seed, t)
        n, p, wv, wq, noise = self.n, self.p, self.wv, self.wq, self.noise
        for i in range(n):
            wq[i] = 0
        hsum = {}
        for pt, f, ph, a in self.harm:
            hsum[pt] = hsum.get(pt, 0.0) + a * _sin_cycles(t * f + ph)
        dt0 = t - self.t_first
        p0, p1, p2, p3, p4, p5, p6, p7 = p
        for i in range(self.n_wave):
            base = p0[i] + p4[i] * dt0
            span = p7[i]
            if span > 0.0:
                y = (base - p5[i]) / span
                base = p5[i] + (y - math.floor(y)) * span
            v = base + p1[i] * (_sin_cycles(t * p2[i] + p3[i]) + hsum.get(i, 0.0))
            if noise[i]:
                v += noise[i] * gauss(key, i)
            if span <= 0.0:
                v = min(max(v, p5[i]), p6[i])
            wv[i] = v
        for i in range(self.n_wave, self.n_scalar_end):
            k = self.kind[i]
            if k == WALK:
                x = self.state[i]
                x += p1[i] * math.sqrt(dt) * gauss(key, i) - p2[i] * (x - p0[i]) * dt
                x = min(max(x, p5[i]), p6[i])
                self.state[i] = v = x
            elif k == STEPS:
                x, rep = t - self.t_first, p1[i]
                if rep > 0.0:
                    x -= math.floor(x / rep) * rep
                o = self.ref[i]
                v = self.pool[o + 1]
                for j in range(int(p0[i])):
                    if self.pool[o + 2 * j] > x:
                        break
                    v = self.pool[o + 2 * j + 1]
            elif k == PROFILE:
                x = t + p0[i]
                x -= math.floor(x / 86400.0) * 86400.0
                pos = x / 1800.0
                j = min(int(pos), 47)
                sh = self.pool[self.ref[i]: self.ref[i] + 48]
                v = sh[j] + (sh[(j + 1) % 48] - sh[j]) * (pos - j) + noise[i] * gauss(key, i)
            else:  # HOLD
                v = self.state[i]
            wv[i] = v
        if self.plant is not None:
            self.plant.solve(t, self.seed)
        for i in range(self.n_scalar_end, self.n_derived_end):
            if self.kind[i] == PLANT:
                v = self.plant.out[self.ref[i]] * p1[i]
                wv[i] = v + noise[i] * gauss(key, i) if v != 0.0 else 0.0
                continue
            s, pf = wv[self.ref[i]], p1[i]
            vn = p2[i] + p3[i] * gauss(key ^ KEY_VOLT, int(p4[i]))
            q = int(p0[i])
            v = (s, s * pf, s * math.sqrt(1.0 - pf * pf), s * 1000.0 / (SQRT3 * vn), vn, pf)[q]
            wv[i] = v + noise[i] * gauss(key, i)
        for i in range(self.n_derived_end, n):
            src = wv[self.ref[i]]
            if not self.started:
                self.prev_src[i] = src
            acc = self.state[i] + p0[i] * 0.5 * (self.prev_src[i] + src) * dt
            roll = p2[i]
            if roll > 0.0 and acc >= roll:
                acc -= math.floor(acc / roll) * roll
            self.state[i], self.prev_src[i] = acc, src
            wv[i] = acc
        self.started = True
        self.t_prev = t
        self._faults(t, key)
        self._registers()
        self._changed()

    def _faults(self, t: float, key: int) -> None:
        wv, wq = self.wv, self.wq
        for f in self.faults:
            i = f.pt
            v, q = wv[i], wq[i]
            if f.t0 is None:
                f.t0, f.held, f.last = t, v, 0
            x = t - f.t0
            k = f.kind
            if k == 1:
                v = f.held if math.isnan(f.a) else f.a
            elif k == 2:
                v += f.a * x
            elif k == 3:
                m = math.floor(x / f.b)
                on = (m >= 1 and x - m * f.b < f.c) if f.c > 0.0 else m != f.last
                f.last = m
                if on:
                    v += f.a
            elif k == 4:
                v += f.a * gauss(key ^ KEY_FAULT, i)
            elif k == 5:
                v += f.a
            elif k == 6:
                if v < f.a:
                    v, q = f.a, Qb.set_validity(q, Qb.QUESTIONABLE) | Qb.OVERFLOW
                if v > f.b:
                    v, q = f.b, Qb.set_validity(q, Qb.QUESTIONABLE) | Qb.OVERFLOW
            elif k == 7:
                v, q = f.held, Qb.set_validity(q, Qb.INVALID) | Qb.FAILURE
            elif k == 8:
                if not math.isnan(f.a):
                    v = f.a
                q = Qb.set_validity(q, Qb.QUESTIONABLE) | Qb.OUT_OF_RANGE
            elif k == 9:
                ph = x / f.c
                v = f.a if ph - math.floor(ph) < 0.5 else f.b
            elif k == 10:
                v *= f.a
            elif k == 11:
                q |= f.qflags & ~Qb.VALIDITY_MASK
                if f.qflags & Qb.VALIDITY_MASK:
                    q = Qb.set_validity(q, f.qflags & Qb.VALIDITY_MASK)
            wv[i], wq[i] = v, q

    def _registers(self) -> None:
        for i in range(self.n):
            ty = self.reg_type[i]
            if ty == 0:
                continue
            y = (self.wv[i] - self.reg_offset[i]) / self.reg_scale[i]
            o = self.reg_off[i]
            if ty == 6:
                word = struct.unpack(">I", _F32.pack(y if abs(y) < 3.4028235677973366e38 else math.copysign(math.inf, y)))[0]
            else:
                lo, hi = _INT_RANGE[ty]
                over = False
                if math.isnan(y):
                    y, over = 0.0, True
                y = float(round(y)) if math.isfinite(y) else y
                if y < lo:
                    y, over = lo, ty != 1
                if y > hi:
                    y, over = hi, ty != 1
                if ty == 1:
                    self.wbits[o] = 1 if y != 0.0 else 0
                    continue
                if over:
                    self.wq[i] |= Qb.OVERFLOW
                word = int(y) & 0xFFFFFFFF
            lw, lb = self.reg_order[i] & 1, self.reg_order[i] & 2
            if ty in (2, 3):
                r = word & 0xFFFF
                self.wregs[o] = ((r >> 8) | ((r & 0xFF) << 8)) if lb else r
            else:
                hiw, low = word >> 16, word & 0xFFFF
                if lb:
                    hiw, low = (hiw >> 8) | ((hiw & 0xFF) << 8), (low >> 8) | ((low & 0xFF) << 8)
                self.wregs[o], self.wregs[o + 1] = (low, hiw) if lw else (hiw, low)

    def _changed(self) -> None:
        wv, wq, rv, rq, db, ch = self.wv, self.wq, self.rv, self.rq, self.deadband, self.changed
        for i in range(self.n):
            if not self.report[i]:
                continue
            if not abs(wv[i] - rv[i]) <= db[i] or wq[i] != rq[i]:
                rv[i], rq[i] = wv[i], wq[i]
                ch[i] = 1

    def _publish(self, t: float) -> None:
        self.out_values[:] = self.wv
        self.out_quality[:] = array("H", self.wq)
        self.out_regs[:] = self.wregs
        self.out_bits[:] = self.wbits
        self.pub_t = t

    # ------------------------------------------------------------ Sampler API

    def tick(self, t: float) -> None:
        t = float(t)
        if not math.isfinite(t):
            raise ValueError("tick(t): t must be a finite number of seconds")
        if self.running():
            raise RuntimeError("tick(t) while the sampling thread runs; call stop() first")
        self._tick(t)

    def _tick(self, t: float) -> None:
        with self.lock:
            self._compute(t)
            self._publish(t)

    def bench(self, t0: float, dt: float, count: int) -> None:
        for k in range(count):
            self.tick(t0 + k * dt)

    def start(self, period: float, realtime: bool = False, spin: float = 0.0) -> None:
        """``realtime`` and ``spin`` are C-backend tuning; the Python thread ignores them."""
        if not (isinstance(period, (int, float)) and math.isfinite(period) and period > 0):
            raise ValueError(f"start(period): period must be a positive number of seconds, got {period!r}")
        if self.running():
            raise RuntimeError("start(): the sampling thread already runs; call stop() first")
        self._stop.clear()
        self._late, self._ticks, self._skipped = [], 0, 0
        self._thread = threading.Thread(target=self._run, args=(float(period),), name="firmware-sim", daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        k = math.floor(time.time() / period) + 1
        while True:
            sched = k * period
            while (wait := sched - time.time()) > 0:  # Event.wait may return a little early
                if self._stop.wait(wait):
                    return
            if self._stop.is_set():
                return
            late = time.time() - sched
            if late >= period:
                behind = math.floor(late / period)
                self._skipped += behind
                k += behind
                sched = k * period
                late = time.time() - sched
            if len(self._late) < LATE_CAP:
                self._late.append(late * 1e6)
            self._tick(sched)
            self._ticks += 1
            k += 1

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot_into(self, values, quality) -> float:
        _check_buf(values, "values", "f", self.n)
        _check_buf(quality, "quality", "H", self.n)
        with self.lock:
            values[:] = self.out_values
            quality[:] = self.out_quality
            return self.pub_t

    def read_regs(self, start: int, count: int) -> tuple[float, bytes]:
        if start < 0 or count < 0 or start + count > self.n_regs:
            raise IndexError(f"registers {start}..{start + count} outside the image of {self.n_regs}")
        with self.lock:
            part = self.out_regs[start: start + count]
            t = self.pub_t
        return t, struct.pack(f">{count}H", *part)

    def read_bits(self, start: int, count: int) -> tuple[float, bytes]:
        if start < 0 or count < 0 or start + count > self.n_bits:
            raise IndexError(f"bits {start}..{start + count} outside the image of {self.n_bits}")
        with self.lock:
            return self.pub_t, bytes(self.out_bits[start: start + count])

    def take_changed(self) -> list[int]:
        with self.lock:
            out = [i for i in range(self.n) if self.changed[i]]
            for i in out:
                self.changed[i] = 0
        return out

    def take_changed_in(self, sel) -> list[int]:
        n = self.n
        for j, i in enumerate(sel):
            if not 0 <= i < n:
                raise IndexError(f"take_changed_in: sel[{j}] = {i} outside the points 0..{max(n - 1, 0)}")
        with self.lock:
            ch = self.changed
            out = [j for j, i in enumerate(sel) if ch[i]]
            for j in out:
                ch[sel[j]] = 0
        return out

    def _index(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(f"point index {i} out of range 0..{max(self.n - 1, 0)}")
        return i

    def set_state(self, i: int, v: float) -> None:
        i = self._index(i)
        with self.lock:
            if self.kind[i] == HOLD:
                self.state[i] = float(v)
            elif self.kind[i] == WAVE:
                self.p[0][i] = float(v)
            elif self.kind[i] == PLANT and (target := self.plant.target(self.ref[i])) is not None:
                self.plant.set_state(*target, float(v))
            else:
                raise ValueError(f"point {i} holds no state (only discrete and constant points accept set_state)")

    def plant_fault(self, i: int, code: int, v: float) -> None:
        i = self._index(i)
        with self.lock:
            eq = 0 if code == 3 else self.ref[i] // NQ  # one source: a loss of supply needs no particular equipment
            if self.kind[i] != PLANT or not self.plant.fault(eq, code, float(v)):
                raise ValueError(f"point {i}: plant event {code} does not apply to its equipment")

    def set_fault(self, i: int, kind: int, a: float = 0.0, b: float = 0.0, c: float = 0.0, qflags: int = 0) -> None:
        i = self._index(i)
        if not 1 <= kind <= 11:
            raise ValueError(f"unknown fault kind code {kind}")
        with self.lock:
            self.faults.append(_Fault(i, kind, float(a), float(b), float(c), int(qflags)))

    def clear_faults(self, i: int) -> None:
        i = self._index(i)
        with self.lock:
            self.faults = [f for f in self.faults if f.pt != i]

    def lateness(self) -> tuple[bytes, int, int]:
        return array("f", self._late).tobytes(), self._ticks, self._skipped


__all__ = ["RefSampler", "DERIVED", "PROFILE"]
