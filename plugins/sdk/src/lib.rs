//! # Aurigraph plugin SDK (guest side)
//!
//! Write one plain Rust function per slot and export them with [`export_plugin!`]:
//!
//! ```
//! use aurigraph_plugin_sdk::{Rows, export_plugin, schema::ordering};
//!
//! /// Highest fee density first.
//! fn by_fee_per_byte(rows: Rows<'_>) -> Vec<f32> {
//!     rows.iter().map(|r| r[ordering::FEE_PER_BYTE]).collect()
//! }
//!
//! export_plugin! {
//!     name: "fee-per-byte",
//!     version: "1.0.0",
//!     ordering: by_fee_per_byte,
//! }
//! # fn main() {}
//! ```
//!
//! Build the crate as a `cdylib` for `wasm32-unknown-unknown` (no WASI): the node loads the
//! resulting `.wasm` file. `../scripts/build-plugins` builds every plugin of this workspace.
//!
//! ## What a slot function gets and answers
//!
//! It gets the slot's feature matrix as [`Rows`] (one row per transaction for `ordering` and
//! `anomaly`, exactly one row for the other slots; columns in the order of [`schema`]) and
//! answers anything that implements [`IntoAnswer`]: a `Vec<f32>`, a single `f32` (for the
//! one-value slots), or a `Result` of either whose error becomes a per-decision fallback with
//! the message in the node's logs. Before a slot function runs, the SDK checks that the input
//! holds whole rows of exactly the slot's `FEATURE_COUNT` columns ([`schema`]); if not (a node
//! on another schema), it answers an error rather than letting the function index past a row.
//! A panic is a trap: the node's static policy answers that
//! decision. The node validates every answer (length, finite, range) the same way.
//!
//! ## What a plugin must not expect
//!
//! State: each call runs in a fresh instance, so globals never survive a call. Time, files,
//! network, randomness: a plugin imports nothing. Speed: each call has the slot's deadline
//! (e.g. 20 ms for `ordering`), enforced by the host, and a memory cap (64 MiB by default).
//!
//! ## The ABI underneath
//!
//! The exports are the canonical-ABI lowering of the WIT world in `plugins/wit/policy.wit`
//! (the same core exports `wit-bindgen` would generate): `memory`, `cabi_realloc`, `metadata`,
//! one function per slot named as in the WIT world (`ordering`, `batch-size`, ...) and its
//! `cabi_post_*` companion. [`export_plugin!`] writes them; a plugin author never sees them.

pub mod rank;
pub mod schema;

use std::fmt::Display;

/// The decision slots, in the order of the WIT `slot` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Slot {
    /// `ordering`.
    Ordering = 0,
    /// `batch-size`.
    BatchSize = 1,
    /// `leader-health`.
    LeaderHealth = 2,
    /// `anomaly`.
    Anomaly = 3,
    /// `demand`.
    Demand = 4,
}

/// A read-only view of a feature matrix: `len()` rows of `cols()` features, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    data: &'a [f32],
    cols: usize,
}

impl<'a> Rows<'a> {
    /// A view of `data` as rows of `cols` features; `None` unless `data` holds whole rows.
    pub fn new(data: &'a [f32], cols: usize) -> Option<Self> {
        (cols > 0 && data.len().is_multiple_of(cols)).then_some(Self { data, cols })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.cols
    }

    /// `true` when there is no row.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Features per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&'a [f32]> {
        self.data.get(i * self.cols..(i + 1) * self.cols)
    }

    /// The rows, in order.
    pub fn iter(&self) -> std::slice::ChunksExact<'a, f32> {
        self.data.chunks_exact(self.cols)
    }

    /// Column `c` of every row, in order (empty if `c` is out of range).
    pub fn column(&self, c: usize) -> impl ExactSizeIterator<Item = f32> + 'a {
        let take = if c < self.cols { self.len() } else { 0 };
        self.data
            .iter()
            .skip(c)
            .step_by(self.cols)
            .take(take)
            .copied()
    }

    /// The whole matrix, row-major.
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }
}

/// What a slot function may answer.
pub trait IntoAnswer {
    /// The values, or an error message that makes the node fall back for this decision.
    fn into_answer(self) -> Result<Vec<f32>, String>;
}

