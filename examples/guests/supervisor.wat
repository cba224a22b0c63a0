;; supervisor: spawns two workers from the worker module it holds a capability to, waits for
;; each, and restarts a worker that faulted (once, with a bigger fuel quota).
;;   w1 gets 200 000 fuel and finishes; w2 gets only 20 000 and faults (fuel exhausted), so the
;;   supervisor spawns it again as "w2" (the hypervisor names it supervisor/w2#2) with 200 000.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
  (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "w1")
  (data (i32.const 8) "w2")
  (data (i32.const 16) "supervisor: w1 finished")
  (data (i32.const 48) "supervisor: w2 faulted, restarting it")
  (data (i32.const 96) "supervisor: w2 finished after the restart")
  (data (i32.const 160) "supervisor: spawn refused")
  (global $budget (mut i64) (i64.const 0))
  (global $module (mut i64) (i64.const 0))

  ;; Fills the 88-byte spawn spec at 512 and spawns: one vCPU, 64 KiB, weight 1, no nesting.
  (func $spawn (param $name i32) (param $name_len i32) (param $fuel i64) (result i64)
    (i64.store (i32.const 512) (global.get $budget))      ;; budget handle
    (i64.store (i32.const 520) (global.get $module))      ;; module handle
    (i32.store (i32.const 528) (i32.const 0))             ;; code ptr (unused)
    (i32.store (i32.const 532) (i32.const 0))             ;; code len
    (i32.store (i32.const 536) (local.get $name))         ;; name ptr
    (i32.store (i32.const 540) (local.get $name_len))     ;; name len
    (i32.store (i32.const 544) (i32.const 1))             ;; vcpus
    (i32.store (i32.const 548) (i32.const 1))             ;; vcpu quota
    (i64.store (i32.const 552) (i64.const 65536))         ;; memory limit per vCPU
    (i64.store (i32.const 560) (i64.const 65536))         ;; memory quota
    (i64.store (i32.const 568) (local.get $fuel))         ;; fuel quota
    (i32.store (i32.const 576) (i32.const 1))             ;; weight
    (i32.store (i32.const 580) (i32.const 0))             ;; flags
    (i32.store (i32.const 584) (i32.const 0))             ;; max depth
    (i32.store (i32.const 588) (i32.const 0))             ;; max children
    (i32.store (i32.const 592) (i32.const 0))             ;; capabilities passed
    (i32.store (i32.const 596) (i32.const 0))             ;; their table
    (call $vhm_spawn (i32.const 512) (i32.const 88)))

  (func (export "main") (local $w1 i64) (local $w2 i64) (local $r i64)
    (global.set $budget (call $cap_find (i32.const 2) (i32.const 0)))   ;; type 2: budget
    (global.set $module (call $cap_find (i32.const 3) (i32.const 1)))   ;; type 3: modules; 0 is our own
    (local.set $w1 (call $spawn (i32.const 0) (i32.const 2) (i64.const 200000)))
    (local.set $w2 (call $spawn (i32.const 8) (i32.const 2) (i64.const 20000)))
    (if (i32.or (i64.lt_s (local.get $w1) (i64.const 0)) (i64.lt_s (local.get $w2) (i64.const 0)))
      (then (drop (call $log (i32.const 160) (i32.const 25))) (call $exit (i32.const 1))))
    ;; vhm_wait returns (kind << 32) | code: kind 0 exit, 1 halted, 2 fault, 3 killed.
    (local.set $r (call $vhm_wait (local.get $w1)))
    (if (i64.eqz (i64.shr_u (local.get $r) (i64.const 32)))
      (then (drop (call $log (i32.const 16) (i32.const 23)))))
    (local.set $r (call $vhm_wait (local.get $w2)))
    (if (i64.eq (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 2))
      (then
        (drop (call $log (i32.const 48) (i32.const 37)))
        (local.set $w2 (call $spawn (i32.const 8) (i32.const 2) (i64.const 200000)))
        (local.set $r (call $vhm_wait (local.get $w2)))
        (if (i64.eqz (i64.shr_u (local.get $r) (i64.const 32)))
          (then (drop (call $log (i32.const 96) (i32.const 41)))))))
    (call $exit (i32.const 0))))
