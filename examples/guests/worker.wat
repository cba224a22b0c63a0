;; worker: a child VHM. Logs that it started, computes (about 60 000 fuel), logs, exits 0.
;; Given too little fuel it faults with fuel-exhausted before it gets there.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "worker: started")
  (data (i32.const 32) "worker: done")
  (func (export "main") (local $i i32)
    (drop (call $log (i32.const 0) (i32.const 15)))
    (loop $work
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $work (i32.lt_u (local.get $i) (i32.const 10000))))
    (drop (call $log (i32.const 32) (i32.const 12)))
    (call $exit (i32.const 0))))
