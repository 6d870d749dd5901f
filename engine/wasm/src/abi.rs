//! The core-module ABI: the canonical-ABI lowering of the WIT world `plugins/wit/policy.wit`.
//!
//! | export | core type | WIT |
//! |---|---|---|
//! | `memory` | memory (32-bit) | the guest's linear memory |
//! | `cabi_realloc` | `(old_ptr, old_size, align, new_size: i32) -> i32` | canonical allocator |
//! | `metadata` | `() -> i32` | `func() -> plugin-info` |
//! | `ordering`, `batch-size`, `leader-health`, `anomaly`, `demand` | `(ptr, len, rows: i32) -> i32` | `func(features: list<f32>, rows: u32) -> result<list<f32>, string>` |
//! | `cabi_post_<slot>` (optional) | `(ret: i32)` | frees a slot function's answer |
//!
//! Return areas (little-endian, 4-byte aligned):
//! - `plugin-info`: `name.ptr, name.len, version.ptr, version.len, slots.ptr, slots.len`
//!   (24 bytes); each `slot-decl` is 8 bytes: the `slot` enum as a byte (then padding) and
//!   the `schema-version` as `u32`.
//! - `result<list<f32>, string>`: discriminant byte (0 = ok, 1 = error), padding, then
//!   `ptr, len` of the list or of the UTF-8 message (12 bytes).

use aurigraph_decision::slot::SlotKind;

use super::sandbox::{slice, u32_at};

/// Export name of the linear memory.
pub const MEMORY: &str = "memory";
/// Export name of the canonical allocator.
pub const REALLOC: &str = "cabi_realloc";
/// Export name of the metadata function.
pub const METADATA: &str = "metadata";

/// Longest name or version accepted, in bytes.
const MAX_LABEL: u32 = 64;
/// Longest error message read from a plugin, in bytes (longer ones are cut).
const MAX_MESSAGE: u32 = 1024;

/// Export name of a slot's function (the WIT name).
pub fn export_name(slot: SlotKind) -> &'static str {
    match slot {
        SlotKind::Ordering => "ordering",
        SlotKind::BatchSize => "batch-size",
        SlotKind::LeaderHealth => "leader-health",
        SlotKind::Anomaly => "anomaly",
        SlotKind::Demand => "demand",
    }
}

/// The slot of a WIT `slot` enum discriminant.
fn slot_of(discriminant: u32) -> Option<SlotKind> {
    match discriminant {
        0 => Some(SlotKind::Ordering),
        1 => Some(SlotKind::BatchSize),
        2 => Some(SlotKind::LeaderHealth),
        3 => Some(SlotKind::Anomaly),
        4 => Some(SlotKind::Demand),
        _ => None,
    }
}

fn label(mem: &[u8], ptr: u32, len: u32, what: &str) -> Result<String, String> {
    if len == 0 || len > MAX_LABEL {
        return Err(format!("{what} must be 1 to {MAX_LABEL} bytes, got {len}"));
    }
    let bytes = slice(mem, ptr, len, 1).ok_or_else(|| format!("{what} is out of bounds"))?;
    let s = std::str::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))?;
    if s.chars().any(char::is_control) {
        return Err(format!("{what} holds control characters"));
    }
    Ok(s.to_string())
}

/// The WIT `plugin-info` record, lifted.
pub(crate) struct PluginInfo {
    /// Name.
    pub(crate) name: String,
    /// Version.
    pub(crate) version: String,
    /// Claimed slots with their schema versions.
    pub(crate) slots: Vec<(SlotKind, u32)>,
}

/// Lifts the `plugin-info` record at `ret`: name, version and the claimed slots.
pub(crate) fn lift_plugin_info(mem: &[u8], ret: u32) -> Result<PluginInfo, String> {
    let area = slice(mem, ret, 6, 4).ok_or("the return area is out of bounds or unaligned")?;
    let word = |i: usize| u32_at(area, i * 4).unwrap_or(0);
    let name = label(mem, word(0), word(1), "name")?;
    let version = label(mem, word(2), word(3), "version")?;
    let count = word(5);
    if count == 0 || count as usize > SlotKind::ALL.len() {
        return Err(format!("declares {count} slots, expected 1 to 5"));
    }
    let decls = slice(mem, word(4), count * 2, 4).ok_or("the slot list is out of bounds")?;
    let mut slots: Vec<(SlotKind, u32)> = Vec::new();
    for d in decls.chunks_exact(8) {
        let tag = d.first().copied().unwrap_or(u8::MAX);
        let slot = slot_of(u32::from(tag)).ok_or_else(|| format!("unknown slot number {tag}"))?;
        let version = u32_at(d, 4).unwrap_or(0);
        if slots.iter().any(|(s, _)| *s == slot) {
            return Err(format!("declares `{slot}` twice"));
        }
        slots.push((slot, version));
    }
    Ok(PluginInfo {
        name,
        version,
        slots,
    })
}

/// The answer of a slot function, lifted from its return area.
pub(crate) enum Answer<'m> {
    /// `ok(list<f32>)`: the raw little-endian bytes of the list.
    Values(&'m [u8]),
    /// `error(string)`: the message (cut to a bounded length).
    Error(String),
}

/// Lifts the `result<list<f32>, string>` at `ret`.
pub(crate) fn lift_answer(mem: &[u8], ret: u32) -> Result<Answer<'_>, String> {
    let area = slice(mem, ret, 3, 4).ok_or("the return area is out of bounds or unaligned")?;
    let tag = area.first().copied().unwrap_or(u8::MAX);
    let (ptr, len) = (u32_at(area, 4).unwrap_or(0), u32_at(area, 8).unwrap_or(0));
    match tag {
        0 => slice(mem, ptr, len, 4)
            .map(Answer::Values)
            .ok_or_else(|| format!("the answer ({len} values at {ptr:#x}) is out of bounds")),
        1 => {
            let cut = len.min(MAX_MESSAGE);
            let bytes = slice(mem, ptr, cut, 1).ok_or("the error message is out of bounds")?;
            Ok(Answer::Error(String::from_utf8_lossy(bytes).into_owned()))
        }
        other => Err(format!("bad result discriminant {other}")),
    }
}
