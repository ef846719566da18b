/* The C client on a Cortex-M3 board with no OS (QEMU's lm3s6965evb): UART0 as the line, SysTick as the clock,
 * the same "calc" actor as the host program, run by the cooperative task loop. Built by arm-none-eabi-gcc:
 *
 *   arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -Os -nostartfiles --specs=nano.specs --specs=nosys.specs \
 *       -T lm3s6965.ld -o nexus-m3.elf cortex_m3.c nexus_device.c
 *   qemu-system-arm -M lm3s6965evb -kernel nexus-m3.elf -nographic -serial pty -monitor none
 */
#include <stdint.h>

#include "nexus_device.h"

#define UART0 0x4000C000u
#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART_DR REG(UART0 + 0x000)
#define UART_FR REG(UART0 + 0x018)
#define UART_LCRH REG(UART0 + 0x02C)
#define UART_CTL REG(UART0 + 0x030)
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define CORE_HZ 12000000u /* the board's clock out of reset (its 12 MHz crystal, no PLL) */

static volatile uint32_t ticks;

static int uart_read(void *ctx, uint8_t *buf, size_t n) {
    (void)ctx;
    size_t got = 0;
    while (got < n && !(UART_FR & FR_RXFE)) buf[got++] = (uint8_t)UART_DR;
    return (int)got;
}

static int uart_write(void *ctx, const uint8_t *buf, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        while (UART_FR & FR_TXFF) {
        }
        UART_DR = buf[i];
    }
    return 0;
}

static uint32_t millis(void *ctx) {
    (void)ctx;
    return ticks;
}

static const char *const calc_methods[] = {"add", "mul", "fail"};

static int calc(nx_client *c, void *self, int method, nx_reader *args, nx_writer *result) {
    (void)c, (void)self;
    if (method == 2) return nx_fail(result, "ValueError('asked to fail')");
    int32_t a, b;
    if (nx_cbor_get_int(args, &a) || nx_cbor_get_int(args, &b)) return nx_fail(result, "TypeError('integers only')");
    nx_cbor_put_int(result, method == 0 ? a + b : a * b);
    return 0;
}

static void step(void *arg) { nx_step((nx_client *)arg); }

static const nx_port port = {uart_read, uart_write, millis, 0};
static nx_client client;
static nx_sched sched;

int main(void) {
    UART_LCRH |= 0x70u; /* 8 bits, the FIFOs on (16 bytes each way: a frame comes in a few pieces, not byte by byte) */
    UART_CTL |= 0x301u; /* UART, transmit and receive on */
    SYST_RVR = CORE_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* the core's clock, its interrupt, on: one tick a millisecond */
    static const uint8_t key[8] = {'c', 'o', 'r', 't', 'e', 'x', 'm', '3'};
    nx_init(&client, &port, key);
    nx_actor(&client, "calc", calc_methods, 3, calc, 0);
    sched.millis = millis;
    nx_sched_add(&sched, step, &client, 0);
    for (;;) nx_sched_run_once(&sched);
}

/* -- start-up: the vector table, memory set up, then main --------------------------------------- */

extern uint32_t _data, _edata, _data_load, _bss, _ebss, _stack_top;

void reset(void) {
    uint32_t *from = &_data_load;
    for (uint32_t *to = &_data; to < &_edata;) *to++ = *from++;
    for (uint32_t *to = &_bss; to < &_ebss;) *to++ = 0;
    main();
    for (;;) {
    }
}

static void systick(void) { ticks++; }

static void halt(void) {
    for (;;) {
    }
}

/* (addresses as integers: ISO C has no conversion from an object pointer to a function pointer) */
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    (uintptr_t)&_stack_top, (uintptr_t)reset, (uintptr_t)halt, (uintptr_t)halt, (uintptr_t)halt, (uintptr_t)halt,
    (uintptr_t)halt, 0, 0, 0, 0, (uintptr_t)halt, (uintptr_t)halt, 0, (uintptr_t)halt, (uintptr_t)systick,
};