impl IntoAnswer for Vec<f32> {
    fn into_answer(self) -> Result<Vec<f32>, String> {
        Ok(self)
    }
}

impl IntoAnswer for f32 {
    fn into_answer(self) -> Result<Vec<f32>, String> {
        Ok(vec![self])
    }
}

impl<T: IntoAnswer, E: Display> IntoAnswer for Result<T, E> {
    fn into_answer(self) -> Result<Vec<f32>, String> {
        self.map_err(|e| e.to_string())
            .and_then(IntoAnswer::into_answer)
    }
}

/// Exports a plugin: its name, version and one function per slot it implements.
///
/// Slots are spelled as in the node (`ordering`, `batch_size`, `leader_health`, `anomaly`,
/// `demand`); each takes a function `fn(Rows<'_>) -> impl IntoAnswer`. The plugin declares,
/// for each slot, the schema version of this SDK's [`schema`] module. Use the macro once per
/// crate.
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, $($slot:ident : $f:path),+ $(,)?) => {
        /// Canonical-ABI allocator the host uses to pass arguments in.
        ///
        /// # Safety
        /// Called by the host only, with the canonical ABI's `realloc` contract.
        #[unsafe(export_name = "cabi_realloc")]
        pub unsafe extern "C" fn __aurigraph_cabi_realloc(
            old: *mut u8,
            old_size: usize,
            align: usize,
            new_size: usize,
        ) -> *mut u8 {
            // SAFETY: forwarded as is; the host follows the canonical ABI.
            unsafe { $crate::__private::realloc(old, old_size, align, new_size) }
        }

        /// The plugin's identity (WIT `metadata`).
        #[unsafe(export_name = "metadata")]
        pub extern "C" fn __aurigraph_metadata() -> *mut u8 {
            $crate::__private::metadata(
                $name,
                $version,
                &[$($crate::__slot_decl!($slot)),+],
            )
        }

        $( $crate::__export_slot!($slot, $f); )+
    };
}

/// Internal: the `(slot, schema version)` of a slot identifier.
#[doc(hidden)]
#[macro_export]
macro_rules! __slot_decl {
    (ordering) => {
        (
            $crate::Slot::Ordering,
            $crate::schema::ordering::SCHEMA_VERSION,
        )
    };
    (batch_size) => {
        (
            $crate::Slot::BatchSize,
            $crate::schema::batch_size::SCHEMA_VERSION,
        )
    };
    (leader_health) => {
        (
            $crate::Slot::LeaderHealth,
            $crate::schema::leader_health::SCHEMA_VERSION,
        )
    };
    (anomaly) => {
        (
            $crate::Slot::Anomaly,
            $crate::schema::anomaly::SCHEMA_VERSION,
        )
    };
    (demand) => {
        ($crate::Slot::Demand, $crate::schema::demand::SCHEMA_VERSION)
    };
}

/// Internal: the core exports of one slot.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_slot {
    (ordering, $f:path) => {
        $crate::__export_slot!(@ "ordering", "cabi_post_ordering", ordering, $f);
    };
    (batch_size, $f:path) => {
        $crate::__export_slot!(@ "batch-size", "cabi_post_batch-size", batch_size, $f);
    };
    (leader_health, $f:path) => {
        $crate::__export_slot!(@ "leader-health", "cabi_post_leader-health", leader_health, $f);
    };
    (anomaly, $f:path) => {
        $crate::__export_slot!(@ "anomaly", "cabi_post_anomaly", anomaly, $f);
    };
    (demand, $f:path) => {
        $crate::__export_slot!(@ "demand", "cabi_post_demand", demand, $f);
    };
    (@ $export:literal, $post:literal, $slot:ident, $f:path) => {
        const _: () = {
            /// The slot function (WIT export), canonical-ABI lowering.
            ///
            /// # Safety
            /// Called by the host only: `ptr` holds `len` floats it allocated with
            /// `cabi_realloc`.
            #[unsafe(export_name = $export)]
            pub unsafe extern "C" fn call(ptr: *mut f32, len: usize, rows: u32) -> *mut u8 {
                // SAFETY: the host passes a list it allocated with `cabi_realloc`.
                unsafe {
                    $crate::__private::call(
                        ptr,
                        len,
                        rows,
                        $crate::schema::$slot::FEATURE_COUNT,
                        |r| $crate::IntoAnswer::into_answer($f(r)),
                    )
                }
            }

            /// Frees what `call` returned.
            ///
            /// # Safety
            /// Called by the host only, once, with the pointer `call` returned.
            #[unsafe(export_name = $post)]
            pub unsafe extern "C" fn post(ret: *mut u8) {
                // SAFETY: `ret` is the return area `call` gave out.
                unsafe { $crate::__private::post_return(ret) }
            }
        };
    };
}

