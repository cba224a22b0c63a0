;; phi-fdm: plays on a frame at the top of its band; its neighbour shares the port at the
;; bottom of the band, in the same time interval.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "phi_exec" (func $phi_exec (param i64 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "frame d0 = newframe(q0, 5.05e9, 0);\nframe m = copyframe(d0);\nplay(d0, constant(0.2, 1000));\ncapture(m, 1000);\n")
  (data (i32.const 111) "phi: transform ")
  (data (i32.const 127) " -> ")
  (data (i32.const 132) ", first capture I=")
  (data (i32.const 151) " Q=")
  (data (i32.const 155) " (micro-units)")

  ;; Writes the decimal form of $v (signed) at $at; returns the end.
  (func $itoa (param $v i64) (param $at i32) (result i32)
    (local $n i32) (local $i i32) (local $t i32)
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then
        (i32.store8 (local.get $at) (i32.const 45))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    ;; digits backwards into 3968.., then copied forwards
    (loop $d
      (i32.store8 (i32.add (i32.const 3968) (local.get $n))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $d (i64.ne (local.get $v) (i64.const 0))))
    (loop $c
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (i32.store8 (local.get $at) (i32.load8_u (i32.add (i32.const 3968) (local.get $n))))
      (local.set $at (i32.add (local.get $at) (i32.const 1)))
      (br_if $c (i32.ne (local.get $n) (i32.const 0))))
    (local.get $at))
  ;; Copies $len bytes from $src to $at; returns the end.
  (func $put (param $src i32) (param $len i32) (param $at i32) (result i32)
    (memory.copy (local.get $at) (local.get $src) (local.get $len))
    (i32.add (local.get $at) (local.get $len)))

  ;; Runs transform k (text at $ptr, $len bytes) on the VHM's first window (type 8) and logs
  ;; the result: the number of captures or an error code, and the first capture's I and Q.
  (func $run (param $k i32) (param $ptr i32) (param $len i32)
    (local $r i64) (local $at i32)
    (local.set $r (call $phi_exec (call $cap_find (i32.const 8) (i32.const 0))
      (local.get $ptr) (local.get $len) (i32.const 8192) (i32.const 1024)))
    (local.set $at (call $put (i32.const 111) (i32.const 15) (i32.const 4096)))
    (local.set $at (call $itoa (i64.extend_i32_u (local.get $k)) (local.get $at)))
    (local.set $at (call $put (i32.const 127) (i32.const 4) (local.get $at)))
    (local.set $at (call $itoa (local.get $r) (local.get $at)))
    (if (i64.gt_s (local.get $r) (i64.const 0))
      (then
        (local.set $at (call $put (i32.const 132) (i32.const 18) (local.get $at)))
        (local.set $at (call $itoa (i64.load (i32.const 8192)) (local.get $at)))
        (local.set $at (call $put (i32.const 151) (i32.const 3) (local.get $at)))
        (local.set $at (call $itoa (i64.load (i32.const 8200)) (local.get $at)))
        (local.set $at (call $put (i32.const 155) (i32.const 14) (local.get $at)))))
    (drop (call $log (i32.const 4096) (i32.sub (local.get $at) (i32.const 4096)))))
  (func (export "main")
    (call $run (i32.const 0) (i32.const 0) (i32.const 110))
    (call $exit (i32.const 0))))
