//! The Raft RPCs over gRPC: a real tonic server (axum, 127.0.0.1:0) over a recording
//! [`RaftHandler`], reached through [`RaftNetwork`] and through the raw generated client.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aurigraph_consensus::network::proto::raft_client::RaftClient;
use aurigraph_consensus::network::proto::snapshot_chunk::Chunk;
use aurigraph_consensus::network::proto::{RaftMessage, SnapshotChunk};
use aurigraph_consensus::network::{
    CLUSTER_SECRET_METADATA, CODE_METADATA, RaftHandler, RaftNetwork, RaftService, Snapshot,
};
use aurigraph_consensus::types::{
    BlockEntry, Entry, LogId, NodeId, NodeInfo, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};
use openraft::error::{Fatal, RPCError, ReplicationClosed, StreamingError};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, Membership};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;

const SECRET: &str = "s3cret-of-the-cluster";

/// One call the handler got: the RPC's name and its request, postcard-encoded.
type Seen = (&'static str, Vec<u8>);

/// What the server handed to the handler.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn record<T: Serialize>(&self, rpc: &'static str, value: &T) {
        let bytes = postcard::to_allocvec(value).expect("encodes");
        self.seen.lock().expect("lock").push((rpc, bytes));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl RaftHandler for Recorder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &self,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.record("append_entries", &req);
        Ok(AppendEntriesResponse::Success)
    }

    async fn vote(
        &self,
        req: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.record("vote", &req);
        Ok(VoteResponse::new(req.vote, req.last_log_id, true))
    }

    async fn pre_vote(
        &self,
        req: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.record("pre_vote", &req);
        Ok(VoteResponse::new(req.vote, None, false))
    }

    async fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot<Cursor<Vec<u8>>>,
    ) -> Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.record(
            "snapshot",
            &(&vote, &snapshot.meta, snapshot.snapshot.get_ref()),
        );
        Ok(SnapshotResponse::new(vote))
    }

    async fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.record("transfer_leader", &req);
        Ok(Ok(()))
    }
}

/// A server with `secret` on 127.0.0.1:0 over a fresh recorder.
async fn serve(secret: &str) -> (SocketAddr, Recorder) {
    let recorder = Recorder::default();
    let router = RaftService::new(recorder.clone(), secret.to_string()).into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("has an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, recorder)
}

async fn peer(
    secret: &str,
    target: NodeId,
    addr: SocketAddr,
) -> impl RaftNetworkV2<TypeConfig, SnapshotData = Cursor<Vec<u8>>> {
    let mut network: RaftNetwork = RaftNetwork::new(secret.to_string());
    network
        .new_client(
            target,
            &NodeInfo {
                addr: addr.to_string(),
            },
        )
        .await
}

async fn raw_client(addr: SocketAddr) -> RaftClient<tonic::transport::Channel> {
    RaftClient::connect(format!("http://{addr}"))
        .await
        .expect("connects")
}

fn with_secret<T>(message: T, secret: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(secret) = secret {
        request.metadata_mut().insert(
            CLUSTER_SECRET_METADATA,
            secret.parse().expect("ascii secret"),
        );
    }
    request
}

fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(5))
}

fn vote(term: u64, node_id: NodeId) -> Vote {
    Vote::new(term, node_id)
}

fn log_id(term: u64, node_id: NodeId, index: u64) -> LogId {
    LogId::new(LeaderId { term, node_id }, index)
}

fn membership() -> Membership<NodeId, NodeInfo> {
    let nodes = (1..=3)
        .map(|id| {
            (
                id,
                NodeInfo {
                    addr: format!("10.0.0.{id}:7000"),
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).expect("valid membership")
}

fn block(height: u64, tx_bytes: usize) -> BlockEntry {
    BlockEntry {
        height,
        parent: [height as u8; 32],
        timestamp_ms: 1_700_000_000_000 + height,
        state_root: [0xAB; 32],
        txs: vec![vec![7u8; tx_bytes], vec![9u8; 3]],
    }
}

fn append_request(tx_bytes: usize) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(2, 1, 9)),
        leader_commit: Some(log_id(2, 1, 8)),
        entries: vec![
            Entry {
                log_id: log_id(3, 1, 10),
                payload: EntryPayload::Membership(membership()),
            },
            Entry {
                log_id: log_id(3, 1, 11),
                payload: EntryPayload::Normal(block(11, tx_bytes)),
            },
            Entry {
                log_id: log_id(3, 1, 12),
                payload: EntryPayload::Blank,
            },
        ],
    }
}

