/* gridgate simulated firmware: sampling core. See ggfw.h and firmware_sim/reference.py
 * (the pure-Python oracle of exactly these semantics). */
#define _POSIX_C_SOURCE 200809L
#include "ggfw.h"
#include "ggplant.h"
#include "ggrng.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52: (x + M) - M rounds to nearest even */

struct gg_core {
    gg_params p;            /* owned copies */
    void *owned[64];
    int n_owned;
    /* state */
    double *state, *prev_src;
    double t_first, t_prev;
    int started;
    float *wv, *hsum, *rv;
    uint16_t *wq, *rq, *wregs;
    uint8_t *wbits;
    gg_fault *faults;
    uint32_t n_faults, cap_faults;
    uint32_t *fix_pt, n_fix;   /* wave points with harmonics or a wrap span */
    float *famp, *flo, *fhi;   /* float copies of wave amplitude and limits */
    uint32_t *reg_pt, n_reg;   /* points with a register or bit */
    gg_plant *plant;           /* the site's plant model, NULL without one */
    /* outputs */
    gg_out out;
    double pub_t;
    unsigned long seq;
    pthread_mutex_t lock;
    /* sampling thread */
    pthread_t thread;
    pthread_mutex_t run_mtx;
    pthread_cond_t run_cond;
    int running, stop, realtime;
    double period, spin;
    float *late;
    uint64_t late_n, ticks, skipped;
};



#define KEY_FAULT 0x5DEECE66U
#define KEY_VOLT 0x3C6EF372U

/* sin(2*pi*x) for x in cycles, phase already reduced to [-0.5, 0.5] in double. */
static inline float sin_cycles(double x) {
    float s = (float)x;
    s = s > 0.25f ? 0.5f - s : s;
    s = s < -0.25f ? -0.5f - s : s;
    float y = s * 6.28318530717958648f, y2 = y * y;
    return y * (1.0f + y2 * (-1.6666667e-1f + y2 * (8.3333333e-3f + y2 * (-1.9841270e-4f +
                y2 * (2.7557319e-6f + y2 * -2.5052108e-8f)))));
}

static inline double reduce(double x) { return x - ((x + ROUND_MAGIC) - ROUND_MAGIC); }

static void *own(gg_core *c, const void *src, size_t bytes) {
    void *m = malloc(bytes ? bytes : 1);
    if (!m) return NULL;
    if (src && bytes) memcpy(m, src, bytes);
    else memset(m, 0, bytes ? bytes : 1);
    c->owned[c->n_owned++] = m;
    return m;
}

#define OWN(field, type, count)                                                  \
    do {                                                                         \
        c->p.field = own(c, prm->field, sizeof(type) * (size_t)(count));        \
        if (!c->p.field) goto nomem;                                             \
    } while (0)

