//! `aurigraph models schema SLOT [--json]`, run as the real binary: the contract an ML
//! engineer builds against (`docs/CONTRACTS.md`, "Models and plugins"): the feature names in column order,
//! `input_shape` and `output_shape` (-1 for the batch axis) and `schema_version`, the same
//! as the engine enforces at load.

use std::process::{Command, Output};

use aurigraph_decision::SlotKind;

fn schema(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aurigraph"))
        .args(["models", "schema"])
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json_of(slot: &str) -> serde_json::Value {
    let out = schema(&[slot, "--json"]);
    assert!(
        out.status.success(),
        "{slot}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{slot}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v["features"]
        .as_array()
        .expect("features is a list")
        .iter()
        .map(|f| {
            f["name"]
                .as_str()
                .expect("a feature has a name")
                .to_string()
        })
        .collect()
}

#[test]
fn the_json_carries_features_shapes_and_schema_version() {
    // Spelled out for two slots, so a change to the contract shows up here as well.
    let v = json_of("ordering");
    assert_eq!(v["slot"], "ordering");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["input_shape"], serde_json::json!([-1, 9]));
    assert_eq!(v["output_shape"], serde_json::json!([-1]));
    assert_eq!(
        names(&v),
        [
            "fee",
            "fee_per_byte",
            "size_bytes",
            "arrival_seq",
            "sender_pending",
            "nonce_gap",
            "accounts_touched",
            "hot_account_share",
            "age_ms"
        ]
    );
    assert_eq!(v["features"][8]["unit"], "ms");
    assert_eq!(v["output"]["name"], "score");

    let v = json_of("demand");
    assert_eq!(v["input_shape"], serde_json::json!([1, 32]));
    assert_eq!(v["output_shape"], serde_json::json!([1, 8]));
    let n = names(&v);
    assert_eq!(n.len(), 32);
    assert_eq!(n[0], "rate_t_minus_31");
    assert_eq!(n[31], "rate_t_minus_0");
    assert_eq!(v["output"]["name"], "forecast_rate");

    // Every slot: the JSON is the engine's contract.
    for slot in SlotKind::ALL {
        let c = slot.contract();
        let v = json_of(slot.as_str());
        assert_eq!(v["slot"], slot.as_str());
        assert_eq!(v["schema_version"], c.schema_version, "{slot}");
        assert_eq!(
            v["input_shape"],
            serde_json::json!(c.input_shape()),
            "{slot}"
        );
        assert_eq!(
            v["output_shape"],
            serde_json::json!(c.output_shape()),
            "{slot}"
        );
        let want: Vec<String> = c.features.iter().map(|f| f.name.clone()).collect();
        assert_eq!(names(&v), want, "{slot}");
        assert_eq!(v["input_shape"][1], want.len(), "{slot}");
        assert_eq!(v["output"]["name"], c.output.name, "{slot}");
        assert_eq!(
            v["default_deadline_us"],
            c.default_deadline.as_micros() as u64,
            "{slot}"
        );
    }
}

#[test]
fn the_table_lists_every_feature_in_order() {
    let out = schema(&["anomaly"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("slot anomaly (schema v1): "), "{s}");
    assert!(s.contains("input  f32[-1, 8]"), "{s}");
    let mut at = 0;
    for f in &SlotKind::Anomaly.contract().features {
        let i = s[at..]
            .find(f.name.as_str())
            .unwrap_or_else(|| panic!("{} missing or out of order: {s}", f.name));
        at += i + f.name.len();
    }
}

#[test]
fn an_unknown_slot_is_refused_with_its_code() {
    let out = schema(&["orderin", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[E_UNKNOWN_SLOT]"), "{err}");
    assert!(out.stdout.is_empty(), "no JSON for a refusal");
}
