;; hostile-host: attacks on what the host spends, one drawn from the VHM's random stream
;; (vCPU 0), each repeated while its budget lasts:
;;   0 deep program text: a q_submit and a phi_exec of 2 000 nested parentheses
;;   1 a table bomb: spawn a child from bytes declaring a table of 50 000 000 elements, 4 vCPUs
;;   2 an IPC flood: two channels of 4096 messages, 4 KiB each, until refused
;;   3 a handler-less timer of period 1 ns, then a sleep past the horizon
;;   4 far-future requests: timer_set(i64::MAX), a window ending at 2^64 - 4, sleep(i64::MAX)
;;   5 a derive/drop storm: 400 derived capabilities dropped again
;; Every one must end in recorded refusals or a fault of this VHM only.
(module
  (import "xdv" "random" (func $random (result i64)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
  (import "xdv" "cap_drop" (func $cap_drop (param i64) (result i32)))
  (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
  (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
  (import "xdv" "ipc_channel" (func $channel (param i32 i32) (result i32)))
  (import "xdv" "ipc_send" (func $send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (import "xdv" "phi_window" (func $phi_window (param i32 i32) (result i64)))
  (import "xdv" "phi_exec" (func $phi_exec (param i64 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "b")
  (data (i32.const 16) "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[1]; rz(")
  (data (i32.const 80) "frame d0 = newframe(q0, 5.0e9, 0);\nshift_phase(d0, ")
  ;; (module (table 50000000 funcref) (memory (export "memory") 1) (func (export "main")))
  (data (i32.const 160) "\00asm\01\00\00\00\01\04\01\60\00\00\03\02\01\00\04\07\01\70\00\80\e1\eb\17\05\03\01\00\01\07\11\02\06memory\02\00\04main\00\00\0a\04\01\02\00\0b")

  ;; Writes `prefix` (len bytes at src), then n '(' , '1', n ')' and `tail` at 1024; returns the length.
  (func $deep (param $src i32) (param $len i32) (param $n i32) (param $tail i32) (param $tlen i32) (result i32)
    (local $at i32)
    (memory.copy (i32.const 1024) (local.get $src) (local.get $len))
    (local.set $at (i32.add (i32.const 1024) (local.get $len)))
    (memory.fill (local.get $at) (i32.const 40) (local.get $n))
    (local.set $at (i32.add (local.get $at) (local.get $n)))
    (i32.store8 (local.get $at) (i32.const 49))
    (local.set $at (i32.add (local.get $at) (i32.const 1)))
    (memory.fill (local.get $at) (i32.const 41) (local.get $n))
    (local.set $at (i32.add (local.get $at) (local.get $n)))
    (memory.copy (local.get $at) (local.get $tail) (local.get $tlen))
    (i32.sub (i32.add (local.get $at) (local.get $tlen)) (i32.const 1024)))

  (func $window (param $t1 i64) (result i64)
    (i32.store (i32.const 400) (i32.const 0))
    (i32.store (i32.const 404) (i32.const 0))
    (i64.store (i32.const 408) (i64.const 0))
    (i64.store (i32.const 416) (local.get $t1))
    (i64.store (i32.const 424) (i64.const 4900000000))
    (i64.store (i32.const 432) (i64.const 5100000000))
    (i32.store (i32.const 440) (i32.const 100000))
    (i32.store (i32.const 444) (i32.const 0))
    (call $phi_window (i32.const 400) (i32.const 48)))

  (func (export "main") (local $kind i64) (local $i i32) (local $len i32) (local $h i64)
    (local.set $kind (i64.rem_u (call $random) (i64.const 6)))
    ;; 0: deep program text
    (if (i64.eqz (local.get $kind)) (then
      (i32.store (i32.const 300) (i32.const 0x305d7128)) ;; ") q[0];" tail at 300: ")q[0" ...
      (i32.store (i32.const 300) (i32.const 0x30715b29))
      (i32.store (i32.const 304) (i32.const 0x003b295d))
      (local.set $len (call $deep (i32.const 16) (i32.const 50) (i32.const 2000) (i32.const 300) (i32.const 7)))
      (drop (call $q_submit (call $cap_find (i32.const 6) (i32.const 0)) (i32.const 1024) (local.get $len) (i64.const 1) (i32.const 0)))
      (i32.store (i32.const 300) (i32.const 0x000a3b29))
      (local.set $len (call $deep (i32.const 80) (i32.const 50) (i32.const 2000) (i32.const 300) (i32.const 3)))
      (drop (call $phi_exec (call $cap_find (i32.const 8) (i32.const 0)) (i32.const 1024) (local.get $len) (i32.const 0) (i32.const 0)))
      (call $exit (i32.const 0))))
    ;; 1: a table bomb, spawned with 4 vCPUs
    (if (i64.eq (local.get $kind) (i64.const 1)) (then
      (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
      (i64.store (i32.const 520) (i64.const 0))
      (i32.store (i32.const 528) (i32.const 160))
      (i32.store (i32.const 532) (i32.const 57))
      (i32.store (i32.const 536) (i32.const 0))
      (i32.store (i32.const 540) (i32.const 1))
      (i32.store (i32.const 544) (i32.const 4))
      (i32.store (i32.const 548) (i32.const 4))
      (i64.store (i32.const 552) (i64.const 65536))
      (i64.store (i32.const 560) (i64.const 262144))
      (i64.store (i32.const 568) (i64.const 10000))
      (i32.store (i32.const 576) (i32.const 1))
      (local.set $h (call $vhm_spawn (i32.const 512) (i32.const 88)))
      (if (i64.ge_s (local.get $h) (i64.const 0)) (then (drop (call $vhm_wait (local.get $h)))))
      (call $exit (i32.const 0))))
    ;; 2: an IPC flood
    (if (i64.eq (local.get $kind) (i64.const 2)) (then
      (drop (call $channel (i32.const 4096) (i32.const 32)))
      (drop (call $channel (i32.const 4096) (i32.const 48)))
      (loop $flood
        (drop (call $send (i64.load (i32.const 32)) (i32.const 0) (i32.const 4096) (i64.const 0) (i32.const 0)))
        (drop (call $send (i64.load (i32.const 48)) (i32.const 0) (i32.const 4096) (i64.const 0) (i32.const 0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $flood (i32.lt_u (local.get $i) (i32.const 200))))
      (call $exit (i32.const 0))))
    ;; 3: a handler-less timer
    (if (i64.eq (local.get $kind) (i64.const 3)) (then
      (drop (call $timer_set (i64.const 1)))
      (drop (call $sleep (i64.const 0x7fffffffffffffff)))
      (call $exit (i32.const 0))))
    ;; 4: far-future requests
    (if (i64.eq (local.get $kind) (i64.const 4)) (then
      (drop (call $timer_set (i64.const 0x7fffffffffffffff)))
      (drop (call $window (i64.const -4)))
      (drop (call $sleep (i64.const 0x7fffffffffffffff)))
      (call $exit (i32.const 0))))
    ;; 5: a derive/drop storm on the VHM's own module capability
    (local.set $h (call $cap_find (i32.const 3) (i32.const 0)))
    (loop $storm
      (drop (call $cap_derive (local.get $h) (i32.const 1) (i64.const 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $storm (i32.lt_u (local.get $i) (i32.const 400))))
    (local.set $i (i32.const 0))
    (loop $drop
      (drop (call $cap_drop (call $cap_find (i32.const 3) (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $drop (i32.lt_u (local.get $i) (i32.const 400))))
    (call $exit (i32.const 0))))
