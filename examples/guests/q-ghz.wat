;; ghz: prepares a three-qubit GHZ state on its own Q container, runs 1000 shots, and logs how
;; often it saw 000, 111 and anything else. Several VHMs run it side by side on one device:
;; each has its own qubits, its own outcomes and its own decoherence budget.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (import "xdv" "q_wait" (func $q_wait (param i64) (result i32)))
  (import "xdv" "q_result" (func $q_result (param i64 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[3];\ncreg c[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\nmeasure q -> c;\n")
  (data (i32.const 111) "ghz: 1000 shots, 000: ")
  (data (i32.const 134) ", 111: ")
  (data (i32.const 142) ", other: ")

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
    (local $c i64) (local $job i64) (local $n i64) (local $i i64) (local $w i64)
    (local $zero i64) (local $all i64) (local $other i64) (local $at i32)
    ;; type 6: the Q container
    (local.set $c (call $cap_find (i32.const 6) (i32.const 0)))
    (local.set $job (call $q_submit (local.get $c) (i32.const 0) (i32.const 110) (i64.const 1000) (i32.const 0)))
    (if (i64.lt_s (local.get $job) (i64.const 0)) (then (call $exit (i32.const 1))))
    (drop (call $q_wait (local.get $job)))
    (local.set $n (call $q_result (local.get $job) (i32.const 8192) (i32.const 8000)))
    (if (i64.ne (local.get $n) (i64.const 1000)) (then (call $exit (i32.const 2))))
    (loop $count
      (local.set $w (i64.load (i32.add (i32.const 8192) (i32.wrap_i64 (i64.mul (local.get $i) (i64.const 8))))))
      (if (i64.eqz (local.get $w))
        (then (local.set $zero (i64.add (local.get $zero) (i64.const 1))))
        (else (if (i64.eq (local.get $w) (i64.const 7))
          (then (local.set $all (i64.add (local.get $all) (i64.const 1))))
          (else (local.set $other (i64.add (local.get $other) (i64.const 1)))))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $count (i64.lt_u (local.get $i) (local.get $n))))
    (local.set $at (call $put (i32.const 111) (i32.const 22) (i32.const 4096)))
    (local.set $at (call $itoa (local.get $zero) (local.get $at)))
    (local.set $at (call $put (i32.const 134) (i32.const 7) (local.get $at)))
    (local.set $at (call $itoa (local.get $all) (local.get $at)))
    (local.set $at (call $put (i32.const 142) (i32.const 9) (local.get $at)))
    (local.set $at (call $itoa (local.get $other) (local.get $at)))
    (drop (call $log (i32.const 4096) (i32.sub (local.get $at) (i32.const 4096))))
    (call $exit (i32.const 0))))
