/* Paced Modbus/TCP load generator for bench/bench_emulator_scale.py (GPL-3.0-or-later).
 *
 * One TCP connection per device, to 127.0.0.1 or to the device's own 127.x address (never outside
 * 127.0.0.0/8: other addresses are refused).
 * Every connection sends one FC3 read of REGISTERS holding registers per INTERVAL; the N
 * connections' send times are spread evenly over the interval (connection i at i*INTERVAL/N),
 * one request in flight per connection, as a polling master does. Each reply is checked
 * (transaction id, protocol id, length, unit id, function code, byte count) and its latency
 * (send() to the last byte parsed) goes into a log-linear histogram (1/64 relative resolution).
 *
 * Why C: the bench's asyncio clients need more CPU per request than the emulator answering them
 * (~44 us a reply), so at 5,000-10,000 devices they queued requests themselves and the latency
 * measured was theirs. This loop needs a few us per request (its CPU is printed: "cpu_percent").
 *
 * usage: modbus_loadgen [--registers 20] [--address 0] [--interval 1] [--warmup 3] [--seconds 20]
 *                       [--timeout 5] [--connect-timeout 30] < ports
 * stdin: one line per device, "[ADDRESS:]PORT [UNIT]" (ADDRESS a 127.x IPv4 address, default 127.0.0.1;
 * unit id, default 1).
 * stdout: "# window start" and "# window end" as the measured window opens and closes (the
 * caller samples the server's CPU there), then one JSON object (see report()).
 * Exit code 0 unless the arguments or stdin are bad.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING, READY, DEAD };
enum { E_TID, E_HEADER, E_EXCEPTION, E_BYTE_COUNT, E_UNSOLICITED, E_CLOSED, E_CONNECT, E_SEND, NERR };
static const char *ERR_NAMES[NERR] = {"bad_transaction_id", "bad_header", "exception_reply", "bad_byte_count",
                                      "unsolicited_bytes", "closed_by_server", "connect_failed", "send_failed"};

typedef struct {
    int fd;
    uint32_t addr; /* IPv4, host order, in 127.0.0.0/8 */
    uint16_t port, tid;
    uint8_t unit, state, inflight, measured, timed_out;
    double sent_at;
    int len;
    uint8_t buf[512]; /* one reply is at most 9 + 250 bytes */
} conn_t;

/* ---- log-linear histogram of microseconds: exact below 128, then 64 sub-buckets per power of two */
#define SUB 64
#define NBUCKET (128 + 40 * SUB)
typedef struct { uint64_t n[NBUCKET]; uint64_t count; double sum, max, min; } hist_t;

static int bucket_of(uint64_t us) {
    if (us < 128) return (int)us;
    int e = 63 - __builtin_clzll(us); /* >= 7 */
    int b = 128 + (e - 7) * SUB + (int)((us >> (e - 6)) & (SUB - 1));
    return b < NBUCKET ? b : NBUCKET - 1;
}
static double upper_of(int b) { /* the bucket's upper bound, microseconds */
    if (b < 128) return b + 1;
    int e = (b - 128) / SUB + 7, sub = (b - 128) % SUB;
    return (double)((uint64_t)(SUB + sub + 1) << (e - 6));
}
static void hist_add(hist_t *h, double seconds) {
    double us = seconds * 1e6;
    h->n[bucket_of(us < 0 ? 0 : (uint64_t)us)]++;
    h->count++;
    h->sum += seconds;
    if (seconds > h->max) h->max = seconds;
    if (h->count == 1 || seconds < h->min) h->min = seconds;
}
static double hist_q(const hist_t *h, double q) { /* seconds; the bucket's upper bound, never above max */
    if (!h->count) return NAN;
    uint64_t want = (uint64_t)ceil(q * (double)h->count), seen = 0;
    if (want < 1) want = 1;
    for (int b = 0; b < NBUCKET; b++) {
        seen += h->n[b];
        if (seen >= want) { double v = upper_of(b) / 1e6; return v < h->max ? v : h->max; }
    }
    return h->max;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}
