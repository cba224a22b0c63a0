/* vqe, in C: a hybrid variational loop over the Q calls. The ansatz is ry(θ)·CX on two qubits
 * with θ = k·π/64; each evaluation rebuilds the circuit text, has the Q container run 1000
 * shots and sums ⟨Z0 + Z1⟩ over them. θ moves by a shrinking step towards lower energy until
 * the step is zero: the same search as examples/guests/q-vqe.wat.
 * Run: xdv run examples/sdk/c-vqe.toml */
#define XDV_IMPLEMENTATION
#include "xdv.h"

#define SHOTS 1000

static int64_t container;
static uint64_t shots[SHOTS];

/* Energy × shots at θ = k·π/64: the sum over shots of (1 − 2·b0) + (1 − 2·b1). */
static int64_t energy(int64_t k) {
    char program[160];
    char *end = xdv_put(program, "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nry(");
    end = xdv_put(xdv_itoa(k, end), "*pi/64) q[0];\ncx q[0],q[1];\nmeasure q -> c;\n");
    int64_t job = xdv_q_submit(container, program, (int32_t)(end - program), SHOTS, 0);
    if (job < 0) xdv_exit(1);
    xdv_q_wait(job);
    int64_t n = xdv_q_result(job, shots, sizeof shots);
    if (n != SHOTS) xdv_exit(2);
    int64_t e = 0;
    for (int64_t i = 0; i < n; i++) e += 2 - 2 * (int64_t)((shots[i] & 1) + ((shots[i] >> 1) & 1));
    return e;
}

static void report(const char *what, int64_t k, int64_t e) {
    char buf[128];
    char *end = xdv_itoa(k, xdv_put(buf, what));
    end = xdv_itoa(e, xdv_put(end, "*pi/64, energy <Z0+Z1> x 1000 = "));
    xdv_log_span(buf, end);
}

XDV_EXPORT("main") void guest_main(void) {
    container = xdv_find(XDV_TYPE_Q_CONTAINER, 0);
    int64_t k = 8, step = 16;
    int64_t e = energy(k);
    report("vqe: theta = ", k, e);
    while (step != 0) {
        int64_t up = energy(k + step), down = energy(k - step);
        if (up < e) {
            k += step;
            e = up;
        } else if (down < e) {
            k -= step;
            e = down;
        } else {
            step /= 2;
        }
        report("vqe: theta = ", k, e);
    }
    char buf[96];
    char *end = xdv_itoa(k, xdv_put(buf, "vqe: converged at theta = "));
    xdv_log_span(buf, end);
    end = xdv_itoa(xdv_q_info(container, XDV_Q_INFO_BUDGET_LEFT), xdv_put(buf, "vqe: budget left (micro-units) "));
    xdv_log_span(buf, end);
    xdv_exit(0);
}