fn snapshot_meta() -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(3, 1, 40)),
        last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
    }
}

fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encodes")
}

fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    postcard::from_bytes(&encoded(value)).expect("decodes")
}

fn code_of(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(CODE_METADATA)
        .and_then(|v| v.to_str().ok())
}

fn assert_refused(status: &tonic::Status, grpc: Code, code: &str) {
    assert_eq!(status.code(), grpc, "{status:?}");
    assert_eq!(code_of(status), Some(code), "{status:?}");
    assert!(
        status.message().starts_with(&format!("[{code}]")),
        "{status:?}"
    );
}

#[test]
fn rpc_types_round_trip_through_postcard() {
    let append = append_request(100);
    assert_eq!(encoded(&round_trip(&append)), encoded(&append));

    let append_answers = [
        AppendEntriesResponse::<TypeConfig>::Success,
        AppendEntriesResponse::PartialSuccess(Some(log_id(3, 1, 11))),
        AppendEntriesResponse::Conflict,
        AppendEntriesResponse::HigherVote(vote(4, 2)),
    ];
    for answer in &append_answers {
        assert_eq!(&round_trip(answer), answer);
    }

    let mut request = VoteRequest::<TypeConfig>::new(vote(5, 2), Some(log_id(4, 2, 30)));
    request.leadership_transfer = true;
    assert_eq!(round_trip(&request), request);
    let answer = VoteResponse::<TypeConfig>::new(vote(5, 2), Some(log_id(4, 2, 30)), true);
    assert_eq!(round_trip(&answer), answer);

    let head = (vote(3, 1), snapshot_meta());
    assert_eq!(round_trip(&head), head);
    let answer = SnapshotResponse::<TypeConfig>::new(vote(3, 1));
    assert_eq!(round_trip(&answer), answer);

    let transfer = TransferLeaderRequest::<TypeConfig>::new(
        Vote::new_committed(3, 1),
        2,
        Some(log_id(3, 1, 12)),
    );
    assert_eq!(round_trip(&transfer), transfer);
    let answer: TransferLeaderResponse<TypeConfig> = Ok(());
    assert_eq!(round_trip(&answer), answer);
}

#[tokio::test]
async fn every_rpc_reaches_the_handler_through_the_network() {
    let (addr, recorder) = serve(SECRET).await;
    let mut client = peer(SECRET, 2, addr).await;

    // 8 MiB of transactions: over tonic's 4 MiB default limit.
    let append = append_request(8 * 1024 * 1024);
    let answer = client
        .append_entries(append.clone(), option())
        .await
        .expect("append");
    assert_eq!(answer, AppendEntriesResponse::Success);

    let request = VoteRequest::new(vote(5, 1), Some(log_id(3, 1, 12)));
    let answer = client.vote(request.clone(), option()).await.expect("vote");
    assert!(answer.vote_granted);
    assert_eq!(answer.vote, request.vote);
    let answer = client
        .pre_vote(request.clone(), option())
        .await
        .expect("pre-vote");
    assert!(!answer.vote_granted, "pre-vote reaches the handler");

    // 2.5 MiB and a few bytes: three data chunks.
    let data = (0..(5 * 512 * 1024 + 3))
        .map(|i: u32| (i % 251) as u8)
        .collect::<Vec<_>>();
    let snapshot = Snapshot {
        meta: snapshot_meta(),
        snapshot: Cursor::new(data.clone()),
    };
    let answer = client
        .full_snapshot(
            vote(3, 1),
            snapshot,
            std::future::pending::<ReplicationClosed>(),
            option(),
        )
        .await
        .expect("snapshot");
    assert_eq!(answer.vote, vote(3, 1));

    let transfer = TransferLeaderRequest::new(Vote::new_committed(5, 1), 2, None);
    let answer = client
        .transfer_leader(transfer.clone(), option())
        .await
        .expect("transfer");
    assert_eq!(answer, Ok(()));

    let seen = recorder.seen();
    let expected = vec![
        ("append_entries", encoded(&append)),
        ("vote", encoded(&request)),
        ("pre_vote", encoded(&request)),
        ("snapshot", encoded(&(&vote(3, 1), &snapshot_meta(), &data))),
        ("transfer_leader", encoded(&transfer)),
    ];
    assert_eq!(seen.len(), expected.len());
    for ((rpc, bytes), (want_rpc, want_bytes)) in seen.iter().zip(&expected) {
        assert_eq!(rpc, want_rpc);
        assert!(bytes == want_bytes, "{rpc}: the handler got other bytes");
    }
}

