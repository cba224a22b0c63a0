;; server: receives requests on its end of the manifest channel. A request that carries a
;; capability (an endpoint of a channel the client made) is answered through that endpoint with
;; "pong: " + the request. "bye" ends the server.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_send" (func $ipc_send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "ipc_recv" (func $ipc_recv (param i64 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "pong: ")
  (data (i32.const 16) "server: got a request with a reply capability")
  (data (i32.const 64) "server: bye")
  ;; Receive buffer at 1024: badge (8 bytes), capability (8 bytes), then the payload.
  (func (export "main") (local $ep i64) (local $n i64) (local $reply i64)
    (local.set $ep (call $cap_find (i32.const 4) (i32.const 0)))   ;; type 4: endpoint
    (loop $serve
      (local.set $n (call $ipc_recv (local.get $ep) (i32.const 1024) (i32.const 512)))
      (if (i64.lt_s (local.get $n) (i64.const 0)) (then (call $exit (i32.const 2))))
      ;; "bye"?
      (if (i32.and (i64.eq (local.get $n) (i64.const 3))
                   (i32.eq (i32.load8_u (i32.const 1040)) (i32.const 98)))
        (then (drop (call $log (i32.const 64) (i32.const 11))) (call $exit (i32.const 0))))
      (local.set $reply (i64.load (i32.const 1032)))
      (if (i64.ne (local.get $reply) (i64.const 0))
        (then
          (drop (call $log (i32.const 16) (i32.const 45)))
          ;; Build "pong: <payload>" at 2048 and send it through the received endpoint.
          (memory.copy (i32.const 2048) (i32.const 0) (i32.const 6))
          (memory.copy (i32.const 2054) (i32.const 1040) (i32.wrap_i64 (local.get $n)))
          (drop (call $ipc_send (local.get $reply) (i32.const 2048)
                  (i32.add (i32.const 6) (i32.wrap_i64 (local.get $n))) (i64.const 0) (i32.const 0)))))
      (br $serve))))
