//! The storage crate's integration tests, one test binary (`cargo test -p aurigraph-storage
//! --test storage`): each module is one area, in its own file.

mod block_decode_fuzz;
mod storage;
