/* gridgate plant solver. See ggplant.h and firmware_sim/plant_ref.py (the oracle). */
#include "ggplant.h"

#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggrng.h"

#define KEY_PLANT 0x2545F491U
#define NOISE_STEP 2.0 /* s between load-noise knots: demand wanders smoothly, not per tick */
#define SQRT3 1.7320508075688772
#define ITER 6
#define TWO_PI 6.283185307179586 /* 2*math.pi exactly */
#define CLOSED 2.0
#define OPEN 1.0
/* a tripped breaker shows open when its contacts part; the current it carried reads 0 this much later
 * (arc to the next current zero, plus the IED's one-cycle RMS window) */
#define INTERRUPT 0.03
#define DEFAULT_TAP_TIME 5.0 /* s per step of a tap changer without AVC settings */
#define LOW_V 0.7 /* below this share of the open-circuit voltage loads turn constant-impedance */
#define AVC_BLOCK_V 0.8 /* undervoltage blocking of the AVC: a fault dip must not run the taps */
static const double CURVE_K[5][2] = {{0.0, 0.0}, {0.14, 0.02}, {13.5, 1.0}, {80.0, 2.0}, {120.0, 1.0}};

typedef double complex cplx;

struct gg_plant {
    uint32_t n, ns, nt, nl, nb, n_out;
    int32_t src;
    const int32_t *parent, *pedge, *psign, *sw_a, *sw_b, *tx_hv, *tx_lv, *ld_node, *bb_node;
    double src_v, src_r, src_x, f_nom;
    const double *tx_r, *tx_x, *tx_ratio, *tx_step, *tx_neutral, *ld_peak, *ld_pf, *ld_noise, *ld_utc, *ld_shape;
    const double *sw_optime, *pr_pickup, *pr_curve, *pr_tms, *pr_hs, *pr_hs_t, *ar_shots, *ar_dead, *ar_reclaim;
    const double *ef_pickup, *ef_curve, *ef_tms, *tx_rn, *tx_shift;
    double *ct_factor, *ct_knee;
    double *fault_z, *fault_type, *ef_started, *ef_progress;
    cplx *fy, *y0, *g0, *gf, *inj2, *inj0, *tot2, *tot0, *vph;
    double *ar_shot, *ar_lockout, *ar_close_at, *ar_reclaim_until;
    const double *tx_min, *tx_max, *avc_target, *avc_band, *avc_delay, *avc_tap_time, *avc_ldc_r, *avc_ldc_x;
    double *avc_auto, *avc_timer, *avc_move_at, *avc_dir, *runaway, *avc_lockout;
    double *sw_state, *tap, *load_factor, src_alive;
    double *started, *operated, *progress, *hs_timer, *trip_at, *interrupt_at, *sw_fail, t_prev;
    int have_prev;
    int32_t *ints;
    double *dbl, *out;
    /* work arrays */
    int32_t *comp;
    uint8_t *on, *live;
    double *a, *vn, *gfl;
    cplx *y, *ik, *sl, *gs, *gv, *gy, *gj, *inj;
};

