/* hello, in C: the lifecycle, timer and interrupt calls.
 *
 * Every vCPU greets with its index and virtual time, sums 1..10 000 and logs a seeded random
 * draw. vCPU 0 then arms its timer and sleeps through three ticks, and vCPU 1 raises vector 2
 * on vCPU 0; the handler logs each interrupt. Run: xdv run examples/sdk/c-hello.toml */
#define XDV_IMPLEMENTATION
#include "xdv.h"

/* Timer ticks seen by this vCPU (each vCPU is its own instance, with its own copy). */
static volatile uint32_t ticks;

/* Logs `prefix` followed by the decimal `v`. */
static void log_num(const char *prefix, uint64_t v) {
    char buf[96];
    char *end = xdv_utoa(v, xdv_put(buf, prefix));
    xdv_log_span(buf, end);
}

XDV_EXPORT("main") void guest_main(void) {
    int32_t me = xdv_vcpu_id();
    char buf[96];
    char *end = xdv_put(buf, "hello from vcpu ");
    end = xdv_utoa((uint64_t)me, end);
    end = xdv_utoa((uint64_t)xdv_time(), xdv_put(end, " at "));
    end = xdv_put(end, " ns");
    xdv_log_span(buf, end);
    uint64_t sum = 0;
    for (uint64_t i = 1; i <= 10000; i++) sum += i;
    log_num("sum of 1..10000 = ", sum);
    log_num("a seeded random draw: ", (uint64_t)xdv_random() >> 1);
    if (me == 0) {
        xdv_timer_set(20000);
        while (ticks < 3) xdv_sleep(xdv_time() + 100000);
        xdv_timer_set(0);
        log_num("vcpu 0: three ticks by ", (uint64_t)xdv_time());
    } else {
        xdv_irq_send(0, 2, 42);
    }
}

XDV_EXPORT("xdv_irq") void on_irq(int32_t vector, int64_t arg) {
    char buf[96];
    char *end;
    if (vector == XDV_TIMER_VECTOR) {
        ticks++;
        end = xdv_utoa(ticks, xdv_put(buf, "tick "));
        end = xdv_put(xdv_utoa((uint64_t)xdv_time(), xdv_put(end, " at ")), " ns");
    } else {
        end = xdv_itoa(vector, xdv_put(buf, "irq "));
        end = xdv_put(xdv_itoa(arg, xdv_put(end, " (arg ")), ") on vcpu ");
        end = xdv_utoa((uint64_t)xdv_vcpu_id(), end);
    }
    xdv_log_span(buf, end);
}
