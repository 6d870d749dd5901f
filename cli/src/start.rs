//! `aurigraph start`: runs a node until Ctrl-C or SIGTERM.

use anyhow::{Context, Result};
use aurigraph_node::{Node, NodeConfig};

use crate::args::StartArgs;

/// Runs `aurigraph start`.
pub fn run(args: &StartArgs) -> Result<()> {
    let mut config = NodeConfig::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    config.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("aurigraph-api")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let data_dir = config.data_dir.clone();
        let token_note = if config.admin.token.is_some() {
            "from the configuration".to_string()
        } else {
            format!("in {}", data_dir.join("admin.token").display())
        };
        let node = Node::start(config).await?;
        let head = node.core().head_info();
        println!(
            "aurigraph node: http://{} (gRPC aurigraph.v1 and HTTP /v1), chain {} at height {}, \
             data in {}; admin token {token_note}",
            node.addr(),
            head.chain_id,
            head.height,
            data_dir.display()
        );
        let halted = tokio::select! {
            _ = wait_for_signal() => None,
            msg = node.halted() => Some(msg),
        };
        println!("stopping...");
        node.shutdown().await;
        match halted {
            None => Ok(()),
            Some(msg) => Err(anyhow::anyhow!(
                "{msg}; block production halted and the node stopped"
            )),
        }
    })
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
