;; Asks for the incoming request's header names with out-pointers that
;; overlap (the array's address at 1, its length at 4), as the host-call fuzz
;; target did: the host used to read the array's address back from guest
;; memory, got one that the length had overwritten, and faulted reading past
;; the guest's memory. It answers "ok" if it is still running.
(module
  (import "env" "hostcall_req_get_headers" (func $get_headers (param i32 i32 i32)))
  (import "env" "hostcall_resp_set_body" (func $set_body (param i32 i32 i32) (result i32)))
  (memory 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "default_malloc_impl") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7))
                               (i32.const -8)))
    (local.get $p))
  (func (export "default_free_impl") (param i32))
  (func (export "run")
    (call $get_headers (i32.const 1) (i32.const 4) (i32.const 0))
    (i32.store16 (i32.const 100) (i32.const 0x6b6f)) ;; "ok"
    (drop (call $set_body (i32.const 0) (i32.const 100) (i32.const 2)))))