/// Internal glue of [`export_plugin!`]: the canonical-ABI lifting and lowering.
#[doc(hidden)]
pub mod __private {
    use std::alloc::{Layout, alloc, dealloc, realloc as grow};

    use super::{Rows, Slot};

    /// Canonical-ABI `realloc`. A zero-size request answers a dangling, aligned pointer.
    ///
    /// # Safety
    /// `old` must come from this function with `old_size` and `align`.
    pub unsafe fn realloc(old: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
        let Ok(layout) = Layout::from_size_align(new_size, align.max(1)) else {
            std::process::abort();
        };
        if new_size == 0 {
            return layout.align() as *mut u8;
        }
        let p = if old.is_null() || old_size == 0 {
            // SAFETY: the size is non-zero.
            unsafe { alloc(layout) }
        } else {
            // SAFETY: `old` was allocated by us with this alignment and `old_size`.
            unsafe {
                grow(
                    old,
                    Layout::from_size_align_unchecked(old_size, layout.align()),
                    new_size,
                )
            }
        };
        if p.is_null() {
            std::process::abort();
        }
        p
    }

    /// Leaks `v` and answers `(pointer, length)` as the canonical ABI lays out a list.
    fn leak<T>(v: Vec<T>) -> (u32, u32) {
        let b = v.into_boxed_slice();
        let len = b.len() as u32;
        (Box::into_raw(b) as *mut T as usize as u32, len)
    }

    /// Lowers `plugin-info`: three `(pointer, length)` pairs.
    pub fn metadata(name: &'static str, version: &'static str, slots: &[(Slot, u32)]) -> *mut u8 {
        let decls: Vec<[u32; 2]> = slots.iter().map(|&(s, v)| [s as u32, v]).collect();
        let (sp, sl) = leak(decls);
        let area = Box::new([
            name.as_ptr() as usize as u32,
            name.len() as u32,
            version.as_ptr() as usize as u32,
            version.len() as u32,
            sp,
            sl,
        ]);
        Box::into_raw(area) as *mut u8
    }

