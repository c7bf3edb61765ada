"""The pure-Python plant solver: the oracle of ggplant.c, step for step (same iteration count).

Per tick: loads from their day shape (constant power), groups of nodes joined by closed
switches, the source's group energises the transformers whose HV side it holds, each LV
group is fed by its transformers in parallel (Thevenin sum of tap-ratio EMFs behind the
winding impedance), a fixed number of fixed-point iterations couples LV voltages, HV
current and the source impedance, then switch flows are node injections summed up the
switch trees. Values are SI: W, var, VA, A, V (line-line), Hz.
"""

from __future__ import annotations

import math

from firmware_sim.plant import (
    AR_MAX_SHOTS,
    AVC_BLOCK_V,
    AVC_BLOCKED,
    AVC_IN_BAND,
    AVC_LOCKOUT,
    AVC_MANUAL,
    AVC_MOVING,
    AVC_TIMING,
    CLOSED,
    CT_KNEE,
    DEFAULT_TAP_TIME,
    KEY_PLANT,
    NQ,
    OPEN,
    QI,
)
from firmware_sim.rng import gauss, tick_key

SQRT3 = math.sqrt(3.0)
ITER = 6
A_OP = complex(-0.5, math.sqrt(3.0) / 2.0)  # the 120° operator of symmetrical components
#: a tripped breaker shows open when its contacts part; the current it carried reads 0 this much later
#: (arc to the next current zero, plus the IED's one-cycle RMS window)
INTERRUPT = 0.03
NOISE_STEP = 2.0  # s between load-noise knots: demand wanders smoothly, not per tick
LOW_V = 0.7  # below this share of the open-circuit voltage loads turn constant-impedance (faults)
CURVE_K = ((0.0, 0.0), (0.14, 0.02), (13.5, 1.0), (80.0, 2.0), (120.0, 1.0))  # DT, SI, VI, EI, LTI
TWO_PI = 2.0 * math.pi


def unpack(ints, dbl) -> dict:
    """Slice the flat arrays of compile_plant into named lists (ggplant.c does the same)."""
    n, ns, nt, nl, nb, src = (int(x) for x in ints[:6])
    o = 6
    d: dict = {"n": n, "ns": ns, "nt": nt, "nl": nl, "nb": nb, "src": src}
    for name, cnt in (("parent", n), ("pedge", n), ("psign", n), ("sw_a", ns), ("sw_b", ns), ("tx_hv", nt),
                      ("tx_lv", nt), ("ld_node", nl), ("bb_node", nb)):
        d[name] = [int(x) for x in ints[o:o + cnt]]
        o += cnt
    d["src_v"], d["src_r"], d["src_x"], d["f_nom"] = (float(x) for x in dbl[:4])
    o = 4
    for name, cnt in (("sw_init", ns), ("sw_optime", ns), ("pr_pickup", ns), ("pr_curve", ns), ("pr_tms", ns),
                      ("pr_hs", ns), ("pr_hs_t", ns), ("ar_shots", ns), ("ar_dead", AR_MAX_SHOTS * ns),
                      ("ar_reclaim", ns), ("ef_pickup", ns), ("ef_curve", ns), ("ef_tms", ns), ("tx_r", nt), ("tx_x", nt), ("tx_ratio", nt), ("tx_step", nt),
                      ("tx_neutral", nt), ("tx_min", nt), ("tx_max", nt), ("tx_init", nt), ("avc_target", nt),
                      ("avc_band", nt), ("avc_delay", nt), ("avc_tap_time", nt), ("avc_ldc_r", nt),
                      ("avc_ldc_x", nt), ("tx_rn", nt), ("tx_shift", nt), ("ld_peak", nl),
                      ("ld_pf", nl), ("ld_noise", nl), ("ld_utc", nl), ("ld_shape", 48 * nl)):
        d[name] = [float(x) for x in dbl[o:o + cnt]]
        o += cnt
    if len(ints) != 6 + 3 * n + 2 * ns + 2 * nt + nl + nb or len(dbl) != o:
        raise ValueError("plant parameters: array sizes do not match the counts")
    return d


def _shift2(shift: float) -> complex:
    """e^(j·60°·shift): the negative sequence's extra turn through a D-yn winding (shift +1 Dyn11, -1 Dyn1)."""
    return complex(0.5, SQRT3 / 2.0 * shift)