gg_plant *gg_plant_create(const int32_t *ints, uint32_t n_ints, const double *dbl, uint32_t n_dbl, char *err,
                          size_t errlen) {
    if (n_ints < 6) { snprintf(err, errlen, "plant: header too short"); return NULL; }
    for (int k = 0; k < 5; k++)
        if (ints[k] < 0) { snprintf(err, errlen, "plant: negative count"); return NULL; }
    uint32_t n = (uint32_t)ints[0], ns = (uint32_t)ints[1], nt = (uint32_t)ints[2], nl = (uint32_t)ints[3],
             nb = (uint32_t)ints[4];
    uint64_t want_i = 6 + 3ull * n + 2ull * ns + 2ull * nt + nl + nb;
    uint64_t want_d = 4 + (12ull + GG_AR_MAX_SHOTS) * ns + 16ull * nt + 4ull * nl + 48ull * nl;
    if (want_i != n_ints || want_d != n_dbl) { snprintf(err, errlen, "plant: array sizes do not match the counts"); return NULL; }
    gg_plant *pl = calloc(1, sizeof *pl);
    if (!pl) goto nomem;
    pl->n = n; pl->ns = ns; pl->nt = nt; pl->nl = nl; pl->nb = nb;
    pl->n_out = (1 + nt + ns + nl + nb) * GG_PLANT_NQ;
    pl->ints = malloc(sizeof(int32_t) * n_ints);
    pl->dbl = malloc(sizeof(double) * n_dbl);
    if (!pl->ints || !pl->dbl) goto nomem;
    memcpy(pl->ints, ints, sizeof(int32_t) * n_ints);
    memcpy(pl->dbl, dbl, sizeof(double) * n_dbl);
    const int32_t *ip = pl->ints + 6;
    pl->src = ints[5];
    pl->parent = ip; ip += n;
    pl->pedge = ip; ip += n;
    pl->psign = ip; ip += n;
    pl->sw_a = ip; ip += ns;
    pl->sw_b = ip; ip += ns;
    pl->tx_hv = ip; ip += nt;
    pl->tx_lv = ip; ip += nt;
    pl->ld_node = ip; ip += nl;
    pl->bb_node = ip;
    /* every node reference inside 0..n-1, parents before children (pre-order) */
    if (pl->src < 0 || (uint32_t)pl->src >= n) goto bad;
    for (uint32_t u = 0; u < n; u++) {
        if (pl->parent[u] >= (int32_t)u) goto bad;
        if (pl->parent[u] >= 0 && (pl->pedge[u] < 0 || (uint32_t)pl->pedge[u] >= ns)) goto bad;
    }
    for (const int32_t *q = pl->sw_a; q < pl->bb_node + nb; q++)
        if (*q < 0 || (uint32_t)*q >= n) goto bad;
    const double *dp = pl->dbl;
    pl->src_v = dp[0]; pl->src_r = dp[1]; pl->src_x = dp[2]; pl->f_nom = dp[3];
    dp += 4;
    const double *sw_init = dp; dp += ns;
    pl->sw_optime = dp; dp += ns;
    pl->pr_pickup = dp; dp += ns;
    pl->pr_curve = dp; dp += ns;
    pl->pr_tms = dp; dp += ns;
    pl->pr_hs = dp; dp += ns;
    pl->pr_hs_t = dp; dp += ns;
    pl->ar_shots = dp; dp += ns;
    pl->ar_dead = dp; dp += GG_AR_MAX_SHOTS * ns;
    pl->ar_reclaim = dp; dp += ns;
    pl->ef_pickup = dp; dp += ns;
    pl->ef_curve = dp; dp += ns;
    pl->ef_tms = dp; dp += ns;
    for (uint32_t k = 0; k < ns; k++)
        if (!(pl->ar_shots[k] >= 0.0 && pl->ar_shots[k] <= GG_AR_MAX_SHOTS)) { snprintf(err, errlen, "plant: bad reclose shots"); gg_plant_destroy(pl); return NULL; }
    for (uint32_t k = 0; k < ns; k++)
        if (!(pl->pr_curve[k] >= 0.0 && pl->pr_curve[k] <= 4.0 && pl->ef_curve[k] >= 0.0 && pl->ef_curve[k] <= 4.0)) { snprintf(err, errlen, "plant: bad curve code"); gg_plant_destroy(pl); return NULL; }
    pl->tx_r = dp; dp += nt;
    pl->tx_x = dp; dp += nt;
    pl->tx_ratio = dp; dp += nt;
    pl->tx_step = dp; dp += nt;
    pl->tx_neutral = dp; dp += nt;
    pl->tx_min = dp; dp += nt;
    pl->tx_max = dp; dp += nt;
    const double *tx_init = dp; dp += nt;
    pl->avc_target = dp; dp += nt;
    pl->avc_band = dp; dp += nt;
    pl->avc_delay = dp; dp += nt;
    pl->avc_tap_time = dp; dp += nt;
    pl->avc_ldc_r = dp; dp += nt;
    pl->avc_ldc_x = dp; dp += nt;
    pl->tx_rn = dp; dp += nt;
    pl->tx_shift = dp; dp += nt;
    pl->ld_peak = dp; dp += nl;
    pl->ld_pf = dp; dp += nl;
    pl->ld_noise = dp; dp += nl;
    pl->ld_utc = dp; dp += nl;
    pl->ld_shape = dp;
    size_t N = n ? n : 1, NS = ns ? ns : 1;
    double **sw_arrays[] = {&pl->started, &pl->operated, &pl->progress, &pl->hs_timer, &pl->trip_at, &pl->interrupt_at,
                            &pl->sw_fail, &pl->ar_shot, &pl->ar_lockout, &pl->ar_close_at, &pl->ar_reclaim_until,
                            &pl->ct_factor, &pl->ct_knee};
    for (size_t q = 0; q < sizeof sw_arrays / sizeof sw_arrays[0]; q++)
        if (!(*sw_arrays[q] = calloc(NS, sizeof(double)))) goto nomem;
    for (uint32_t k = 0; k < ns; k++) {
        pl->trip_at[k] = pl->interrupt_at[k] = pl->ar_close_at[k] = pl->ar_reclaim_until[k] = NAN;
        pl->ct_factor[k] = 1.0;
    }
    size_t NL = nl ? nl : 1, NT = nt ? nt : 1;
    if (!(pl->fault_z = calloc(NL, sizeof(double))) || !(pl->fault_type = calloc(NL, sizeof(double))) ||
        !(pl->fy = calloc(NL, sizeof(cplx))) || !(pl->y0 = calloc(NT, sizeof(cplx))) ||
        !(pl->ef_started = calloc(NS, sizeof(double))) || !(pl->ef_progress = calloc(NS, sizeof(double))))
        goto nomem;
    cplx **node_arrays[] = {&pl->g0, &pl->gf, &pl->inj2, &pl->inj0, &pl->tot2, &pl->tot0, &pl->vph};
    for (size_t q = 0; q < sizeof node_arrays / sizeof node_arrays[0]; q++)
        if (!(*node_arrays[q] = calloc(N, sizeof(cplx)))) goto nomem;
    double **tx_arrays[] = {&pl->avc_auto, &pl->avc_timer, &pl->avc_move_at, &pl->avc_dir, &pl->runaway, &pl->avc_lockout};
    for (size_t q = 0; q < sizeof tx_arrays / sizeof tx_arrays[0]; q++)
        if (!(*tx_arrays[q] = calloc(nt ? nt : 1, sizeof(double)))) goto nomem;
    for (uint32_t k = 0; k < nt; k++) {
        pl->avc_auto[k] = pl->avc_target[k] > 0.0 ? 1.0 : 0.0;
        pl->avc_move_at[k] = NAN;
    }
    if (!(pl->gfl = calloc(N, sizeof(double)))) goto nomem;
    pl->sw_state = malloc(sizeof(double) * (ns ? ns : 1));
    pl->tap = malloc(sizeof(double) * (nt ? nt : 1));
    pl->load_factor = malloc(sizeof(double) * (nl ? nl : 1));
    pl->out = calloc(pl->n_out, sizeof(double));
    pl->comp = malloc(sizeof(int32_t) * N);
    pl->on = malloc(nt ? nt : 1);
    pl->live = malloc(N);
    pl->a = malloc(sizeof(double) * (nt ? nt : 1));
    pl->vn = malloc(sizeof(double) * N);
    pl->y = malloc(sizeof(cplx) * (nt ? nt : 1));
    pl->ik = malloc(sizeof(cplx) * (nt ? nt : 1));
    pl->sl = malloc(sizeof(cplx) * (nl ? nl : 1));
    pl->gs = malloc(sizeof(cplx) * N);
    pl->gv = malloc(sizeof(cplx) * N);
    pl->gy = malloc(sizeof(cplx) * N);
    pl->gj = malloc(sizeof(cplx) * N);
    pl->inj = malloc(sizeof(cplx) * N);
    if (!pl->sw_state || !pl->tap || !pl->load_factor || !pl->out || !pl->comp || !pl->on || !pl->live || !pl->a ||
        !pl->vn || !pl->y || !pl->ik || !pl->sl || !pl->gs || !pl->gv || !pl->gy || !pl->gj || !pl->inj)
        goto nomem;
    memcpy(pl->sw_state, sw_init, sizeof(double) * ns);
    memcpy(pl->tap, tx_init, sizeof(double) * nt);
    for (uint32_t k = 0; k < nl; k++) pl->load_factor[k] = 1.0;
    pl->src_alive = 1.0;
    return pl;
bad:
    snprintf(err, errlen, "plant: node reference out of range or not in pre-order");
    gg_plant_destroy(pl);
    return NULL;
nomem:
    snprintf(err, errlen, "out of memory");
    gg_plant_destroy(pl);
    return NULL;
}

