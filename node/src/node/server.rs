//! [`Node`]: a started node: the producer thread, the models and plugins watchers, and the
//! API server (gRPC and REST on one address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{NodeCore, producer, startup};
use crate::config::NodeConfig;
use crate::error::{NodeError, NodeResult};

/// A running node: block production, folder watchers and the API server.
pub struct Node {
    core: Arc<NodeCore>,
    producer: Option<JoinHandle<()>>,
    _watchers: Vec<Box<dyn std::any::Any + Send>>,
    server: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the node and starts everything; the server listens on `config.listen` (port 0
    /// takes a free port: see [`addr`](Self::addr)). Call inside a tokio runtime.
    pub async fn start(config: NodeConfig) -> NodeResult<Self> {
        Self::start_with_log(config, Box::new(aurigraph_consensus::SingleNodeLog)).await
    }

    /// [`start`](Self::start) with another block log (see [`startup::open_with_log`]).
    pub async fn start_with_log(
        config: NodeConfig,
        log: Box<dyn aurigraph_consensus::BlockLog>,
    ) -> NodeResult<Self> {
        let listen = config.listen;
        let core = tokio::task::spawn_blocking(move || startup::open_with_log(config, log))
            .await
            .map_err(|e| NodeError::Startup(format!("start-up panicked: {e}")))??;
        let listen_error = |e| NodeError::Io {
            code: "E_LISTEN",
            what: format!("cannot listen on {listen}"),
            source: e,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        // A replica's Raft is attached before the producer starts, so the producer never
        // takes a cluster node for a node alone.
        let raft_routes = super::cluster::start(&core).await?;
        let producer = {
            let core = core.clone();
            std::thread::Builder::new()
                .name("aurigraph-producer".into())
                .spawn(move || producer::run(core))
                .map_err(|e| NodeError::io("cannot start the producer thread", e))?
        };
        let mut watchers: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        let every = Duration::from_millis(core.config.policies.watch_interval_ms.max(100));
        if let Some(m) = &core.registries.models {
            watchers.push(Box::new(
                m.watch(every, |rep| {
                    for key in &rep.loaded {
                        tracing::info!(model = %key, "model registered as a candidate version");
                    }
                })
                .map_err(|e| NodeError::io("cannot start the models watcher", e))?,
            ));
        }
        if let Some(p) = &core.registries.plugins {
            watchers.push(Box::new(
                p.watch(every, |rep| {
                    for key in &rep.loaded {
                        tracing::info!(plugin = %key, "plugin registered as a candidate version");
                    }
                })
                .map_err(|e| NodeError::io("cannot start the plugins watcher", e))?,
            ));
        }
        // The closed loop's driver (idle unless a retrain runs or `[retrain]` is on).
        watchers
            .push(Box::new(crate::retrain::spawn(&core).map_err(|e| {
                NodeError::io("cannot start the retrain driver", e)
            })?));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut app = crate::api::router(core.clone());
        if let Some(r) = raft_routes {
            app = app.merge(r);
        }
        let server = tokio::spawn(async move {
            // No Nagle delay: small gRPC answers otherwise wait for the client's delayed ACK
            // (about 40 ms each).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "server stopped");
            }
        });
        tracing::info!(%addr, "aurigraph node serving gRPC and HTTP");
        Ok(Self {
            core,
            producer: Some(producer),
            _watchers: watchers,
            server: Some(server),
            shutdown: Some(tx),
            addr,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's parts.
    pub fn core(&self) -> &Arc<NodeCore> {
        &self.core
    }

    /// Resolves when block production halts for good (a fatal failure, or more failures in a
    /// row than `block.retry_limit`), with the error as `[CODE] message`. Pending forever
    /// while the node runs.
    pub async fn halted(&self) -> String {
        let mut rx = self.core.halted();
        loop {
            if let Some(msg) = rx.borrow_and_update().clone() {
                return msg;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Stops the server, then block production; returns once both have stopped.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        self.core.stop();
        if let Some(p) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || p.join()).await;
        }
        self.core.stop_replica().await;
        self.core.flush_telemetry();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.core.stop();
    }
}
