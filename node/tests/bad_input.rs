//! Bad input through the real servers (`docs/CONTRACTS.md`, "Bad input"): each refusal carries its stable
//! code (in the JSON body for REST, in the `x-aurigraph-code` metadata and the message for
//! gRPC) and the right status, and after each the node still serves.

use crate::common::*;
use aurigraph_ledger::tx::{Operation, Transaction};
use aurigraph_node::config::dev_key;
use aurigraph_node::proto;
use prost::bytes::{Buf, BufMut};
use serde_json::json;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// A codec that sends raw bytes as the request message and reads the answer raw: a way to
/// put bytes that are not protobuf on the wire to a real gRPC method.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_grpc(
    ch: &Channel,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut g = tonic::client::Grpc::new(ch.clone());
    g.ready().await.expect("the channel is ready");
    g.unary(
        tonic::Request::new(bytes),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Asserts a gRPC refusal's status code and stable code (metadata and message).
fn assert_grpc(s: &tonic::Status, want: Code, code: &str) {
    assert_eq!(s.code(), want, "{s:?}");
    assert_eq!(status_code(s), code, "metadata of {s:?}");
    assert!(s.message().contains(code), "message of {s:?}");
}

/// The node still serves: the head answers on both APIs.
async fn still_serves(c: &reqwest::Client, base: &str, ch: &Channel) {
    let v = rest_head(c, base).await;
    let g = grpc_head(ch).await;
    assert_eq!(v["height"].as_u64(), Some(g.height));
}

const MAX_BODY: usize = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_input_gets_its_stable_code_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.api.max_body_bytes = MAX_BODY;
    let node = start(cfg).await;
    let base = base(&node);
    let submit_url = format!("{base}/v1/transactions");
    let c = http();
    let ch = channel(&node).await;
    let mut txs = proto::transactions_client::TransactionsClient::new(ch.clone());
    let mut admin = proto::admin_client::AdminClient::new(ch.clone());

    // Malformed JSON.
    let (s, v) = post_raw(&c, &submit_url, "{\"transactions\": [", None).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_JSON"), "{v}");
    assert!(!v["error"]["message"].as_str().unwrap_or("").is_empty());
    still_serves(&c, &base, &ch).await;

    // Well-formed JSON of the wrong shape is malformed for this call too.
    let (s, v) = post_json(&c, &submit_url, &json!({"tx": 5}), None).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_JSON"), "{v}");

    // Bad hex.
    let (s, v) = post_json(&c, &submit_url, &json!("zz-not-hex"), None).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_HEX"), "{v}");
    still_serves(&c, &base, &ch).await;

    // Hex that is not a transaction: the decoder's code.
    let (s, v) = post_json(&c, &submit_url, &json!("01020304"), None).await;
    assert_eq!(s, 400, "{v}");
    assert!(code(&v).starts_with("E_TX_"), "{v}");

    // An oversized body, REST.
    let big = json!("ab".repeat(MAX_BODY)).to_string();
    let (s, v) = post_raw(&c, &submit_url, big, None).await;
    assert_eq!((s, code(&v)), (413, "E_BODY_TOO_LARGE"), "{v}");
    still_serves(&c, &base, &ch).await;

    // An oversized message, gRPC.
    let err = txs
        .submit(proto::SubmitRequest {
            transactions: vec![vec![7u8; MAX_BODY * 2]],
        })
        .await
        .expect_err("a message over the limit is refused");
    assert_grpc(&err, Code::InvalidArgument, "E_BODY_TOO_LARGE");
    still_serves(&c, &base, &ch).await;

    // Malformed protobuf: bytes that are no SubmitRequest (a length-delimited field 1 that
    // claims 127 bytes and carries 1).
    let err = raw_grpc(
        &ch,
        "/aurigraph.v1.Transactions/Submit",
        vec![0x0a, 0x7f, 0x01],
    )
    .await
    .expect_err("garbage is refused");
    assert_grpc(&err, Code::InvalidArgument, "E_BAD_PROTOBUF");
    let err = raw_grpc(&ch, "/aurigraph.v1.Query/GetHead", vec![0xff; 9])
        .await
        .expect_err("garbage is refused");
    assert_grpc(&err, Code::InvalidArgument, "E_BAD_PROTOBUF");
    still_serves(&c, &base, &ch).await;

    // Valid protobuf, but the transaction inside is no valid encoding: a per-item refusal.
    let r = txs
        .submit(proto::SubmitRequest {
            transactions: vec![vec![1, 2, 3]],
        })
        .await
        .expect("Submit answers")
        .into_inner();
    assert_eq!(r.accepted, 0);
    assert!(!r.results[0].accepted);
    assert!(r.results[0].code.starts_with("E_TX_"), "{r:?}");

    // An unknown gRPC method.
    let err = raw_grpc(&ch, "/aurigraph.v1.Query/NoSuchMethod", vec![])
        .await
        .expect_err("no such method");
    assert_grpc(&err, Code::Unimplemented, "E_NO_ROUTE");

    // A bad signature: account 0's transaction signed with account 1's key.
    let forged = Transaction {
        chain_id: 1,
        sender: dev_addr(0),
        nonce: 0,
        fee: 10,
        op: Operation::Transfer {
            to: dev_addr(2),
            amount: 5,
        },
    }
    .sign(&dev_key(1).0);
    let (s, v) = post_json(&c, &submit_url, &json!(hex_of(&forged)), None).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_SIGNATURE"), "{v}");
    let r = txs
        .submit(proto::SubmitRequest {
            transactions: vec![forged.encoded().to_vec()],
        })
        .await
        .expect("Submit answers")
        .into_inner();
    assert_eq!(r.results[0].code, "E_BAD_SIGNATURE", "{r:?}");
    still_serves(&c, &base, &ch).await;

    // Duplicate (pending, then committed) and stale nonce.
    let t = transfer(5, 0, 6, 100);
    let (s, v) = post_json(&c, &submit_url, &json!(hex_of(&t)), None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post_json(&c, &submit_url, &json!(hex_of(&t)), None).await;
    assert_eq!(
        (s, code(&v)),
        (400, "E_DUPLICATE"),
        "the same transaction twice: {v}"
    );
    wait_committed(&c, &base, &t.hash().to_string()).await;
    let r = txs
        .submit(proto::SubmitRequest {
            transactions: vec![t.encoded().to_vec()],
        })
        .await
        .expect("Submit answers")
        .into_inner();
    assert_eq!(
        r.results[0].code, "E_DUPLICATE",
        "a committed transaction again: {r:?}"
    );
    let stale = transfer(5, 0, 6, 101);
    let (s, v) = post_json(&c, &submit_url, &json!(hex_of(&stale)), None).await;
    assert_eq!((s, code(&v)), (400, "E_STALE_NONCE"), "{v}");
    let r = txs
        .submit(proto::SubmitRequest {
            transactions: vec![stale.encoded().to_vec()],
        })
        .await
        .expect("Submit answers")
        .into_inner();
    assert_eq!(r.results[0].code, "E_STALE_NONCE", "{r:?}");
    still_serves(&c, &base, &ch).await;

    // Admin without a token and with a wrong one: REST.
    let canary = format!("{base}/v1/policies/ordering/canary");
    let (s, v) = post_json(&c, &canary, &json!({"percent": 5}), None).await;
    assert_eq!((s, code(&v)), (401, "E_UNAUTHENTICATED"), "{v}");
    let (s, v) = post_json(
        &c,
        &canary,
        &json!({"percent": 5}),
        Some("wrong-token-wrong-token"),
    )
    .await;
    assert_eq!((s, code(&v)), (401, "E_UNAUTHENTICATED"), "{v}");
    // ... and gRPC.
    let err = admin
        .list_slots(proto::ListSlotsRequest {})
        .await
        .expect_err("no token");
    assert_grpc(&err, Code::Unauthenticated, "E_UNAUTHENTICATED");
    let err = admin
        .promote(authed(
            proto::SlotRequest {
                slot: "ordering".into(),
            },
            "wrong-token-wrong-token",
        ))
        .await
        .expect_err("a wrong token");
    assert_grpc(&err, Code::Unauthenticated, "E_UNAUTHENTICATED");
    still_serves(&c, &base, &ch).await;

    // An unknown slot (with the right token).
    let (s, v) = post_json(
        &c,
        &format!("{base}/v1/policies/no_such_slot/canary"),
        &json!({"percent": 5}),
        Some(TOKEN),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "E_UNKNOWN_SLOT"), "{v}");
    let (s, v) = get_json(&c, &format!("{base}/v1/policies/no_such_slot")).await;
    assert_eq!((s, code(&v)), (400, "E_UNKNOWN_SLOT"), "{v}");
    let err = admin
        .status(authed(
            proto::SlotRequest {
                slot: "no_such_slot".into(),
            },
            TOKEN,
        ))
        .await
        .expect_err("unknown slot");
    assert_grpc(&err, Code::InvalidArgument, "E_UNKNOWN_SLOT");
    // A rollout refused in the current state (nothing loaded to promote).
    let err = admin
        .promote(authed(
            proto::SlotRequest {
                slot: "ordering".into(),
            },
            TOKEN,
        ))
        .await
        .expect_err("nothing to promote");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(!status_code(&err).is_empty(), "{err:?}");
    // Bad values in good JSON.
    let (s, v) = post_json(
        &c,
        &format!("{base}/v1/transactions/xyz"),
        &json!(null),
        None,
    )
    .await;
    assert_eq!(s, 405, "POST on a GET route: {v}");
    let (s, v) = get_json(&c, &format!("{base}/v1/transactions/xyz")).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_HASH"), "{v}");
    let (s, v) = get_json(&c, &format!("{base}/v1/accounts/xyz")).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_ADDRESS"), "{v}");
    let (s, v) = get_json(&c, &format!("{base}/v1/blocks/minus-one")).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_HEIGHT"), "{v}");
    let (s, v) = get_json(&c, &format!("{base}/v1/blocks/999999")).await;
    assert_eq!((s, code(&v)), (404, "E_BLOCK_NOT_FOUND"), "{v}");
    let (s, v) = get_json(&c, &format!("{base}/v1/transactions/{}", "ab".repeat(32))).await;
    assert_eq!((s, code(&v)), (404, "E_TX_NOT_FOUND"), "{v}");

    // An unknown route.
    let (s, v) = get_json(&c, &format!("{base}/no/such/route")).await;
    assert_eq!((s, code(&v)), (404, "E_NO_ROUTE"), "{v}");
    let (s, v) = get_json(&c, &format!("{base}/v2/head")).await;
    assert_eq!((s, code(&v)), (404, "E_NO_ROUTE"), "{v}");
    // A known route with the wrong method.
    let r = c
        .delete(format!("{base}/v1/head"))
        .send()
        .await
        .expect("the node answers");
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.expect("a JSON error body");
    assert_eq!((s, code(&v)), (405, "E_METHOD_NOT_ALLOWED"), "{v}");

    // Still serving, and still committing.
    still_serves(&c, &base, &ch).await;
    let t = transfer(5, 1, 6, 100);
    let (s, v) = post_json(&c, &submit_url, &json!(hex_of(&t)), None).await;
    assert_eq!(s, 200, "{v}");
    wait_committed(&c, &base, &t.hash().to_string()).await;

    drop((txs, admin, ch));
    node.shutdown().await;
}
