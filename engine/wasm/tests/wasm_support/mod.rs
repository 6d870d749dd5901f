//! Shared by the WASM tests that write their plugins in WAT, and the lock that keeps the
//! tests that keep cores busy apart from each other and from the tests that measure
//! deadlines.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The module fields every hand-written test plugin starts with: one page of memory, a bump
/// allocator `$alloc` that grows the memory as needed, and the `cabi_realloc` export the
/// host passes the rows in through.
pub const BUMP_ALLOCATOR: &str = r#"  (memory (export "memory") 1)
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
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (call $alloc (local.get 3)))"#;

/// The machine's cores: a test that measures calls or decisions against a deadline holds it
/// shared ([`deadline_measured`]); a test that keeps a core busy up to its deadlines (busy
/// loops, a looping plugin) holds it exclusively ([`cores_busy`]), so it runs alone.
static CORES: RwLock<()> = RwLock::new(());

/// Holds the cores shared, for a test that measures against a deadline.
pub fn deadline_measured() -> RwLockReadGuard<'static, ()> {
    CORES.read().unwrap_or_else(PoisonError::into_inner)
}

/// Holds the cores exclusively, for a test that keeps a core busy up to its deadlines.
pub fn cores_busy() -> RwLockWriteGuard<'static, ()> {
    CORES.write().unwrap_or_else(PoisonError::into_inner)
}