gg_core *gg_create(const gg_params *prm, gg_out out, char *err, size_t errlen) {
    uint32_t n = prm->n, i;
    if (!(prm->n_wave <= prm->n_scalar_end && prm->n_scalar_end <= prm->n_derived_end && prm->n_derived_end <= n)) {
        snprintf(err, errlen, "pass boundaries out of order");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        uint8_t k = prm->kind[i];
        int want = i < prm->n_wave ? GG_WAVE : i >= prm->n_derived_end ? GG_COUNTER
                 : i >= prm->n_scalar_end ? GG_DERIVED : -1;
        if (k == GG_PLANT && want == GG_DERIVED) want = GG_PLANT;
        if (k > GG_PLANT || (want >= 0 && k != want) || (want < 0 && (k == GG_WAVE || k >= GG_DERIVED))) {
            snprintf(err, errlen, "point %u: kind %u does not belong to its pass", i, k);
            return NULL;
        }
        int32_t r = prm->ref[i];
        if ((k == GG_DERIVED || k == GG_COUNTER) && (r < 0 || (uint32_t)r >= prm->n_derived_end)) {
            snprintf(err, errlen, "point %u: reference %d out of range", i, r);
            return NULL;
        }
        if (k == GG_STEPS && (r < 0 || prm->p[0][i] < 1 || (uint64_t)r + 2 * (uint64_t)prm->p[0][i] > prm->n_pool)) {
            snprintf(err, errlen, "point %u: step schedule outside the pool", i);
            return NULL;
        }
        if (k == GG_PROFILE && (r < 0 || (uint64_t)r + 48 > prm->n_pool)) {
            snprintf(err, errlen, "point %u: profile shape outside the pool", i);
            return NULL;
        }
        int32_t o = prm->reg_off[i];
        uint8_t ty = prm->reg_type[i];
        if (ty > GG_T_FLOAT32 || (ty != GG_T_NONE && o < 0)) {
            snprintf(err, errlen, "point %u: bad register type %u", i, ty);
            return NULL;
        }
        if (ty == GG_T_BOOL && (uint32_t)o >= prm->n_bits) {
            snprintf(err, errlen, "point %u: bit %d outside the bit image (%u)", i, o, prm->n_bits);
            return NULL;
        }
        if (ty >= GG_T_INT16 && (uint64_t)o + (ty >= GG_T_INT32 ? 2 : 1) > prm->n_regs) {
            snprintf(err, errlen, "point %u: register %d outside the register image (%u)", i, o, prm->n_regs);
            return NULL;
        }
    }
    for (i = 0; i < prm->n_harm; i++) {
        if (prm->harm_pt[i] < 0 || (uint32_t)prm->harm_pt[i] >= prm->n_wave) {
            snprintf(err, errlen, "harmonic %u: point %d is not a wave point", i, prm->harm_pt[i]);
            return NULL;
        }
    }
    gg_plant *plant = NULL;
    if (prm->n_plant_ints) {
        plant = gg_plant_create(prm->plant_ints, prm->n_plant_ints, prm->plant_dbl, prm->n_plant_dbl, err, errlen);
        if (!plant) return NULL;
    }
    for (i = 0; i < n; i++) {
        if (prm->kind[i] == GG_PLANT && (!plant || prm->ref[i] < 0 || (uint32_t)prm->ref[i] >= gg_plant_n_out(plant))) {
            snprintf(err, errlen, "point %u: plant output %d out of range", i, prm->ref[i]);
            gg_plant_destroy(plant);
            return NULL;
        }
    }
    gg_core *c = calloc(1, sizeof *c);
    if (!c) { gg_plant_destroy(plant); goto nomem0; }
    c->p = *prm;
    c->plant = plant;
    OWN(kind, uint8_t, n);
    for (i = 0; i < GG_NPARAM; i++) {
        c->p.p[i] = own(c, prm->p[i], sizeof(double) * n);
        if (!c->p.p[i]) goto nomem;
    }
    OWN(noise, float, n);
    OWN(deadband, float, n);
    OWN(report, uint8_t, n);
    OWN(ref, int32_t, n);
    OWN(reg_off, int32_t, n);
    OWN(reg_type, uint8_t, n);
    OWN(reg_order, uint8_t, n);
    OWN(reg_scale, double, n);
    OWN(reg_offset, double, n);
    OWN(harm_pt, int32_t, prm->n_harm);
    OWN(harm_freq, double, prm->n_harm);
    OWN(harm_phase, double, prm->n_harm);
    OWN(harm_amp, double, prm->n_harm);
    OWN(pool, double, prm->n_pool);
    if (!(c->state = own(c, prm->p[0], sizeof(double) * n))) goto nomem; /* walk start, hold initial */
    if (!(c->prev_src = own(c, NULL, sizeof(double) * n))) goto nomem;
    if (!(c->wv = own(c, NULL, sizeof(float) * n))) goto nomem;
    if (!(c->hsum = own(c, NULL, sizeof(float) * n))) goto nomem;
    if (!(c->rv = own(c, NULL, sizeof(float) * n))) goto nomem;
    if (!(c->wq = own(c, NULL, sizeof(uint16_t) * n))) goto nomem;
    if (!(c->rq = own(c, NULL, sizeof(uint16_t) * n))) goto nomem;
    if (!(c->wregs = own(c, NULL, sizeof(uint16_t) * prm->n_regs))) goto nomem;
    if (!(c->wbits = own(c, NULL, prm->n_bits))) goto nomem;
    if (!(c->late = own(c, NULL, sizeof(float) * GG_LATE_CAP))) goto nomem;
    if (!(c->fix_pt = own(c, NULL, sizeof(uint32_t) * n))) goto nomem;
    if (!(c->famp = own(c, NULL, sizeof(float) * n))) goto nomem;
    if (!(c->flo = own(c, NULL, sizeof(float) * n))) goto nomem;
    if (!(c->fhi = own(c, NULL, sizeof(float) * n))) goto nomem;
    for (i = 0; i < prm->n_harm; i++) c->hsum[prm->harm_pt[i]] = 1.0f; /* marks points with harmonics */
    if (!(c->reg_pt = own(c, NULL, sizeof(uint32_t) * n))) goto nomem;
    for (i = 0; i < n; i++) {
        c->famp[i] = (float)prm->p[1][i];
        c->flo[i] = (float)prm->p[5][i];
        c->fhi[i] = (float)prm->p[6][i];
        if (i < prm->n_wave && (prm->p[7][i] > 0.0 || c->hsum[i] != 0.0f)) c->fix_pt[c->n_fix++] = i;
        if (prm->reg_type[i] != GG_T_NONE) c->reg_pt[c->n_reg++] = i;
    }
    for (i = 0; i < n; i++) {
        c->rv[i] = NAN; /* never reported: the first tick marks everything changed */
        if (c->p.kind[i] == GG_COUNTER) c->state[i] = prm->p[1][i];
    }
    c->out = out;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->run_mtx, NULL);
    pthread_cond_init(&c->run_cond, NULL);
    return c;
