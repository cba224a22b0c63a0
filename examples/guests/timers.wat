;; timers: several vCPUs, a periodic virtual timer and inter-processor interrupts.
;;   vCPU 0 arms the VHM's timer (vector 0) every 100 µs of virtual time. On each tick its
;;   handler logs the tick and sends vector 1 to another vCPU (round robin), with the tick as arg.
;;   Every other vCPU sleeps; an interrupt cuts its sleep short, its handler logs what arrived,
;;   and it goes back to sleep. After 6 ticks vCPU 0 exits the VHM with code 0.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "vcpu_id" (func $vcpu_id (result i32)))
  (import "xdv" "vcpu_count" (func $vcpu_count (result i32)))
  (import "xdv" "time" (func $time (result i64)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
  (import "xdv" "irq_send" (func $irq_send (param i32 i32 i64) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "timer tick ")
  (data (i32.const 32) "ipi received, arg ")
  (data (i32.const 64) "woke at ns ")
  (global $ticks (mut i64) (i64.const 0))

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

  (func $log_num (param $prefix i32) (param $len i32) (param $v i64)
    (memory.copy (i32.const 1024) (local.get $prefix) (local.get $len))
    (drop (call $log (i32.const 1024)
      (i32.add (local.get $len) (call $utoa (local.get $v) (i32.add (i32.const 1024) (local.get $len)))))))

  (func (export "xdv_irq") (param $vector i32) (param $arg i64)
    (local $others i32)
    (if (i32.eqz (local.get $vector))
      (then
        (global.set $ticks (i64.add (global.get $ticks) (i64.const 1)))
        (call $log_num (i32.const 0) (i32.const 11) (local.get $arg))
        (local.set $others (i32.sub (call $vcpu_count) (i32.const 1)))
        (if (i32.gt_s (local.get $others) (i32.const 0))
          (then
            (drop (call $irq_send
              (i32.add (i32.const 1) (i32.wrap_i64 (i64.rem_u (local.get $arg) (i64.extend_i32_u (local.get $others)))))
              (i32.const 1)
              (local.get $arg))))))
      (else
        (call $log_num (i32.const 32) (i32.const 18) (local.get $arg)))))

  (func (export "main")
    (if (i32.eqz (call $vcpu_id))
      (then
        (drop (call $timer_set (i64.const 100000)))
        (loop $wait
          (drop (call $sleep (i64.add (call $time) (i64.const 1000000000))))
          (br_if $wait (i64.lt_u (global.get $ticks) (i64.const 6))))
        (call $exit (i32.const 0)))
      (else
        (loop $idle
          (if (i32.eq (call $sleep (i64.const 0x7fffffffffffffff)) (i32.const 1))
            (then (call $log_num (i32.const 64) (i32.const 11) (call $time))))
          (br $idle))))))
