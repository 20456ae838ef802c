;; Host calls reached through the guest's function table (as a function
;; pointer to an import would be): they must act for this guest, exactly as
;; direct calls do. Globals fill the instance with values the guest chose.
(module
  (import "env" "hostcall_debug" (func $debug (param i32 i32)))
  (import "env" "hostcall_resp_set_body" (func $set_body (param i32 i32 i32) (result i32)))
  (type $dbg_t (func (param i32 i32)))
  (type $body_t (func (param i32 i32 i32) (result i32)))
  (global $g0 (mut i64) (i64.const 0x4141414141414141))
  (global $g1 (mut i64) (i64.const 0x4242424242424242))
  (table 2 funcref)
  (elem (i32.const 0) $debug $set_body)
  (memory 1)
  (data (i32.const 16) "through the table")
  (func (export "run")
    (global.set $g0 (i64.const -1))
    (global.set $g1 (global.get $g0))
    (call_indirect (type $dbg_t) (i32.const 16) (i32.const 17) (i32.load (i32.const 0)))
    (drop (call_indirect (type $body_t) (i32.const 0) (i32.const 16) (i32.const 17)
      (i32.add (i32.load (i32.const 0)) (i32.const 1))))))