void gg_plant_destroy(gg_plant *pl) {
    if (!pl) return;
    void *m[] = {pl->ints, pl->dbl, pl->out, pl->sw_state, pl->tap, pl->load_factor, pl->comp, pl->on, pl->live,
                 pl->a, pl->vn, pl->y, pl->ik, pl->sl, pl->gs, pl->gv, pl->gy, pl->gj, pl->inj, pl->started,
                 pl->operated, pl->progress, pl->hs_timer, pl->trip_at, pl->interrupt_at, pl->sw_fail, pl->gfl, pl->fault_z,
                 pl->fault_type, pl->fy, pl->y0, pl->ef_started, pl->ef_progress, pl->g0, pl->gf, pl->inj2, pl->inj0,
                 pl->tot2, pl->tot0, pl->vph,
                 pl->avc_auto, pl->avc_timer, pl->avc_move_at, pl->avc_dir, pl->runaway, pl->avc_lockout, pl->ar_shot, pl->ar_lockout,
                 pl->ar_close_at, pl->ar_reclaim_until, pl->ct_factor, pl->ct_knee};
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) free(m[k]);
    free(pl);
}

const double *gg_plant_out(const gg_plant *pl) { return pl->out; }
uint32_t gg_plant_n_out(const gg_plant *pl) { return pl->n_out; }

int gg_plant_set(gg_plant *pl, int32_t ref, double v) {
    if (ref < 0 || (uint32_t)ref >= pl->n_out) return -2;
    uint32_t eq = (uint32_t)ref / GG_PLANT_NQ, q = (uint32_t)ref % GG_PLANT_NQ;
    if (q == GG_PQ_POS && eq >= 1 + pl->nt && eq < 1 + pl->nt + pl->ns) {
        /* an operator's command: no reclose pending; a close resets a lockout */
        uint32_t s = eq - 1 - pl->nt;
        pl->sw_state[s] = v;
        pl->interrupt_at[s] = pl->ar_close_at[s] = pl->ar_reclaim_until[s] = NAN;
        if (v == CLOSED) pl->ar_shot[s] = pl->ar_lockout[s] = 0.0;
    }
    else if (q == GG_PQ_TAP && eq >= 1 && eq <= pl->nt) pl->tap[eq - 1] = v;
    else if (q == GG_PQ_LIVE && eq == 0) pl->src_alive = v;
    else if (q == GG_PQ_AVC_AUTO && eq >= 1 && eq <= pl->nt) {
        pl->avc_auto[eq - 1] = pl->avc_target[eq - 1] > 0.0 ? v : 0.0;
        pl->avc_timer[eq - 1] = 0.0;
        pl->avc_move_at[eq - 1] = NAN;
        pl->avc_lockout[eq - 1] = 0.0;
    }
    else return -2;
    return 0;
}

