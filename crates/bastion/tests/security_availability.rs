//! Availability under hostile load (issue 12, items 13-16; docs/security.md,
//! "Availability"): the real binary, real sockets, a real descriptor limit.
//!
//! * descriptor exhaustion on accept never ends the server, and the connection cap keeps
//!   it from happening (one warning when the cap is reached);
//! * slow or idle clients are cut by the header, body and idle timeouts, on the plain
//!   and the TLS listener.

use crate::common;

use common::limits::{bare_connections, read_until_closed};
use common::provision::{add_psk_credential, printed_rsc, psk_req, psk_stream, Store};
use common::*;
use http_body_util::{BodyExt, Empty};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STORE_KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const KPSA_ID: &str = "admin@bastion.example";
const KPSA: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// `[tls]` on an ephemeral port (PSK), then `extra`; the store key is written to `files`.
fn tls_config(files: &Path, extra: &str) -> String {
    write_key_file(&files.join("store.key"), STORE_KEY);
    format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncredentials-key-file = \"{}\"\n\n{extra}",
        path(files, "store.key")
    )
}

/// The directory of the store key, and a server with the TLS listener of [`tls_config`]
/// and `extra` (bound in this order, the server ends before its files go).
fn tls_server(extra: &str) -> (tempfile::TempDir, Server) {
    let files = tempfile::tempdir().expect("files");
    let srv = Server::start_with_config(&tls_config(files.path(), extra));
    (files, srv)
}

/// A whole request on the plain listener gets its exact answer: an AE registers (2001)
/// and reads itself (2000). Not as the admin, who holds a credential in these tests and is
/// therefore refused outside its association (4106).
async fn plain_request_is_answered(srv: &Server) {
    let ae = srv.ae("Cplain").await;
    srv.get(&ae, "Cplain").await.expect(2000);
}

/// Writes a PSK (hex) to an owner-only file beside the server's data (keys never go on a
/// command line); returns its path.
fn psk_file(srv: &Server, name: &str, hex: &str) -> String {
    let file = srv.data_dir().join(name);
    write_key_file(&file, hex);
    file.to_string_lossy().into_owned()
}

