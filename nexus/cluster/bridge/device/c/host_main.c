/* A device program for a POSIX host: the C client on a serial line (a pty, a tty), with a "calc" actor and a
 * telemetry task, run by the cooperative task loop. The tests run it over a pty; it is also the example.
 *
 *   nexus-device fd:3 calc0001      (a file descriptor it was given)
 *   nexus-device /dev/ttyUSB0 calc0001
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "nexus_device.h"

static int line_fd = -1;

static int fd_read(void *ctx, uint8_t *buf, size_t n) {
    (void)ctx;
    ssize_t got = read(line_fd, buf, n);
    if (got < 0) return (errno == EAGAIN || errno == EINTR || errno == EIO) ? 0 : -1; /* (EIO: no bridge on the line) */
    return (int)got;
}

static int fd_write(void *ctx, const uint8_t *buf, size_t n) {
    (void)ctx;
    while (n) {
        ssize_t put = write(line_fd, buf, n);
        if (put < 0) {
            if (errno != EAGAIN && errno != EINTR) return -1;
            struct pollfd p = {line_fd, POLLOUT, 0};
            poll(&p, 1, 10);
            continue;
        }
        buf += put, n -= (size_t)put;
    }
    return 0;
}

static uint32_t now_ms(void *ctx) {
    (void)ctx;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)(t.tv_sec * 1000u + t.tv_nsec / 1000000u);
}

static const char *const calc_methods[] = {"add", "mul", "fail", "ask"};
static uint32_t calls;

static int calc(nx_client *c, void *self, int method, nx_reader *args, nx_writer *result) {
    (void)self;
    calls++;
    if (method == 2) return nx_fail(result, "ValueError('asked to fail')");
    if (method == 3) { /* ask(n): the cluster's actor "counter".incr(n), its answer returned */
        int32_t n;
        if (nx_cbor_get_int(args, &n)) return nx_fail(result, "TypeError('ask takes an int')");
        uint8_t buf[8];
        nx_writer w = {buf, 0, sizeof buf, 0};
        nx_cbor_put_int(&w, n);
        nx_reader answer;
        int rc = nx_call(c, "counter", "incr", buf, w.n, 1, 5000, &answer);
        if (rc < 0) return nx_fail(result, "OSError('no answer from the cluster')");
        for (size_t i = answer.at; i < answer.n && !result->failed; i++) {
            if (result->n < result->cap) result->p[result->n++] = answer.p[i];
            else result->failed = 1;
        }
        return rc;
    }
    uint8_t head = args->at < args->n ? args->p[args->at] : 0;
    int ints = head < 0x40; /* (the first argument an integer: an integer result, when the second is one too) */
    double a, b;
    size_t second = 0;
    if (nx_cbor_get_number(args, &a)) return nx_fail(result, "TypeError('numbers only')");
    second = args->at;
    if (nx_cbor_get_number(args, &b)) return nx_fail(result, "TypeError('numbers only')");
    ints = ints && args->p[second] < 0x40;
    double v = method == 0 ? a + b : a * b;
    if (ints && v >= -2147483648.0 && v <= 2147483647.0) nx_cbor_put_int(result, (int32_t)v);
    else nx_cbor_put_float(result, (float)v);
    return 0;
}

static void step(void *arg) { nx_step((nx_client *)arg); }

static void telemetry(void *arg) { nx_publish_number((nx_client *)arg, "calls", (double)calls); }

int main(int argc, char **argv) {
    if (argc != 3 || strlen(argv[2]) != 8) {
        fprintf(stderr, "usage: %s fd:N|TTY KEY (KEY: 8 characters)\n", argv[0]);
        return 2;
    }
    if (!strncmp(argv[1], "fd:", 3)) {
        line_fd = atoi(argv[1] + 3);
    } else {
        line_fd = open(argv[1], O_RDWR | O_NOCTTY);
        struct termios t;
        if (line_fd >= 0 && tcgetattr(line_fd, &t) == 0) {
            cfmakeraw(&t);
            tcsetattr(line_fd, TCSANOW, &t);
        }
    }
    if (line_fd < 0 || fcntl(line_fd, F_SETFL, fcntl(line_fd, F_GETFL) | O_NONBLOCK) < 0) {
        perror(argv[1]);
        return 1;
    }
    static const nx_port port = {fd_read, fd_write, now_ms, NULL};
    static nx_client client;
    nx_init(&client, &port, (const uint8_t *)argv[2]);
    nx_actor(&client, "calc", calc_methods, 4, calc, NULL);
    static nx_sched sched = {.millis = now_ms};
    nx_sched_add(&sched, step, &client, 0);
    nx_sched_add(&sched, telemetry, &client, 200);
    for (;;) {
        nx_sched_run_once(&sched);
        struct pollfd p = {line_fd, POLLIN, 0};
        if (poll(&p, 1, 2) > 0 && (p.revents & POLLHUP)) usleep(2000); /* (no bridge on the line yet) */
    }
}
