//! The decision core's integration tests, one test binary (`cargo test -p aurigraph-decision
//! --test decision`): each module is one area, in its own file.

mod canary_props;
mod conformance;
mod host;
mod invariants;
