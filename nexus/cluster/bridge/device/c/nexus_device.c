/* The Nexus device client in C99 (see nexus_device.h): no malloc, no stdio, nothing but the port it is given. */
#include "nexus_device.h"

#include <string.h>

#define RTO_MS 300u
#define SILENT_BEATS 6u

static uint8_t frame_buf[NX_FRAME_MAX];
static uint8_t wire_buf[NX_WIRE_MAX + 1];
static uint8_t payload_buf[NX_MTU];

static void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_le32(uint8_t *p, uint32_t v) { put_le16(p, (uint16_t)v); put_le16(p + 2, (uint16_t)(v >> 16)); }
static uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_le32(const uint8_t *p) { return get_le16(p) | ((uint32_t)get_le16(p + 2) << 16); }
static int32_t since(uint32_t now, uint32_t then) { return (int32_t)(now - then); }

uint16_t nx_crc16(const uint8_t *data, size_t n) {
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (int b = 0; b < 8; b++) crc = (uint16_t)((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

size_t nx_cobs_encode(const uint8_t *in, size_t n, uint8_t *out) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i]) {
            out[o++] = in[i];
            code++;
        }
        if (!in[i] || code == 0xFF) {
            out[code_at] = code;
            code = 1;
            code_at = o++;
        }
    }
    out[code_at] = code;
    return o;
}

size_t nx_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = in[i];
        if (!code || i + code > n || o + code - 1 > cap) return 0;
        for (uint8_t k = 1; k < code; k++) {
            if (!in[i + k]) return 0;
            out[o++] = in[i + k];
        }
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= cap) return 0;
            out[o++] = 0;
        }
    }
    return o;
}

/* -- CBOR ------------------------------------------------------------------------------------- */

static void put_byte(nx_writer *w, uint8_t b) {
    if (w->n < w->cap) w->p[w->n++] = b;
    else w->failed = 1;
}

static void put_head(nx_writer *w, uint8_t major, uint32_t v) {
    major = (uint8_t)(major << 5);
    if (v < 24) {
        put_byte(w, (uint8_t)(major | v));
    } else if (v < 0x100) {
        put_byte(w, major | 24);
        put_byte(w, (uint8_t)v);
    } else if (v < 0x10000) {
        put_byte(w, major | 25);
        put_byte(w, (uint8_t)(v >> 8));
        put_byte(w, (uint8_t)v);
    } else {
        put_byte(w, major | 26);
        for (int s = 24; s >= 0; s -= 8) put_byte(w, (uint8_t)(v >> s));
    }
}

void nx_cbor_put_uint(nx_writer *w, uint32_t v) { put_head(w, 0, v); }
void nx_cbor_put_int(nx_writer *w, int32_t v) {
    if (v < 0) put_head(w, 1, (uint32_t)(-(v + 1)));
    else put_head(w, 0, (uint32_t)v);
}
void nx_cbor_put_float(nx_writer *w, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    put_byte(w, 0xFA);
    for (int s = 24; s >= 0; s -= 8) put_byte(w, (uint8_t)(bits >> s));
}
void nx_cbor_put_bool(nx_writer *w, int v) { put_byte(w, v ? 0xF5 : 0xF4); }
void nx_cbor_put_null(nx_writer *w) { put_byte(w, 0xF6); }
void nx_cbor_put_bytes(nx_writer *w, const uint8_t *b, size_t n) {
    put_head(w, 2, (uint32_t)n);
    for (size_t i = 0; i < n; i++) put_byte(w, b[i]);
}
void nx_cbor_put_text(nx_writer *w, const char *s) {
    size_t n = strlen(s);
    put_head(w, 3, (uint32_t)n);
    for (size_t i = 0; i < n; i++) put_byte(w, (uint8_t)s[i]);
}
void nx_cbor_put_array(nx_writer *w, uint32_t items) { put_head(w, 4, items); }
void nx_cbor_put_map(nx_writer *w, uint32_t pairs) { put_head(w, 5, pairs); }