nomem:
    gg_destroy(c);
nomem0:
    snprintf(err, errlen, "out of memory");
    return NULL;
}

void gg_destroy(gg_core *c) {
    if (!c) return;
    gg_stop(c);
    for (int i = 0; i < c->n_owned; i++) free(c->owned[i]);
    gg_plant_destroy(c->plant);
    free(c->faults);
    free(c);
}

static inline uint16_t set_validity(uint16_t q, uint16_t v) {
    if (v == GG_Q_INVALID) return (uint16_t)((q & ~3u) | GG_Q_INVALID);
    if ((q & 3u) != GG_Q_INVALID) return (uint16_t)(q | GG_Q_QUESTIONABLE);
    return q;
}

/* x86-64: also compile the hot kernels for AVX2 and pick at load time (ifunc); the
 * default clone stays baseline SSE2, so distributed builds need no -march. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__) && !defined(GGFW_NO_CLONES)
#define GG_HOT __attribute__((target_clones("avx2", "default")))
#else
#define GG_HOT
#endif

/* The hot loop over wave points: branch-free so gcc vectorises it. Phase reduced in
 * double (epoch times), sine as a float polynomial, noise from the integer hash.
 * Amplitude and limits are read as float copies to keep the memory traffic down. */
GG_HOT static void wave_kernel(uint32_t nw, double t, double dt0, uint32_t key, const double *restrict mean,
                               const double *restrict rate, const double *restrict freq, const double *restrict ph,
                               const float *restrict amp, const float *restrict lo, const float *restrict hi,
                               const float *restrict noise, float *restrict wv) {
    for (uint32_t i = 0; i < nw; i++) { /* the hot loop */
        float v = (float)(mean[i] + rate[i] * dt0) + amp[i] * sin_cycles(reduce(t * freq[i] + ph[i])) +
                  noise[i] * gauss(key, i);
        v = v < lo[i] ? lo[i] : v;
        wv[i] = v > hi[i] ? hi[i] : v;
    }
}

