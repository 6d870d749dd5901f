//! The Raft RPCs between replicas: gRPC service `aurigraph.raft.v1.Raft`
//! (`proto/aurigraph/raft/v1/raft.proto`, tonic), served on the node's API address.
//!
//! - Client side: [`RaftNetwork`], openraft's network factory. It keeps one lazily connected
//!   channel per peer (made again when the peer's address changes) and sends openraft's
//!   requests postcard-encoded in a `RaftMessage`. A snapshot goes as a stream of
//!   [`SNAPSHOT_CHUNK_BYTES`]-sized chunks after a head carrying the vote and the meta.
//! - Server side: [`RaftService`], over anything that answers the RPCs ([`RaftHandler`],
//!   implemented for [`openraft::Raft`]); [`RaftService::into_router`] gives the axum routes.
//!
//! Every call carries the cluster secret in the metadata entry [`CLUSTER_SECRET_METADATA`].
//! The server compares it in constant time (BLAKE3 digests) and refuses a missing or wrong one
//! with UNAUTHENTICATED, code `E_CLUSTER_SECRET` in [`CODE_METADATA`]; a payload that does not
//! decode is INVALID_ARGUMENT, `E_RAFT_DECODE`. A server built with an empty secret refuses
//! every call.
//!
//! On the client, a peer that cannot be reached, refuses the secret or cannot read the request
//! is [`Unreachable`] (openraft backs off); a call cancelled or out of time is a
//! [`NetworkError`] (openraft retries).
//!
//! Fault injection, for tests and chaos runs only: a factory made by
//! [`RaftNetwork::with_faults`] asks a shared [`FaultyLinks`] before every RPC its replica
//! sends; a cut link (or a drawn loss) is [`Unreachable`] without sending anything, a delayed
//! link holds the RPC first. [`RaftNetwork::new`] has no faults.
//!
//! Not guarded here: openraft's `install_full_snapshot` panics on a snapshot at or below the
//! locally committed log id but inconsistent with it; the server refuses only a snapshot whose
//! last log id is beyond the sender's vote (`E_RAFT_SNAPSHOT`).

use std::collections::HashMap;
use std::future::Future;
use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use openraft::OptionalSend;
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::metadata::{AsciiMetadataValue, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::faults::{FaultyLinks, InjectedFault};
use crate::leadership::LinkStats;
use crate::types::{NodeId, NodeInfo, SnapshotMeta, TypeConfig, Vote};

/// The gRPC types and services generated from `proto/aurigraph/raft/v1/raft.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("aurigraph.raft.v1");
}

use proto::raft_client::RaftClient;
use proto::raft_server::RaftServer;
use proto::snapshot_chunk::Chunk;
use proto::{RaftMessage, SnapshotChunk};

/// The metadata entry that carries the cluster secret on every Raft call.
pub const CLUSTER_SECRET_METADATA: &str = "x-aurigraph-cluster-secret";
/// The metadata entry that carries the stable code of a refusal.
pub const CODE_METADATA: &str = "x-aurigraph-code";
/// The largest gRPC message either side encodes or decodes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// The largest snapshot data chunk the client sends.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A full snapshot whose data is `D`.
pub type Snapshot<D> = openraft::alias::SnapshotOf<TypeConfig, D>;

/// Snapshot data the network can send and rebuild as bytes. The state machine's
/// `SnapshotData` must implement it.
pub trait SnapshotBytes: Send + 'static {
    /// The snapshot's bytes.
    fn snapshot_bytes(&self) -> &[u8];
    /// The snapshot rebuilt from the bytes received.
    fn from_snapshot_bytes(bytes: Vec<u8>) -> Self;
}

impl SnapshotBytes for Cursor<Vec<u8>> {
    fn snapshot_bytes(&self) -> &[u8] {
        self.get_ref()
    }

    fn from_snapshot_bytes(bytes: Vec<u8>) -> Self {
        Cursor::new(bytes)
    }
}

impl SnapshotBytes for Vec<u8> {
    fn snapshot_bytes(&self) -> &[u8] {
        self
    }

    fn from_snapshot_bytes(bytes: Vec<u8>) -> Self {
        bytes
    }
}

