/* worker, in C: a child VHM for the supervisor. Logs that it started, computes the Collatz
 * steps of 1..150 (about 60 000 fuel), logs the total and exits 0. Given too little fuel it
 * faults with fuel-exhausted before it gets there. */
#define XDV_IMPLEMENTATION
#include "xdv.h"

XDV_EXPORT("main") void guest_main(void) {
    xdv_log_str("worker: started");
    uint64_t total = 0;
    for (uint64_t k = 1; k <= 150; k++) {
        for (uint64_t n = k; n != 1; total++) n = (n & 1) == 0 ? n / 2 : 3 * n + 1;
    }
    char buf[64];
    char *end = xdv_put(xdv_utoa(total, xdv_put(buf, "worker: done (")), " Collatz steps)");
    xdv_log_span(buf, end);
    xdv_exit(0);
}
