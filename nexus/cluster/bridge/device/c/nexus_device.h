/* The Nexus device client in C99: static buffers, no malloc, the application's own read, write and clock.
 *
 * The wire is the bridge's (nexus/cluster/bridge/frames.py): COBS frames, 0x00-delimited, a 12-byte
 * little-endian header (version 1, type, flags, stream, sequence, message id, length), the payload, and
 * CRC-16/CCITT-FALSE over header and payload. Payloads are CBOR (nexus/cluster/bridge/messages.py).
 * The reliable stream keeps one frame in flight each way (stop and wait); the session is INIT/ACK with an
 * 8-byte client key, heartbeats, and INIT again after a RESET or a silent bridge.
 *
 *   static nx_client client;
 *   nx_init(&client, &port, key);
 *   nx_actor(&client, "calc", calc_methods, 2, calc_handler, NULL);
 *   for (;;) nx_step(&client);          (or as one task of nx_sched, below)
 *
 * A handler reads the arguments with the nx_cbor_get_* functions and writes one result with the
 * nx_cbor_put_* functions; returning nonzero makes the call fail with the text it wrote with nx_fail.
 */
#ifndef NEXUS_DEVICE_H
#define NEXUS_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifndef NX_MTU
#define NX_MTU 96 /* payload bytes of a frame, at most */
#endif
#define NX_MAX_ACTORS 4
#define NX_FRAME_MAX (12 + NX_MTU + 2)
#define NX_WIRE_MAX (NX_FRAME_MAX + NX_FRAME_MAX / 254 + 2)

enum { NX_INIT = 1, NX_ACK, NX_RESET, NX_DATA, NX_ACKNACK, NX_HEARTBEAT };
enum { NX_REGISTER = 0x40, NX_CALL, NX_REPLY, NX_OUTCALL, NX_OUTREPLY, NX_TELEMETRY };

typedef struct {
    /* what has come on the line, without waiting: bytes read (0: none, <0: the line failed) */
    int (*read)(void *ctx, uint8_t *buf, size_t n);
    /* write all of buf (the client writes a frame at a time) */
    int (*write)(void *ctx, const uint8_t *buf, size_t n);
    uint32_t (*millis)(void *ctx); /* a clock in ms; it may wrap */
    void *ctx;
} nx_port;

/* CBOR, written into a buffer and read from one (the subset a device needs) */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    int failed; /* it did not fit */
} nx_writer;

typedef struct {
    const uint8_t *p;
    size_t n, at;
    int failed; /* it was not what the reader asked for */
} nx_reader;

void nx_cbor_put_uint(nx_writer *w, uint32_t v);
void nx_cbor_put_int(nx_writer *w, int32_t v);
void nx_cbor_put_float(nx_writer *w, float v);
void nx_cbor_put_bool(nx_writer *w, int v);
void nx_cbor_put_null(nx_writer *w);
void nx_cbor_put_text(nx_writer *w, const char *s);
void nx_cbor_put_bytes(nx_writer *w, const uint8_t *b, size_t n);
void nx_cbor_put_array(nx_writer *w, uint32_t items);
void nx_cbor_put_map(nx_writer *w, uint32_t pairs);

int nx_cbor_get_int(nx_reader *r, int32_t *v);      /* an integer */
int nx_cbor_get_number(nx_reader *r, double *v);    /* an integer or a float */
int nx_cbor_get_text(nx_reader *r, char *out, size_t cap);
int nx_cbor_get_array(nx_reader *r, uint32_t *items);
int nx_cbor_skip(nx_reader *r);                      /* one item, whatever it is */

struct nx_client;
/* A call to an actor: method is its index in the actor's method list; args reads the arguments' array items */
typedef int (*nx_handler)(struct nx_client *c, void *self, int method, nx_reader *args, nx_writer *result);

typedef struct {
    const char *name;
    const char *const *methods;
    int count;
    nx_handler handler;
    void *self;
} nx_actor_entry;

typedef struct nx_client {
    const nx_port *port;
    uint8_t key[8];
    uint16_t mtu, beat_ms;
    int open;
    uint32_t session;
    uint32_t heard, sent, last_try;
    uint16_t tx, rx, best_effort;
    /* the reliable frame in flight, and the next ones waiting */
    int inflight;
    uint16_t inflight_seq;
    uint32_t inflight_id;
    uint8_t inflight_payload[NX_MTU];
    uint16_t inflight_len;
    uint8_t queue[4][NX_MTU];
    uint16_t queue_len[4];
    uint32_t queue_id[4];
    int queued;
    int registered; /* actors registered in this session */
    int busy;       /* a handler runs (it may call the cluster, which steps the client) */
    nx_actor_entry actors[NX_MAX_ACTORS];
    int actor_count;
    uint8_t in[NX_WIRE_MAX];
    size_t in_len;
    int in_skip;
    /* an answer to this device's own call to the cluster */
    uint32_t call_id, answered_id;
    int answer_ok;
    uint8_t answer[NX_MTU];
    uint16_t answer_len;
    uint32_t rejected; /* frames that failed their CRC, COBS or length */
} nx_client;

void nx_init(nx_client *c, const nx_port *port, const uint8_t key[8]);
int nx_actor(nx_client *c, const char *name, const char *const *methods, int count, nx_handler handler, void *self);
void nx_step(nx_client *c); /* read what came, answer it, send what is due; never blocks */
int nx_fail(nx_writer *result, const char *why); /* write an error's text as the result; returns 1 */
int nx_publish_number(nx_client *c, const char *name, double value); /* telemetry, best effort */
/* Call a named actor of the cluster (args: the CBOR items of an array of nargs; the result's CBOR in answer);
 * steps the client until the answer comes or timeout_ms passes. 0 on success. */
int nx_call(nx_client *c, const char *actor, const char *method, const uint8_t *args, size_t args_len, uint32_t nargs,
            uint32_t timeout_ms, nx_reader *answer);

/* A cooperative task loop, in the manner of an RTOS's: each task runs every period_ms, none preempts another */
typedef struct {
    void (*run)(void *arg);
    void *arg;
    uint32_t period_ms, next;
} nx_task;

typedef struct {
    nx_task tasks[8];
    int count;
    uint32_t (*millis)(void *ctx);
    void *ctx;
} nx_sched;

int nx_sched_add(nx_sched *s, void (*run)(void *), void *arg, uint32_t period_ms);
void nx_sched_run_once(nx_sched *s); /* the tasks that are due */

uint16_t nx_crc16(const uint8_t *data, size_t n);
size_t nx_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);
size_t nx_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap); /* 0: not COBS */

#endif
