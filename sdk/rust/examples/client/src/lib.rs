//! client, in Rust: the IPC calls and capability transfer.
//!
//! Makes a private channel, sends the server a request carrying a send-only endpoint of it (the
//! capability travels derived, never amplified), receives the reply on the other end, logs it,
//! then says "bye" on the manifest channel. Run: `xdv run examples/sdk/rust-client-server.toml`.

#![no_std]

use xdv_guest::cap::{Endpoint, Handle};
use xdv_guest::{exit, ipc, log, Rights};

fn main() {
    let server = Handle::<Endpoint>::find(0).expect("the manifest channel");
    let (mine, theirs) = ipc::channel(1).unwrap_or_else(|_| exit(1));
    let reply_to = theirs
        .derive(Rights::SEND | Rights::TRANSFER | Rights::INSPECT, 0)
        .unwrap_or_else(|_| exit(2));
    ipc::send(server, b"hello server", Some(reply_to), true).unwrap_or_else(|_| exit(3));
    let mut buf = [0u8; 512];
    let msg = ipc::recv(mine, &mut buf).unwrap_or_else(|_| exit(4));
    let text = core::str::from_utf8(msg.payload(&buf)).unwrap_or("?");
    let _ = log!("client: reply: {}", text);
    ipc::send::<Endpoint>(server, b"bye", None, true).unwrap_or_else(|_| exit(5));
    exit(0)
}

xdv_guest::entry!(main);
