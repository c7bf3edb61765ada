/* The deterministic noise hash shared by the sampling core and the plant solver
 * (bit-identical to firmware_sim/rng.py). */
#ifndef GGRNG_H
#define GGRNG_H
#include <stdint.h>
#include <string.h>

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Approximately gaussian (Irwin-Hall of four 16-bit uniforms), unit variance, bounded
 * at +-3.46: integer-only so it vectorises and is bit-identical in Python. */
static inline float gauss(uint32_t key, uint32_t i) {
    uint32_t h1 = mix32(key ^ (i * 0x9E3779B9U));
    uint32_t h2 = mix32(h1 + 0x6A09E667U);
    int32_t s = (int32_t)((h1 >> 16) + (h1 & 0xffffU) + (h2 >> 16) + (h2 & 0xffffU));
    return ((float)s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}
/* A tick's key: hash of the seed and the bits of the simulated time. */
static inline uint32_t tick_key(uint64_t seed, double t) {
    uint64_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t k = mix32((uint32_t)(seed >> 32));
    k = mix32((uint32_t)(tb >> 32) ^ k);
    k = mix32((uint32_t)tb ^ k);
    return mix32((uint32_t)seed ^ k);
}

#endif
