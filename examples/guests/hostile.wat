;; hostile: tries to break out. Every attempt is refused with an error code and a `refused` event
;; in the trace; the VHM carries on and exits 0. The attempts, in order:
;;   1. forgery: cap_info on invented handle values (and on 0);
;;   2. escalation: deriving more rights than held (its vCPU capability is inspect-only; its module
;;      capability has no kill right);
;;   3. a stale handle: a derived copy used after the source was revoked;
;;   4. unauthorized spawning: a copy of its budget without the spawn right;
;;   5. over-quota spawning: asking for more fuel than its budget has left;
;;   6. a handle value with another table's tag (slot 1, generation 0 — as forged as it gets).
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
  (import "xdv" "cap_revoke" (func $cap_revoke (param i64) (result i32)))
  (import "xdv" "cap_info" (func $cap_info (param i64 i32) (result i32)))
  (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
  (import "xdv" "vhm_kill" (func $vhm_kill (param i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x")
  (data (i32.const 16) "hostile: every attempt was refused")
  (data (i32.const 64) "hostile: an attempt SUCCEEDED")

  (func $spawn (param $budget i64) (param $fuel i64) (result i64)
    (i64.store (i32.const 512) (local.get $budget))
    (i64.store (i32.const 520) (call $cap_find (i32.const 3) (i32.const 0)))  ;; our own module
    (i32.store (i32.const 536) (i32.const 0))    ;; name "x"
    (i32.store (i32.const 540) (i32.const 1))
    (i32.store (i32.const 544) (i32.const 1))    ;; vcpus
    (i32.store (i32.const 548) (i32.const 1))    ;; vcpu quota
    (i64.store (i32.const 552) (i64.const 65536))
    (i64.store (i32.const 560) (i64.const 65536))
    (i64.store (i32.const 568) (local.get $fuel))
    (i32.store (i32.const 576) (i32.const 1))    ;; weight
    (call $vhm_spawn (i32.const 512) (i32.const 88)))

  ;; Counts an attempt that returned a non-negative value (it should never happen).
  (global $breaches (mut i32) (i32.const 0))
  (func $expect_refusal (param $r i64)
    (if (i64.ge_s (local.get $r) (i64.const 0))
      (then (global.set $breaches (i32.add (global.get $breaches) (i32.const 1))))))

  (func (export "main") (local $budget i64) (local $vcpu i64) (local $module i64) (local $copy i64) (local $weak i64)
    (local.set $budget (call $cap_find (i32.const 2) (i32.const 0)))
    (local.set $vcpu (call $cap_find (i32.const 5) (i32.const 0)))
    (local.set $module (call $cap_find (i32.const 3) (i32.const 0)))
    ;; 1. forgery
    (call $expect_refusal (i64.extend_i32_s (call $cap_info (i64.const 0x0123456789abcdef) (i32.const 256))))
    (call $expect_refusal (i64.extend_i32_s (call $cap_info (i64.const 0) (i32.const 256))))
    (call $expect_refusal (i64.extend_i32_s (call $cap_info (i64.add (local.get $budget) (i64.const 0x100000000000)) (i32.const 256))))
    ;; 2. escalation
    (call $expect_refusal (call $cap_derive (local.get $vcpu) (i32.const 0x1ff) (i64.const 0)))
    (call $expect_refusal (call $cap_derive (local.get $module) (i32.const 0x20) (i64.const 0)))
    ;; 3. stale handle after revoke
    (local.set $copy (call $cap_derive (local.get $module) (i32.const 1) (i64.const 0)))
    (drop (call $cap_revoke (local.get $module)))
    (call $expect_refusal (i64.extend_i32_s (call $cap_info (local.get $copy) (i32.const 256))))
    ;; 4. unauthorized spawn: a budget copy with inspect|derive only
    (local.set $weak (call $cap_derive (local.get $budget) (i32.const 3) (i64.const 0)))
    (call $expect_refusal (call $spawn (local.get $weak) (i64.const 1000)))
    ;; 5. over-quota spawn
    (call $expect_refusal (call $spawn (local.get $budget) (i64.const 1000000000000)))
    ;; 6. a handle with another table's tag
    (call $expect_refusal (i64.extend_i32_s (call $vhm_kill (i64.const 0x10000000001))))
    (if (i32.eqz (global.get $breaches))
      (then (drop (call $log (i32.const 16) (i32.const 34))))
      (else (drop (call $log (i32.const 64) (i32.const 29)))))
    (call $exit (global.get $breaches))))
