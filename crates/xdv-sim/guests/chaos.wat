;; chaos: calls every hypercall with values drawn from its seeded random stream — handles that
;; are real (found with cap_find), stale, or invented; rights, pointers and lengths that are
;; sometimes valid and mostly not — for `rounds` iterations, then exits. Children it manages to
;; spawn run the same module. Used by the fuzz and property tests. Each VHM holds a Q container;
;; children it spawns with a 104-byte spec may get qubits carved from it.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "yield" (func $yield))
  (import "xdv" "time" (func $time (result i64)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "random" (func $random (result i64)))
  (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
  (import "xdv" "irq_send" (func $irq_send (param i32 i32 i64) (result i32)))
  (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
  (import "xdv" "cap_revoke" (func $cap_revoke (param i64) (result i32)))
  (import "xdv" "cap_drop" (func $cap_drop (param i64) (result i32)))
  (import "xdv" "cap_info" (func $cap_info (param i64 i32) (result i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
  (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
  (import "xdv" "vhm_kill" (func $vhm_kill (param i64) (result i32)))
  (import "xdv" "policy_set" (func $policy_set (param i32 i32) (result i32)))
  (import "xdv" "ipc_channel" (func $ipc_channel (param i32 i32) (result i32)))
  (import "xdv" "ipc_send" (func $ipc_send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "ipc_recv" (func $ipc_recv (param i64 i32 i32) (result i64)))
  (import "xdv" "q_info" (func $q_info (param i64 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (import "xdv" "q_wait" (func $q_wait (param i64) (result i32)))
  (import "xdv" "q_result" (func $q_result (param i64 i32 i32) (result i64)))
  (import "xdv" "phi_window" (func $phi_window (param i32 i32) (result i64)))
  (import "xdv" "phi_exec" (func $phi_exec (param i64 i32 i32 i32 i32) (result i64)))
  (import "xdv" "phi_frame" (func $phi_frame (param i64 i32 i32 i32) (result i32)))
  (import "xdv" "phi_release" (func $phi_release (param i64) (result i32)))
  (memory (export "memory") 1)
  ;; Φ transforms: a good one (frame f, 40 ns), one out of band, one with a parse error.
  (data (i32.const 9200) "frame f = newframe(q0, 5e9, 0); frame m = copyframe(f); play(f, gaussian(0.2, 40, 10)); capture(m, 40);")
  (data (i32.const 9400) "set_frequency(f, 9e9);")
  (data (i32.const 9500) "play(f, gaussian(0.2, 40, 0));")
  ;; A Bell pair (60 bytes) and a program with an error.
  (data (i32.const 9000) "OPENQASM 2.0; qreg q[2]; creg c[2]; CX q[0],q[1]; measure q -> c;")
  (data (i32.const 9100) "OPENQASM 2.0; qreg q[2]; CX q[0],q[9];")
  (func (export "xdv_irq") (param i32 i64))

  ;; A handle: usually one the VHM holds (any type, small index), else 64 random bits.
  (func $handle (param $r i64) (result i64)
    (if (result i64) (i64.lt_u (i64.and (local.get $r) (i64.const 7)) (i64.const 6))
      (then (call $cap_find
        (i32.wrap_i64 (i64.rem_u (i64.shr_u (local.get $r) (i64.const 3)) (i64.const 6)))
        (i32.wrap_i64 (i64.and (i64.shr_u (local.get $r) (i64.const 8)) (i64.const 3)))))
      (else (call $random))))

  ;; A pointer: usually inside memory, sometimes anywhere.
  (func $ptr (param $r i64) (result i32)
    (if (result i32) (i64.lt_u (i64.and (local.get $r) (i64.const 15)) (i64.const 13))
      (then (i32.wrap_i64 (i64.and (i64.shr_u (local.get $r) (i64.const 4)) (i64.const 0xfff0))))
      (else (i32.wrap_i64 (i64.shr_u (local.get $r) (i64.const 8))))))

  ;; A spawn spec at 4096: own budget and module, small quotas, random perturbations.
  (func $spec (param $r i64)
    (i64.store (i32.const 4096) (call $handle (i64.and (local.get $r) (i64.const 0xf0))))   ;; usually the budget (type 2 not guaranteed)
    (if (i64.lt_u (i64.and (local.get $r) (i64.const 3)) (i64.const 3))
      (then (i64.store (i32.const 4096) (call $cap_find (i32.const 2) (i32.const 0)))))
    (i64.store (i32.const 4104) (call $cap_find (i32.const 3) (i32.const 0)))
    (i32.store (i32.const 4112) (i32.const 0))
    (i32.store (i32.const 4116) (i32.const 0))
    (i32.store8 (i32.const 8000) (i32.const 99))
    (i32.store (i32.const 4120) (i32.const 8000))                   ;; name "c"
    (i32.store (i32.const 4124) (i32.const 1))
    (i32.store (i32.const 4128) (i32.wrap_i64 (i64.add (i64.const 1) (i64.and (i64.shr_u (local.get $r) (i64.const 4)) (i64.const 1)))))
    (i32.store (i32.const 4132) (i32.const 2))
    (i64.store (i32.const 4136) (i64.const 65536))
    (i64.store (i32.const 4144) (i64.const 131072))
    (i64.store (i32.const 4152) (i64.and (i64.shr_u (local.get $r) (i64.const 8)) (i64.const 0x3ffff)))
    (i32.store (i32.const 4160) (i32.const 1))
    (i32.store (i32.const 4164) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $r) (i64.const 30)) (i64.const 3))))
    (i32.store (i32.const 4168) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 1))))
    (i32.store (i32.const 4172) (i32.const 2))
    (i32.store (i32.const 4176) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $r) (i64.const 34)) (i64.const 1))))
    (i32.store (i32.const 4180) (i32.const 4200))
    (i64.store (i32.const 4200) (call $handle (i64.shr_u (local.get $r) (i64.const 36))))
    (i32.store (i32.const 4208) (i32.wrap_i64 (i64.shr_u (local.get $r) (i64.const 40))))
    (i64.store (i32.const 4216) (i64.const 0))
    ;; Q part (read when the spec is 104 bytes or more): a few qubits and a small budget.
    (i32.store (i32.const 4184) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $r) (i64.const 44)) (i64.const 3))))
    (i32.store (i32.const 4188) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $r) (i64.const 46)) (i64.const 0x100))))
    (i64.store (i32.const 4192) (i64.and (i64.shr_u (local.get $r) (i64.const 20)) (i64.const 0x3fffff))))

  (func (export "main") (local $i i32) (local $r i64) (local $a i64) (local $b i64) (local $op i32)
    (loop $round
      (local.set $r (call $random))
      (local.set $a (call $random))
      (local.set $b (call $random))
      (local.set $op (i32.wrap_i64 (i64.rem_u (i64.and (local.get $r) (i64.const 0xffff)) (i64.const 22))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 0)))
        ;; rights: any 9 bits half the time, else a subset of inspect|derive (usually held)
        (drop (call $cap_derive (call $handle (local.get $a))
          (i32.wrap_i64 (i64.and (local.get $b)
            (if (result i64) (i64.eqz (i64.and (local.get $b) (i64.const 0x200))) (then (i64.const 0x1ff)) (else (i64.const 0x3)))))
          (i64.and (local.get $b) (i64.const 0x3000)))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 1)))
        (drop (call $cap_revoke (call $handle (local.get $a)))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 2)))
        (drop (call $cap_drop (call $handle (local.get $a)))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 3)))
        (drop (call $cap_info (call $handle (local.get $a)) (call $ptr (local.get $b)))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 4)))
        (drop (call $cap_find (i32.wrap_i64 (local.get $a)) (i32.wrap_i64 (local.get $b)))))
      (block $done
        (br_if $done (i32.gt_u (local.get $op) (i32.const 6)))
        (br_if $done (i32.lt_u (local.get $op) (i32.const 5)))
        (call $spec (local.get $a))
        (drop (call $vhm_spawn
          (if (result i32) (i64.lt_u (i64.and (local.get $b) (i64.const 7)) (i64.const 6)) (then (i32.const 4096)) (else (call $ptr (local.get $b))))
          (i32.wrap_i64 (i64.add (i64.const 80) (i64.and (local.get $b) (i64.const 31)))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 7)))
        ;; wait only on a real child handle (type 1), so the VHM does not wait forever on itself
        (drop (call $vhm_wait (call $cap_find (i32.const 1) (i32.wrap_i64 (i64.and (local.get $a) (i64.const 1)))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 8)))
        (drop (call $vhm_kill (call $handle (local.get $a)))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 9)))
        (drop (call $policy_set (i32.wrap_i64 (i64.and (local.get $a) (i64.const 3))) (i32.wrap_i64 (i64.and (local.get $b) (i64.const 1))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 10)))
        (drop (call $ipc_channel (i32.wrap_i64 (i64.and (local.get $a) (i64.const 7))) (call $ptr (local.get $b)))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 11)))
        (drop (call $ipc_send (call $handle (local.get $a)) (call $ptr (local.get $b))
          (i32.wrap_i64 (i64.and (i64.shr_u (local.get $b) (i64.const 20)) (i64.const 0x3ff)))
          (if (result i64) (i64.eqz (i64.and (local.get $a) (i64.const 0x100))) (then (i64.const 0)) (else (call $handle (i64.shr_u (local.get $a) (i64.const 9)))))
          (i32.const 0))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 12)))
        ;; receive only when something is likely queued, else it would park for good
        (br_if $done (i64.ne (i64.and (local.get $a) (i64.const 0x700)) (i64.const 0)))
        (drop (call $ipc_recv (call $handle (local.get $a)) (call $ptr (local.get $b)) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $b) (i64.const 20)) (i64.const 0x7ff))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 13)))
        (drop (call $log (call $ptr (local.get $a)) (i32.wrap_i64 (i64.and (local.get $b) (i64.const 0x1fff))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 14)))
        (drop (call $irq_send (i32.wrap_i64 (i64.and (local.get $a) (i64.const 3))) (i32.wrap_i64 (i64.and (local.get $b) (i64.const 15))) (local.get $b))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 15)))
        (drop (call $sleep (i64.add (call $time) (i64.and (local.get $a) (i64.const 0xfff))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 16)))
        (drop (call $timer_set (i64.and (local.get $a) (i64.const 0x3ffff)))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 17)))
        (call $yield))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 18)))
        ;; usually the container (type 6) and a real program, else anything
        (drop (call $q_submit
          (if (result i64) (i64.lt_u (i64.and (local.get $a) (i64.const 7)) (i64.const 5))
            (then (call $cap_find (i32.const 6) (i32.const 0))) (else (call $handle (local.get $a))))
          (if (result i32) (i64.lt_u (i64.and (local.get $b) (i64.const 7)) (i64.const 5))
            (then (i32.const 9000)) (else (if (result i32) (i64.eqz (i64.and (local.get $b) (i64.const 8))) (then (i32.const 9100)) (else (call $ptr (local.get $b))))))
          (if (result i32) (i64.lt_u (i64.and (local.get $b) (i64.const 7)) (i64.const 5))
            (then (i32.const 65)) (else (i32.wrap_i64 (i64.and (i64.shr_u (local.get $b) (i64.const 8)) (i64.const 0x1ffff)))))
          (i64.and (i64.shr_u (local.get $a) (i64.const 8)) (i64.const 0x1f))
          (i32.wrap_i64 (i64.and (i64.shr_u (local.get $a) (i64.const 16)) (i64.const 7))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 19)))
        ;; a job handle (type 7) or anything: wait for it, read it into some buffer, or ask a figure
        (local.set $a (i64.shr_u (local.get $a) (i64.const 2)))
        (if (i64.eqz (i64.and (local.get $b) (i64.const 3)))
          (then (drop (call $q_wait (call $cap_find (i32.const 7) (i32.const 0)))))
          (else (if (i64.eq (i64.and (local.get $b) (i64.const 3)) (i64.const 1))
            (then (drop (call $q_info (call $handle (local.get $a)) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $b) (i64.const 4)) (i64.const 7))))))
            (else (drop (call $q_result
              (if (result i64) (i64.eqz (i64.and (local.get $b) (i64.const 4))) (then (call $cap_find (i32.const 7) (i32.const 0))) (else (call $handle (local.get $a))))
              (call $ptr (local.get $b))
              (i32.wrap_i64 (i64.and (i64.shr_u (local.get $b) (i64.const 24)) (i64.const 0x3ff))))))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 20)))
        ;; a window on q0 at a random place: port, flags, interval, band, cap (often invalid)
        (i32.store (i32.const 4400) (i32.wrap_i64 (i64.and (local.get $a) (i64.const 1))))
        (i32.store (i32.const 4404) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $a) (i64.const 1)) (i64.const 1))))
        (i64.store (i32.const 4408) (i64.add (call $time) (i64.and (i64.shr_u (local.get $a) (i64.const 8)) (i64.const 0xfff0))))
        (i64.store (i32.const 4416) (i64.add (i64.load (i32.const 4408)) (i64.and (i64.shr_u (local.get $b) (i64.const 8)) (i64.const 0x3ff0))))
        (i64.store (i32.const 4424) (i64.const 4900000000))
        (i64.store (i32.const 4432) (i64.add (i64.const 4900000000) (i64.and (local.get $b) (i64.const 0x3ffffffff))))
        (i32.store (i32.const 4440) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $b) (i64.const 40)) (i64.const 0xfffff))))
        (i32.store (i32.const 4444) (i32.const 0))
        (drop (call $phi_window (i32.const 4400) (i32.wrap_i64 (i64.add (i64.const 44) (i64.and (local.get $b) (i64.const 7)))))))
      (block $done
        (br_if $done (i32.ne (local.get $op) (i32.const 21)))
        ;; a transform on one of its windows (type 8) or anything; read a frame; sometimes release
        (local.set $a (if (result i64) (i64.lt_u (i64.and (local.get $a) (i64.const 7)) (i64.const 6))
          (then (call $cap_find (i32.const 8) (i32.wrap_i64 (i64.and (i64.shr_u (local.get $a) (i64.const 3)) (i64.const 1)))))
          (else (call $handle (local.get $a)))))
        (drop (call $phi_exec (local.get $a)
          (if (result i32) (i64.lt_u (i64.and (local.get $b) (i64.const 3)) (i64.const 2)) (then (i32.const 9200))
            (else (if (result i32) (i64.eqz (i64.and (local.get $b) (i64.const 4))) (then (i32.const 9400)) (else (i32.const 9500)))))
          (if (result i32) (i64.lt_u (i64.and (local.get $b) (i64.const 3)) (i64.const 2)) (then (i32.const 103))
            (else (if (result i32) (i64.eqz (i64.and (local.get $b) (i64.const 4))) (then (i32.const 22)) (else (i32.const 30)))))
          (call $ptr (i64.shr_u (local.get $b) (i64.const 8)))
          (i32.wrap_i64 (i64.and (i64.shr_u (local.get $b) (i64.const 30)) (i64.const 63)))))
        (drop (call $phi_frame (local.get $a) (i32.const 9200) (i32.const 1) (call $ptr (i64.shr_u (local.get $b) (i64.const 12)))))
        (if (i64.eq (i64.and (local.get $b) (i64.const 0xf00)) (i64.const 0))
          (then (drop (call $phi_release (local.get $a))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $round (i32.lt_u (local.get $i) (i32.const 300))))
    (call $exit (i32.const 0))))