/// Why a Raft call to a peer failed, on the client side.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RaftRpcError {
    /// The peer's address does not make a URI.
    #[error("[E_RAFT_PEER_ADDR] peer {target} has an unusable address {addr:?}: {reason}")]
    PeerAddr {
        /// The peer.
        target: NodeId,
        /// Its address as the membership has it.
        addr: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The cluster secret cannot travel as gRPC metadata.
    #[error(
        "[E_CLUSTER_SECRET] the cluster secret is not valid gRPC metadata (visible ASCII only)"
    )]
    SecretNotAscii,
    /// The request did not encode.
    #[error("[E_RAFT_ENCODE] the request did not encode: {0}")]
    Encode(String),
    /// The peer's answer did not decode.
    #[error("[E_RAFT_DECODE] the answer of peer {target} did not decode: {reason}")]
    Decode {
        /// The peer.
        target: NodeId,
        /// The decoder's error.
        reason: String,
    },
    /// The peer, or the transport, answered with a gRPC status other than OK.
    #[error("peer {target} ({addr}) answered {code:?}: {message}")]
    Status {
        /// The peer.
        target: NodeId,
        /// Its address.
        addr: String,
        /// The gRPC code.
        code: Code,
        /// The status message.
        message: String,
    },
}

impl RaftRpcError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Status {
                code: Code::Cancelled | Code::DeadlineExceeded | Code::Aborted,
                ..
            }
        )
    }

    fn into_rpc(self) -> RPCError<TypeConfig> {
        if self.is_transient() {
            RPCError::Network(NetworkError::new(&self))
        } else {
            RPCError::Unreachable(Unreachable::new(&self))
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig> {
        if self.is_transient() {
            StreamingError::Network(NetworkError::new(&self))
        } else {
            StreamingError::Unreachable(Unreachable::new(&self))
        }
    }
}

/// openraft's network factory over gRPC: one client per peer, sharing a cached channel per
/// peer. `D` is the state machine's snapshot data.
pub struct RaftNetwork<D = Cursor<Vec<u8>>> {
    secret: Option<AsciiMetadataValue>,
    channels: Arc<Mutex<HashMap<NodeId, (String, Channel)>>>,
    faults: Option<LinkFaults>,
    stats: Option<Arc<LinkStats>>,
    _data: PhantomData<fn() -> D>,
}

/// The injected faults a replica's clients check: the replica's id (the sending end of its
/// links) and the shared table.
type LinkFaults = (NodeId, Arc<FaultyLinks>);

impl<D: SnapshotBytes> RaftNetwork<D> {
    /// A factory whose calls carry `secret`. A secret that is not visible ASCII makes every
    /// call fail (`E_CLUSTER_SECRET`, Unreachable).
    pub fn new(secret: String) -> Self {
        Self {
            secret: AsciiMetadataValue::try_from(secret.as_str()).ok(),
            channels: Arc::new(Mutex::new(HashMap::new())),
            faults: None,
            stats: None,
            _data: PhantomData,
        }
    }

    /// The same factory, recording the round trip of every AppendEntries its clients send
    /// in `stats`.
    pub fn with_stats(mut self, stats: Arc<LinkStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// **Fault injection, for tests and chaos runs; never in a production config.** A factory
    /// as [`RaftNetwork::new`] makes, for the replica `from`, whose every RPC to a peer `to`
    /// first asks `faults` about the link `from -> to`: cut or lost, the RPC fails as
    /// [`Unreachable`] (code `E_FAULT_INJECTED`) and nothing is sent; delayed, it is held
    /// that long first.
    pub fn with_faults(secret: String, from: NodeId, faults: Arc<FaultyLinks>) -> Self {
        Self {
            faults: Some((from, faults)),
            ..Self::new(secret)
        }
    }

    fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, RaftRpcError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, channel)) = channels.get(&target)
            && known == addr
        {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| RaftRpcError::PeerAddr {
                target,
                addr: addr.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy();
        channels.insert(target, (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

impl<D: SnapshotBytes> RaftNetworkFactory<TypeConfig> for RaftNetwork<D> {
    type Network = RaftPeer<D>;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> RaftPeer<D> {
        let client = self.channel(target, &node.addr).map(|channel| {
            RaftClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
        });
        RaftPeer {
            target,
            addr: node.addr.clone(),
            client,
            secret: self.secret.clone(),
            faults: self.faults.clone(),
            stats: self.stats.clone(),
            _data: PhantomData,
        }
    }
}

/// The client of one peer, made by [`RaftNetwork`].
pub struct RaftPeer<D> {
    target: NodeId,
    addr: String,
    client: Result<RaftClient<Channel>, RaftRpcError>,
    secret: Option<AsciiMetadataValue>,
    faults: Option<LinkFaults>,
    stats: Option<Arc<LinkStats>>,
    _data: PhantomData<fn() -> D>,
}

#[derive(Clone, Copy)]
enum Unary {
    AppendEntries,
    Vote,
    PreVote,
    TransferLeader,
}

impl<D> RaftPeer<D> {
    fn request<T>(&self, message: T) -> Result<Request<T>, RaftRpcError> {
        let secret = self.secret.clone().ok_or(RaftRpcError::SecretNotAscii)?;
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(CLUSTER_SECRET_METADATA, secret);
        Ok(request)
    }

    fn status(&self, status: &Status) -> RaftRpcError {
        RaftRpcError::Status {
            target: self.target,
            addr: self.addr.clone(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    fn decode<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, RaftRpcError> {
        decode_exact(payload).map_err(|reason| RaftRpcError::Decode {
            target: self.target,
            reason,
        })
    }

    /// The injected fault on the link to the target, if any: `Err` when it is cut or drops
    /// this RPC, else `Ok` after the link's delay (a link cut meanwhile drops the RPC).
    async fn injected_fault(&self) -> Result<(), InjectedFault> {
        let Some((from, faults)) = &self.faults else {
            return Ok(());
        };
        let delay = faults.check(*from, self.target)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            if faults.is_cut(*from, self.target) {
                return Err(InjectedFault::Cut {
                    from: *from,
                    to: self.target,
                });
            }
        }
        Ok(())
    }

    /// A unary RPC, after the injected faults.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        rpc: Unary,
        req: &Req,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let started = std::time::Instant::now();
        self.injected_fault()
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let answer = self.unary(rpc, req).await.map_err(RaftRpcError::into_rpc)?;
        if let (Unary::AppendEntries, Some(stats)) = (rpc, &self.stats) {
            stats.record_rtt(self.target, started.elapsed());
        }
        Ok(answer)
    }

    async fn unary<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        rpc: Unary,
        req: &Req,
    ) -> Result<Resp, RaftRpcError> {
        let payload =
            postcard::to_allocvec(req).map_err(|e| RaftRpcError::Encode(e.to_string()))?;
        let request = self.request(RaftMessage { payload })?;
        let mut client = self.client.clone()?;
        let answer = match rpc {
            Unary::AppendEntries => client.append_entries(request).await,
            Unary::Vote => client.vote(request).await,
            Unary::PreVote => client.pre_vote(request).await,
            Unary::TransferLeader => client.transfer_leader(request).await,
        }
        .map_err(|s| self.status(&s))?;
        self.decode(&answer.into_inner().payload)
    }
}

impl<D: SnapshotBytes> RaftNetworkV2<TypeConfig> for RaftPeer<D> {
    type SnapshotData = D;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Unary::AppendEntries, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Unary::Vote, &rpc).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Unary::PreVote, &rpc).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<D>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut cancel = std::pin::pin!(cancel);
        if self.faults.is_some() {
            tokio::select! {
                fault = self.injected_fault() => {
                    fault.map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?;
                }
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            }
        }
        let chunk_size = option
            .snapshot_chunk_size()
            .unwrap_or(SNAPSHOT_CHUNK_BYTES)
            .clamp(1, SNAPSHOT_CHUNK_BYTES);
        let head = postcard::to_allocvec(&(&vote, &snapshot.meta))
            .map_err(|e| RaftRpcError::Encode(e.to_string()).into_streaming())?;
        let head = SnapshotChunk {
            chunk: Some(Chunk::Head(head)),
        };
        let data = futures_util::stream::unfold((snapshot.snapshot, 0usize), move |(data, at)| {
            let bytes = data.snapshot_bytes();
            let next = if at < bytes.len() {
                let end = at.saturating_add(chunk_size).min(bytes.len());
                let chunk = SnapshotChunk {
                    chunk: Some(Chunk::Data(bytes[at..end].to_vec())),
                };
                Some((chunk, (data, end)))
            } else {
                None
            };
            std::future::ready(next)
        });
        let chunks = futures_util::stream::iter([head]).chain(data);
        let request = self.request(chunks).map_err(RaftRpcError::into_streaming)?;
        let mut client = self.client.clone().map_err(RaftRpcError::into_streaming)?;
        let answer = tokio::select! {
            answer = client.install_snapshot(request) => answer,
            closed = &mut cancel => return Err(StreamingError::Closed(closed)),
        };
        let answer = answer.map_err(|s| self.status(&s).into_streaming())?;
        self.decode(&answer.into_inner().payload)
            .map_err(RaftRpcError::into_streaming)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Unary::TransferLeader, &req).await
    }
}

/// Postcard-decodes `payload`, refusing bytes left over.
fn decode_exact<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes::<T>(payload).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} bytes left over", rest.len()))
    }
}

