/* gridgate plant solver: the site's load flow every tick (plain C99, no Python).
 * Parameters: the flat arrays of firmware_sim.plant.compile_plant; semantics and the
 * oracle: firmware_sim/plant_ref.py (same steps, same iteration count). */
#ifndef GGPLANT_H
#define GGPLANT_H

#include <stddef.h>
#include <stdint.h>

#define GG_PLANT_NQ 28
#define GG_AR_MAX_SHOTS 4
enum { GG_PQ_P = 0, GG_PQ_Q, GG_PQ_S, GG_PQ_I, GG_PQ_PF, GG_PQ_V, GG_PQ_F, GG_PQ_POS, GG_PQ_TAP, GG_PQ_VLV,
       GG_PQ_ILV, GG_PQ_PLOSS, GG_PQ_LIVE, GG_PQ_START, GG_PQ_OPERATE, GG_PQ_AVC_AUTO, GG_PQ_AVC_STATE,
       GG_PQ_AR_STATE, GG_PQ_IA, GG_PQ_IB, GG_PQ_IC, GG_PQ_IN, GG_PQ_AVC_IN_BAND, GG_PQ_AVC_RAISE, GG_PQ_AVC_LOWER,
       GG_PQ_AVC_TIMING, GG_PQ_AVC_BLOCKED, GG_PQ_AVC_LOCKOUT };
/* AVC relay states (avc_state) */
enum { GG_AVC_MANUAL = 0, GG_AVC_IN_BAND, GG_AVC_TIMING, GG_AVC_MOVING, GG_AVC_LOCKOUT, GG_AVC_BLOCKED };
/* physical events (firmware_sim.plant.PLANT_FAULTS) */
enum { GG_PF_SHORT = 1, GG_PF_LOAD_STEP = 2, GG_PF_LOSS_OF_SUPPLY = 3, GG_PF_BREAKER_FAIL = 4, GG_PF_TAP_RUNAWAY = 5,
       GG_PF_SHORT_PE = 6, GG_PF_SHORT_PP = 7 /* phase-earth (A), phase-phase (B-C) */,
       GG_PF_CT_SATURATION = 8 /* share of the current above the knee a CT reproduces */, GG_PF_CT_KNEE = 9 };

typedef struct gg_plant gg_plant;

gg_plant *gg_plant_create(const int32_t *ints, uint32_t n_ints, const double *dbl, uint32_t n_dbl, char *err,
                          size_t errlen);
void gg_plant_destroy(gg_plant *pl);
/* Solve at simulated time t (noise from the seed, smooth in time); results in gg_plant_out. */
void gg_plant_solve(gg_plant *pl, double t, uint64_t seed);
const double *gg_plant_out(const gg_plant *pl);
uint32_t gg_plant_n_out(const gg_plant *pl);
/* A command on output index ref (switch position, tap, source energised): 0 done, -2 not writable. */
int gg_plant_set(gg_plant *pl, int32_t ref, double v);
/* A physical event on equipment block eq: 0 done, -2 not for this equipment. */
int gg_plant_fault(gg_plant *pl, uint32_t eq, int code, double v);

#endif