static void arm(int tfd, double at) {
    struct itimerspec its = {0};
    if (at <= 0) at = 1e-9;
    its.it_value.tv_sec = (time_t)at;
    its.it_value.tv_nsec = (long)((at - (double)its.it_value.tv_sec) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int nconn, registers = 20, address = 0, ep;
static double interval = 1.0, warmup = 3.0, seconds = 20.0, timeout_s = 5.0, connect_timeout = 30.0;
static conn_t *cs;
#define QUANTUM 0.0005 /* seconds */
static hist_t lat, lag;
static uint64_t errs[NERR], sent, replies, skipped_busy, skipped_dead, timeouts, asked, late_replies;
static double *sec_max; /* the worst latency of replies to requests sent in each second of the window */
static uint64_t *sec_n;
static int nsec;
static double win_start, win_end;

static void kill_conn(conn_t *c, int err) {
    if (c->state == DEAD) return;
    if (err >= 0) errs[err]++;
    if (c->fd >= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
    c->fd = -1;
    if (c->inflight && c->measured && !c->timed_out) timeouts++; /* its reply will never come */
    c->inflight = 0;
    c->state = DEAD;
}

static void send_req(conn_t *c, double t, int measured) {
    c->tid++;
    uint8_t r[12] = {c->tid >> 8, c->tid & 0xff, 0, 0, 0, 6, c->unit, 3,
                     (uint8_t)(address >> 8), (uint8_t)(address & 0xff), (uint8_t)(registers >> 8), (uint8_t)(registers & 0xff)};
    c->sent_at = now();
    ssize_t w = send(c->fd, r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w != (ssize_t)sizeof r) { kill_conn(c, E_SEND); return; } /* 12 bytes into an idle socket: all or error */
    c->inflight = 1;
    c->timed_out = 0;
    c->measured = (uint8_t)measured;
    if (measured) { sent++; hist_add(&lag, c->sent_at - t); }
}

/* parse what arrived on c: at most one reply, since one request is in flight */
static void on_readable(conn_t *c) {
    /* one recv per wakeup (epoll is level-triggered): a reply is one segment, a second recv would only
     * return EAGAIN, a system call per request for nothing */
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - (size_t)c->len, MSG_DONTWAIT);
    if (r == 0) { kill_conn(c, E_CLOSED); return; }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) kill_conn(c, E_CLOSED);
        return;
    }
    c->len += (int)r;
    while (c->len >= 8) {
        uint8_t *b = c->buf;
        int l = (b[4] << 8) | b[5];
        if (!c->inflight) { kill_conn(c, E_UNSOLICITED); return; }
        if (b[2] || b[3] || l < 2 || l > 254 || b[6] != c->unit) { kill_conn(c, E_HEADER); return; }
        if (c->len < 6 + l) return;
        double t = now();
        int err = -1;
        if (((b[0] << 8) | b[1]) != c->tid) err = E_TID;
        else if (b[7] == (0x80 | 3)) err = E_EXCEPTION;
        else if (b[7] != 3 || l < 3) err = E_HEADER;
        else if (b[8] != 2 * registers || l != 3 + 2 * registers) err = E_BYTE_COUNT;
        if (c->measured) {
            if (err >= 0) errs[err]++;
            else {
                double d = t - c->sent_at;
                replies++;
                hist_add(&lat, d);
                if (c->timed_out) late_replies++;
                int s = (int)((c->sent_at - win_start));
                if (s >= 0 && s < nsec) { sec_n[s]++; if (d > sec_max[s]) sec_max[s] = d; }
            }
        }
        c->inflight = 0;
        memmove(b, b + 6 + l, (size_t)(c->len - 6 - l));
        c->len -= 6 + l;
    }
}

static int parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) { fprintf(stderr, "modbus_loadgen: %s needs a value\n", a); return -1; }
        double v = atof(argv[++i]);
        if (!strcmp(a, "--registers")) registers = (int)v;
        else if (!strcmp(a, "--address")) address = (int)v;
        else if (!strcmp(a, "--interval")) interval = v;
        else if (!strcmp(a, "--warmup")) warmup = v;
        else if (!strcmp(a, "--seconds")) seconds = v;
        else if (!strcmp(a, "--timeout")) timeout_s = v;
        else if (!strcmp(a, "--connect-timeout")) connect_timeout = v;
        else { fprintf(stderr, "modbus_loadgen: unknown option %s\n", a); return -1; }
    }
    if (registers < 1 || registers > 125) { fprintf(stderr, "modbus_loadgen: --registers must be 1..125\n"); return -1; }
    if (address < 0 || address + registers > 65536) { fprintf(stderr, "modbus_loadgen: --address out of range\n"); return -1; }
    if (interval <= 0 || seconds <= 0 || warmup < 0 || timeout_s <= 0) {
        fprintf(stderr, "modbus_loadgen: --interval, --seconds and --timeout must be > 0, --warmup >= 0\n");
        return -1;
    }
    return 0;
}

