//! Availability under hostile load (issue 12, items 13-16; docs/security.md,
//! "Availability"): the real binary, real sockets, a real descriptor limit.
//!
//! * descriptor exhaustion on accept never ends the server, and the connection cap keeps
//!   it from happening (one warning when the cap is reached);
//! * slow or idle clients are cut by the header, body and idle timeouts, on the plain
//!   and the TLS listener.

mod common;

use common::limits::{bare_connections, read_until_closed};
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

/// Binds a PSK to the admin and waits until the running server accepts it.
fn provision_admin_psk(srv: &Server, files: &Path) {
    let dir = srv.data_dir().to_string_lossy().into_owned();
    ok(&bastion(&[
        "credentials",
        "add",
        "--data-dir",
        &dir,
        "--key-file",
        &path(files, "store.key"),
        "--id",
        KPSA_ID,
        "--key-hex",
        KPSA,
        "--originator",
        ADMIN,
    ]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tls_retrieve_base(srv) != "2000" {
        assert!(Instant::now() < deadline, "the PSK is never accepted");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// RETRIEVE of the CSEBase by the admin over TLS-PSK with `bastion req`: its rsc.
fn tls_retrieve_base(srv: &Server) -> String {
    let url = format!("https://127.0.0.1:{}", tls_port(srv));
    let out = bastion(&[
        "req", "--url", &url, "--psk-id", KPSA_ID, "--psk-hex", KPSA, "--to", "/cse-in",
        "--from", ADMIN,
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A TLS-PSK connection to the server's TLS listener, bound to the admin.
async fn tls_stream(srv: &Server) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    let client = bastion_tls::TlsClient::psk(
        KPSA_ID,
        bastion_tls::PskKey::from_hex(KPSA).expect("key"),
        &bastion_tls::ClientOptions::default(),
    )
    .expect("client");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls_port(srv)))
        .await
        .expect("connect");
    client.connect("localhost", tcp).await.expect("handshake")
}

#[tokio::test]
async fn issue12_13_descriptor_exhaustion_on_accept_never_ends_the_server() {
    let files = tempfile::tempdir().expect("files");
    let mut srv = Server::start_with_config(&tls_config(files.path(), ""));
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
    srv.get("/cse-in", ADMIN).await.expect(2000);
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
    assert!(
        srv.log_shows(CAP, Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    assert!(srv.is_alive(), "the server ended: {}", srv.log());
    drop(plain);
    drop(tls);
    srv.get("/cse-in", ADMIN).await.expect(2000);
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
    let files = tempfile::tempdir().expect("files");
    let srv = Server::start_with_config(&tls_config(
        files.path(),
        &one_short_timeout("header-timeout-ms"),
    ));
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
    srv.get("/cse-in", ADMIN).await.expect(2000);
}

#[tokio::test]
async fn issue12_14_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let files = tempfile::tempdir().expect("files");
    let srv = Server::start_with_config(&tls_config(
        files.path(),
        &one_short_timeout("idle-timeout-ms"),
    ));
    provision_admin_psk(&srv, files.path());
    let get = || {
        hyper::Request::get("/cse-in")
            .header("X-M2M-Origin", ADMIN)
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
    for sender in [&mut plain_sender, &mut tls_sender] {
        let response = sender.send_request(get()).await.expect("response");
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
    let files = tempfile::tempdir().expect("files");
    let srv = Server::start_with_config(&tls_config(
        files.path(),
        &one_short_timeout("body-timeout-ms"),
    ));
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
