;; compute: a compute-bound guest that never stops on its own. It counts, and logs its progress
;; every 2^20 iterations so the trace shows how much CPU it got.
(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "progress: one more million iterations")
  (func (export "main")
    (local $i i64)
    (loop $spin
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (if (i64.eqz (i64.and (local.get $i) (i64.const 0xFFFFF)))
        (then (drop (call $log (i32.const 0) (i32.const 37)))))
      (br $spin))))