    /// Views `data` as `rows` rows of exactly `cols` features (the slot's
    /// `FEATURE_COUNT`), or says why it is not: a slot function may then index its columns
    /// by the [`schema`](crate::schema) constants without any bounds check failing.
    pub fn lift_rows(data: &[f32], rows: u32, cols: usize) -> Result<Rows<'_>, String> {
        let rows = rows as usize;
        if rows == 0 {
            return Err("no rows".to_string());
        }
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(format!(
                "expected {rows} rows of {cols} features ({} values), got {} values: the \
                 feature schema does not match this plugin's",
                rows.saturating_mul(cols),
                data.len()
            ));
        }
        Rows::new(data, cols).ok_or_else(|| "a slot has at least one feature".to_string())
    }

    /// Lifts the arguments of a slot function (checking the column count against `cols`),
    /// runs `f`, lowers its `result<list<f32>, string>` into a return area:
    /// `[discriminant, pointer, length]`. A shape that does not match answers an error (the
    /// node falls back for that decision), never a trap.
    ///
    /// # Safety
    /// `ptr` holds `len` floats allocated by [`realloc`] with alignment 4 (or is dangling
    /// when `len` is 0).
    pub unsafe fn call(
        ptr: *mut f32,
        len: usize,
        rows: u32,
        cols: usize,
        f: impl FnOnce(Rows<'_>) -> Result<Vec<f32>, String>,
    ) -> *mut u8 {
        let data = if len == 0 {
            Vec::new()
        } else {
            // SAFETY: the host allocated exactly `len` floats with `cabi_realloc` (align 4).
            unsafe { Vec::from_raw_parts(ptr, len, len) }
        };
        let answer = lift_rows(&data, rows, cols).and_then(f);
        let area = match answer {
            Ok(values) => {
                let (p, l) = leak(values);
                [0, p, l]
            }
            Err(message) => {
                let (p, l) = leak(message.into_bytes());
                [1, p, l]
            }
        };
        Box::into_raw(Box::new(area)) as *mut u8
    }

    /// Frees a return area of [`call`] and the list or string it points to.
    ///
    /// # Safety
    /// `ret` comes from [`call`] and is freed once.
    pub unsafe fn post_return(ret: *mut u8) {
        // SAFETY: `ret` is the boxed `[u32; 3]` that `call` leaked.
        let area = unsafe { Box::from_raw(ret as *mut [u32; 3]) };
        let [tag, p, l] = *area;
        let (size, align) = if tag == 0 {
            (l as usize * 4, 4)
        } else {
            (l as usize, 1)
        };
        if size > 0 {
            // SAFETY: a boxed slice of `l` elements that `call` leaked.
            unsafe {
                dealloc(
                    p as usize as *mut u8,
                    Layout::from_size_align_unchecked(size, align),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::__private::{call, lift_rows};
    use super::schema::ordering;

    #[test]
    fn rows_must_have_the_schema_column_count() {
        let data = vec![0.5f32; 2 * ordering::FEATURE_COUNT];
        let rows = lift_rows(&data, 2, ordering::FEATURE_COUNT).unwrap();
        assert_eq!((rows.len(), rows.cols()), (2, ordering::FEATURE_COUNT));
        // Whole rows, but of another width (the old code accepted them and the slot
        // function then indexed past the end of each row).
        let narrow = vec![0.5f32; 2 * 3];
        let e = lift_rows(&narrow, 2, ordering::FEATURE_COUNT).unwrap_err();
        assert!(e.contains("expected 2 rows of 9 features"), "{e}");
        assert!(lift_rows(&data, 3, ordering::FEATURE_COUNT).is_err());
        assert!(lift_rows(&data, 0, ordering::FEATURE_COUNT).is_err());
        assert!(lift_rows(&[], 1, ordering::FEATURE_COUNT).is_err());
        assert!(lift_rows(&data, u32::MAX, usize::MAX).is_err());
    }

    /// Reads the discriminant of a return area of `call`. (On a 64-bit host the area's
    /// pointers are truncated to 32 bits, so only the discriminant is meaningful here; the
    /// area is leaked, not freed.)
    fn discriminant(area: *mut u8) -> u32 {
        // SAFETY: `call` answers a boxed `[u32; 3]`.
        unsafe { (*(area as *const [u32; 3]))[0] }
    }

    fn call_with(values: Vec<f32>, rows: u32, ran: &mut bool) -> u32 {
        let len = values.len();
        let ptr = Box::into_raw(values.into_boxed_slice()) as *mut f32;
        // SAFETY: `ptr` holds exactly `len` floats from the global allocator.
        let area = unsafe {
            call(ptr, len, rows, ordering::FEATURE_COUNT, |r| {
                *ran = true;
                // Indexing by the schema is safe once the shape is checked.
                Ok(r.iter().map(|row| row[ordering::AGE_MS]).collect())
            })
        };
        discriminant(area)
    }

    #[test]
    fn a_wrong_column_count_answers_an_error_instead_of_panicking() {
        let mut ran = false;
        assert_eq!(
            call_with(vec![1.0; 4 * ordering::FEATURE_COUNT], 4, &mut ran),
            0
        );
        assert!(ran);
        // Four rows of two columns: an error answer (1), and the slot function never runs.
        let mut ran = false;
        assert_eq!(call_with(vec![1.0; 8], 4, &mut ran), 1);
        assert!(!ran);
        let mut ran = false;
        assert_eq!(call_with(vec![1.0; 10], 1, &mut ran), 1);
        assert!(!ran);
    }
}