static int get_head(nx_reader *r, uint8_t *major, uint32_t *v) {
    if (r->at >= r->n) return r->failed = 1, -1;
    uint8_t b = r->p[r->at++], info = b & 31;
    *major = b >> 5;
    if (info < 24 || *major == 7) {
        *v = info;
        return 0;
    }
    int k = info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4 : 0;
    if (!k || r->at + (size_t)k > r->n) return r->failed = 1, -1;
    *v = 0;
    while (k--) *v = (*v << 8) | r->p[r->at++];
    return 0;
}

int nx_cbor_get_int(nx_reader *r, int32_t *v) {
    uint8_t major;
    uint32_t u;
    if (get_head(r, &major, &u) || major > 1 || u > 0x7FFFFFFFu) return r->failed = 1, -1;
    *v = major ? -1 - (int32_t)u : (int32_t)u;
    return 0;
}

int nx_cbor_get_number(nx_reader *r, double *v) {
    if (r->at < r->n && (r->p[r->at] == 0xFA || r->p[r->at] == 0xFB)) {
        int k = r->p[r->at] == 0xFA ? 4 : 8;
        if (r->at + 1 + (size_t)k > r->n) return r->failed = 1, -1;
        uint64_t bits = 0;
        for (int i = 1; i <= k; i++) bits = (bits << 8) | r->p[r->at + (size_t)i];
        r->at += 1 + (size_t)k;
        if (k == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, 4);
            *v = f;
        } else {
            memcpy(v, &bits, 8);
        }
        return 0;
    }
    int32_t i;
    if (nx_cbor_get_int(r, &i)) return -1;
    *v = i;
    return 0;
}

int nx_cbor_get_text(nx_reader *r, char *out, size_t cap) {
    uint8_t major;
    uint32_t n;
    if (get_head(r, &major, &n) || major != 3 || n >= cap || r->at + n > r->n) return r->failed = 1, -1;
    memcpy(out, r->p + r->at, n);
    out[n] = 0;
    r->at += n;
    return 0;
}

int nx_cbor_get_array(nx_reader *r, uint32_t *items) {
    uint8_t major;
    if (get_head(r, &major, items) || major != 4) return r->failed = 1, -1;
    return 0;
}

static int skip(nx_reader *r, int depth) {
    uint8_t major;
    uint32_t v;
    if (depth > 8 || get_head(r, &major, &v)) return r->failed = 1, -1;
    if (major == 2 || major == 3) {
        if (r->at + v > r->n) return r->failed = 1, -1;
        r->at += v;
    } else if (major == 4 || major == 5) {
        for (uint32_t i = 0; i < (major == 5 ? 2 * v : v); i++)
            if (skip(r, depth + 1)) return -1;
    } else if (major == 7 && (v == 25 || v == 26 || v == 27)) {
        size_t k = v == 25 ? 2 : v == 26 ? 4 : 8;
        if (r->at + k > r->n) return r->failed = 1, -1;
        r->at += k;
    } else if (major == 6 || (major == 7 && v > 23)) {
        return r->failed = 1, -1; /* tags and what this client does not know */
    }
    return 0;
}

int nx_cbor_skip(nx_reader *r) { return skip(r, 0); }

/* -- frames ----------------------------------------------------------------------------------- */

static void write_frame(nx_client *c, uint8_t type, uint8_t stream, uint16_t seq, uint32_t id, const uint8_t *payload,
                        uint16_t len) {
    frame_buf[0] = 1;
    frame_buf[1] = type;
    frame_buf[2] = 0;
    frame_buf[3] = stream;
    put_le16(frame_buf + 4, seq);
    put_le32(frame_buf + 6, id);
    put_le16(frame_buf + 10, len);
    if (len) memcpy(frame_buf + 12, payload, len);
    put_le16(frame_buf + 12 + len, nx_crc16(frame_buf, 12u + len));
    size_t n = nx_cobs_encode(frame_buf, 14u + len, wire_buf);
    wire_buf[n++] = 0;
    c->port->write(c->port->ctx, wire_buf, n);
    c->sent = c->port->millis(c->port->ctx);
}

