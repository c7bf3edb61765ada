/* gridgate simulated firmware: the sampling core (plain C99, no Python).
 *
 * Parameters live in a structure of arrays, ordered by evaluation pass so every pass
 * walks one contiguous range: wave points (constant/sine/ramp, vectorised), then the
 * scalar stateful kinds, then derived (reads group-load slots), then counters (reads
 * their source). Faults, register images and changed flags follow. tick(t) computes
 * into private work arrays and publishes them under a seqlock, so readers always get
 * one whole tick.
 */
#ifndef GGFW_H
#define GGFW_H

#include <stdint.h>
#include <stddef.h>
#include <pthread.h>

enum { GG_WAVE = 0, GG_WALK = 1, GG_STEPS = 2, GG_PROFILE = 3, GG_HOLD = 4, GG_DERIVED = 5, GG_COUNTER = 6,
       GG_PLANT = 7 /* in the derived pass: reads the plant solver's output */ };
enum { GG_Q_S = 0, GG_Q_P = 1, GG_Q_Q = 2, GG_Q_I = 3, GG_Q_V = 4, GG_Q_PF = 5 };
enum { GG_F_STUCK = 1, GG_F_DRIFT, GG_F_SPIKE, GG_F_NOISE, GG_F_OFFSET, GG_F_SATURATE, GG_F_DROPOUT,
       GG_F_OUT_OF_RANGE, GG_F_OSCILLATION, GG_F_SCALE, GG_F_QUALITY };
enum { GG_T_NONE = 0, GG_T_BOOL, GG_T_INT16, GG_T_UINT16, GG_T_INT32, GG_T_UINT32, GG_T_FLOAT32 };

/* quality bits: libiec61850 uint16 layout (gateway/quality.py) */
#define GG_Q_INVALID 0x0002u
#define GG_Q_QUESTIONABLE 0x0003u
#define GG_Q_OVERFLOW 0x0004u
#define GG_Q_OUT_OF_RANGE 0x0008u
#define GG_Q_FAILURE 0x0040u

#define GG_NPARAM 8

/* One parameter set, as built by firmware_sim.plan (every array has n entries unless noted). */
typedef struct {
    uint32_t n, n_wave, n_scalar_end, n_derived_end; /* pass boundaries: [0,n_wave) [n_wave,n_scalar_end) ... */
    uint64_t seed;
    const uint8_t *kind;
    const double *p[GG_NPARAM]; /* meaning per kind, see plan.py */
    const float *noise, *deadband;
    const uint8_t *report;
    const int32_t *ref;          /* derived: group-load slot; counter: source point; steps/profile: pool offset */
    const int32_t *reg_off;      /* index into the register image (-1: none); bits image for GG_T_BOOL */
    const uint8_t *reg_type, *reg_order; /* order bit0: little word order, bit1: little byte order */
    const double *reg_scale, *reg_offset;
    uint32_t n_harm;             /* harmonic terms: point, cycles/s, phase (cycles), amplitude */
    const int32_t *harm_pt;
    const double *harm_freq, *harm_phase, *harm_amp;
    uint32_t n_pool;             /* steps schedules (time, value pairs) and profile shapes */
    const double *pool;
    uint32_t n_regs, n_bits;     /* register and bit image sizes */
    uint32_t n_plant_ints, n_plant_dbl; /* the plant model (0: none), see ggplant.h */
    const int32_t *plant_ints;
    const double *plant_dbl;
} gg_params;

typedef struct {
    int32_t pt;
    uint8_t kind;
    double a, b, c;
    double t0, held;
    int64_t last;
    uint16_t qflags;
} gg_fault;

typedef struct gg_core gg_core;

/* Output buffers owned by the caller (the Python arrays); published under the seqlock. */
typedef struct {
    float *values;
    uint16_t *quality;
    uint16_t *regs;
    uint8_t *bits;
    uint8_t *changed; /* sticky until gg_take_changed */
} gg_out;

gg_core *gg_create(const gg_params *prm, gg_out out, char *err, size_t errlen);
void gg_destroy(gg_core *c);

/* Compute every point at simulated time t (epoch seconds) and publish. Thread-safe. */
void gg_tick(gg_core *c, double t);
/* Raw compute of one tick into the work arrays without publishing (benchmarks). */
void gg_compute(gg_core *c, double t);

/* Consistent copies of the published outputs; return the tick time. */
double gg_read_snapshot(gg_core *c, float *values, uint16_t *quality);
double gg_read_regs(gg_core *c, uint32_t start, uint32_t count, uint16_t *dst);
double gg_read_bits(gg_core *c, uint32_t start, uint32_t count, uint8_t *dst);
uint32_t gg_take_changed(gg_core *c, int32_t *idx, uint32_t cap);
/* The changed flags of the points sel[0..n) only (the devices someone listens to; every sel[k] < the
 * point count, checked by the caller): writes the positions k whose point changed to pos, ascending,
 * and clears those flags; every other point keeps its flag for a later take. */
uint32_t gg_take_changed_in(gg_core *c, const int32_t *sel, uint32_t n, int32_t *pos);

int gg_set_state(gg_core *c, uint32_t i, double v);
int gg_set_fault(gg_core *c, const gg_fault *f);
/* A physical event (ggplant.h GG_PF_*) on the plant equipment that plant point i reads: 0 done, <0 refused. */
int gg_plant_fault_at(gg_core *c, uint32_t i, int code, double v);
void gg_clear_faults(gg_core *c, uint32_t i);

/* The sampling thread: absolute schedule on CLOCK_REALTIME, values from the scheduled time.
 * realtime: try SCHED_FIFO (silently not when refused); spin: wake this many seconds early
 * and busy-wait to the scheduled time (trades CPU for wake-up jitter; 0: none). */
int gg_start(gg_core *c, double period, int realtime, double spin);
void gg_stop(gg_core *c);
int gg_running(gg_core *c);
/* Lateness of recent scheduled ticks in microseconds (ring of GG_LATE_CAP), and counters. */
#define GG_LATE_CAP 65536u
uint32_t gg_lateness(gg_core *c, float *dst, uint32_t cap, uint64_t *ticks, uint64_t *skipped);

#endif