def frequency(f_nom: float, t: float) -> float:
    """System frequency: a slow deterministic wander of ±25 mHz, the same on every device."""
    return f_nom + 0.02 * math.sin(TWO_PI * (t / 317.0 - math.floor(t / 317.0))) \
        + 0.005 * math.sin(TWO_PI * (t / 41.0 - math.floor(t / 41.0)))


class PlantRef:
    def __init__(self, ints, dbl) -> None:
        self.d = unpack(ints, dbl)
        d = self.d
        self.sw_state = list(d["sw_init"])
        self.tap = list(d["tx_init"])
        self.load_factor = [1.0] * d["nl"]
        self.src_alive = 1.0
        self.out = [0.0] * ((1 + d["nt"] + d["ns"] + d["nl"] + d["nb"]) * NQ)
        ns = d["ns"]
        self.started, self.operated = [0.0] * ns, [0.0] * ns
        self.progress, self.hs_timer = [0.0] * ns, [0.0] * ns
        self.trip_at = [math.nan] * ns
        self.interrupt_at = [math.nan] * ns
        self.ar_shot, self.ar_lockout = [0] * ns, [0] * ns
        self.ar_close_at, self.ar_reclaim_until = [math.nan] * ns, [math.nan] * ns
        self.sw_fail = [0.0] * ns
        self.ct_factor, self.ct_knee = [1.0] * ns, [0.0] * ns  # a saturating CT: share of the current above the knee
        self.fault_z = [0.0] * d["nl"]  # ohm; 0: no fault
        self.fault_type = [0] * d["nl"]  # 1 three-phase, 2 phase-earth (A), 3 phase-phase (B-C)
        self.ef_started, self.ef_progress = [0.0] * ns, [0.0] * ns
        self.t_prev: float | None = None
        self.avc_auto = [1.0 if x > 0.0 else 0.0 for x in d["avc_target"]]
        self.avc_timer = [0.0] * d["nt"]
        self.avc_move_at = [math.nan] * d["nt"]
        self.avc_dir = [0.0] * d["nt"]
        self.runaway = [0.0] * d["nt"]  # a stuck tap changer motor: +1 raising, -1 lowering
        self.avc_lockout = [0] * d["nt"]

    def fault(self, eq: int, code: int, v: float) -> bool:
        """A physical event on equipment block ``eq`` (plant.PLANT_FAULTS codes); False: not for this equipment."""
        d = self.d
        nt, ns, nl = d["nt"], d["ns"], d["nl"]
        k = eq - 1 - nt - ns
        if code in (1, 6, 7) and 0 <= k < nl:  # a short circuit: impedance in ohm (0 clears), by type
            self.fault_z[k] = v
            self.fault_type[k] = {1: 1, 6: 2, 7: 3}[code] if v > 0.0 else 0
        elif code == 2 and 0 <= k < nl:
            self.load_factor[k] = v
        elif code == 3 and eq == 0:
            self.src_alive = 0.0 if v else 1.0
        elif code == 4 and 0 <= eq - 1 - nt < ns:
            self.sw_fail[eq - 1 - nt] = v
        elif code == 5 and 1 <= eq <= nt:  # tap changer runaway: 1 raising, 2 lowering, 0 repaired
            self.runaway[eq - 1] = {1.0: 1.0, 2.0: -1.0}.get(v, 0.0)
        elif code == 8 and 0 <= eq - 1 - nt < ns:  # CT saturation: the share reproduced (0 or >= 1: a healthy CT)
            self.ct_factor[eq - 1 - nt] = v if 0.0 < v < 1.0 else 1.0
        elif code == CT_KNEE and 0 <= eq - 1 - nt < ns:
            self.ct_knee[eq - 1 - nt] = v
        else:
            return False
        return True

    def target(self, ref: int) -> tuple[str, int] | None:
        """The state a command on output ``ref`` writes (see plant.writable_target)."""
        d = self.d
        eq, q = divmod(ref, NQ)
        if q == QI["position"] and 1 + d["nt"] <= eq < 1 + d["nt"] + d["ns"]:
            return "switch", eq - 1 - d["nt"]
        if q == QI["tap"] and 1 <= eq <= d["nt"]:
            return "tap", eq - 1
        if q == QI["energised"] and eq == 0:
            return "source", 0
        if q == QI["avc_auto"] and 1 <= eq <= d["nt"]:
            return "avc", eq - 1
        return None

    def set_state(self, target: str, k: int, v: float) -> None:
        if target == "switch":  # an operator's command: no reclose pending; a close resets a lockout
            self.sw_state[k] = v
            self.interrupt_at[k] = self.ar_close_at[k] = self.ar_reclaim_until[k] = math.nan
            if v == CLOSED:
                self.ar_shot[k] = self.ar_lockout[k] = 0
        elif target == "tap":
            self.tap[k] = v
        elif target == "source":
            self.src_alive = v
        elif target == "avc":
            self.avc_auto[k] = v if self.d["avc_target"][k] > 0.0 else 0.0
            self.avc_timer[k], self.avc_move_at[k] = 0.0, math.nan
            self.avc_lockout[k] = 0

    def solve(self, t: float, seed: int) -> None:
        d, out = self.d, self.out
        n, nt, ns, nl, nb = d["n"], d["nt"], d["ns"], d["nl"], d["nb"]
        dt = 0.0 if self.t_prev is None else max(0.0, t - self.t_prev)
        self.t_prev = t
        for k in range(ns):  # tripped breakers: contacts part after the operate time, the arc clears after INTERRUPT
            if not math.isnan(self.trip_at[k]) and t >= self.trip_at[k]:
                if self.sw_fail[k] == 0.0:
                    self.interrupt_at[k] = self.trip_at[k] + INTERRUPT
                self.trip_at[k] = math.nan
            if not math.isnan(self.interrupt_at[k]) and t >= self.interrupt_at[k]:
                t_open = self.interrupt_at[k]
                self.interrupt_at[k] = math.nan
                self.sw_state[k] = OPEN
                self._ar_tripped(k, t_open)
            if not math.isnan(self.ar_close_at[k]) and t >= self.ar_close_at[k]:  # dead time over: reclose
                self.sw_state[k] = CLOSED
                self.ar_reclaim_until[k] = self.ar_close_at[k] + d["ar_reclaim"][k]
                self.ar_close_at[k] = math.nan
            if not math.isnan(self.ar_reclaim_until[k]) and t >= self.ar_reclaim_until[k]:  # stayed in: reset
                self.ar_reclaim_until[k] = math.nan
                self.ar_shot[k] = 0
        # loads: day shape, relative noise, constant power
        sl = [0j] * nl
        knot = math.floor(t / NOISE_STEP)
        nfr = t / NOISE_STEP - knot
        key0 = tick_key(seed, knot * NOISE_STEP) ^ KEY_PLANT
        key1 = tick_key(seed, (knot + 1.0) * NOISE_STEP) ^ KEY_PLANT
        for k in range(nl):
            x = t + d["ld_utc"][k] * 3600.0
            x -= math.floor(x / 86400.0) * 86400.0
            pos = x / 1800.0
            j = min(int(pos), 47)
            sh = d["ld_shape"][48 * k: 48 * k + 48]
            s = d["ld_peak"][k] * (sh[j] + (sh[(j + 1) % 48] - sh[j]) * (pos - j))
            g0, g1 = gauss(key0, k), gauss(key1, k)
            s *= self.load_factor[k] * (1.0 + d["ld_noise"][k] * (g0 + (g1 - g0) * nfr))
            s = max(s, 0.0)
            pf = d["ld_pf"][k]
            sl[k] = complex(s * pf, s * math.sqrt(1.0 - pf * pf))
        # groups: pre-order, a node joins its parent's group through a closed switch
        comp = [0] * n
        for u in range(n):
            pu = d["parent"][u]
            comp[u] = comp[pu] if pu >= 0 and self.sw_state[d["pedge"][u]] == CLOSED else u
        alive = self.src_alive != 0.0
        src_c = comp[d["src"]]
        a = [d["tx_ratio"][k] * (1.0 + d["tx_step"][k] * (self.tap[k] - d["tx_neutral"][k])) for k in range(nt)]
        y = [1.0 / complex(d["tx_r"][k], d["tx_x"][k]) for k in range(nt)]
        on = [alive and comp[d["tx_hv"][k]] == src_c for k in range(nt)]
        gs = [0j] * n
        for k in range(nl):
            gs[comp[d["ld_node"][k]]] += sl[k]
        faulted = [k for k in range(nl) if self.fault_type[k]]
        y0 = [1.0 / complex(d["tx_r"][k] + 3.0 * d["tx_rn"][k], d["tx_x"][k]) for k in range(nt)]
        fy = [0j] * nl
        gfl = [0.0] * n
        gv = [0j] * n
        zs = complex(d["src_r"], d["src_x"])
        vhv = complex(d["src_v"], 0.0) if alive else 0j
        ik = [0j] * nt
        for _ in range(ITER):
            gy = [0j] * n
            gj = [0j] * n
            g0 = [0j] * n
            gf = [0j] * n
            for k in range(nt):
                if on[k]:
                    c = comp[d["tx_lv"][k]]
                    gy[c] += y[k]
                    gj[c] += a[k] * vhv * y[k]
                    g0[c] += y0[k]
            for k in faulted:  # the fault as a positive-sequence shunt (sequence networks in series)
                c = comp[d["ld_node"][k]]
                fy[k] = 0j
                if gy[c] != 0j:
                    z1, zf = 1.0 / gy[c], complex(self.fault_z[k], 0.0)
                    ft = self.fault_type[k]
                    fy[k] = 1.0 / zf if ft == 1 else 1.0 / (z1 + 1.0 / g0[c] + 3.0 * zf) if ft == 2 else 1.0 / (z1 + zf)
                    gf[c] += fy[k]
            for c in range(n):
                if gy[c] != 0j:
                    yt = gy[c] + gf[c]
                    v = gv[c] if gv[c] != 0j else gj[c] / yt
                    gfl[c] = LOW_V * abs(gj[c] / gy[c])
                    if abs(v) >= gfl[c]:
                        i = (gs[c] / (SQRT3 * v)).conjugate()
                    else:  # constant impedance in a deep dip (a fault nearby)
                        i = gs[c].conjugate() * v / (SQRT3 * gfl[c] * gfl[c])
                    gv[c] = (gj[c] - SQRT3 * i) / yt
            ihv = 0j
            for k in range(nt):
                ik[k] = (a[k] * vhv - gv[comp[d["tx_lv"][k]]]) * y[k] / SQRT3 if on[k] else 0j
                ihv += a[k] * ik[k]
            if alive:
                vhv = complex(d["src_v"], 0.0) - SQRT3 * zs * ihv
        # node voltages and injections (consumption positive)
        live = [False] * n
        vn = [0.0] * n
        for k in range(nt):
            if on[k]:
                live[comp[d["tx_lv"][k]]] = True
        vph = [0j] * n  # node voltage phasors, line-line
        for u in range(n):
            c = comp[u]
            if alive and c == src_c:
                vph[u] = vhv
            elif live[c]:
                vph[u] = gv[c]
            vn[u] = abs(vph[u])
        f = frequency(d["f_nom"], t) if alive else 0.0
        inj = [0j] * n
        shv_tot = 0j
        ihv_tot = 0j
        for i_ in range(len(out)):
            out[i_] = 0.0
        for k in range(nt):
            e = 1 + k
            if on[k]:
                lv = d["tx_lv"][k]
                s_lv = SQRT3 * gv[comp[lv]] * ik[k].conjugate()
                ih = a[k] * ik[k]
                s_hv = SQRT3 * vhv * ih.conjugate()
                inj[d["tx_hv"][k]] += s_hv
                inj[lv] -= s_lv
                shv_tot += s_hv
                ihv_tot += ih
                self._flow(e, s_hv, abs(ih), vn[d["tx_hv"][k]], f)
                out[e * NQ + QI["I_lv"]] = abs(ik[k])
                out[e * NQ + QI["P_loss"]] = (s_hv - s_lv).real
            else:
                out[e * NQ + QI["V"]] = vn[d["tx_hv"][k]]
            out[e * NQ + QI["V_lv"]] = vn[d["tx_lv"][k]]
            out[e * NQ + QI["tap"]] = self.tap[k]
        if alive:
            inj[d["src"]] -= shv_tot
            self._flow(0, shv_tot, abs(ihv_tot), vn[d["src"]], f)
        out[QI["energised"]] = 1.0 if alive else 0.0
        inj2, inj0 = [0j] * n, [0j] * n  # negative- and zero-sequence fault current injections
        tot2, tot0 = [0j] * n, [0j] * n
        for k in range(nl):
            e = 1 + nt + ns + k
            u = d["ld_node"][k]
            if vn[u] > 0.0:
                fl = gfl[comp[u]]
                s = sl[k] if vn[u] >= fl else sl[k] * (vn[u] * vn[u] / (fl * fl))
                s += vn[u] * vn[u] * fy[k].conjugate()  # the fault's positive-sequence power
                inj[u] += s
                self._flow(e, s, abs(s) / (SQRT3 * vn[u]), vn[u], f)
                if self.fault_type[k] > 1:
                    i1 = fy[k] * vph[u] / SQRT3
                    i2, i0 = (i1, i1) if self.fault_type[k] == 2 else (-i1, 0j)
                    inj2[u] += i2
                    inj0[u] += i0
                    tot2[comp[u]] += i2
                    tot0[comp[u]] += i0
                    self._phases(e, (s / (SQRT3 * vph[u])).conjugate(), i2, i0)
        i2_src = 0j
        for k in range(nt):  # the transformers' neutrals and windings return the fault's sequence currents
            lv = d["tx_lv"][k]
            c = comp[lv]
            if on[k] and (tot2[c] != 0j or tot0[c] != 0j):
                i2k = tot2[c] * y[k] / gy[c]
                inj2[lv] -= i2k
                inj0[lv] -= tot0[c] * y0[k] / g0[c]
                # HV side of the D-yn winding: zero sequence circulates in the delta (no earth current at 33 kV);
                # the negative sequence turns by twice the vector group's 30° against the positive sequence
                i2h = a[k] * i2k * _shift2(d["tx_shift"][k])
                inj2[d["tx_hv"][k]] += i2h
                i2_src += i2h
                self._phases(1 + k, a[k] * ik[k], i2h, 0j)
        if i2_src != 0j:
            inj2[d["src"]] -= i2_src
            self._phases(0, ihv_tot, i2_src, 0j)
        # switch flows: subtree sums over closed switches, bottom-up
        sub = list(inj)
        for u in range(n - 1, -1, -1):
            pu = d["parent"][u]
            if pu < 0:
                continue
            k = d["pedge"][u]
            e = 1 + nt + k
            if self.sw_state[k] == CLOSED:
                flow = sub[u] * d["psign"][u]
                sub[pu] += sub[u]
                inj2[pu] += inj2[u]
                inj0[pu] += inj0[u]
                va = vn[d["sw_a"][k]]
                self._flow(e, flow, abs(flow) / (SQRT3 * va) if va > 0.0 else 0.0, va, f if va > 0.0 else 0.0)
                if inj2[u] != 0j or inj0[u] != 0j:
                    sg = d["psign"][u]
                    self._phases(e, (flow / (SQRT3 * vph[d["sw_a"][k]])).conjugate(), inj2[u] * sg, inj0[u] * sg)
            else:
                va = vn[d["sw_a"][k]]
                out[e * NQ + QI["V"]] = va
                out[e * NQ + QI["F"]] = f if va > 0.0 else 0.0
            out[e * NQ + QI["energised"]] = 1.0 if vn[d["sw_b"][k]] > 0.0 else 0.0
            out[e * NQ + QI["position"]] = OPEN if not math.isnan(self.interrupt_at[k]) else self.sw_state[k]
            o = e * NQ
            if self.ct_factor[k] < 1.0:  # a saturated CT: the relay and the readings see less above the knee
                kn, fac = self.ct_knee[k], self.ct_factor[k]
                for q in ("I", "I_A", "I_B", "I_C", "I_N"):
                    if out[o + QI[q]] > kn:
                        out[o + QI[q]] = kn + (out[o + QI[q]] - kn) * fac
            self._protect(k, t, dt, max(out[o + QI["I_A"]], out[o + QI["I_B"]], out[o + QI["I_C"]]), out[o + QI["I_N"]])
            out[e * NQ + QI["start"]] = self.started[k]
            out[e * NQ + QI["operate"]] = self.operated[k]
            out[e * NQ + QI["ar_state"]] = self._ar_state(k)
        for k in range(nt):
            e = 1 + k
            out[e * NQ + QI["avc_auto"]] = self.avc_auto[k]
            v_avc = vn[d["tx_lv"][k]]
            if d["avc_ldc_r"][k] != 0.0 or d["avc_ldc_x"][k] != 0.0:  # line-drop compensation
                v_avc = abs(vph[d["tx_lv"][k]] - SQRT3 * complex(d["avc_ldc_r"][k], d["avc_ldc_x"][k]) * ik[k])
            st, way = self._avc(k, t, dt, v_avc, on[k])
            o = e * NQ
            out[o + QI["avc_state"]] = st
            moving = st in (AVC_TIMING, AVC_MOVING)
            out[o + QI["avc_in_band"]] = 1.0 if st == AVC_IN_BAND else 0.0
            out[o + QI["avc_raise"]] = 1.0 if moving and way > 0.0 else 0.0
            out[o + QI["avc_lower"]] = 1.0 if moving and way < 0.0 else 0.0
            out[o + QI["avc_timing"]] = 1.0 if st == AVC_TIMING else 0.0
            out[o + QI["avc_blocked"]] = 1.0 if st == AVC_BLOCKED else 0.0
            out[o + QI["avc_lockout"]] = 1.0 if st == AVC_LOCKOUT else 0.0
        for k in range(nb):
            e = 1 + nt + ns + nl + k
            v = vn[d["bb_node"][k]]
            out[e * NQ + QI["V"]] = v
            out[e * NQ + QI["F"]] = f if v > 0.0 else 0.0
            out[e * NQ + QI["energised"]] = 1.0 if v > 0.0 else 0.0

    def _avc(self, k: int, t: float, dt: float, v: float, on: bool) -> tuple[float, float]:
        """Automatic voltage control of transformer k: out of band for ``delay`` → one tap step taking ``tap_time``.

        Returns (avc_state, direction of the pending or running step: +1 raise, -1 lower, 0 none)."""
        d = self.d
        if not math.isnan(self.avc_move_at[k]):
            if t < self.avc_move_at[k]:
                return AVC_MOVING, self.avc_dir[k]
            self.tap[k] = min(max(self.tap[k] + self.avc_dir[k], d["tx_min"][k]), d["tx_max"][k])
            self.avc_move_at[k] = math.nan
            self.avc_timer[k] = 0.0
            if self.runaway[k] != 0.0 and self.avc_auto[k] != 0.0:
                self.avc_lockout[k] = 1  # runaway protection: a step the relay did not command
        if self.avc_lockout[k]:
            return AVC_LOCKOUT, 0.0  # the motor supply is cut: no more steps, commanded or not
        if self.runaway[k] != 0.0:  # the stuck motor keeps stepping until the end stop
            step = self.runaway[k]
            if d["tx_min"][k] <= self.tap[k] + step <= d["tx_max"][k]:
                self.avc_dir[k] = step
                tt = d["avc_tap_time"][k]
                self.avc_move_at[k] = t + (tt if tt > 0.0 else DEFAULT_TAP_TIME)
                return AVC_MOVING, step
        if self.avc_auto[k] == 0.0:
            return AVC_MANUAL, 0.0
        target = d["avc_target"][k]
        if not on or v < AVC_BLOCK_V * target:  # de-energised, or a fault dip: undervoltage blocking
            self.avc_timer[k] = 0.0
            return AVC_BLOCKED, 0.0
        if abs(v - target) <= d["avc_band"][k] * target:
            self.avc_timer[k] = 0.0
            return AVC_IN_BAND, 0.0
        step = 1.0 if v < target else -1.0
        if not d["tx_min"][k] <= self.tap[k] + step <= d["tx_max"][k]:  # at the end stop: nothing left to do
            self.avc_timer[k] = 0.0
            return AVC_BLOCKED, 0.0
        self.avc_timer[k] += dt
        if self.avc_timer[k] >= d["avc_delay"][k]:
            self.avc_dir[k] = step
            self.avc_move_at[k] = t + d["avc_tap_time"][k]
            return AVC_MOVING, step
        return AVC_TIMING, step

    def _ar_tripped(self, k: int, t_open: float) -> None:
        """Protection opened switch k: schedule the next reclose shot, or lock out when none is left."""
        d = self.d
        shots = int(d["ar_shots"][k])
        if shots == 0 or self.ar_lockout[k]:
            return
        self.ar_reclaim_until[k] = math.nan
        if self.ar_shot[k] < shots:
            self.ar_close_at[k] = t_open + d["ar_dead"][AR_MAX_SHOTS * k + self.ar_shot[k]]
            self.ar_shot[k] += 1
        else:
            self.ar_lockout[k] = 1

    def _ar_state(self, k: int) -> float:
        if self.d["ar_shots"][k] == 0.0:
            return 0.0
        if self.ar_lockout[k]:
            return 4.0
        if not math.isnan(self.ar_close_at[k]):
            return 2.0
        return 3.0 if not math.isnan(self.ar_reclaim_until[k]) else 1.0

    def _phases(self, e: int, i1: complex, i2: complex, i0: complex) -> None:
        """Phase and residual currents from symmetrical components (an unbalanced fault on the path)."""
        o, out, a = e * NQ, self.out, A_OP
        out[o + QI["I_A"]] = abs(i1 + i2 + i0)
        out[o + QI["I_B"]] = abs(a * a * i1 + a * i2 + i0)
        out[o + QI["I_C"]] = abs(a * i1 + a * a * i2 + i0)
        out[o + QI["I_N"]] = abs(3.0 * i0)

    @staticmethod
    def _curve(code: float, tms: float, ratio: float) -> float:
        """Seconds to operate at ``ratio`` times pickup (IEC 60255: tms·k / (ratio^α − 1); DT: tms)."""
        kk, a = CURVE_K[int(code)]
        return tms if kk == 0.0 else tms * kk / (ratio ** a - 1.0)

    def _protect(self, k: int, t: float, dt: float, i: float, i_n: float) -> None:
        """Overcurrent relay of switch k: phase and earth-fault stages start above pickup and operate
        when their curve's time has run (integrated, so a changing current is timed fairly)."""
        d = self.d
        pick, epick = d["pr_pickup"][k], d["ef_pickup"][k]
        if pick <= 0.0:
            return
        if i > pick:
            top = self._curve(d["pr_curve"][k], d["pr_tms"][k], i / pick)
            self.progress[k] += dt / top if top > 0.0 else 1.0
        else:
            self.progress[k] = 0.0
        if epick > 0.0 and i_n > epick:
            self.ef_started[k] = 1.0
            top = self._curve(d["ef_curve"][k], d["ef_tms"][k], i_n / epick)
            self.ef_progress[k] += dt / top if top > 0.0 else 1.0
        else:
            self.ef_started[k] = self.ef_progress[k] = 0.0
        if i > pick or self.ef_started[k]:
            self.started[k] = 1.0
        else:
            self.started[k] = self.operated[k] = 0.0
        hs = d["pr_hs"][k]
        self.hs_timer[k] = self.hs_timer[k] + dt if hs > 0.0 and i > hs else 0.0
        if self.started[k] and (self.progress[k] >= 1.0 or self.ef_progress[k] >= 1.0
                                or (hs > 0.0 and i > hs and self.hs_timer[k] >= d["pr_hs_t"][k])):
            if not self.operated[k]:
                self.operated[k] = 1.0
                self.trip_at[k] = t + d["sw_optime"][k]

    def _flow(self, e: int, s: complex, i: float, v: float, f: float) -> None:
        o, out = e * NQ, self.out
        out[o + QI["P"]] = s.real
        out[o + QI["Q"]] = s.imag
        m = abs(s)
        out[o + QI["S"]] = m
        out[o + QI["I"]] = i
        out[o + QI["PF"]] = s.real / m if m > 0.0 else 0.0
        out[o + QI["V"]] = v
        out[o + QI["F"]] = f if v > 0.0 else 0.0
        out[o + QI["energised"]] = 1.0 if v > 0.0 else 0.0
        out[o + QI["I_A"]] = out[o + QI["I_B"]] = out[o + QI["I_C"]] = i
        out[o + QI["I_N"]] = 0.0
