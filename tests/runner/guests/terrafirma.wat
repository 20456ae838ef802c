;; A guest in the style of Terrafirma's prebuilt modules: it never calls
;; hostcall_init_mm, and exports default_malloc_impl and default_free_impl,
;; which the host uses instead. It answers with the request's method and
;; path, read through the host calls.
(module
  (import "env" "hostcall_req_get_method" (func $get_method (param i32 i32 i32)))
  (import "env" "hostcall_req_get_path" (func $get_path (param i32 i32 i32)))
  (import "env" "hostcall_resp_set_body" (func $set_body (param i32 i32 i32) (result i32)))
  (import "env" "hostcall_resp_set_response_code" (func $set_code (param i32 i32) (result i32)))
  (memory 2)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "default_malloc_impl") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7))
                               (i32.const -8)))
    (local.get $p))
  (func (export "default_free_impl") (param i32))
  (func (export "run")
    ;; method: ptr at 0, len at 4; path: ptr at 8, len at 12
    (call $get_method (i32.const 0) (i32.const 4) (i32.const 0))
    (call $get_path (i32.const 8) (i32.const 12) (i32.const 0))
    ;; copy "METHOD PATH" to 1024
    (memory.copy (i32.const 1024) (i32.load (i32.const 0)) (i32.load (i32.const 4)))
    (i32.store8 (i32.add (i32.const 1024) (i32.load (i32.const 4))) (i32.const 32))
    (memory.copy (i32.add (i32.const 1025) (i32.load (i32.const 4)))
                 (i32.load (i32.const 8)) (i32.load (i32.const 12)))
    (drop (call $set_code (i32.const 0) (i32.const 202)))
    (drop (call $set_body (i32.const 0) (i32.const 1024)
      (i32.add (i32.add (i32.load (i32.const 4)) (i32.load (i32.const 12))) (i32.const 1))))))
