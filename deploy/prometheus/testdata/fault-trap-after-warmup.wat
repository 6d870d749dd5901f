;; FAULT-INJECTION FIXTURE, not a policy: deploy/check-prometheus.sh loads it as the `ordering`
;; candidate of a live node to make the rollout guard roll it back (AurigraphGuardRollback).
;; It answers the host's warm-up (golden inputs of 1, 7 and 64 rows) with zeros, so it is
;; accepted as a candidate, and traps (`unreachable`) on every batch of any other size, i.e.
;; on the node's real blocks. Core-module ABI: engine/wasm/src/abi.rs.
;; Rebuild fault-trap-after-warmup.wasm with ./gen-fault-plugin.sh after editing.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (param $size i32) (result i32) (local $p i32) (local $end i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $size)))
    (global.set $heap (local.get $end))
    (block $ok
      (br_if $ok (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $ok (i32.ne (i32.const -1) (memory.grow (i32.add (i32.const 1) (i32.shr_u
        (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16))))))
      unreachable)
    (local.get $p))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (call $alloc (local.get 3)))
  ;; plugin-info: name (23 bytes at 64), version (5 bytes at 96), one slot-decl at 112
  ;; (slot 0 = ordering, schema version 1); the record itself at 128.
  (data (i32.const 64) "fault-trap-after-warmup")
  (data (i32.const 96) "1.0.0")
  (data (i32.const 112) "\00\00\00\00\01\00\00\00")
  (data (i32.const 128) "\40\00\00\00\17\00\00\00\60\00\00\00\05\00\00\00\70\00\00\00\01\00\00\00")
  (func (export "metadata") (result i32) (i32.const 128))
  ;; ordering: result<list<f32>, string> at 160 = ok([0.0; rows]) (each call gets a fresh
  ;; instance, so the allocated list is zeroed), unless rows is not a warm-up size: then it traps.
  (func (export "ordering") (param $ptr i32) (param $len i32) (param $rows i32) (result i32)
    (local $out i32)
    (if (i32.and (i32.and (i32.ne (local.get $rows) (i32.const 1))
                          (i32.ne (local.get $rows) (i32.const 7)))
                 (i32.ne (local.get $rows) (i32.const 64)))
      (then unreachable))
    (local.set $out (call $alloc (i32.shl (local.get $rows) (i32.const 2))))
    (i32.store (i32.const 160) (i32.const 0))
    (i32.store (i32.const 164) (local.get $out))
    (i32.store (i32.const 168) (local.get $rows))
    (i32.const 160)))
