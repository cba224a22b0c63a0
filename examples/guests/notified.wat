;; notified: sleeps while its child runs; its interrupt handler logs the fault notifications
;; it receives (`on_fault = "notify-parent"` in the child's policy raises the parent's
;; k.fault_vector with the child's vhm_wait value: (kind << 32) | code).
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "time" (func $time (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "supervisor: child fault notified on vector ")
  (data (i32.const 44) ", wait value ")

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

  (func (export "xdv_irq") (param $vector i32) (param $arg i64)
    (local $at i32)
    (local.set $at (call $put (i32.const 0) (i32.const 43) (i32.const 4096)))
    (local.set $at (call $itoa (i64.extend_i32_u (local.get $vector)) (local.get $at)))
    (local.set $at (call $put (i32.const 44) (i32.const 13) (local.get $at)))
    (local.set $at (call $itoa (local.get $arg) (local.get $at)))
    (drop (call $log (i32.const 4096) (i32.sub (local.get $at) (i32.const 4096)))))
  (func (export "main")
    ;; sleep until 2 ms of virtual time; interrupts cut a sleep short, so sleep again
    (loop $wait
      (drop (call $sleep (i64.const 2000000)))
      (br_if $wait (i64.lt_s (call $time) (i64.const 2000000))))))
