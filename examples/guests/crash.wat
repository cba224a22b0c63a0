;; crash: computes for a while, then stores far outside its linear memory and traps. The trap
;; faults its own VHM only.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "about to write outside my memory")
  (func (export "main")
    (local $i i32)
    (loop $work
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $work (i32.lt_u (local.get $i) (i32.const 50000))))
    (drop (call $log (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 0x7fff0000) (i32.const 1))))