static void send_next(nx_client *c) {
    if (c->inflight || !c->queued || !c->open) return;
    c->inflight = 1;
    c->inflight_seq = c->tx++;
    c->inflight_id = c->queue_id[0];
    c->inflight_len = c->queue_len[0];
    memcpy(c->inflight_payload, c->queue[0], c->inflight_len);
    c->queued--;
    for (int i = 0; i < c->queued; i++) {
        memcpy(c->queue[i], c->queue[i + 1], c->queue_len[i + 1]);
        c->queue_len[i] = c->queue_len[i + 1];
        c->queue_id[i] = c->queue_id[i + 1];
    }
    c->last_try = c->port->millis(c->port->ctx);
    write_frame(c, NX_DATA, 1, c->inflight_seq, c->inflight_id, c->inflight_payload, c->inflight_len);
}

static int enqueue(nx_client *c, uint32_t id, const uint8_t *payload, size_t len) {
    if (c->queued >= 4 || len > c->mtu) return -1;
    memcpy(c->queue[c->queued], payload, len);
    c->queue_len[c->queued] = (uint16_t)len;
    c->queue_id[c->queued++] = id;
    send_next(c);
    return 0;
}

void nx_init(nx_client *c, const nx_port *port, const uint8_t key[8]) {
    memset(c, 0, sizeof *c);
    c->port = port;
    memcpy(c->key, key, 8);
    c->mtu = NX_MTU;
    c->beat_ms = 500;
    c->sent = c->heard = port->millis(port->ctx) - 100000u;
}

int nx_actor(nx_client *c, const char *name, const char *const *methods, int count, nx_handler handler, void *self) {
    if (c->actor_count >= NX_MAX_ACTORS) return -1;
    nx_actor_entry *a = &c->actors[c->actor_count++];
    a->name = name, a->methods = methods, a->count = count, a->handler = handler, a->self = self;
    return 0;
}

int nx_fail(nx_writer *result, const char *why) {
    result->n = 0;
    result->failed = 0;
    nx_cbor_put_text(result, why);
    return 1;
}

static void on_call(nx_client *c, nx_reader *r) {
    int32_t cid;
    uint32_t items, nargs;
    char name[24], method[24];
    if (nx_cbor_get_array(r, &items) || items != 4 || nx_cbor_get_int(r, &cid) || nx_cbor_get_text(r, name, sizeof name) ||
        nx_cbor_get_text(r, method, sizeof method) || nx_cbor_get_array(r, &nargs))
        return;
    static uint8_t result_buf[NX_MTU];
    nx_writer result = {result_buf, 0, NX_MTU - 12, 0};
    int failed = 1;
    nx_actor_entry *actor = NULL;
    for (int i = 0; i < c->actor_count; i++)
        if (!strcmp(c->actors[i].name, name)) actor = &c->actors[i];
    int index = -1;
    for (int i = 0; actor && i < actor->count; i++)
        if (!strcmp(actor->methods[i], method)) index = i;
    if (index < 0) nx_fail(&result, "no such actor or method");
    else {
        c->busy = 1;
        failed = actor->handler(c, actor->self, index, r, &result) != 0;
        c->busy = 0;
    }
    if (result.failed) failed = nx_fail(&result, "the result does not fit the MTU");
    if (!cid) return; /* a tell */
    nx_writer reply = {payload_buf, 0, c->mtu, 0};
    nx_cbor_put_array(&reply, 3);
    nx_cbor_put_int(&reply, cid);
    nx_cbor_put_bool(&reply, !failed);
    for (size_t i = 0; i < result.n; i++) put_byte(&reply, result_buf[i]);
    if (!reply.failed) enqueue(c, NX_REPLY, payload_buf, reply.n);
}

