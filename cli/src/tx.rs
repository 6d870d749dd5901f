//! `aurigraph tx ...`: sign and submit a transfer (optionally waiting for its commit), look
//! up a transaction, an account or the head.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aurigraph_ledger::tx::{Address, Operation, Transaction};
use aurigraph_node::config::dev_key;
use serde_json::json;

use crate::args::TxCommand;
use crate::client::Client;

fn address(s: &str) -> Result<Address> {
    if let Some(i) = s.strip_prefix("dev:") {
        return Ok(dev_key(i.parse().context("dev:N takes a number")?).1);
    }
    Address::from_hex(s).context("[E_BAD_ADDRESS] an address is 64 hex characters or dev:N")
}

/// Runs a `tx` verb.
pub fn tx(cmd: &TxCommand) -> Result<()> {
    match cmd {
        TxCommand::Transfer {
            from_dev,
            to,
            amount,
            fee,
            nonce,
            chain_id,
            wait,
            node,
        } => {
            let c = Client::new(node)?;
            let (key, sender) = dev_key(*from_dev);
            let nonce = match nonce {
                Some(n) => *n,
                None => c.get(&format!("/v1/accounts/{}", sender.to_hex()))?["next_nonce"]
                    .as_u64()
                    .context("the node's account answer has no next_nonce")?,
            };
            let signed = Transaction {
                chain_id: *chain_id,
                sender,
                nonce,
                fee: *fee,
                op: Operation::Transfer {
                    to: address(to)?,
                    amount: *amount,
                },
            }
            .sign(&key);
            let v = c.post(
                "/v1/transactions",
                &json!(hex::encode(signed.encoded())),
                None,
            )?;
            let hash = signed.hash().to_string();
            println!("accepted {hash} (nonce {nonce})");
            let _ = v;
            if *wait {
                let started = Instant::now();
                loop {
                    let t = c.get(&format!("/v1/transactions/{hash}"))?;
                    if t["state"] == "committed" {
                        println!(
                            "committed in block {} : {} ({})",
                            t["block_height"], t["receipt"]["status"], t["receipt"]["code"]
                        );
                        break;
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        bail!("[E_TIMEOUT] {hash} did not commit within 30 s");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Ok(())
        }
        TxCommand::Submit { txs, node } => {
            let c = Client::new(node)?;
            let mut list = txs.clone();
            if list.is_empty() {
                for line in std::io::stdin().lines() {
                    let line = line?;
                    if !line.trim().is_empty() {
                        list.push(line.trim().to_string());
                    }
                }
            }
            let v = c.post("/v1/transactions", &json!({"transactions": list}), None)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        TxCommand::Get { hash, node } => {
            let v = Client::new(node)?.get(&format!("/v1/transactions/{hash}"))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        TxCommand::Account { address: a, node } => {
            let v = Client::new(node)?.get(&format!("/v1/accounts/{}", address(a)?.to_hex()))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
    }
}