int gg_plant_fault(gg_plant *pl, uint32_t eq, int code, double v) {
    int64_t k = (int64_t)eq - 1 - pl->nt - pl->ns, s = (int64_t)eq - 1 - pl->nt;
    if ((code == GG_PF_SHORT || code == GG_PF_SHORT_PE || code == GG_PF_SHORT_PP) && k >= 0 && k < pl->nl) {
        pl->fault_z[k] = v; /* ohm; 0 clears */
        pl->fault_type[k] = v > 0.0 ? (code == GG_PF_SHORT ? 1.0 : code == GG_PF_SHORT_PE ? 2.0 : 3.0) : 0.0;
    }
    else if (code == GG_PF_LOAD_STEP && k >= 0 && k < pl->nl) pl->load_factor[k] = v;
    else if (code == GG_PF_LOSS_OF_SUPPLY && eq == 0) pl->src_alive = v != 0.0 ? 0.0 : 1.0;
    else if (code == GG_PF_BREAKER_FAIL && s >= 0 && s < pl->ns) pl->sw_fail[s] = v;
    else if (code == GG_PF_TAP_RUNAWAY && eq >= 1 && eq <= pl->nt) /* 1 raising, 2 lowering, 0 repaired */
        pl->runaway[eq - 1] = v == 1.0 ? 1.0 : v == 2.0 ? -1.0 : 0.0;
    else if (code == GG_PF_CT_SATURATION && s >= 0 && s < pl->ns) pl->ct_factor[s] = v > 0.0 && v < 1.0 ? v : 1.0;
    else if (code == GG_PF_CT_KNEE && s >= 0 && s < pl->ns) pl->ct_knee[s] = v;
    else return -2;
    return 0;
}

/* Protection opened switch k: schedule the next reclose shot, or lock out when none is left. */
static void ar_tripped(gg_plant *pl, uint32_t k, double t_open) {
    int shots = (int)pl->ar_shots[k];
    if (shots == 0 || pl->ar_lockout[k] != 0.0) return;
    pl->ar_reclaim_until[k] = NAN;
    if (pl->ar_shot[k] < shots) {
        pl->ar_close_at[k] = t_open + pl->ar_dead[GG_AR_MAX_SHOTS * k + (uint32_t)pl->ar_shot[k]];
        pl->ar_shot[k] += 1.0;
    } else {
        pl->ar_lockout[k] = 1.0;
    }
}

static double ar_state(const gg_plant *pl, uint32_t k) {
    if (pl->ar_shots[k] == 0.0) return 0.0;
    if (pl->ar_lockout[k] != 0.0) return 4.0;
    if (pl->ar_close_at[k] == pl->ar_close_at[k]) return 2.0;
    return pl->ar_reclaim_until[k] == pl->ar_reclaim_until[k] ? 3.0 : 1.0;
}

/* Automatic voltage control of transformer k: out of band for delay -> one tap step taking tap_time.
 * Returns avc_state; *way: direction of the pending or running step (+1 raise, -1 lower, 0 none). */
static double avc(gg_plant *pl, uint32_t k, double t, double dt, double v, int on, double *way) {
    *way = 0.0;
    if (pl->avc_move_at[k] == pl->avc_move_at[k]) {
        if (t < pl->avc_move_at[k]) { *way = pl->avc_dir[k]; return GG_AVC_MOVING; }
        double tap = pl->tap[k] + pl->avc_dir[k];
        tap = tap < pl->tx_min[k] ? pl->tx_min[k] : tap;
        pl->tap[k] = tap > pl->tx_max[k] ? pl->tx_max[k] : tap;
        pl->avc_move_at[k] = NAN;
        pl->avc_timer[k] = 0.0;
        if (pl->runaway[k] != 0.0 && pl->avc_auto[k] != 0.0) pl->avc_lockout[k] = 1.0; /* an uncommanded step */
    }
    if (pl->avc_lockout[k] != 0.0) return GG_AVC_LOCKOUT; /* the motor supply is cut: no more steps */
    if (pl->runaway[k] != 0.0) { /* the stuck motor keeps stepping until the end stop */
        double step = pl->runaway[k];
        if (pl->tap[k] + step >= pl->tx_min[k] && pl->tap[k] + step <= pl->tx_max[k]) {
            pl->avc_dir[k] = step;
            pl->avc_move_at[k] = t + (pl->avc_tap_time[k] > 0.0 ? pl->avc_tap_time[k] : DEFAULT_TAP_TIME);
            *way = step;
            return GG_AVC_MOVING;
        }
    }
    if (pl->avc_auto[k] == 0.0) return GG_AVC_MANUAL;
    double target = pl->avc_target[k];
    if (!on || v < AVC_BLOCK_V * target) { /* de-energised, or a fault dip: undervoltage blocking */
        pl->avc_timer[k] = 0.0;
        return GG_AVC_BLOCKED;
    }
    if (fabs(v - target) <= pl->avc_band[k] * target) {
        pl->avc_timer[k] = 0.0;
        return GG_AVC_IN_BAND;
    }
    double step = v < target ? 1.0 : -1.0;
    if (!(pl->tap[k] + step >= pl->tx_min[k] && pl->tap[k] + step <= pl->tx_max[k])) { /* at the end stop */
        pl->avc_timer[k] = 0.0;
        return GG_AVC_BLOCKED;
    }
    pl->avc_timer[k] += dt;
    *way = step;
    if (pl->avc_timer[k] >= pl->avc_delay[k]) {
        pl->avc_dir[k] = step;
        pl->avc_move_at[k] = t + pl->avc_tap_time[k];
        return GG_AVC_MOVING;
    }
    return GG_AVC_TIMING;
}

