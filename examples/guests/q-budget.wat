;; q-budget: submits the same Bell-pair job again and again until the decoherence budget
;; refuses one (E_QUOTA, -9), logs how far it got and exits cleanly: a refusal is recorded and
;; returned, never a fault (unless the VHM's policy says on_bad_hypercall = "fault").
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (import "xdv" "q_wait" (func $q_wait (param i64) (result i32)))
  (import "xdv" "q_result" (func $q_result (param i64 i32 i32) (result i64)))
  (import "xdv" "q_info" (func $q_info (param i64 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n")
  (data (i32.const 97) "budget: job admitted, budget left (micro-units) ")
  (data (i32.const 146) "budget: refused with error ")
  (data (i32.const 174) " after jobs: ")

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

  (func (export "main")
    (local $c i64) (local $job i64) (local $jobs i64) (local $at i32)
    (local.set $c (call $cap_find (i32.const 6) (i32.const 0)))
    (loop $again
      (local.set $job (call $q_submit (local.get $c) (i32.const 0) (i32.const 96) (i64.const 100) (i32.const 0)))
      (if (i64.ge_s (local.get $job) (i64.const 0))
        (then
          (drop (call $q_wait (local.get $job)))
          (drop (call $q_result (local.get $job) (i32.const 8192) (i32.const 800)))
          (local.set $jobs (i64.add (local.get $jobs) (i64.const 1)))
          (local.set $at (call $put (i32.const 97) (i32.const 48) (i32.const 4096)))
          (local.set $at (call $itoa (call $q_info (local.get $c) (i32.const 1)) (local.get $at)))
          (drop (call $log (i32.const 4096) (i32.sub (local.get $at) (i32.const 4096))))
          (br $again))))
    (local.set $at (call $put (i32.const 146) (i32.const 27) (i32.const 4096)))
    (local.set $at (call $itoa (local.get $job) (local.get $at)))
    (local.set $at (call $put (i32.const 174) (i32.const 13) (local.get $at)))
    (local.set $at (call $itoa (local.get $jobs) (local.get $at)))
    (drop (call $log (i32.const 4096) (i32.sub (local.get $at) (i32.const 4096))))
    (call $exit (i32.const 0))))