static void pass_wave(gg_core *c, double t, uint32_t key) {
    const double *mean = c->p.p[0], *freq = c->p.p[2], *ph = c->p.p[3];
    const double *rate = c->p.p[4], *lo = c->p.p[5], *span = c->p.p[7];
    const double dt0 = t - c->t_first;
    uint32_t i;
    wave_kernel(c->p.n_wave, t, dt0, key, mean, rate, freq, ph, c->famp, c->flo, c->fhi, c->p.noise, c->wv);
    if (!c->n_fix) return;
    /* points with harmonics or a wrap span (rare): recomputed in full, scalar */
    for (i = 0; i < c->p.n_harm; i++) c->hsum[c->p.harm_pt[i]] = 0.0f;
    for (i = 0; i < c->p.n_harm; i++)
        c->hsum[c->p.harm_pt[i]] += (float)c->p.harm_amp[i] * sin_cycles(reduce(t * c->p.harm_freq[i] + c->p.harm_phase[i]));
    for (uint32_t k = 0; k < c->n_fix; k++) {
        i = c->fix_pt[k];
        double base = mean[i] + rate[i] * dt0;
        if (span[i] > 0.0) {
            double y = (base - lo[i]) / span[i];
            base = lo[i] + (y - floor(y)) * span[i];
        }
        float v = (float)base + c->famp[i] * (sin_cycles(reduce(t * freq[i] + ph[i])) + c->hsum[i]) +
                  c->p.noise[i] * gauss(key, i);
        if (!(span[i] > 0.0)) {
            v = v < c->flo[i] ? c->flo[i] : v;
            v = v > c->fhi[i] ? c->fhi[i] : v;
        }
        c->wv[i] = v;
    }
}

static double steps_value(const double *pool, uint32_t cnt, double x) {
    double v = pool[1];
    for (uint32_t j = 0; j < cnt && pool[2 * j] <= x; j++) v = pool[2 * j + 1];
    return v;
}

static void pass_scalar(gg_core *c, double t, double dt, uint32_t key) {
    const gg_params *p = &c->p;
    for (uint32_t i = p->n_wave; i < p->n_scalar_end; i++) {
        double v = 0.0;
        switch (p->kind[i]) {
        case GG_WALK: {
            double x = c->state[i];
            x += p->p[1][i] * sqrt(dt) * (double)gauss(key, i) - p->p[2][i] * (x - p->p[0][i]) * dt;
            x = x < p->p[5][i] ? p->p[5][i] : x;
            x = x > p->p[6][i] ? p->p[6][i] : x;
            c->state[i] = x;
            v = x;
            break;
        }
        case GG_STEPS: {
            double x = t - c->t_first, rep = p->p[1][i];
            if (rep > 0.0) x -= floor(x / rep) * rep;
            v = steps_value(p->pool + p->ref[i], (uint32_t)p->p[0][i], x);
            break;
        }
        case GG_PROFILE: {
            double x = t + p->p[0][i];
            x -= floor(x / 86400.0) * 86400.0;
            double pos = x / 1800.0;
            int j = (int)pos;
            if (j > 47) j = 47;
            double fr = pos - j;
            const double *sh = p->pool + p->ref[i];
            v = sh[j] + (sh[(j + 1) % 48] - sh[j]) * fr + (double)p->noise[i] * (double)gauss(key, i);
            break;
        }
        default: /* GG_HOLD */
            v = c->state[i];
        }
        c->wv[i] = (float)v;
    }
}

static void pass_derived(gg_core *c, uint32_t key) {
    const gg_params *p = &c->p;
    const double *po = c->plant ? gg_plant_out(c->plant) : NULL;
    for (uint32_t i = p->n_scalar_end; i < p->n_derived_end; i++) {
        if (p->kind[i] == GG_PLANT) { /* a plant quantity: phase share x unit scale, noise while non-zero */
            double x = po[p->ref[i]] * p->p[1][i];
            c->wv[i] = x != 0.0 ? (float)(x + (double)p->noise[i] * (double)gauss(key, i)) : 0.0f;
            continue;
        }
        double s = c->wv[p->ref[i]], pf = p->p[1][i];
        double vn = p->p[2][i] + p->p[3][i] * (double)gauss(key ^ KEY_VOLT, (uint32_t)p->p[4][i]);
        double v;
        switch ((int)p->p[0][i]) {
        case GG_Q_P: v = s * pf; break;
        case GG_Q_Q: v = s * sqrt(1.0 - pf * pf); break;
        case GG_Q_I: v = s * 1000.0 / (1.7320508075688772 * vn); break;
        case GG_Q_V: v = vn; break;
        case GG_Q_PF: v = pf; break;
        default: v = s;
        }
        c->wv[i] = (float)(v + (double)p->noise[i] * (double)gauss(key, i));
    }
}

