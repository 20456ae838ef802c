;; A host-call guest that registers no allocator: host calls that return
;; data cannot, and say so in the app's log; the request still ends well.
(module
  (import "env" "hostcall_req_get_path" (func $get_path (param i32 i32 i32)))
  (import "env" "hostcall_resp_set_body" (func $set_body (param i32 i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 100) "no allocator")
  (func (export "run")
    (i32.store (i32.const 0) (i32.const 77))
    (call $get_path (i32.const 0) (i32.const 4) (i32.const 0))
    ;; the host wrote (0, 0)
    (if (i32.eqz (i32.or (i32.load (i32.const 0)) (i32.load (i32.const 4))))
      (then (drop (call $set_body (i32.const 0) (i32.const 100) (i32.const 12)))))))
