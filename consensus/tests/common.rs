//! What the consensus tests share: the chain, the cluster secret, the funded accounts and
//! their genesis, transfers between them, and the Raft timing of a test replica.

use aurigraph_ledger::state::Genesis;
use aurigraph_ledger::tx::{Address, Operation, Transaction, keypair_from_seed};
use ed25519_consensus::SigningKey;

pub(crate) const CHAIN: u32 = 7;
pub(crate) const SECRET: &str = "cluster-secret-for-the-tests-0123";

/// Four funded accounts.
pub(crate) fn accounts() -> Vec<(SigningKey, Address)> {
    (1..=4u8).map(|s| keypair_from_seed([s; 32])).collect()
}

/// The genesis funding [`accounts`] with 1,000,000 each.
pub(crate) fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN,
        allocations: accounts().iter().map(|(_, a)| (*a, 1_000_000)).collect(),
    }
}

/// Transfers of `amount` from each of the first `senders` accounts to the next, at `nonce`.
pub(crate) fn transfers(nonce: u64, senders: usize, amount: u64) -> Vec<Vec<u8>> {
    let accts = accounts();
    (0..senders)
        .map(|i| {
            let (key, sender) = &accts[i];
            Transaction {
                chain_id: CHAIN,
                sender: *sender,
                nonce,
                fee: 1,
                op: Operation::Transfer {
                    to: accts[(i + 1) % accts.len()].1,
                    amount,
                },
            }
            .sign(key)
            .encoded()
            .to_vec()
        })
        .collect()
}

/// Heartbeat 100 ms, elections 500 to 1,000 ms.
pub(crate) fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "aurigraph-test".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1_000,
        ..Default::default()
    }
}