#[tokio::test]
async fn an_empty_snapshot_is_sent_as_its_head_alone() {
    let (addr, recorder) = serve(SECRET).await;
    let mut client = peer(SECRET, 2, addr).await;
    let snapshot = Snapshot {
        meta: snapshot_meta(),
        snapshot: Cursor::new(Vec::new()),
    };
    client
        .full_snapshot(
            vote(3, 1),
            snapshot,
            std::future::pending::<ReplicationClosed>(),
            option(),
        )
        .await
        .expect("snapshot");
    let empty: Vec<u8> = Vec::new();
    assert_eq!(
        recorder.seen(),
        vec![(
            "snapshot",
            encoded(&(&vote(3, 1), &snapshot_meta(), &empty))
        )]
    );
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_unauthenticated() {
    let (addr, recorder) = serve(SECRET).await;
    let mut raw = raw_client(addr).await;
    let payload = encoded(&VoteRequest::<TypeConfig>::new(vote(1, 1), None));

    for secret in [Some("not-the-secret"), Some(""), None] {
        let message = RaftMessage {
            payload: payload.clone(),
        };
        let status = raw
            .vote(with_secret(message.clone(), secret))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::Unauthenticated, "E_CLUSTER_SECRET");
        let status = raw
            .append_entries(with_secret(message.clone(), secret))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::Unauthenticated, "E_CLUSTER_SECRET");
        let status = raw
            .pre_vote(with_secret(message.clone(), secret))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::Unauthenticated, "E_CLUSTER_SECRET");
        let status = raw
            .transfer_leader(with_secret(message, secret))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::Unauthenticated, "E_CLUSTER_SECRET");
        let chunks = futures_util::stream::iter([SnapshotChunk {
            chunk: Some(Chunk::Head(encoded(&(vote(3, 1), snapshot_meta())))),
        }]);
        let status = raw
            .install_snapshot(with_secret(chunks, secret))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::Unauthenticated, "E_CLUSTER_SECRET");
    }
    assert!(recorder.seen().is_empty(), "nothing reached the handler");
}

#[tokio::test]
async fn the_network_client_with_a_wrong_secret_sees_the_peer_unreachable() {
    let (addr, recorder) = serve(SECRET).await;
    let mut client = peer("another-cluster", 2, addr).await;
    let err = client
        .vote(VoteRequest::new(vote(1, 1), None), option())
        .await
        .expect_err("refused");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("E_CLUSTER_SECRET"), "{err}");

    let snapshot = Snapshot {
        meta: snapshot_meta(),
        snapshot: Cursor::new(vec![1, 2, 3]),
    };
    let err = client
        .full_snapshot(
            vote(3, 1),
            snapshot,
            std::future::pending::<ReplicationClosed>(),
            option(),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, StreamingError::Unreachable(_)), "{err:?}");
    assert!(recorder.seen().is_empty());
}

#[tokio::test]
async fn a_server_with_an_empty_secret_refuses_every_call() {
    let (addr, recorder) = serve("").await;
    let mut raw = raw_client(addr).await;
    let payload = encoded(&VoteRequest::<TypeConfig>::new(vote(1, 1), None));
    for secret in [Some(""), Some("anything"), None] {
        let status = raw
            .vote(with_secret(
                RaftMessage {
                    payload: payload.clone(),
                },
                secret,
            ))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::Unauthenticated, "E_CLUSTER_SECRET");
    }
    assert!(recorder.seen().is_empty());
}