static void pass_counter(gg_core *c, double dt) {
    const gg_params *p = &c->p;
    for (uint32_t i = p->n_derived_end; i < p->n; i++) {
        double src = c->wv[p->ref[i]];
        if (!c->started) c->prev_src[i] = src;
        double acc = c->state[i] + p->p[0][i] * 0.5 * (c->prev_src[i] + src) * dt; /* trapezoid */
        double roll = p->p[2][i];
        if (roll > 0.0 && acc >= roll) acc -= floor(acc / roll) * roll;
        c->state[i] = acc;
        c->prev_src[i] = src;
        c->wv[i] = (float)acc;
    }
}

static void pass_faults(gg_core *c, double t, uint32_t key) {
    for (uint32_t k = 0; k < c->n_faults; k++) {
        gg_fault *f = &c->faults[k];
        uint32_t i = (uint32_t)f->pt;
        double v = c->wv[i];
        uint16_t q = c->wq[i];
        if (f->t0 != f->t0) { /* first application: remember time and value */
            f->t0 = t;
            f->held = v;
            f->last = 0;
        }
        double x = t - f->t0;
        switch (f->kind) {
        case GG_F_STUCK: v = f->a == f->a ? f->a : f->held; break;
        case GG_F_DRIFT: v += f->a * x; break;
        case GG_F_SPIKE: {
            int64_t n = (int64_t)floor(x / f->b);
            double in = x - (double)n * f->b;
            int on = f->c > 0.0 ? (n >= 1 && in < f->c) : (n != f->last);
            f->last = n;
            if (on) v += f->a;
            break;
        }
        case GG_F_NOISE: v += f->a * (double)gauss(key ^ KEY_FAULT, i); break;
        case GG_F_OFFSET: v += f->a; break;
        case GG_F_SATURATE:
            if (v < f->a) { v = f->a; q = set_validity(q, GG_Q_QUESTIONABLE) | GG_Q_OVERFLOW; }
            if (v > f->b) { v = f->b; q = set_validity(q, GG_Q_QUESTIONABLE) | GG_Q_OVERFLOW; }
            break;
        case GG_F_DROPOUT: v = f->held; q = set_validity(q, GG_Q_INVALID) | GG_Q_FAILURE; break;
        case GG_F_OUT_OF_RANGE:
            if (f->a == f->a) v = f->a;
            q = set_validity(q, GG_Q_QUESTIONABLE) | GG_Q_OUT_OF_RANGE;
            break;
        case GG_F_OSCILLATION: {
            double ph = x / f->c;
            v = (ph - floor(ph)) < 0.5 ? f->a : f->b;
            break;
        }
        case GG_F_SCALE: v *= f->a; break;
        case GG_F_QUALITY: {
            uint16_t val = f->qflags & 3u;
            q |= (uint16_t)(f->qflags & ~3u);
            if (val) q = set_validity(q, val);
            break;
        }
        default: break;
        }
        c->wv[i] = (float)v;
        c->wq[i] = q;
    }
}

static inline uint16_t bswap16(uint16_t x) { return (uint16_t)((x >> 8) | (x << 8)); }

