//! The ONNX backend's integration tests, one test binary (`cargo test -p aurigraph-onnx --test
//! onnx`): each module is one area, in its own file, and `onnx_support` holds the fixtures
//! and graph builders they share. The memory test (`onnx_memory.rs`) is a binary of its
//! own: it measures the resident memory of the whole process.

mod failing_candidate;
mod onnx;
mod onnx_memory_cap;
mod onnx_output_layouts;
mod onnx_registry;
mod onnx_shipped;
mod onnx_support;
