//! The training crate's integration tests, one test binary (`cargo test -p aurigraph-training
//! --test training`): each module is one area, in its own file.

mod exporter;
mod leader_health;
mod reproducible;
mod shipped_bytes;
mod slots;