#[tokio::test]
async fn a_payload_that_does_not_decode_is_invalid_argument() {
    let (addr, recorder) = serve(SECRET).await;
    let mut raw = raw_client(addr).await;
    // Bytes no request type decodes from.
    for payload in [Vec::new(), vec![0xFF; 64]] {
        let message = RaftMessage { payload };
        let status = raw
            .vote(with_secret(message.clone(), Some(SECRET)))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::InvalidArgument, "E_RAFT_DECODE");
        let status = raw
            .pre_vote(with_secret(message.clone(), Some(SECRET)))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::InvalidArgument, "E_RAFT_DECODE");
        let status = raw
            .append_entries(with_secret(message.clone(), Some(SECRET)))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::InvalidArgument, "E_RAFT_DECODE");
        let status = raw
            .transfer_leader(with_secret(message, Some(SECRET)))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::InvalidArgument, "E_RAFT_DECODE");
    }
    // A valid request with a byte more, or a byte less.
    let valid = encoded(&VoteRequest::<TypeConfig>::new(vote(1, 1), None));
    let mut trailing = valid.clone();
    trailing.push(0);
    let append = encoded(&append_request(10));
    for (rpc, payload) in [
        ("vote", trailing),
        ("vote", valid[..valid.len() - 1].to_vec()),
        ("append", append[..append.len() - 1].to_vec()),
    ] {
        let request = with_secret(RaftMessage { payload }, Some(SECRET));
        let status = match rpc {
            "vote" => raw.vote(request).await,
            _ => raw.append_entries(request).await,
        }
        .expect_err("refused");
        assert_refused(&status, Code::InvalidArgument, "E_RAFT_DECODE");
    }

    let head = SnapshotChunk {
        chunk: Some(Chunk::Head(encoded(&(vote(3, 1), snapshot_meta())))),
    };
    let data = SnapshotChunk {
        chunk: Some(Chunk::Data(vec![1, 2, 3])),
    };
    let bad_streams = [
        vec![],
        vec![data.clone()],
        vec![SnapshotChunk { chunk: None }],
        vec![SnapshotChunk {
            chunk: Some(Chunk::Head(vec![0xFF; 16])),
        }],
        vec![head.clone(), data.clone(), head.clone()],
        vec![head, data, SnapshotChunk { chunk: None }],
    ];
    for chunks in bad_streams {
        let status = raw
            .install_snapshot(with_secret(
                futures_util::stream::iter(chunks),
                Some(SECRET),
            ))
            .await
            .expect_err("refused");
        assert_refused(&status, Code::InvalidArgument, "E_RAFT_DECODE");
    }
    assert!(recorder.seen().is_empty(), "nothing reached the handler");
}

#[tokio::test]
async fn a_snapshot_beyond_the_senders_vote_is_refused() {
    let (addr, recorder) = serve(SECRET).await;
    let mut client = peer(SECRET, 2, addr).await;
    let snapshot = Snapshot {
        meta: snapshot_meta(),
        snapshot: Cursor::new(vec![1, 2, 3]),
    };
    // The snapshot's last log id is of term 3; the sender's vote is of term 2.
    let err = client
        .full_snapshot(
            vote(2, 1),
            snapshot,
            std::future::pending::<ReplicationClosed>(),
            option(),
        )
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("E_RAFT_SNAPSHOT"), "{err}");
    assert!(recorder.seen().is_empty());
}

#[tokio::test]
async fn an_unreachable_peer_is_reported_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("has an address");
    drop(listener);
    let mut client = peer(SECRET, 2, addr).await;
    let err = client
        .vote(VoteRequest::new(vote(1, 1), None), option())
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    let err = client
        .append_entries(append_request(10), option())
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");

    let mut network: RaftNetwork = RaftNetwork::new(SECRET.to_string());
    let mut client = network
        .new_client(
            3,
            &NodeInfo {
                addr: "not an address".to_string(),
            },
        )
        .await;
    let err = client
        .vote(VoteRequest::new(vote(1, 1), None), option())
        .await
        .expect_err("no usable address");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("E_RAFT_PEER_ADDR"), "{err}");
}

#[tokio::test]
async fn a_snapshot_send_stops_when_replication_closes() {
    let (addr, _recorder) = serve(SECRET).await;
    let mut client = peer(SECRET, 2, addr).await;
    let snapshot = Snapshot {
        meta: snapshot_meta(),
        snapshot: Cursor::new(vec![0; 1024]),
    };
    let err = client
        .full_snapshot(
            vote(3, 1),
            snapshot,
            std::future::ready(ReplicationClosed::new("closed by the test")),
            option(),
        )
        .await
        .expect_err("closed");
    assert!(matches!(err, StreamingError::Closed(_)), "{err:?}");
}

#[tokio::test]
async fn a_secret_that_is_not_ascii_fails_every_call() {
    let (addr, recorder) = serve(SECRET).await;
    let mut client = peer("line\nbreak", 2, addr).await;
    let err = client
        .vote(VoteRequest::new(vote(1, 1), None), option())
        .await
        .expect_err("cannot send");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("E_CLUSTER_SECRET"), "{err}");
    assert!(recorder.seen().is_empty());
}
