//! The `x402-verifier` binary: the renamed flags and variables still work for one release,
//! each with a deprecation warning; the first SIGTERM drains and exits cleanly.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::Duration;

use obol_testenv::eventually;
use obol_testenv::net::{free_port, http_get};

#[tokio::test]
async fn old_flag_and_variable_names_work_with_a_warning() {
    let dir = obol_testenv::scratch_dir("verifier-binary");
    let routes = dir.join("routes.yaml");
    std::fs::write(&routes, "routes: []\n").unwrap();
    let log = dir.join("verifier.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_x402-verifier"))
        .args(["--route-source", "file", "--routes-file"])
        .arg(&routes)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--gateway-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--facilitator-url", "http://127.0.0.1:9"])
        // Old names: a flag and a variable.
        .args(["--routes-poll-secs", "1"])
        .env("OBOL_VERIFIER_FACILITATOR_VERIFY_TIMEOUT_SECS", "3")
        .env_remove("OBOL_VERIFIER_FACILITATOR_VERIFY_TIMEOUT")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let ready = eventually(Duration::from_secs(30), || async {
        http_get(port, "/readyz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    assert_eq!(ready.1, obol_runtime::admin::READY);
    let text = std::fs::read_to_string(&log).unwrap();
    for old in [
        "--routes-poll-secs",
        "OBOL_VERIFIER_FACILITATOR_VERIFY_TIMEOUT_SECS",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("WARN") && l.contains("deprecated") && l.contains(old)),
            "no deprecation warning for {old}:\n{text}"
        );
    }

    obol_testenv::process::sigterm(child.id());
    let status = obol_testenv::process::exit_within(&mut child, Duration::from_secs(20))
        .await
        .expect("no exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