static int read_ports(void) {
    int cap = 1024;
    cs = calloc((size_t)cap, sizeof *cs);
    char line[128];
    int lineno = 0;
    while (fgets(line, sizeof line, stdin)) {
        lineno++;
        char *p = line, host[64] = "127.0.0.1";
        char *colon = strchr(line, ':');
        if (colon) { /* ADDRESS:PORT */
            size_t hl = (size_t)(colon - line);
            if (hl >= sizeof host) hl = sizeof host - 1;
            memcpy(host, line, hl);
            host[hl] = 0;
            p = colon + 1;
        }
        struct in_addr ia;
        int port, unit = 1, n = sscanf(p, "%d %d", &port, &unit);
        if (n <= 0) continue;
        if (port < 1 || port > 65535 || unit < 0 || unit > 255 || inet_pton(AF_INET, host, &ia) != 1 ||
            (ntohl(ia.s_addr) >> 24) != 127) {
            fprintf(stderr, "modbus_loadgen: stdin line %d: want \"[ADDRESS:]PORT [UNIT]\" (a 127.x address, 1..65535, "
                            "0..255), got %s", lineno, line);
            return -1;
        }
        if (nconn == cap) { cap *= 2; cs = realloc(cs, (size_t)cap * sizeof *cs); }
        memset(&cs[nconn], 0, sizeof *cs);
        cs[nconn].port = (uint16_t)port;
        cs[nconn].addr = ntohl(ia.s_addr);
        cs[nconn].unit = (uint8_t)unit;
        cs[nconn].fd = -1;
        nconn++;
    }
    if (!nconn) { fprintf(stderr, "modbus_loadgen: no ports on stdin\n"); return -1; }
    return 0;
}

/* non-blocking connects to every device's 127.x address and port; returns how many are up */
static int connect_all(void) {
    int pending = 0, up = 0;
    for (int i = 0; i < nconn; i++) {
        conn_t *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) { perror("modbus_loadgen: socket (raise the open-file limit)"); kill_conn(c, E_CONNECT); continue; }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(c->port);
        sa.sin_addr.s_addr = htonl(c->addr); /* only ever loopback: checked in read_ports */
        int r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        if (r < 0 && errno != EINPROGRESS) { kill_conn(c, E_CONNECT); continue; }
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        pending++;
    }
    struct epoll_event evs[512];
    double deadline = now() + connect_timeout;
    while (pending && now() < deadline) {
        int n = epoll_wait(ep, evs, 512, 100);
        for (int e = 0; e < n; e++) {
            conn_t *c = &cs[evs[e].data.u32];
            if (c->state != CONNECTING) continue;
            int so = 0;
            socklen_t sl = sizeof so;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so, &sl);
            pending--;
            if (so) { kill_conn(c, E_CONNECT); continue; }
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            c->state = READY;
            up++;
        }
    }
    for (int i = 0; i < nconn; i++)
        if (cs[i].state == CONNECTING) kill_conn(&cs[i], E_CONNECT);
    return up;
}

