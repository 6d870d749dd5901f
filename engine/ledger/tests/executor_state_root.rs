//! The state root: independent of the shard count and of the path to a state, sensitive to
//! every balance and nonce, maintained incrementally as a full recompute would give.

use aurigraph_ledger::state::{Account, Genesis, ShardedState, StateRoot, StateView, compute_root};
use aurigraph_ledger::tx::Address;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn random_accounts(rng: &mut SmallRng, n: usize) -> Vec<(Address, Account)> {
    (0..n)
        .map(|i| {
            let mut a = [0u8; 32];
            rng.fill(&mut a[..]);
            if i % 5 == 0 {
                // Crowd a few buckets.
                a[0] = 7;
                a[1] = 7;
            }
            (
                Address(a),
                Account {
                    balance: rng.random_range(1..1_000_000),
                    nonce: rng.random_range(0..100),
                },
            )
        })
        .collect()
}

#[test]
fn root_does_not_depend_on_the_shard_count() {
    let mut rng = SmallRng::seed_from_u64(1);
    let accounts = random_accounts(&mut rng, 500);
    let genesis = Genesis {
        chain_id: 1,
        allocations: accounts.iter().map(|(a, acc)| (*a, acc.balance)).collect(),
    };
    let roots: Vec<StateRoot> = [1usize, 2, 7, 256, 1024, 65_536]
        .iter()
        .map(|&s| ShardedState::from_genesis(&genesis, s).unwrap().root())
        .collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]));
    let expected: Vec<(Address, Account)> = accounts
        .iter()
        .map(|(a, acc)| {
            (
                *a,
                Account {
                    balance: acc.balance,
                    nonce: 0,
                },
            )
        })
        .collect();
    assert_eq!(roots[0], compute_root(expected.iter().map(|(a, b)| (a, b))));
}

#[test]
fn root_does_not_depend_on_how_the_state_was_reached() {
    let mut rng = SmallRng::seed_from_u64(2);
    let accounts = random_accounts(&mut rng, 400);
    let mut direct = ShardedState::new(1, 256).unwrap();
    direct.apply(&accounts);

    // Another path: other shard count, shuffled order, detours through other values and
    // through deletion, in several blocks.
    let mut winding = ShardedState::new(1, 13).unwrap();
    let mut shuffled = accounts.clone();
    shuffled.shuffle(&mut rng);
    for chunk in shuffled.chunks(37) {
        let detour: Vec<_> = chunk
            .iter()
            .map(|(a, acc)| {
                (
                    *a,
                    Account {
                        balance: acc.balance + 1,
                        nonce: 0,
                    },
                )
            })
            .collect();
        winding.apply(&detour);
        let gone: Vec<_> = chunk
            .iter()
            .map(|(a, _)| (*a, Account::default()))
            .collect();
        winding.apply(&gone);
        winding.apply(chunk);
    }
    assert_eq!(direct.root(), winding.root());
    assert_eq!(direct.root(), direct.recompute_root());
    assert_eq!(direct.len(), winding.len());
}

#[test]
fn any_balance_or_nonce_change_changes_the_root() {
    let mut rng = SmallRng::seed_from_u64(3);
    let accounts = random_accounts(&mut rng, 300);
    let mut state = ShardedState::new(1, 64).unwrap();
    let base = state.apply(&accounts);
    let mut seen = std::collections::HashSet::new();
    seen.insert(base);
    for (a, acc) in accounts.iter().take(60) {
        let mut s = state.clone();
        let r1 = s.apply(&[(
            *a,
            Account {
                balance: acc.balance + 1,
                nonce: acc.nonce,
            },
        )]);
        assert!(seen.insert(r1));
        let r2 = s.apply(&[(
            *a,
            Account {
                balance: acc.balance,
                nonce: acc.nonce + 1,
            },
        )]);
        assert!(seen.insert(r2));
        assert_eq!(r2, s.recompute_root());
        // Back to the original value: back to the original root.
        assert_eq!(s.apply(&[(*a, *acc)]), base);
    }
    // A new account changes it too; removing it restores it.
    let fresh = Address([0xAB; 32]);
    let r = state.apply(&[(
        fresh,
        Account {
            balance: 1,
            nonce: 0,
        },
    )]);
    assert_ne!(r, base);
    assert_eq!(state.apply(&[(fresh, Account::default())]), base);
}

#[test]
fn incremental_root_matches_a_full_recompute() {
    let mut rng = SmallRng::seed_from_u64(4);
    let mut state = ShardedState::new(1, 256).unwrap();
    let mut pool = random_accounts(&mut rng, 600);
    state.apply(&pool);
    for _ in 0..30 {
        let writes: Vec<_> = (0..40)
            .map(|_| {
                let i = rng.random_range(0..pool.len());
                let acc = if rng.random_bool(0.2) {
                    Account::default()
                } else {
                    Account {
                        balance: rng.random(),
                        nonce: rng.random_range(0..10),
                    }
                };
                pool[i].1 = acc;
                (pool[i].0, acc)
            })
            .collect();
        let root = state.apply(&writes);
        assert_eq!(root, state.recompute_root());
    }
    for (a, acc) in &pool {
        assert_eq!(state.account(a), *acc);
    }
}

#[test]
fn genesis_sums_repeats_and_refuses_overflow() {
    let a = Address([1; 32]);
    let g = Genesis {
        chain_id: 9,
        allocations: vec![(a, 5), (a, 7), (Address([2; 32]), 0)],
    };
    let s = ShardedState::from_genesis(&g, 4).unwrap();
    assert_eq!(s.account(&a).balance, 12);
    assert_eq!(s.len(), 1);
    assert_eq!(s.chain_id(), 9);
    let bad = Genesis {
        chain_id: 9,
        allocations: vec![(a, u64::MAX), (a, 1)],
    };
    assert_eq!(
        ShardedState::from_genesis(&bad, 4).unwrap_err().code(),
        "E_STATE_GENESIS_OVERFLOW"
    );
    assert_eq!(
        ShardedState::new(1, 0).unwrap_err().code(),
        "E_STATE_SHARD_COUNT"
    );
    assert_eq!(ShardedState::new(1, 1).unwrap().root(), StateRoot::empty());
}

/// The batched read (`StateView::accounts`, overlapped lookups) answers exactly what one
/// `account` call per address answers: present and absent accounts, crowded buckets,
/// repeated addresses, any batch length, any shard count.
#[test]
fn batched_reads_equal_single_reads() {
    let mut rng = SmallRng::seed_from_u64(9);
    let accounts = random_accounts(&mut rng, 3_000);
    let genesis = Genesis {
        chain_id: 1,
        allocations: accounts.iter().map(|(a, acc)| (*a, acc.balance)).collect(),
    };
    for shards in [1usize, 3, 256] {
        let state = ShardedState::from_genesis(&genesis, shards).unwrap();
        for len in [0usize, 1, 15, 16, 17, 100, 2_000] {
            let mut addresses: Vec<Address> = (0..len / 2)
                .map(|_| accounts[rng.random_range(0..accounts.len())].0)
                .collect();
            addresses.extend(
                random_accounts(&mut rng, len - len / 2)
                    .iter()
                    .map(|(a, _)| *a),
            );
            if let Some(first) = addresses.first().copied() {
                addresses.push(first);
            }
            addresses.shuffle(&mut rng);
            let single: Vec<Account> = addresses.iter().map(|a| state.account(a)).collect();
            assert_eq!(
                state.accounts(&addresses),
                single,
                "shards {shards}, len {len}"
            );
            assert!(single.iter().any(|a| a.balance > 0) || len < 2);
        }
    }
}