static void on_outreply(nx_client *c, nx_reader *r) {
    int32_t cid;
    uint32_t items;
    if (nx_cbor_get_array(r, &items) || items != 3 || nx_cbor_get_int(r, &cid) || r->at >= r->n) return;
    if ((uint32_t)cid != c->call_id) return;
    c->answer_ok = r->p[r->at++] == 0xF5;
    c->answer_len = (uint16_t)(r->n - r->at);
    memcpy(c->answer, r->p + r->at, c->answer_len);
    c->answered_id = (uint32_t)cid;
}

static void on_frame(nx_client *c, const uint8_t *f, size_t n, uint32_t now) {
    if (n < 14 || f[0] != 1 || f[2] != 0 || n != 14u + get_le16(f + 10) || get_le16(f + n - 2) != nx_crc16(f, n - 2)) {
        c->rejected++;
        return;
    }
    uint8_t type = f[1], stream = f[3];
    uint16_t seq = get_le16(f + 4), len = get_le16(f + 10);
    uint32_t id = get_le32(f + 6);
    const uint8_t *payload = f + 12;
    if (type == NX_ACK && len >= 6) {
        uint32_t session = get_le32(payload);
        if (c->open && session == c->session) return; /* the same ACK again */
        c->session = session;
        uint16_t mtu = get_le16(payload + 4);
        c->mtu = mtu < NX_MTU ? mtu : NX_MTU;
        c->open = 1, c->heard = now, c->tx = c->rx = 0, c->inflight = 0, c->queued = 0, c->registered = 0;
        return;
    }
    if (!c->open) return;
    c->heard = now;
    if (type == NX_RESET) {
        c->open = 0;
    } else if (type == NX_ACKNACK && len >= 2) {
        if (c->inflight && get_le16(payload) == (uint16_t)(c->inflight_seq + 1)) {
            c->inflight = 0;
            send_next(c);
        }
    } else if (type == NX_DATA && stream == 1) {
        /* Not taken now (the bridge sends it again): no room for an answer, or a call while a handler runs */
        if (seq == c->rx && c->queued < 4 && !(c->busy && id == NX_CALL)) {
            c->rx++;
            uint8_t ack[4];
            put_le16(ack, c->rx), put_le16(ack + 2, 0);
            write_frame(c, NX_ACKNACK, 1, 0, 0, ack, 4);
            nx_reader r = {payload, len, 0, 0};
            if (id == NX_CALL) on_call(c, &r);
            else if (id == NX_OUTREPLY) on_outreply(c, &r);
            return;
        }
        uint8_t ack[4];
        put_le16(ack, c->rx), put_le16(ack + 2, 0);
        write_frame(c, NX_ACKNACK, 1, 0, 0, ack, 4);
    }
}

static void register_actors(nx_client *c) {
    while (c->open && c->registered < c->actor_count && c->queued < 4) {
        nx_actor_entry *a = &c->actors[c->registered];
        nx_writer w = {payload_buf, 0, c->mtu, 0};
        nx_cbor_put_array(&w, 2);
        nx_cbor_put_text(&w, a->name);
        nx_cbor_put_array(&w, (uint32_t)a->count);
        for (int i = 0; i < a->count; i++) nx_cbor_put_text(&w, a->methods[i]);
        if (!w.failed) enqueue(c, NX_REGISTER, payload_buf, w.n);
        c->registered++;
    }
}