/* Seconds to operate at ratio times pickup (IEC 60255: tms*k / (ratio^alpha - 1); DT: tms). */
static double curve(double code, double tms, double ratio) {
    const double *ka = CURVE_K[(int)code];
    return ka[0] == 0.0 ? tms : tms * ka[0] / (pow(ratio, ka[1]) - 1.0);
}

/* Overcurrent relay of switch k: phase and earth-fault stages start above pickup and operate when
 * their curve's time has run (integrated, so a changing current is timed fairly). */
static void protect(gg_plant *pl, uint32_t k, double t, double dt, double i, double i_n) {
    double pick = pl->pr_pickup[k], epick = pl->ef_pickup[k];
    if (pick <= 0.0) return;
    if (i > pick) {
        double top = curve(pl->pr_curve[k], pl->pr_tms[k], i / pick);
        pl->progress[k] += top > 0.0 ? dt / top : 1.0;
    } else {
        pl->progress[k] = 0.0;
    }
    if (epick > 0.0 && i_n > epick) {
        pl->ef_started[k] = 1.0;
        double top = curve(pl->ef_curve[k], pl->ef_tms[k], i_n / epick);
        pl->ef_progress[k] += top > 0.0 ? dt / top : 1.0;
    } else {
        pl->ef_started[k] = pl->ef_progress[k] = 0.0;
    }
    if (i > pick || pl->ef_started[k] != 0.0) pl->started[k] = 1.0;
    else pl->started[k] = pl->operated[k] = 0.0;
    double hs = pl->pr_hs[k];
    pl->hs_timer[k] = hs > 0.0 && i > hs ? pl->hs_timer[k] + dt : 0.0;
    if (pl->started[k] != 0.0 && (pl->progress[k] >= 1.0 || pl->ef_progress[k] >= 1.0 ||
                                  (hs > 0.0 && i > hs && pl->hs_timer[k] >= pl->pr_hs_t[k]))) {
        if (pl->operated[k] == 0.0) {
            pl->operated[k] = 1.0;
            pl->trip_at[k] = t + pl->sw_optime[k];
        }
    }
}

static double frequency(double f_nom, double t) {
    return f_nom + 0.02 * sin(TWO_PI * (t / 317.0 - floor(t / 317.0))) +
           0.005 * sin(TWO_PI * (t / 41.0 - floor(t / 41.0)));
}

/* Phase and residual currents from symmetrical components (an unbalanced fault on the path). */
static void phases(double *o, cplx i1, cplx i2, cplx i0) {
    const cplx a = -0.5 + I * 0.8660254037844386;
    o[GG_PQ_IA] = cabs(i1 + i2 + i0);
    o[GG_PQ_IB] = cabs(a * a * i1 + a * i2 + i0);
    o[GG_PQ_IC] = cabs(a * i1 + a * a * i2 + i0);
    o[GG_PQ_IN] = cabs(3.0 * i0);
}

static void flow(double *o, cplx s, double i, double v, double f) {
    double m = cabs(s);
    o[GG_PQ_P] = creal(s);
    o[GG_PQ_Q] = cimag(s);
    o[GG_PQ_S] = m;
    o[GG_PQ_I] = i;
    o[GG_PQ_PF] = m > 0.0 ? creal(s) / m : 0.0;
    o[GG_PQ_V] = v;
    o[GG_PQ_F] = v > 0.0 ? f : 0.0;
    o[GG_PQ_LIVE] = v > 0.0 ? 1.0 : 0.0;
    o[GG_PQ_IA] = o[GG_PQ_IB] = o[GG_PQ_IC] = i;
    o[GG_PQ_IN] = 0.0;
}

