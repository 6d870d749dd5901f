//! How the binary reports a user's mistake: `error: [CODE] message`, exit 1, and no stack
//! trace even with `RUST_BACKTRACE=1` set (only `--backtrace` asks for one).

use std::process::Command;

fn start_with_missing_config(extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_aurigraph"))
        .args(["start", "--config", missing.to_str().unwrap()])
        .args(extra)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_config_mistake_prints_its_code_and_message_without_a_backtrace() {
    let (code, err) = start_with_missing_config(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("[E_CONFIG]"), "{err}");
    assert!(err.contains("no-such.toml"), "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    assert!(err.lines().count() <= 3, "a few lines, not a trace: {err}");
}

#[test]
fn backtrace_prints_one_on_request() {
    let (code, err) = start_with_missing_config(&["--backtrace"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("[E_CONFIG]"), "{err}");
    assert!(
        err.lines().count() > 3,
        "a stack trace follows the message: {err}"
    );
}
