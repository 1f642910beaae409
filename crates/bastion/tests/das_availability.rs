//! Availability of `bastion das` (issue 12, items 13 and 14; docs/das.md,
//! docs/security.md "Availability"): its listeners run on the CSE's listener machinery,
//! so a slow client is cut by the same timeouts and running out of descriptors never
//! ends it. The real binary over real TLS-PSK associations and a real descriptor limit.

use crate::common;

use common::das_limits::{exchange_until_closed, start_watched_das, WatchedDas};
use common::das_policy::{das_policy, write_das_files, CM1_ACP_RULE};
use common::das_tls::Provisioned;
use common::limits::bare_connections;
use common::*;
use serde_json::json;
use std::time::Duration;

const SECRET: &str = "das-availability-test-secret-0123456789abcdef";

/// A policy granting Cm1 RETRIEVE by dynamic ACP info when the trusted CSE asks.
fn write_policy(p: &Provisioned) -> std::path::PathBuf {
    write_das_files(p.dir.path(), SECRET, &das_policy(CM1_ACP_RULE))
}

/// `bastion das` on a TLS listener only, with `extra` arguments.
fn start(p: &Provisioned, extra: &[&str]) -> WatchedDas {
    let mut args = p.das_tls_args();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    start_watched_das(&write_policy(p), &args)
}

/// The hosting CSE's direct-flow NOTIFY for Cm1's RETRIEVE, closing the connection after
/// the answer.
fn notify_for_cm1() -> Vec<u8> {
    let body = json!({"m2m:seci": {"sit": 1, "dreq": {"or": "Cm1", "op": 2}}}).to_string();
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-M2M-Origin: {CSE_ID}\r\nX-M2M-RI: ask\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A real request on a fresh association gets its exact answer: 2000 and Cm1's dynamic
/// ACP info.
async fn assert_answers(das: &WatchedDas) {
    let mut tls = das.tls_stream().await;
    let r = exchange_until_closed(&mut tls, &notify_for_cm1())
        .await
        .expect("a response");
    r.expect(2000);
    assert_eq!(
        r.body["m2m:seci"]["dres"]["dai"]["gp"],
        json!({"acr": [{"acor": ["Cm1"], "acop": 2}]}),
        "{}",
        r.text
    );
}

/// Item 14: on the DAS's TLS listener, a request head that never ends is cut after the
/// header timeout without an answer, and a body that stalls is answered 4008 and the
/// connection closed after the body timeout; whole requests are still answered.
#[tokio::test]
async fn issue12_14_das_tls_slow_head_and_stalled_body_are_cut() {
    let p = Provisioned::new();
    let das = start(
        &p,
        &["--header-timeout-ms", "1000", "--body-timeout-ms", "1000"],
    );
    let mut slow = das.tls_stream().await;
    let partial = format!("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-M2M-Origin: {CSE_ID}\r\n");
    let answer = exchange_until_closed(&mut slow, partial.as_bytes()).await;
    assert!(answer.is_none(), "{:?}", answer.map(|r| r.text));

    let mut stalled = das.tls_stream().await;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-M2M-Origin: {CSE_ID}\r\nX-M2M-RI: stall\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"m2m:seci\""
    );
    let r = exchange_until_closed(&mut stalled, head.as_bytes())
        .await
        .expect("an answer to the stalled body");
    r.expect(4008);
    assert_eq!(r.header("x-m2m-ri"), Some("stall"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(
        r.body["m2m:dbg"],
        "request body not received within 1000 ms"
    );

    assert_answers(&das).await;
}

/// Item 13: descriptors running out while the DAS accepts connections does not end it:
/// it backs off, says so once, and answers again once descriptors are free.
#[tokio::test]
async fn issue12_13_das_survives_descriptor_exhaustion_on_accept() {
    let p = Provisioned::new();
    let mut das = start(&p, &[]);
    assert_answers(&das).await;
    // The connection cap was fitted under the limit the DAS started with; lowering the
    // limit now makes accept itself fail with EMFILE.
    das.set_nofile(64);
    let held = bare_connections(das.tls_port, 100);
    assert!(
        das.log_shows(
            "cannot accept connections; retrying with back-off",
            Duration::from_secs(10)
        ),
        "{}",
        das.log()
    );
    assert!(das.is_alive(), "the DAS ended: {}", das.log());
    drop(held);
    // The limit stays low: the DAS must serve within it once the held connections end.
    assert_answers(&das).await;
    assert!(
        das.log_shows("accepting connections again", Duration::from_secs(5)),
        "{}",
        das.log()
    );
    assert!(das.is_alive(), "the DAS ended: {}", das.log());
}

/// The caps and timeouts are validated as `bastion serve`'s `[limits]` are: every value
/// out of range is named, and the DAS does not start (exit status 2).
#[test]
fn das_limit_flags_out_of_range_are_refused() {
    let p = Provisioned::new();
    let policy = write_policy(&p);
    let out = bastion(&[
        "das",
        "--listen",
        "127.0.0.1:0",
        "--insecure",
        "--policy",
        &policy.to_string_lossy(),
        "--header-timeout-ms",
        "5",
        "--max-connections",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-connections 0"), "{stderr}");
    assert!(stderr.contains("--header-timeout-ms 5"), "{stderr}");
}
