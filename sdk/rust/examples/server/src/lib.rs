//! server, in Rust: receives requests on its end of the manifest channel. A request that carries
//! a capability (an endpoint of a channel the client made) is answered through it with
//! "pong: " and the request; "bye" ends the server. Each message's badge says who sent it.

#![no_std]

use xdv_guest::cap::{Endpoint, Handle};
use xdv_guest::{exit, fmt::Buf, ipc, log, log_str};

fn main() {
    let ep = Handle::<Endpoint>::find(0).expect("the manifest channel");
    let mut buf = [0u8; 512];
    loop {
        let msg = ipc::recv(ep, &mut buf).unwrap_or_else(|_| exit(2));
        let request = msg.payload(&buf);
        if request == b"bye" {
            let _ = log_str("server: bye");
            exit(0);
        }
        if let Some(reply) = msg.cap_as::<Endpoint>() {
            let _ = log!("server: got a request with a reply capability (badge {})", msg.badge);
            let mut out = Buf::<512>::new();
            let _ = core::fmt::Write::write_str(&mut out, "pong: ");
            let _ = core::fmt::Write::write_str(&mut out, core::str::from_utf8(request).unwrap_or("?"));
            let _ = ipc::send::<Endpoint>(reply, out.as_bytes(), None, false);
        }
    }
}

xdv_guest::entry!(main);
