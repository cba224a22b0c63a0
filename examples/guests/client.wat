;; client: makes a private channel, sends the server a request carrying one endpoint of it (the
;; capability travels derived, never amplified), receives the reply on the other endpoint, logs
;; it, then says "bye" on the manifest channel.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
  (import "xdv" "ipc_channel" (func $ipc_channel (param i32 i32) (result i32)))
  (import "xdv" "ipc_send" (func $ipc_send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "ipc_recv" (func $ipc_recv (param i64 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello server")
  (data (i32.const 16) "bye")
  (data (i32.const 32) "client: reply: ")
  (func (export "main") (local $ep i64) (local $mine i64) (local $theirs i64) (local $n i64)
    (local.set $ep (call $cap_find (i32.const 4) (i32.const 0)))
    ;; A private channel: both endpoint handles are written at 256.
    (if (i32.ne (call $ipc_channel (i32.const 1) (i32.const 256)) (i32.const 0)) (then (call $exit (i32.const 1))))
    (local.set $mine (i64.load (i32.const 256)))
    ;; Pass a send-only copy of the other end: send (64) | transfer (4); inspect (1).
    (local.set $theirs (call $cap_derive (i64.load (i32.const 264)) (i32.const 69) (i64.const 0)))
    (drop (call $ipc_send (local.get $ep) (i32.const 0) (i32.const 12) (local.get $theirs) (i32.const 1)))
    (local.set $n (call $ipc_recv (local.get $mine) (i32.const 1024) (i32.const 512)))
    (if (i64.lt_s (local.get $n) (i64.const 0)) (then (call $exit (i32.const 3))))
    (memory.copy (i32.const 2048) (i32.const 32) (i32.const 15))
    (memory.copy (i32.const 2063) (i32.const 1040) (i32.wrap_i64 (local.get $n)))
    (drop (call $log (i32.const 2048) (i32.add (i32.const 15) (i32.wrap_i64 (local.get $n)))))
    (drop (call $ipc_send (local.get $ep) (i32.const 16) (i32.const 3) (i64.const 0) (i32.const 1)))
    (call $exit (i32.const 0))))
