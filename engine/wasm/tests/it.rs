//! The WASM backend's integration tests, one test binary (`cargo test -p aurigraph-wasm --test
//! wasm`): each module is one area, in its own file, and `wasm_support` holds what the
//! hand-written WAT plugins share.

mod failing_candidate;
mod wasm;
mod wasm_misbehave;
mod wasm_registry;
mod wasm_support;