void nx_step(nx_client *c) {
    uint8_t chunk[32];
    uint32_t now = c->port->millis(c->port->ctx);
    int got;
    while ((got = c->port->read(c->port->ctx, chunk, sizeof chunk)) > 0) {
        for (int i = 0; i < got; i++) {
            if (chunk[i]) {
                if (c->in_len < sizeof c->in) c->in[c->in_len++] = chunk[i];
                else c->in_skip = 1;
                continue;
            }
            if (c->in_len && !c->in_skip) {
                static uint8_t decoded[NX_FRAME_MAX];
                size_t n = nx_cobs_decode(c->in, c->in_len, decoded, sizeof decoded);
                if (n) on_frame(c, decoded, n, now);
                else c->rejected++;
            }
            c->in_len = 0, c->in_skip = 0;
        }
    }
    register_actors(c);
    if (!c->open) {
        if (since(now, c->sent) >= c->beat_ms) {
            uint8_t hello[13];
            memcpy(hello, c->key, 8);
            put_le16(hello + 8, NX_MTU);
            hello[10] = 1;
            put_le16(hello + 11, c->beat_ms);
            write_frame(c, NX_INIT, 0, 0, 0, hello, sizeof hello);
        }
    } else if (since(now, c->heard) > (int32_t)(SILENT_BEATS * c->beat_ms)) {
        c->open = 0;
    } else if (c->inflight && since(now, c->last_try) >= (int32_t)RTO_MS) {
        c->last_try = now;
        write_frame(c, NX_DATA, 1, c->inflight_seq, c->inflight_id, c->inflight_payload, c->inflight_len);
    } else if (since(now, c->sent) >= c->beat_ms) {
        write_frame(c, NX_HEARTBEAT, 0, 0, 0, NULL, 0);
    }
}

int nx_publish_number(nx_client *c, const char *name, double value) {
    if (!c->open) return -1;
    nx_writer w = {payload_buf, 0, c->mtu, 0};
    nx_cbor_put_array(&w, 2);
    nx_cbor_put_text(&w, name);
    nx_cbor_put_float(&w, (float)value);
    if (w.failed) return -1;
    write_frame(c, NX_DATA, 0, ++c->best_effort, NX_TELEMETRY, payload_buf, (uint16_t)w.n);
    return 0;
}

int nx_call(nx_client *c, const char *actor, const char *method, const uint8_t *args, size_t args_len, uint32_t nargs,
            uint32_t timeout_ms, nx_reader *answer) {
    if (!c->open) return -1;
    nx_writer w = {payload_buf, 0, c->mtu, 0};
    c->call_id = c->call_id % 0x7FFFFFFEu + 1;
    nx_cbor_put_array(&w, 4);
    nx_cbor_put_uint(&w, c->call_id);
    nx_cbor_put_text(&w, actor);
    nx_cbor_put_text(&w, method);
    nx_cbor_put_array(&w, nargs);
    for (size_t i = 0; i < args_len; i++) put_byte(&w, args[i]);
    if (w.failed || enqueue(c, NX_OUTCALL, payload_buf, w.n)) return -1;
    uint32_t start = c->port->millis(c->port->ctx);
    while (c->answered_id != c->call_id) {
        if (!c->open || since(c->port->millis(c->port->ctx), start) > (int32_t)timeout_ms) return -1;
        nx_step(c);
    }
    answer->p = c->answer, answer->n = c->answer_len, answer->at = 0, answer->failed = 0;
    return c->answer_ok ? 0 : 1;
}

int nx_sched_add(nx_sched *s, void (*run)(void *), void *arg, uint32_t period_ms) {
    if (s->count >= 8) return -1;
    nx_task *t = &s->tasks[s->count++];
    t->run = run, t->arg = arg, t->period_ms = period_ms, t->next = s->millis(s->ctx);
    return 0;
}

void nx_sched_run_once(nx_sched *s) {
    for (int i = 0; i < s->count; i++) {
        nx_task *t = &s->tasks[i];
        uint32_t now = s->millis(s->ctx);
        if (since(now, t->next) >= 0) {
            t->next = now + t->period_ms;
            t->run(t->arg);
        }
    }
}
