;; runaway: an infinite loop with no hypercall at all. Only preemption at slice ends and the
;; fuel quota stop it.
(module
  (func (export "main")
    (loop $forever (br $forever))))