static void pass_registers(gg_core *c) {
    const gg_params *p = &c->p;
    for (uint32_t k = 0; k < c->n_reg; k++) {
        uint32_t i = c->reg_pt[k];
        uint8_t ty = p->reg_type[i];
        double y = ((double)c->wv[i] - p->reg_offset[i]) / p->reg_scale[i];
        int32_t o = p->reg_off[i];
        int over = 0;
        uint32_t word = 0;
        if (ty == GG_T_FLOAT32) {
            float f = (float)y;
            memcpy(&word, &f, 4);
        } else {
            double lo = 0, hi = 0;
            switch (ty) {
            case GG_T_BOOL: lo = -2147483648.0; hi = 2147483647.0; break;
            case GG_T_INT16: lo = -32768.0; hi = 32767.0; break;
            case GG_T_UINT16: lo = 0.0; hi = 65535.0; break;
            case GG_T_INT32: lo = -2147483648.0; hi = 2147483647.0; break;
            default: lo = 0.0; hi = 4294967295.0;
            }
            if (y != y) { y = 0.0; over = 1; }
            y = (y + ROUND_MAGIC) - ROUND_MAGIC;
            if (y < lo) { y = lo; over = ty != GG_T_BOOL; }
            if (y > hi) { y = hi; over = ty != GG_T_BOOL; }
            if (ty == GG_T_BOOL) { c->wbits[o] = y != 0.0; if (over) c->wq[i] |= GG_Q_OVERFLOW; continue; }
            word = y < 0 ? (uint32_t)(int64_t)y : (uint32_t)y;
        }
        if (over) c->wq[i] |= GG_Q_OVERFLOW;
        int lw = p->reg_order[i] & 1, lb = (p->reg_order[i] >> 1) & 1;
        if (ty == GG_T_INT16 || ty == GG_T_UINT16) {
            uint16_t r = (uint16_t)word;
            c->wregs[o] = lb ? bswap16(r) : r;
        } else {
            uint16_t hiw = (uint16_t)(word >> 16), low = (uint16_t)word;
            if (lb) { hiw = bswap16(hiw); low = bswap16(low); }
            c->wregs[o] = lw ? low : hiw;
            c->wregs[o + 1] = lw ? hiw : low;
        }
    }
}

/* restrict parameters (not locals) so gcc vectorises without alias versioning */
GG_HOT static void changed_kernel(uint32_t n, const float *restrict wv, const float *restrict db, const uint16_t *restrict wq,
                           const uint8_t *restrict rep, float *restrict rv, uint16_t *restrict rq, uint8_t *restrict ch) {
    for (uint32_t i = 0; i < n; i++) { /* vectorised: changed flags */
        float d = fabsf(wv[i] - rv[i]);
        uint16_t m = (uint16_t)((!(d <= db[i])) | (wq[i] != rq[i]));
        m &= rep[i]; /* report is 0/1 */
        rv[i] = m ? wv[i] : rv[i];
        rq[i] = m ? wq[i] : rq[i];
        ch[i] |= (uint8_t)m;
    }
}

static void pass_changed(gg_core *c) {
    changed_kernel(c->p.n, c->wv, c->p.deadband, c->wq, c->p.report, c->rv, c->rq, c->out.changed);
}

void gg_compute(gg_core *c, double t) {
    if (!c->started) c->t_first = c->t_prev = t;
    double dt = t - c->t_prev;
    if (dt < 0) dt = 0; /* time going backwards integrates nothing */
    uint32_t key = tick_key(c->p.seed, t);
    memset(c->wq, 0, sizeof(uint16_t) * c->p.n);
    pass_wave(c, t, key);
    pass_scalar(c, t, dt, key);
    if (c->plant) gg_plant_solve(c->plant, t, c->p.seed);
    pass_derived(c, key);
    pass_counter(c, dt);
    c->started = 1;
    c->t_prev = t;
    pass_faults(c, t, key);
    pass_registers(c);
    pass_changed(c);
}

