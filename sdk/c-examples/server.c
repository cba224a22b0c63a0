/* server, in C: receives requests on its end of the manifest channel. A request that carries a
 * capability (an endpoint of a channel the client made) is answered through it with "pong: "
 * and the request; "bye" ends the server. Each message's badge says who sent it. */
#define XDV_IMPLEMENTATION
#include "xdv.h"

XDV_EXPORT("main") void guest_main(void) {
    int64_t ep = xdv_find(XDV_TYPE_ENDPOINT, 0);
    char in[512];
    for (;;) {
        int64_t n = xdv_ipc_recv(ep, in, sizeof in);
        if (n < 0) xdv_exit(2);
        const xdv_recv_header_t *h = (const xdv_recv_header_t *)in;
        const char *payload = in + sizeof *h;
        if (n == 3 && memcmp(payload, "bye", 3) == 0) {
            xdv_log_str("server: bye");
            xdv_exit(0);
        }
        if (h->cap != 0) {
            char buf[96];
            char *end = xdv_put(buf, "server: got a request with a reply capability (badge ");
            end = xdv_put(xdv_utoa(h->badge, end), ")");
            xdv_log_span(buf, end);
            char out[600];
            char *o = xdv_put_bytes(xdv_put(out, "pong: "), payload, (int32_t)n);
            xdv_ipc_send((int64_t)h->cap, out, (int32_t)(o - out), 0, 0);
        }
    }
}
