//! Start-up refusals: a database made for another genesis is refused with
//! `E_GENESIS_MISMATCH`, and the node opens it again with the genesis it was made with.

use std::path::Path;

use aurigraph_node::NodeConfig;
use aurigraph_node::node::startup;

fn config(dir: &Path, dev_balance: u64) -> NodeConfig {
    let mut c = NodeConfig {
        data_dir: dir.join("data"),
        ..NodeConfig::default()
    };
    c.admin.token = Some("startup-test-admin-token-0123".into());
    c.policies.models_dir = dir.join("models");
    c.policies.plugins_dir = dir.join("plugins");
    c.storage.sync = false;
    c.genesis.dev_balance = dev_balance;
    c
}

#[test]
fn a_database_of_another_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = startup::open(config(dir.path(), 1_000_000)).unwrap();
    let height = first.head().height;
    first.stop();
    drop(first);

    let err = startup::open(config(dir.path(), 2_000_000)).expect_err("another genesis is refused");
    assert_eq!(err.code(), "E_GENESIS_MISMATCH");
    let text = err.to_string();
    assert!(text.starts_with("[E_GENESIS_MISMATCH]"), "{text}");
    assert!(text.contains("another genesis"), "{text}");

    // Nothing was changed: the genesis it was made with still opens it.
    let again = startup::open(config(dir.path(), 1_000_000)).unwrap();
    assert_eq!(again.head().height, height);
}