void gg_plant_solve(gg_plant *pl, double t, uint64_t seed) {
    const uint32_t n = pl->n, nt = pl->nt, ns = pl->ns, nl = pl->nl, nb = pl->nb;
    double *out = pl->out;
    uint32_t u, k, c;
    double dt = pl->have_prev ? t - pl->t_prev : 0.0;
    if (dt < 0.0) dt = 0.0;
    pl->t_prev = t;
    pl->have_prev = 1;
    for (k = 0; k < ns; k++) { /* tripped breakers: contacts part after the operate time, the arc clears after INTERRUPT */
        if (pl->trip_at[k] == pl->trip_at[k] && t >= pl->trip_at[k]) {
            if (pl->sw_fail[k] == 0.0) pl->interrupt_at[k] = pl->trip_at[k] + INTERRUPT;
            pl->trip_at[k] = NAN;
        }
        if (pl->interrupt_at[k] == pl->interrupt_at[k] && t >= pl->interrupt_at[k]) {
            double t_open = pl->interrupt_at[k];
            pl->interrupt_at[k] = NAN;
            pl->sw_state[k] = OPEN;
            ar_tripped(pl, k, t_open);
        }
        if (pl->ar_close_at[k] == pl->ar_close_at[k] && t >= pl->ar_close_at[k]) { /* dead time over: reclose */
            pl->sw_state[k] = CLOSED;
            pl->ar_reclaim_until[k] = pl->ar_close_at[k] + pl->ar_reclaim[k];
            pl->ar_close_at[k] = NAN;
        }
        if (pl->ar_reclaim_until[k] == pl->ar_reclaim_until[k] && t >= pl->ar_reclaim_until[k]) { /* stayed in */
            pl->ar_reclaim_until[k] = NAN;
            pl->ar_shot[k] = 0.0;
        }
    }
    double knot = floor(t / NOISE_STEP), nfr = t / NOISE_STEP - knot;
    uint32_t key0 = tick_key(seed, knot * NOISE_STEP) ^ KEY_PLANT, key1 = tick_key(seed, (knot + 1.0) * NOISE_STEP) ^ KEY_PLANT;
    for (k = 0; k < nl; k++) { /* loads: day shape, relative noise, constant power */
        double x = t + pl->ld_utc[k] * 3600.0;
        x -= floor(x / 86400.0) * 86400.0;
        double pos = x / 1800.0;
        int j = (int)pos;
        if (j > 47) j = 47;
        const double *sh = pl->ld_shape + 48 * k;
        double s = pl->ld_peak[k] * (sh[j] + (sh[(j + 1) % 48] - sh[j]) * (pos - j));
        double g0 = (double)gauss(key0, k), g1 = (double)gauss(key1, k);
        s *= pl->load_factor[k] * (1.0 + pl->ld_noise[k] * (g0 + (g1 - g0) * nfr));
        if (s < 0.0) s = 0.0;
        double pf = pl->ld_pf[k];
        pl->sl[k] = s * pf + I * (s * sqrt(1.0 - pf * pf));
    }
    for (u = 0; u < n; u++) { /* groups: pre-order, join the parent through a closed switch */
        int32_t pu = pl->parent[u];
        pl->comp[u] = pu >= 0 && pl->sw_state[pl->pedge[u]] == CLOSED ? pl->comp[pu] : (int32_t)u;
    }
    int alive = pl->src_alive != 0.0;
    int32_t src_c = pl->comp[pl->src];
    for (k = 0; k < nt; k++) {
        pl->a[k] = pl->tx_ratio[k] * (1.0 + pl->tx_step[k] * (pl->tap[k] - pl->tx_neutral[k]));
        pl->y[k] = 1.0 / (pl->tx_r[k] + I * pl->tx_x[k]);
        pl->on[k] = alive && pl->comp[pl->tx_hv[k]] == src_c;
        pl->y0[k] = 1.0 / (pl->tx_r[k] + 3.0 * pl->tx_rn[k] + I * pl->tx_x[k]);
    }
    for (u = 0; u < n; u++) {
        pl->gs[u] = pl->gv[u] = 0.0;
        pl->gfl[u] = 0.0;
    }
    int any_fault = 0;
    for (k = 0; k < nl; k++) {
        pl->gs[pl->comp[pl->ld_node[k]]] += pl->sl[k];
        pl->fy[k] = 0.0;
        any_fault |= pl->fault_type[k] != 0.0;
    }
    const cplx zs = pl->src_r + I * pl->src_x;
    cplx vhv = alive ? pl->src_v : 0.0;
    for (int it = 0; it < ITER; it++) {
        for (u = 0; u < n; u++) pl->gy[u] = pl->gj[u] = pl->g0[u] = pl->gf[u] = 0.0;
        for (k = 0; k < nt; k++) {
            if (!pl->on[k]) continue;
            c = (uint32_t)pl->comp[pl->tx_lv[k]];
            pl->gy[c] += pl->y[k];
            pl->gj[c] += pl->a[k] * vhv * pl->y[k];
            pl->g0[c] += pl->y0[k];
        }
        for (k = 0; any_fault && k < nl; k++) { /* the fault as a positive-sequence shunt (sequence networks) */
            if (pl->fault_type[k] == 0.0) continue;
            c = (uint32_t)pl->comp[pl->ld_node[k]];
            pl->fy[k] = 0.0;
            if (pl->gy[c] == 0.0) continue;
            cplx z1 = 1.0 / pl->gy[c], zf = pl->fault_z[k];
            pl->fy[k] = pl->fault_type[k] == 1.0 ? 1.0 / zf
                      : pl->fault_type[k] == 2.0 ? 1.0 / (z1 + 1.0 / pl->g0[c] + 3.0 * zf) : 1.0 / (z1 + zf);
            pl->gf[c] += pl->fy[k];
        }
        for (c = 0; c < n; c++) {
            if (pl->gy[c] == 0.0) continue;
            cplx yt = pl->gy[c] + pl->gf[c];
            cplx v = pl->gv[c] != 0.0 ? pl->gv[c] : pl->gj[c] / yt;
            pl->gfl[c] = LOW_V * cabs(pl->gj[c] / pl->gy[c]);
            cplx i = cabs(v) >= pl->gfl[c] ? conj(pl->gs[c] / (SQRT3 * v))
                                            : conj(pl->gs[c]) * v / (SQRT3 * pl->gfl[c] * pl->gfl[c]);
            pl->gv[c] = (pl->gj[c] - SQRT3 * i) / yt;
        }
        cplx ihv = 0.0;
        for (k = 0; k < nt; k++) {
            pl->ik[k] = pl->on[k] ? (pl->a[k] * vhv - pl->gv[pl->comp[pl->tx_lv[k]]]) * pl->y[k] / SQRT3 : 0.0;
            ihv += pl->a[k] * pl->ik[k];
        }
        if (alive) vhv = pl->src_v - SQRT3 * zs * ihv;
    }
    for (u = 0; u < n; u++) pl->live[u] = 0;
    for (k = 0; k < nt; k++)
        if (pl->on[k]) pl->live[pl->comp[pl->tx_lv[k]]] = 1;
    for (u = 0; u < n; u++) { /* node voltage phasors, line-line */
        c = (uint32_t)pl->comp[u];
        pl->vph[u] = alive && (int32_t)c == src_c ? vhv : pl->live[c] ? pl->gv[c] : 0.0;
        pl->vn[u] = cabs(pl->vph[u]);
        pl->inj2[u] = pl->inj0[u] = pl->tot2[u] = pl->tot0[u] = 0.0;
    }
    double f = alive ? frequency(pl->f_nom, t) : 0.0;
    memset(out, 0, sizeof(double) * pl->n_out);
    for (u = 0; u < n; u++) pl->inj[u] = 0.0;
    cplx shv_tot = 0.0, ihv_tot = 0.0;
    for (k = 0; k < nt; k++) {
        double *o = out + (1 + k) * GG_PLANT_NQ;
        if (pl->on[k]) {
            int32_t lv = pl->tx_lv[k];
            cplx s_lv = SQRT3 * pl->gv[pl->comp[lv]] * conj(pl->ik[k]);
            cplx ih = pl->a[k] * pl->ik[k];
            cplx s_hv = SQRT3 * vhv * conj(ih);
            pl->inj[pl->tx_hv[k]] += s_hv;
            pl->inj[lv] -= s_lv;
            shv_tot += s_hv;
            ihv_tot += ih;
            flow(o, s_hv, cabs(ih), pl->vn[pl->tx_hv[k]], f);
            o[GG_PQ_ILV] = cabs(pl->ik[k]);
            o[GG_PQ_PLOSS] = creal(s_hv - s_lv);
        } else {
            o[GG_PQ_V] = pl->vn[pl->tx_hv[k]];
        }
        o[GG_PQ_VLV] = pl->vn[pl->tx_lv[k]];
        o[GG_PQ_TAP] = pl->tap[k];
    }
    if (alive) {
        pl->inj[pl->src] -= shv_tot;
        flow(out, shv_tot, cabs(ihv_tot), pl->vn[pl->src], f);
    }
    out[GG_PQ_LIVE] = alive ? 1.0 : 0.0;
    for (k = 0; k < nl; k++) {
        int32_t nd = pl->ld_node[k];
        double vv = pl->vn[nd];
        if (vv > 0.0) {
            double fl = pl->gfl[pl->comp[nd]];
            cplx s = vv >= fl ? pl->sl[k] : pl->sl[k] * (vv * vv / (fl * fl));
            s += vv * vv * conj(pl->fy[k]); /* the fault's positive-sequence power */
            pl->inj[nd] += s;
            double *o = out + (1 + nt + ns + k) * GG_PLANT_NQ;
            flow(o, s, cabs(s) / (SQRT3 * vv), vv, f);
            if (pl->fault_type[k] > 1.0) {
                cplx i1 = pl->fy[k] * pl->vph[nd] / SQRT3;
                cplx i2 = pl->fault_type[k] == 2.0 ? i1 : -i1, i0 = pl->fault_type[k] == 2.0 ? i1 : 0.0;
                pl->inj2[nd] += i2;
                pl->inj0[nd] += i0;
                pl->tot2[pl->comp[nd]] += i2;
                pl->tot0[pl->comp[nd]] += i0;
                phases(o, conj(s / (SQRT3 * pl->vph[nd])), i2, i0);
            }
        }
    }
    cplx i2_src = 0.0;
    for (k = 0; any_fault && k < nt; k++) { /* the transformers' neutrals and windings return the sequence currents */
        int32_t lv = pl->tx_lv[k];
        c = (uint32_t)pl->comp[lv];
        if (pl->on[k] && (pl->tot2[c] != 0.0 || pl->tot0[c] != 0.0)) {
            cplx i2k = pl->tot2[c] * pl->y[k] / pl->gy[c];
            pl->inj2[lv] -= i2k;
            pl->inj0[lv] -= pl->tot0[c] * pl->y0[k] / pl->g0[c];
            /* HV side of the D-yn winding: zero sequence circulates in the delta (no earth current at 33 kV);
             * the negative sequence turns by twice the vector group's 30 degrees against the positive sequence */
            cplx i2h = pl->a[k] * i2k * (0.5 + I * (SQRT3 / 2.0 * pl->tx_shift[k]));
            pl->inj2[pl->tx_hv[k]] += i2h;
            i2_src += i2h;
            phases(out + (1 + k) * GG_PLANT_NQ, pl->a[k] * pl->ik[k], i2h, 0.0);
        }
    }
    if (i2_src != 0.0) {
        pl->inj2[pl->src] -= i2_src;
        phases(out, ihv_tot, i2_src, 0.0);
    }
    /* switch flows: subtree sums over closed switches, bottom-up (inj becomes the subtree sum) */
    for (u = n; u-- > 0;) {
        int32_t pu = pl->parent[u];
        if (pu < 0) continue;
        int32_t sw = pl->pedge[u];
        double *o = out + (1 + nt + (uint32_t)sw) * GG_PLANT_NQ;
        double va = pl->vn[pl->sw_a[sw]];
        if (pl->sw_state[sw] == CLOSED) {
            cplx fl = pl->inj[u] * (double)pl->psign[u];
            pl->inj[pu] += pl->inj[u];
            pl->inj2[pu] += pl->inj2[u];
            pl->inj0[pu] += pl->inj0[u];
            flow(o, fl, va > 0.0 ? cabs(fl) / (SQRT3 * va) : 0.0, va, f);
            if (pl->inj2[u] != 0.0 || pl->inj0[u] != 0.0) {
                double sg = (double)pl->psign[u];
                phases(o, conj(fl / (SQRT3 * pl->vph[pl->sw_a[sw]])), pl->inj2[u] * sg, pl->inj0[u] * sg);
            }
        } else {
            o[GG_PQ_V] = va;
            o[GG_PQ_F] = va > 0.0 ? f : 0.0;
        }
        o[GG_PQ_LIVE] = pl->vn[pl->sw_b[sw]] > 0.0 ? 1.0 : 0.0;
        o[GG_PQ_POS] = pl->interrupt_at[sw] == pl->interrupt_at[sw] ? OPEN : pl->sw_state[sw];
        if (pl->ct_factor[sw] < 1.0) { /* a saturated CT: the relay and the readings see less above the knee */
            static const int cur[5] = {GG_PQ_I, GG_PQ_IA, GG_PQ_IB, GG_PQ_IC, GG_PQ_IN};
            double kn = pl->ct_knee[sw], fac = pl->ct_factor[sw];
            for (int q = 0; q < 5; q++)
                if (o[cur[q]] > kn) o[cur[q]] = kn + (o[cur[q]] - kn) * fac;
        }
        double imax = o[GG_PQ_IA] > o[GG_PQ_IB] ? o[GG_PQ_IA] : o[GG_PQ_IB];
        protect(pl, (uint32_t)sw, t, dt, imax > o[GG_PQ_IC] ? imax : o[GG_PQ_IC], o[GG_PQ_IN]);
        o[GG_PQ_START] = pl->started[sw];
        o[GG_PQ_OPERATE] = pl->operated[sw];
        o[GG_PQ_AR_STATE] = ar_state(pl, (uint32_t)sw);
    }
    for (k = 0; k < nt; k++) {
        double *o = out + (1 + k) * GG_PLANT_NQ;
        o[GG_PQ_AVC_AUTO] = pl->avc_auto[k];
        double v_avc = pl->vn[pl->tx_lv[k]];
        if (pl->avc_ldc_r[k] != 0.0 || pl->avc_ldc_x[k] != 0.0) /* line-drop compensation */
            v_avc = cabs(pl->vph[pl->tx_lv[k]] - SQRT3 * (pl->avc_ldc_r[k] + I * pl->avc_ldc_x[k]) * pl->ik[k]);
        double way;
        double st = avc(pl, k, t, dt, v_avc, pl->on[k], &way);
        int moving = st == GG_AVC_TIMING || st == GG_AVC_MOVING;
        o[GG_PQ_AVC_STATE] = st;
        o[GG_PQ_AVC_IN_BAND] = st == GG_AVC_IN_BAND;
        o[GG_PQ_AVC_RAISE] = moving && way > 0.0;
        o[GG_PQ_AVC_LOWER] = moving && way < 0.0;
        o[GG_PQ_AVC_TIMING] = st == GG_AVC_TIMING;
        o[GG_PQ_AVC_BLOCKED] = st == GG_AVC_BLOCKED;
        o[GG_PQ_AVC_LOCKOUT] = st == GG_AVC_LOCKOUT;
    }
    for (k = 0; k < nb; k++) {
        double *o = out + (1 + nt + ns + nl + k) * GG_PLANT_NQ;
        double v = pl->vn[pl->bb_node[k]];
        o[GG_PQ_V] = v;
        o[GG_PQ_F] = v > 0.0 ? f : 0.0;
        o[GG_PQ_LIVE] = v > 0.0 ? 1.0 : 0.0;
    }
}
