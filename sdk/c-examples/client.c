/* client, in C: the IPC calls and capability transfer. Makes a private channel, sends the
 * server a request carrying a send-only endpoint of it, receives the reply on the other end,
 * logs it, then says "bye" on the manifest channel.
 * Run: xdv run examples/sdk/c-client-server.toml */
#define XDV_IMPLEMENTATION
#include "xdv.h"

XDV_EXPORT("main") void guest_main(void) {
    int64_t server = xdv_find(XDV_TYPE_ENDPOINT, 0);
    xdv_channel_ends_t ends;
    if (xdv_ipc_channel(1, &ends) != 0) xdv_exit(1);
    int64_t reply_to = xdv_cap_derive((int64_t)ends.end1,
                                      XDV_RIGHT_SEND | XDV_RIGHT_TRANSFER | XDV_RIGHT_INSPECT, 0);
    if (reply_to < 0) xdv_exit(2);
    const char *hello = "hello server";
    if (xdv_ipc_send(server, hello, xdv_strlen(hello), reply_to, XDV_IPC_SEND_PARK) != 0) xdv_exit(3);
    char in[512];
    int64_t n = xdv_ipc_recv((int64_t)ends.end0, in, sizeof in);
    if (n < 0) xdv_exit(4);
    char out[600];
    char *end = xdv_put_bytes(xdv_put(out, "client: reply: "), in + sizeof(xdv_recv_header_t), (int32_t)n);
    xdv_log_span(out, end);
    xdv_ipc_send(server, "bye", 3, 0, XDV_IPC_SEND_PARK);
    xdv_exit(0);
}
