/* phi-pulse, in C: the Φ calls. Runs a transform on the VHM's first window (a frame on its
 * port, a gaussian played and captured back), then shifts the phase by π/2 and does it again
 * (the capture rotates with the frame); logs each capture and the frame's state.
 * Run: xdv run examples/sdk/c-phi.toml */
#define XDV_IMPLEMENTATION
#include "xdv.h"

static const char first[] = "frame d0 = newframe(q0, 5.0e9, 0);\nframe m0 = copyframe(d0);\n"
                            "play(d0, gaussian(0.4, 400, 80));\ncapture(m0, 400);\n";
static const char second[] = "shift_phase(d0, pi/2);\nbarrier d0, m0;\n"
                             "play(d0, gaussian(0.4, 400, 80));\ncapture(m0, 400);\n";

static void run(int64_t window, int k, const char *text, int32_t len) {
    xdv_capture_t captures[8];
    int64_t n = xdv_phi_exec(window, text, len, captures, sizeof captures);
    char buf[160];
    char *end = xdv_itoa(k, xdv_put(buf, "phi: transform "));
    end = xdv_itoa(n, xdv_put(end, " -> "));
    if (n > 0) {
        end = xdv_itoa(captures[0].i, xdv_put(end, ", first capture I="));
        end = xdv_put(xdv_itoa(captures[0].q, xdv_put(end, " Q=")), " (micro-units)");
    }
    xdv_log_span(buf, end);
}

XDV_EXPORT("main") void guest_main(void) {
    int64_t window = xdv_find(XDV_TYPE_PHI_WINDOW, 0);
    if (window < 0) xdv_exit(1);
    run(window, 0, first, sizeof first - 1);
    run(window, 1, second, sizeof second - 1);
    xdv_frame_info_t f;
    if (xdv_phi_frame(window, "d0", 2, &f) == 0) {
        char buf[160];
        /* The phase in 2^-64 turns, shown in millionths of a turn (to 2^-32 turn; no 128-bit
         * arithmetic, which would need compiler-rt). */
        uint64_t ppm = ((f.phase >> 32) * 1000000u) >> 32;
        char *end = xdv_itoa(f.freq, xdv_put(buf, "phi: frame d0 at "));
        end = xdv_utoa(ppm, xdv_put(end, " Hz, phase "));
        end = xdv_put(xdv_utoa(f.clock, xdv_put(end, " ppm of a turn, clock ")), " ns");
        xdv_log_span(buf, end);
    }
    xdv_exit(0);
}