static void publish(gg_core *c, double t) {
    unsigned long s = c->seq;
    __atomic_store_n(&c->seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(c->out.values, c->wv, sizeof(float) * c->p.n);
    memcpy(c->out.quality, c->wq, sizeof(uint16_t) * c->p.n);
    if (c->p.n_regs) memcpy(c->out.regs, c->wregs, sizeof(uint16_t) * c->p.n_regs);
    if (c->p.n_bits) memcpy(c->out.bits, c->wbits, c->p.n_bits);
    c->pub_t = t;
    __atomic_store_n(&c->seq, s + 2, __ATOMIC_RELEASE);
}

void gg_tick(gg_core *c, double t) {
    pthread_mutex_lock(&c->lock);
    gg_compute(c, t);
    publish(c, t);
    pthread_mutex_unlock(&c->lock);
}

/* seqlock read: copy, then retry if a tick was published meanwhile */
#define SEQ_READ(c, body)                                                      \
    double t_;                                                                 \
    for (;;) {                                                                 \
        unsigned long s1 = __atomic_load_n(&(c)->seq, __ATOMIC_ACQUIRE);       \
        if (s1 & 1ul) { sched_yield(); continue; }                             \
        body;                                                                  \
        t_ = (c)->pub_t;                                                       \
        __atomic_thread_fence(__ATOMIC_ACQUIRE);                               \
        if (__atomic_load_n(&(c)->seq, __ATOMIC_RELAXED) == s1) break;         \
    }                                                                          \
    return t_

#include <sched.h>

double gg_read_snapshot(gg_core *c, float *values, uint16_t *quality) {
    SEQ_READ(c, {
        memcpy(values, c->out.values, sizeof(float) * c->p.n);
        memcpy(quality, c->out.quality, sizeof(uint16_t) * c->p.n);
    });
}

double gg_read_regs(gg_core *c, uint32_t start, uint32_t count, uint16_t *dst) {
    SEQ_READ(c, memcpy(dst, c->out.regs + start, sizeof(uint16_t) * count));
}

double gg_read_bits(gg_core *c, uint32_t start, uint32_t count, uint8_t *dst) {
    SEQ_READ(c, memcpy(dst, c->out.bits + start, count));
}

uint32_t gg_take_changed(gg_core *c, int32_t *idx, uint32_t cap) {
    uint32_t k = 0;
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->p.n && k < cap; i++) {
        if (c->out.changed[i]) {
            idx[k++] = (int32_t)i;
            c->out.changed[i] = 0;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return k;
}

uint32_t gg_take_changed_in(gg_core *c, const int32_t *sel, uint32_t n, int32_t *pos) {
    uint32_t k = 0;
    uint8_t *ch = c->out.changed;
    pthread_mutex_lock(&c->lock);
    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = (uint32_t)sel[j];
        if (ch[i]) {
            pos[k++] = (int32_t)j;
            ch[i] = 0;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return k;
}

int gg_set_state(gg_core *c, uint32_t i, double v) {
    if (i >= c->p.n) return -1;
    pthread_mutex_lock(&c->lock);
    int ok = c->p.kind[i] == GG_HOLD || c->p.kind[i] == GG_WAVE;
    if (c->p.kind[i] == GG_PLANT) ok = gg_plant_set(c->plant, c->p.ref[i], v) == 0; /* a command changes the plant */
    else if (c->p.kind[i] == GG_HOLD) c->state[i] = v;
    else if (ok) ((double *)c->p.p[0])[i] = v; /* analog setpoint: the wave's mean */
    pthread_mutex_unlock(&c->lock);
    return ok ? 0 : -2;
}

int gg_plant_fault_at(gg_core *c, uint32_t i, int code, double v) {
    if (i >= c->p.n || c->p.kind[i] != GG_PLANT) return -1;
    pthread_mutex_lock(&c->lock);
    /* the site has one source: a loss of supply needs no particular equipment */
    uint32_t eq = code == GG_PF_LOSS_OF_SUPPLY ? 0u : (uint32_t)c->p.ref[i] / GG_PLANT_NQ;
    int rc = gg_plant_fault(c->plant, eq, code, v);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int gg_set_fault(gg_core *c, const gg_fault *f) {
    if (f->pt < 0 || (uint32_t)f->pt >= c->p.n) return -1;
    pthread_mutex_lock(&c->lock);
    if (c->n_faults == c->cap_faults) {
        uint32_t cap = c->cap_faults ? 2 * c->cap_faults : 16;
        gg_fault *nf = realloc(c->faults, sizeof(gg_fault) * cap);
        if (!nf) { pthread_mutex_unlock(&c->lock); return -3; }
        c->faults = nf;
        c->cap_faults = cap;
    }
    gg_fault g = *f;
    g.t0 = NAN;
    c->faults[c->n_faults++] = g;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void gg_clear_faults(gg_core *c, uint32_t i) {
    pthread_mutex_lock(&c->lock);
    uint32_t k = 0;
    for (uint32_t j = 0; j < c->n_faults; j++)
        if ((uint32_t)c->faults[j].pt != i) c->faults[k++] = c->faults[j];
    c->n_faults = k;
    pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------- sampling thread */

static double now_realtime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *run(void *arg) {
    gg_core *c = arg;
#ifdef __linux__
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* default 50 us slack would dominate the lateness */
#endif
    if (c->realtime) {
        struct sched_param sp;
        sp.sched_priority = 10;
        (void)pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); /* silently not when refused */
    }
    const double period = c->period;
    int64_t k = (int64_t)floor(now_realtime() / period) + 1;
    pthread_mutex_lock(&c->run_mtx);
    while (!c->stop) {
        double sched = (double)k * period, wake = sched - c->spin;
        struct timespec ts;
        ts.tv_sec = (time_t)floor(wake);
        ts.tv_nsec = (long)((wake - floor(wake)) * 1e9);
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        int rc = 0;
        while (!c->stop && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&c->run_cond, &c->run_mtx, &ts);
        if (c->stop) break;
        pthread_mutex_unlock(&c->run_mtx);
        double now = now_realtime();
        while (now < sched) now = now_realtime(); /* spin the last `spin` seconds (0: none) */
        double late = now - sched;
        c->late[c->late_n % GG_LATE_CAP] = (float)(late * 1e6);
        c->late_n++;
        if (late >= period) { /* fell behind: compute the latest due tick, count the ones skipped */
            int64_t behind = (int64_t)floor(late / period);
            c->skipped += (uint64_t)behind;
            k += behind;
            sched = (double)k * period;
        }
        gg_tick(c, sched);
        c->ticks++;
        k++;
        pthread_mutex_lock(&c->run_mtx);
    }
    pthread_mutex_unlock(&c->run_mtx);
    return NULL;
}

int gg_start(gg_core *c, double period, int realtime, double spin) {
    if (!(period > 0.0) || period != period || !(spin >= 0.0) || spin >= period) return -1;
    pthread_mutex_lock(&c->run_mtx);
    if (c->running) { pthread_mutex_unlock(&c->run_mtx); return -2; }
    c->stop = 0;
    c->period = period;
    c->realtime = realtime;
    c->spin = spin;
    c->late_n = c->ticks = c->skipped = 0;
    int rc = pthread_create(&c->thread, NULL, run, c);
    if (rc == 0) c->running = 1;
    pthread_mutex_unlock(&c->run_mtx);
    return rc == 0 ? 0 : -3;
}

void gg_stop(gg_core *c) {
    pthread_mutex_lock(&c->run_mtx);
    if (!c->running) { pthread_mutex_unlock(&c->run_mtx); return; }
    c->stop = 1;
    pthread_cond_broadcast(&c->run_cond);
    pthread_mutex_unlock(&c->run_mtx);
    pthread_join(c->thread, NULL);
    pthread_mutex_lock(&c->run_mtx);
    c->running = 0;
    pthread_mutex_unlock(&c->run_mtx);
}

int gg_running(gg_core *c) {
    pthread_mutex_lock(&c->run_mtx);
    int r = c->running;
    pthread_mutex_unlock(&c->run_mtx);
    return r;
}

uint32_t gg_lateness(gg_core *c, float *dst, uint32_t cap, uint64_t *ticks, uint64_t *skipped) {
    pthread_mutex_lock(&c->lock); /* the thread writes late[] before taking the tick lock */
    uint64_t n = c->late_n < GG_LATE_CAP ? c->late_n : GG_LATE_CAP;
    if (n > cap) n = cap;
    for (uint64_t j = 0; j < n; j++) dst[j] = c->late[j];
    *ticks = c->ticks;
    *skipped = c->skipped;
    pthread_mutex_unlock(&c->lock);
    return (uint32_t)n;
}
