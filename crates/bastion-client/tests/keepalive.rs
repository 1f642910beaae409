//! Connection reuse: a `Client` sends consecutive requests to one endpoint over one
//! kept-alive connection, opens a new one when the peer said `Connection: close` or
//! closed the idle connection, and never sends a request twice. The peer is a real TCP
//! server counting connections and requests.

use bastion_client::Client;
use bastion_proto::{Operation, Request, Rsc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy)]
enum After {
    /// Keep the connection open for the next request.
    KeepOpen,
    /// Answer with `Connection: close` and close.
    SayClose,
    /// Answer normally, then close the socket without saying so.
    CloseSilently,
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// A minimal HTTP/1.1 peer answering every request with rsc 2000.
async fn peer(after: After) -> (String, Arc<Counts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    buf.drain(..end + 4);
                    c.requests.fetch_add(1, Ordering::SeqCst);
                    let close = matches!(after, After::SayClose);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nX-M2M-RSC: 2000\r\nX-M2M-RI: r\r\nX-M2M-RVI: 3\r\n\
                         Content-Length: 0\r\n{}\r\n",
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if !matches!(after, After::KeepOpen) {
                        return;
                    }
                }
            });
        }
    });
    (url, counts)
}

fn retrieve() -> Request {
    Request {
        op: Some(Operation::Retrieve),
        to: "cse-in".into(),
        fr: Some("CAdmin".into()),
        rvi: Some("3".into()),
        ..Request::default()
    }
}

#[tokio::test]
async fn consecutive_requests_share_one_connection() {
    let (url, counts) = peer(After::KeepOpen).await;
    let client = Client::default();
    for _ in 0..5 {
        assert_eq!(client.send(&url, &retrieve()).await.unwrap().rsc, Rsc::Ok);
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 5);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
    // A clone shares the idle connection.
    let clone = client.clone();
    assert_eq!(clone.send(&url, &retrieve()).await.unwrap().rsc, Rsc::Ok);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
    // Another client does not.
    assert_eq!(
        Client::default().send(&url, &retrieve()).await.unwrap().rsc,
        Rsc::Ok
    );
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_plain_request_shares_the_onem2m_connection() {
    // Another protocol (EST) over the association of a oneM2M exchange: same connection.
    let (url, counts) = peer(After::KeepOpen).await;
    let client = Client::default();
    assert_eq!(client.send(&url, &retrieve()).await.unwrap().rsc, Rsc::Ok);
    let (status, body) = client
        .request(
            http::Method::POST,
            &format!("{url}/.well-known/est/simpleenroll"),
            Some("application/pkcs10"),
            "*/*",
            bytes::Bytes::from_static(b"MIIB"),
        )
        .await
        .unwrap();
    assert_eq!((status.as_u16(), body.len()), (200, 0));
    assert_eq!(client.send(&url, &retrieve()).await.unwrap().rsc, Rsc::Ok);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 3);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let (url, counts) = peer(After::SayClose).await;
    let client = Client::default();
    for _ in 0..3 {
        assert_eq!(client.send(&url, &retrieve()).await.unwrap().rsc, Rsc::Ok);
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 3);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_peer_is_replaced_without_resending() {
    let (url, counts) = peer(After::CloseSilently).await;
    let client = Client::default();
    for round in 1..=3 {
        assert_eq!(client.send(&url, &retrieve()).await.unwrap().rsc, Rsc::Ok);
        // Give the peer's close time to arrive, as it would between real requests.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(counts.requests.load(Ordering::SeqCst), round);
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_close_racing_the_next_request_never_duplicates_it() {
    // No pause: the next request may find the connection just closed by the peer. It is
    // then sent again on a new connection when it was not written, or fails when it was:
    // either way the peer never sees a request twice.
    let (url, counts) = peer(After::CloseSilently).await;
    let client = Client::default();
    let mut answered = 0;
    for _ in 0..20 {
        if let Ok(resp) = client.send(&url, &retrieve()).await {
            assert_eq!(resp.rsc, Rsc::Ok);
            answered += 1;
        }
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), answered);
    assert!(answered > 0);
}