/// What the server hands the decoded RPCs to: a replica's Raft.
pub trait RaftHandler: Send + Sync + 'static {
    /// The state machine's snapshot data.
    type SnapshotData: SnapshotBytes;

    /// Handles an AppendEntries RPC.
    fn append_entries(
        &self,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> impl Future<Output = Result<AppendEntriesResponse<TypeConfig>, Fatal<TypeConfig>>> + Send;

    /// Handles a Vote RPC.
    fn vote(
        &self,
        req: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>>> + Send;

    /// Handles a PreVote RPC.
    fn pre_vote(
        &self,
        req: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>>> + Send;

    /// Installs a full snapshot received from the leader whose vote is `vote`.
    fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot<Self::SnapshotData>,
    ) -> impl Future<Output = Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>>> + Send;

    /// Handles a TransferLeader RPC.
    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> impl Future<Output = Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>>> + Send;
}

impl<SM> RaftHandler for openraft::Raft<TypeConfig, SM>
where
    SM: RaftStateMachine<TypeConfig>,
    SM::SnapshotData: SnapshotBytes,
{
    type SnapshotData = SM::SnapshotData;

    async fn append_entries(
        &self,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, Fatal<TypeConfig>> {
        openraft::Raft::append_entries(self, req)
            .await
            .map_err(RaftError::unwrap_fatal)
    }

    async fn vote(
        &self,
        req: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>> {
        openraft::Raft::vote(self, req)
            .await
            .map_err(RaftError::unwrap_fatal)
    }

    async fn pre_vote(
        &self,
        req: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>> {
        openraft::Raft::pre_vote(self, req)
            .await
            .map_err(RaftError::unwrap_fatal)
    }

    async fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot<SM::SnapshotData>,
    ) -> Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> {
        openraft::Raft::install_full_snapshot(self, vote, snapshot).await
    }

    async fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>> {
        openraft::Raft::handle_transfer_leader(self, req).await
    }
}

/// The server side of `aurigraph.raft.v1.Raft`: checks the cluster secret, decodes the
/// request and hands it to the [`RaftHandler`].
pub struct RaftService<H> {
    raft: H,
    secret: Option<blake3::Hash>,
    stats: Option<Arc<LinkStats>>,
    inbound: Option<(NodeId, Arc<FaultyLinks>)>,
}

impl<H: RaftHandler> RaftService<H> {
    /// The service over `raft`, accepting calls that carry `secret` (none if it is empty).
    pub fn new(raft: H, secret: String) -> Self {
        let secret = (!secret.is_empty()).then(|| blake3::hash(secret.as_bytes()));
        Self {
            raft,
            secret,
            stats: None,
            inbound: None,
        }
    }

    /// The same service, recording the arrival of every AppendEntries it accepts in `stats`.
    pub fn with_stats(mut self, stats: Arc<LinkStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// **Fault injection, for tests and chaos runs; never in a production config.** The same
    /// service, refusing every call (`E_FAULT_INJECTED`, unavailable) while `faults` blocks the
    /// inbound links of replica `me` ([`FaultyLinks::block_inbound`]).
    pub fn with_faults(mut self, me: NodeId, faults: Arc<FaultyLinks>) -> Self {
        self.inbound = Some((me, faults));
        self
    }

    /// The tonic service, with the message size limits at [`MAX_MESSAGE_BYTES`].
    pub fn into_server(self) -> RaftServer<Self> {
        RaftServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The service as axum routes (`/aurigraph.raft.v1.Raft/*`), to merge into the node's router.
    pub fn into_router(self) -> axum::Router {
        let path = format!(
            "/{}/{{*rest}}",
            <RaftServer<Self> as tonic::server::NamedService>::NAME
        );
        axum::Router::new().route_service(&path, self.into_server())
    }

    fn authorize(&self, metadata: &MetadataMap) -> Result<(), Status> {
        if let Some((me, faults)) = &self.inbound
            && faults.inbound_blocked(*me)
        {
            return Err(refusal(
                Code::Unavailable,
                "E_FAULT_INJECTED",
                format!("replica {me}'s inbound links are blocked by an injected fault"),
            ));
        }
        let given = metadata.get(CLUSTER_SECRET_METADATA).map(|v| v.as_bytes());
        match (given, &self.secret) {
            (Some(given), Some(expected)) if blake3::hash(given) == *expected => Ok(()),
            (None, _) => Err(refusal(
                Code::Unauthenticated,
                "E_CLUSTER_SECRET",
                format!("the call carries no {CLUSTER_SECRET_METADATA}"),
            )),
            _ => Err(refusal(
                Code::Unauthenticated,
                "E_CLUSTER_SECRET",
                format!("the {CLUSTER_SECRET_METADATA} is not this cluster's"),
            )),
        }
    }
}

/// A status with message `[code] message` and `code` in [`CODE_METADATA`].
fn refusal(grpc: Code, code: &'static str, message: String) -> Status {
    let mut status = Status::new(grpc, format!("[{code}] {message}"));
    status
        .metadata_mut()
        .insert(CODE_METADATA, MetadataValue::from_static(code));
    status
}

fn decode_request<T: DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, Status> {
    decode_exact(payload).map_err(|e| {
        refusal(
            Code::InvalidArgument,
            "E_RAFT_DECODE",
            format!("the {what} did not decode: {e}"),
        )
    })
}

fn reply<T: Serialize>(
    answer: Result<T, Fatal<TypeConfig>>,
) -> Result<Response<RaftMessage>, Status> {
    let answer = answer.map_err(|e| {
        refusal(
            Code::Unavailable,
            "E_RAFT_FATAL",
            format!("this replica's Raft has stopped: {e}"),
        )
    })?;
    let payload = postcard::to_allocvec(&answer).map_err(|e| {
        refusal(
            Code::Internal,
            "E_RAFT_ENCODE",
            format!("the answer did not encode: {e}"),
        )
    })?;
    Ok(Response::new(RaftMessage { payload }))
}

#[tonic::async_trait]
impl<H: RaftHandler> proto::raft_server::Raft for RaftService<H> {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(request.metadata())?;
        let req = decode_request(&request.get_ref().payload, "AppendEntriesRequest")?;
        if let Some(stats) = &self.stats {
            stats.record_arrival();
        }
        reply(self.raft.append_entries(req).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.authorize(request.metadata())?;
        let req = decode_request(&request.get_ref().payload, "VoteRequest")?;
        reply(self.raft.vote(req).await)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(request.metadata())?;
        let req = decode_request(&request.get_ref().payload, "VoteRequest")?;
        reply(self.raft.pre_vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(request.metadata())?;
        let mut chunks = request.into_inner();
        let head = match chunks.message().await? {
            Some(SnapshotChunk {
                chunk: Some(Chunk::Head(head)),
            }) => head,
            _ => {
                return Err(refusal(
                    Code::InvalidArgument,
                    "E_RAFT_DECODE",
                    "the snapshot stream does not start with its head".to_string(),
                ));
            }
        };
        let (vote, meta): (Vote, SnapshotMeta) = decode_request(&head, "snapshot head")?;
        if let Some(last) = &meta.last_log_id
            && last.leader_id > vote.leader_id
        {
            return Err(refusal(
                Code::InvalidArgument,
                "E_RAFT_SNAPSHOT",
                format!("the snapshot's last log id {last} is beyond the sender's vote {vote}"),
            ));
        }
        let mut data = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            match chunk.chunk {
                Some(Chunk::Data(bytes)) => data.extend_from_slice(&bytes),
                _ => {
                    return Err(refusal(
                        Code::InvalidArgument,
                        "E_RAFT_DECODE",
                        "a snapshot chunk after the head is not data".to_string(),
                    ));
                }
            }
        }
        let snapshot = Snapshot {
            meta,
            snapshot: H::SnapshotData::from_snapshot_bytes(data),
        };
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(request.metadata())?;
        let req = decode_request(&request.get_ref().payload, "TransferLeaderRequest")?;
        reply(self.raft.transfer_leader(req).await)
    }
}
