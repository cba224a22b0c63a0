/* supervisor, in C: the nesting calls. Spawns two workers from the worker module it holds a
 * capability to, waits for each, and restarts the one that faulted, once, with a bigger fuel
 * quota. Run: xdv run examples/sdk/c-supervisor.toml */
#define XDV_IMPLEMENTATION
#include "xdv.h"

static int64_t spawn(const char *name, uint64_t fuel) {
    xdv_spawn_spec_t spec = {0};
    spec.budget = (uint64_t)xdv_find(XDV_TYPE_BUDGET, 0);
    spec.module = (uint64_t)xdv_find(XDV_TYPE_MODULE, 1); /* 0 is our own image */
    spec.name_ptr = (uint32_t)(uintptr_t)name;
    spec.name_len = (uint32_t)xdv_strlen(name);
    spec.vcpus = 1;
    spec.vcpu_quota = 1;
    spec.memory_limit = 65536;
    spec.memory_quota = 65536;
    spec.fuel_quota = fuel;
    spec.weight = 1;
    int64_t child = xdv_vhm_spawn(&spec, sizeof spec);
    if (child < 0) {
        xdv_log_str("supervisor: spawn refused");
        xdv_exit(1);
    }
    return child;
}

XDV_EXPORT("main") void guest_main(void) {
    int64_t w1 = spawn("w1", 200000);
    int64_t w2 = spawn("w2", 20000);
    if (xdv_wait_kind(xdv_vhm_wait(w1)) == XDV_WAIT_EXIT) xdv_log_str("supervisor: w1 finished");
    if (xdv_wait_kind(xdv_vhm_wait(w2)) == XDV_WAIT_FAULT) {
        xdv_log_str("supervisor: w2 faulted, restarting it");
        int64_t again = spawn("w2", 200000);
        if (xdv_wait_kind(xdv_vhm_wait(again)) == XDV_WAIT_EXIT)
            xdv_log_str("supervisor: w2 finished after the restart");
    }
    xdv_exit(0);
}