/// Binds a PSK to the admin and waits until the running server accepts it.
fn provision_admin_psk(srv: &Server, files: &Path) {
    let dir = srv.data_dir().to_string_lossy().into_owned();
    add_psk_credential(
        Store::DataDir(&dir),
        &path(files, "store.key"),
        KPSA_ID,
        &psk_file(srv, "admin.psk", KPSA),
        &["--originator", ADMIN],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while tls_retrieve_base(srv) != "2000" {
        assert!(Instant::now() < deadline, "the PSK is never accepted");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// RETRIEVE of the CSEBase by the admin over TLS-PSK with `bastion req`: its rsc.
fn tls_retrieve_base(srv: &Server) -> String {
    let url = format!("https://127.0.0.1:{}", tls_port(srv));
    let out = psk_req(
        &url,
        KPSA_ID,
        &psk_file(srv, "admin.psk", KPSA),
        &["--to", "/cse-in", "--from", ADMIN],
    );
    printed_rsc(&out)
}

/// A TLS-PSK connection to the server's TLS listener, bound to the admin.
async fn tls_stream(srv: &Server) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    psk_stream(tls_port(srv), KPSA_ID, KPSA).await
}

#[tokio::test]
async fn issue12_13_descriptor_exhaustion_on_accept_never_ends_the_server() {
    let (files, mut srv) = tls_server("");
    provision_admin_psk(&srv, files.path());
    // The cap was fitted under the limit the server started with; lowering the limit
    // now makes accept itself fail with EMFILE, as it did before the cap existed.
    srv.set_nofile(128);
    let plain = bare_connections(srv.port(), 150);
    let tls = bare_connections(tls_port(&srv), 150);
    assert!(
        srv.log_shows(
            "cannot accept connections; retrying with back-off",
            Duration::from_secs(10)
        ),
        "{}",
        srv.log()
    );
    assert!(srv.is_alive(), "the server ended: {}", srv.log());
    drop(plain);
    drop(tls);
    plain_request_is_answered(&srv).await;
    assert_eq!(tls_retrieve_base(&srv), "2000");
    assert!(srv.log_shows("accepting connections again", Duration::from_secs(5)));
    assert!(srv.is_alive(), "the server ended: {}", srv.log());
}

#[tokio::test]
async fn issue12_13_connection_cap_below_the_descriptor_limit_warns_once() {
    let files = tempfile::tempdir().expect("files");
    let mut srv = Server::start_with_nofile(&tls_config(files.path(), ""), 128);
    assert!(srv.log_shows(
        "max-connections lowered to 64 to stay under the descriptor limit",
        Duration::from_secs(5)
    ));
    provision_admin_psk(&srv, files.path());
    // More bare connections than descriptors, to both listeners: the cap (64) stops
    // accepting before the descriptors run out.
    let plain = bare_connections(srv.port(), 100);
    let tls = bare_connections(tls_port(&srv), 100);
    const CAP: &str = "connection cap reached (64): new ones wait until others end";
    assert!(srv.log_shows(CAP, Duration::from_secs(10)), "{}", srv.log());
    assert!(srv.is_alive(), "the server ended: {}", srv.log());
    drop(plain);
    drop(tls);
    plain_request_is_answered(&srv).await;
    assert_eq!(tls_retrieve_base(&srv), "2000");
    assert!(srv.is_alive(), "the server ended: {}", srv.log());
    let log = srv.log();
    assert_eq!(srv.log_count(CAP), 1, "{log}");
    assert!(
        !log.contains("cannot accept connections"),
        "descriptors ran out despite the cap: {log}"
    );
}

/// Limits with every timeout long but `key`, which is 1 s.
fn one_short_timeout(key: &str) -> String {
    let mut limits = String::from("[limits]\n");
    for k in ["header-timeout-ms", "body-timeout-ms", "idle-timeout-ms"] {
        let ms = if k == key { 1000 } else { 600_000 };
        limits.push_str(&format!("{k} = {ms}\n"));
    }
    limits
}

#[tokio::test]
async fn issue12_14_slowloris_head_is_cut_after_the_header_timeout() {
    let (files, srv) = tls_server(&one_short_timeout("header-timeout-ms"));
    provision_admin_psk(&srv, files.path());
    let partial = format!(
        "GET /cse-in HTTP/1.1\r\nHost: 127.0.0.1\r\nX-M2M-Origin: {ADMIN}\r\nX-M2M-RI: slow\r\n"
    );
    // Plain: a head that never ends gets no answer, only the end of the connection.
    let mut stream = TcpStream::connect(("127.0.0.1", srv.port())).expect("connect");
    stream.write_all(partial.as_bytes()).expect("write");
    assert!(read_until_closed(&mut stream).is_none());
    // A connection that sends nothing at all is cut the same way.
    let mut silent = TcpStream::connect(("127.0.0.1", srv.port())).expect("connect");
    assert!(read_until_closed(&mut silent).is_none());
    // TLS: the same after the handshake.
    let mut tls = tls_stream(&srv).await;
    tls.write_all(partial.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the TLS connection was not closed");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    // Whole requests are still answered.
    plain_request_is_answered(&srv).await;
}

#[tokio::test]
async fn issue12_14_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (files, srv) = tls_server(&one_short_timeout("idle-timeout-ms"));
    provision_admin_psk(&srv, files.path());
    // On the plain listener an AE registered there asks for itself; the admin, who holds
    // a credential, may ask only over its association.
    let plain_ae = srv.ae("Cplain").await;
    let get = |path: &str, from: &str| {
        hyper::Request::get(path)
            .header("X-M2M-Origin", from)
            .header("X-M2M-RI", "idle")
            .header("X-M2M-RVI", "3")
            .header("Accept", "application/json")
            .header("Host", "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .expect("request")
    };
    let plain = tokio::net::TcpStream::connect(("127.0.0.1", srv.port()))
        .await
        .expect("connect");
    let tls = tls_stream(&srv).await;
    let (mut plain_sender, plain_conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(plain))
            .await
            .expect("http handshake");
    let (mut tls_sender, tls_conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("http handshake");
    let plain_driver = tokio::spawn(plain_conn);
    let tls_driver = tokio::spawn(tls_conn);
    let asks = [
        (&mut plain_sender, plain_ae.as_str(), "Cplain"),
        (&mut tls_sender, "/cse-in", ADMIN),
    ];
    for (sender, path, from) in asks {
        let response = sender
            .send_request(get(path, from))
            .await
            .expect("response");
        assert_eq!(response.headers()["x-m2m-rsc"], "2000");
        assert_ne!(
            response.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..])
        );
        let _ = response.into_body().collect().await;
    }
    // Kept alive and silent: both connections end without the client doing anything.
    for driver in [plain_driver, tls_driver] {
        let ended = tokio::time::timeout(Duration::from_secs(15), driver).await;
        assert!(ended.is_ok(), "an idle connection was kept open");
    }
}

#[tokio::test]
async fn issue12_14_stalled_body_is_answered_4008_and_closed() {
    let (_files, srv) = tls_server(&one_short_timeout("body-timeout-ms"));
    let head = format!(
        "POST /cse-in HTTP/1.1\r\nHost: 127.0.0.1\r\nX-M2M-Origin: {ADMIN}\r\nX-M2M-RI: stall\r\n\
         X-M2M-RVI: 3\r\nContent-Type: application/json;ty=3\r\nContent-Length: 100\r\n\r\n\
         {{\"m2m:cnt\": "
    );
    let mut stream = TcpStream::connect(("127.0.0.1", srv.port())).expect("connect");
    stream.write_all(head.as_bytes()).expect("write");
    let answer = read_until_closed(&mut stream).expect("an answer before the close");
    answer.expect(4008);
    assert_eq!(answer.header("x-m2m-ri"), Some("stall"));
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(
        answer.body["m2m:dbg"], "request body not received within 1000 ms",
        "{}",
        answer.text
    );
    // A complete body within the time is created as usual.
    srv.create(
        "/cse-in",
        ADMIN,
        3,
        serde_json::json!({"m2m:cnt": {"rn": "whole"}}),
    )
    .await
    .expect(2001);
}

const MN_KPSA_ID: &str = "mn@bastion.example";
const MN_KPSA: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

/// Binds a PSK to the CSE-ID `/id-mn`, so that a test can act as that CSE.
fn provision_mn_psk(srv: &Server, files: &Path) {
    let dir = srv.data_dir().to_string_lossy().into_owned();
    add_psk_credential(
        Store::DataDir(&dir),
        &path(files, "store.key"),
        MN_KPSA_ID,
        &psk_file(srv, "mn.psk", MN_KPSA),
        &["--cse-id", "/id-mn"],
    );
}

/// A request as the CSE `/id-mn` over its association: rsc and body.
fn as_mn(
    srv: &Server,
    op: &str,
    to: &str,
    body: &serde_json::Value,
) -> (String, serde_json::Value) {
    let url = format!("https://127.0.0.1:{}", tls_port(srv));
    let body = body.to_string();
    let mn_psk = psk_file(srv, "mn.psk", MN_KPSA);
    let mut args = vec!["--op", op, "--to", to, "--from", "/id-mn", "--body", &body];
    if op == "create" {
        args.extend_from_slice(&["--ty", "16"]);
    }
    let out = psk_req(&url, MN_KPSA_ID, &mn_psk, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rsc, json) = stdout.split_once('\n').unwrap_or((stdout.as_str(), ""));
    (
        rsc.trim().to_owned(),
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

/// Registers `/id-mn` with `poa`, retrying until the server has loaded its PSK: the rsc.
fn register_mn(srv: &Server, poa: &[String]) -> (String, serde_json::Value) {
    let body = serde_json::json!({"m2m:csr": {
        "rn": "id-mn", "cb": "/id-mn/cse-mn", "csi": "/id-mn", "cst": 2, "rr": true,
        "poa": poa, "srv": ["3"],
    }});
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = as_mn(srv, "create", "/cse-in", &body);
        if !answer.0.is_empty() {
            return answer;
        }
        assert!(Instant::now() < deadline, "the MN's PSK is never accepted");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A TCP relay on an ephemeral loopback port to `port`: a point of access that leads to
/// the server without naming it. Counts the connections it relayed.
async fn relay_to(port: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let relay_port = listener.local_addr().expect("addr").port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (relay_port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_15_remote_cse_whose_poa_is_this_cse_is_4000() {
    let (files, srv) = tls_server("");
    provision_mn_psk(&srv, files.path());
    const WHY: &str = "poa names a point of access of this CSE itself (a forwarding loop)";
    for poa in [
        format!("http://127.0.0.1:{}", srv.port()),
        format!("https://localhost:{}/cse-in", tls_port(&srv)),
        format!("http://[::1]:{}", srv.port()),
    ] {
        let (rsc, body) = register_mn(&srv, std::slice::from_ref(&poa));
        assert_eq!(rsc, "4000", "{poa}: {body}");
        assert_eq!(body["m2m:dbg"], WHY, "{poa}");
    }
    // Registered with a point of access elsewhere, it cannot be moved onto this CSE.
    let (rsc, _) = register_mn(&srv, &["http://127.0.0.1:9".to_owned()]);
    assert_eq!(rsc, "2001");
    let own = serde_json::json!({"m2m:csr": {"poa": [format!("http://localhost:{}", srv.port())]}});
    let (rsc, body) = as_mn(&srv, "update", "/cse-in/id-mn", &own);
    assert_eq!(rsc, "4000", "{body}");
    assert_eq!(body["m2m:dbg"], WHY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_15_a_forwarded_request_that_comes_back_is_5103() {
    use std::sync::atomic::Ordering;
    let (files, srv) = tls_server("");
    provision_mn_psk(&srv, files.path());
    // The MN's point of access is a relay back to this very CSE.
    let (relay, relayed) = relay_to(srv.port()).await;
    let (rsc, body) = register_mn(&srv, &[format!("http://127.0.0.1:{relay}")]);
    assert_eq!(rsc, "2001", "{body}");
    let resp = srv
        .request("GET", "/~/id-mn/cse-mn")
        .from(ADMIN)
        .ri("round-trip")
        .send()
        .await;
    resp.expect(5103);
    assert_eq!(
        resp.inner("m2m:dbg"),
        "forwarding loop: this request came back to a CSE that forwarded it"
    );
    assert_eq!(resp.header("x-m2m-ri"), Some("round-trip"));
    // It went round once and stopped there.
    assert_eq!(relayed.load(Ordering::SeqCst), 1);
    assert!(srv.log_shows("forwarding loop", Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_15_outbound_requests_in_flight_are_capped() {
    let (files, srv) = tls_server("[limits]\nmax-outbound-requests = 1\n");
    provision_mn_psk(&srv, files.path());
    // The MN accepts and reads, but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let (got_request, mut request_arrived) = tokio::sync::mpsc::channel::<()>(1);
    let holder = tokio::spawn(async move {
        let (mut conn, _) = silent.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).await;
        let _ = got_request.send(()).await;
        // Held until the test aborts this task.
        std::future::pending::<()>().await;
        drop(conn);
    });
    let (rsc, body) = register_mn(&srv, &[format!("http://127.0.0.1:{silent_port}")]);
    assert_eq!(rsc, "2001", "{body}");

    let first = {
        let client = srv.client().clone();
        let url = srv.url("/~/id-mn/cse-mn");
        tokio::spawn(async move {
            client
                .get(url)
                .header("X-M2M-Origin", ADMIN)
                .header("X-M2M-RI", "first")
                .header("X-M2M-RVI", "3")
                .header("Accept", "application/json")
                .send()
                .await
                .map(|r| r.headers()["x-m2m-rsc"].to_str().unwrap_or("").to_owned())
        })
    };
    tokio::time::timeout(Duration::from_secs(10), request_arrived.recv())
        .await
        .expect("the first request reached the MN");
    // The one slot is taken: the second is refused at once, unsent.
    let second = srv
        .request("GET", "/~/id-mn/cse-mn")
        .from(ADMIN)
        .send()
        .await;
    second.expect(5103);
    assert_eq!(
        second.inner("m2m:dbg"),
        "not forwarded: the limit of 1 outbound requests in flight is reached \
         (max-outbound-requests)"
    );
    assert!(srv.log_shows("outbound requests refused", Duration::from_secs(5)));
    // The MN goes away: the first ends, and its slot is free again.
    holder.abort();
    let first = first.await.expect("task").expect("first answered");
    assert_eq!(first, "5103");
    let third = srv
        .request("GET", "/~/id-mn/cse-mn")
        .from(ADMIN)
        .send()
        .await;
    third.expect(5103);
    assert_eq!(
        third.inner("m2m:dbg"),
        "the next hop towards the target is not reachable"
    );
}

#[tokio::test]
async fn issue12_16_subscriptions_per_originator_are_capped() {
    use serde_json::json;
    let srv = Server::start_with_config("[limits]\nmax-subscriptions-per-originator = 2\n");
    let ae = srv.ae("Cowner").await;
    srv.create_cnt(&ae, "Cowner", json!({"rn": "cnt"})).await;
    let cnt = format!("{ae}/cnt");
    let rx = Receiver::start().await;
    let subscribe = |orig: &'static str, rn: &'static str| {
        let cnt = cnt.clone();
        let nu = rx.url.clone();
        let srv = &srv;
        async move {
            srv.create(&cnt, orig, 23, json!({"m2m:sub": {"rn": rn, "nu": [nu]}}))
                .await
        }
    };
    subscribe("Cowner", "s1").await.expect(2001);
    // The same originator in its SP-relative form is the same originator.
    subscribe("/id-in/Cowner", "s2").await.expect(2001);
    let verifications = rx.all().len();
    let third = subscribe("Cowner", "s3").await;
    third.expect(5207);
    assert_eq!(
        third.inner("m2m:dbg"),
        "the originator already holds the maximum of 2 subscriptions"
    );
    // Refused before its verification request was sent.
    assert_eq!(rx.all().len(), verifications);
    // Deleting one frees its place.
    srv.delete(&format!("{cnt}/s1"), "Cowner")
        .await
        .expect(2002);
    subscribe("Cowner", "s3").await.expect(2001);
    // The count survives a restart (it is rebuilt from the stored subscriptions).
    let mut srv = srv;
    srv.restart();
    srv.create(
        &cnt,
        "Cowner",
        23,
        json!({"m2m:sub": {"rn": "s4", "nu": [rx.url.clone()]}}),
    )
    .await
    .expect(5207);
}

/// Issue 12 item 16: what is queued for a target that stopped answering stays within the
/// notification byte budget. 600 events of 48 KiB (about 28 MiB) for one stuck target
/// leave the server's resident memory (`VmRSS`) within 16 MiB of where it was, where an
/// unbounded queue would hold them all; the refusals are one warning, not 600.
#[tokio::test]
async fn issue12_16_notifications_for_a_stuck_target_stay_within_the_byte_budget() {
    let srv = Server::start_with_config(
        "[limits]\nnotification-destination-bytes = 1048576\n\
         notification-total-bytes = 2097152\n",
    );
    let ae = srv.ae("Cowner").await;
    let cnt = srv
        .create_cnt(&ae, "Cowner", serde_json::json!({"rn": "big", "mni": 5}))
        .await;
    let cnt = format!("{ae}/{}", cnt["rn"].as_str().expect("rn"));
    let stuck = Receiver::start_holding(true).await;
    // The target confirms the subscription, then stops answering.
    stuck.hold.add_permits(1);
    srv.create(
        &cnt,
        "Cowner",
        23,
        serde_json::json!({"m2m:sub": {"nu": [stuck.url], "enc": {"net": [3]}}}),
    )
    .await
    .expect(2001);
    let content = "x".repeat(48 * 1024);
    // Warm-up: allocator arenas and the store's cache reach their working size.
    for _ in 0..20 {
        srv.create_cin(&cnt, "Cowner", &content).await;
    }
    let before = srv.resident_kib();
    for _ in 0..600 {
        srv.create_cin(&cnt, "Cowner", &content).await;
    }
    let after = srv.resident_kib();
    assert!(
        after < before + 16 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    assert_eq!(
        srv.log_count("notification dropped: delivery queues full"),
        1,
        "{}",
        srv.log()
    );
}
