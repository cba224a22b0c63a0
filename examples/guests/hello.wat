;; hello: every vCPU logs a greeting with its index and virtual time, sums 1..10000, logs a
;; seeded random draw and returns; when both vCPUs have returned the VHM halts.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "vcpu_id" (func $vcpu_id (result i32)))
  (import "xdv" "time" (func $time (result i64)))
  (import "xdv" "random" (func $random (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello from vcpu ")
  (data (i32.const 32) "virtual ns now ")
  (data (i32.const 64) "sum of 1..10000 = ")
  (data (i32.const 96) "a seeded random draw: ")

  ;; Writes the decimal form of $v at $p; returns its length.
  (func $utoa (param $v i64) (param $p i32) (result i32)
    (local $n i32) (local $t i64) (local $i i32)
    (local.set $t (local.get $v))
    (local.set $n (i32.const 1))
    (block $done
      (loop $count
        (br_if $done (i64.lt_u (local.get $t) (i64.const 10)))
        (local.set $t (i64.div_u (local.get $t) (i64.const 10)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $count)))
    (local.set $i (local.get $n))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $p) (local.get $i))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $write (i32.gt_s (local.get $i) (i32.const 0))))
    (local.get $n))

  ;; Logs the $len-byte prefix at $prefix followed by the decimal $v.
  (func $log_num (param $prefix i32) (param $len i32) (param $v i64)
    (memory.copy (i32.const 1024) (local.get $prefix) (local.get $len))
    (drop (call $log (i32.const 1024)
      (i32.add (local.get $len) (call $utoa (local.get $v) (i32.add (i32.const 1024) (local.get $len)))))))

  (func (export "main")
    (local $i i64) (local $sum i64)
    (call $log_num (i32.const 0) (i32.const 16) (i64.extend_i32_u (call $vcpu_id)))
    (call $log_num (i32.const 32) (i32.const 15) (call $time))
    (loop $add
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (local.set $sum (i64.add (local.get $sum) (local.get $i)))
      (br_if $add (i64.lt_u (local.get $i) (i64.const 10000))))
    (call $log_num (i32.const 64) (i32.const 18) (local.get $sum))
    (call $log_num (i32.const 96) (i32.const 22) (i64.shr_u (call $random) (i64.const 1)))
    (call $log_num (i32.const 32) (i32.const 15) (call $time))))