static void report(int up, double cpu, double window) {
    printf("{\"connections\": %d, \"connected\": %d, \"registers\": %d, \"interval_s\": %g, \"window_s\": %.3f, ", nconn, up,
           registers, interval, window);
    printf("\"asked\": %llu, \"sent\": %llu, \"replies\": %llu, \"asked_per_s\": %.1f, \"replies_per_s\": %.1f, ",
           (unsigned long long)asked, (unsigned long long)sent, (unsigned long long)replies, asked / window, replies / window);
    printf("\"skipped_busy\": %llu, \"skipped_dead\": %llu, \"timeouts\": %llu, \"late_replies\": %llu, \"timeout_s\": %g, ",
           (unsigned long long)skipped_busy, (unsigned long long)skipped_dead, (unsigned long long)timeouts,
           (unsigned long long)late_replies, timeout_s);
    uint64_t nerr = 0;
    printf("\"errors\": {");
    for (int e = 0, first = 1; e < NERR; e++) {
        nerr += errs[e];
        if (errs[e]) { printf("%s\"%s\": %llu", first ? "" : ", ", ERR_NAMES[e], (unsigned long long)errs[e]); first = 0; }
    }
    printf("}, \"error_count\": %llu, ", (unsigned long long)nerr);
#define MS(x) (isnan(x) ? -1.0 : 1000.0 * (x))
    printf("\"latency_ms\": {\"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f, "
           "\"mean\": %.3f}, ",
           MS(lat.count ? lat.min : NAN), MS(hist_q(&lat, 0.5)), MS(hist_q(&lat, 0.9)), MS(hist_q(&lat, 0.99)),
           MS(hist_q(&lat, 0.999)), MS(lat.count ? lat.max : NAN), MS(lat.count ? lat.sum / lat.count : NAN));
    printf("\"send_lag_ms\": {\"p99\": %.3f, \"max\": %.3f}, ", MS(hist_q(&lag, 0.99)), MS(lag.count ? lag.max : NAN));
    printf("\"max_ms_by_second\": [");
    for (int s = 0; s < nsec; s++) printf("%s%.1f", s ? ", " : "", sec_n[s] ? 1000.0 * sec_max[s] : -1.0);
    printf("], \"cpu_s\": %.3f, \"cpu_percent\": %.1f}\n", cpu, 100.0 * cpu / window);
}

int main(int argc, char **argv) {
    if (parse_args(argc, argv) || read_ports()) return 2;
    ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int up = connect_all();
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    nsec = (int)ceil(seconds);
    sec_max = calloc((size_t)nsec, sizeof *sec_max);
    sec_n = calloc((size_t)nsec, sizeof *sec_n);
    /* slot s (connection s % N, round s / N) is due at t0 + s * step */
    double step = interval / nconn, t0 = now() + 0.05;
    /* the window in whole slots, so "asked" is exactly N * seconds / interval */
    uint64_t s_start = (uint64_t)llround(warmup / step), s_end = s_start + (uint64_t)llround(seconds / step);
    win_start = t0 + (double)s_start * step;
    win_end = t0 + (double)s_end * step;
    uint64_t slot = 0;
    double cpu0 = 0, cpu1 = 0, drain_until = 0;
    int measuring = 0, sending = 1;
    struct epoll_event evs[1024];
    arm(tfd, t0);
    for (;;) {
        double t = now();
        if (sending) {
            for (double due = t0 + (double)slot * step; due <= t; due = t0 + (double)++slot * step) {
                if (slot >= s_end) {
                    sending = 0;
                    drain_until = t + timeout_s;
                    cpu1 = cpu_seconds();
                    printf("# window end\n");
                    fflush(stdout);
                    break;
                }
                int in_window = slot >= s_start;
                if (in_window && !measuring) {
                    measuring = 1;
                    cpu0 = cpu_seconds();
                    printf("# window start\n"); /* the caller samples the server's CPU now */
                    fflush(stdout);
                }
                conn_t *c = &cs[slot % (uint64_t)nconn];
                asked += (uint64_t)in_window;
                if (c->state != READY) { skipped_dead += (uint64_t)in_window; continue; }
                if (c->inflight) { /* the previous reply is still awaited: a master would not send another */
                    if (!c->timed_out && t - c->sent_at > timeout_s) { c->timed_out = 1; timeouts += c->measured; }
                    skipped_busy += (uint64_t)in_window;
                    continue;
                }
                send_req(c, due, in_window);
            }
            /* at most one wakeup per QUANTUM: at 10,000 requests/s one per request would cost the
             * generator as much CPU as the requests; latency is measured from the real send() */
            if (sending) { double at = t0 + (double)slot * step; arm(tfd, at > t + QUANTUM ? at : t + QUANTUM); }
        }
        if (!sending) {
            int waiting = 0;
            for (int i = 0; i < nconn && !waiting; i++) waiting = cs[i].inflight && cs[i].measured;
            if (!waiting || t >= drain_until) break;
        }
        int n = epoll_wait(ep, evs, 1024, sending ? -1 : 50);
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u32 == UINT32_MAX) {
                uint64_t x;
                ssize_t r = read(tfd, &x, sizeof x);
                (void)r;
                continue;
            }
            conn_t *c = &cs[evs[e].data.u32];
            if (c->state == READY) on_readable(c);
        }
    }
    for (int i = 0; i < nconn; i++)
        if (cs[i].inflight && cs[i].measured && !cs[i].timed_out) timeouts++;
    report(up, cpu1 - cpu0, win_end - win_start);
    return 0;
}
