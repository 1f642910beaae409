//! `Client` against a real Bastion CSE started in-process (`Cse::open` +
//! `bastion_http::serve` on a free loopback port, SQLite in a temporary directory): every
//! mapped parameter must reach the CSE and come back with the exact rsc (TS-0009 §6).

use bastion_client::{Client, ClientConfig, ClientError};
use bastion_core::{Cse, CseConfig};
use bastion_http::HttpLimits;
use bastion_proto::{Operation, Request, Rsc};
use bastion_store::Store;
use bastion_store_sqlite::SqliteStore;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

struct Running {
    url: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("bastion.db")).expect("store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let config = CseConfig {
        poa: vec![format!("http://{addr}")],
        ..CseConfig::default()
    };
    let cse = Cse::open(config, store).await.expect("CSE");
    let task = tokio::spawn(bastion_http::serve(listener, cse, HttpLimits::default()));
    Running {
        url: format!("http://{addr}"),
        _dir: dir,
        task,
    }
}

fn req(op: Operation, to: &str, fr: &str) -> Request {
    Request {
        op: Some(op),
        to: to.into(),
        fr: Some(fr.into()),
        rvi: Some("3".into()),
        ..Request::default()
    }
}

#[tokio::test]
async fn ts0009_crud_round_trip_with_exact_rsc() {
    let cse = start().await;
    let client = Client::default();

    let ae = Request {
        ty: Some(2),
        rqi: Some("ae-1".into()),
        pc: Some(
            json!({"m2m:ae": {"rn": "app", "api": "Nbastion.test", "rr": false, "srv": ["3"]}}),
        ),
        ..req(Operation::Create, "cse-in", "Capp")
    };
    let resp = client.send(&cse.url, &ae).await.expect("response");
    assert_eq!(resp.rsc, Rsc::Created);
    assert_eq!(resp.rqi, "ae-1");
    assert_eq!(resp.rvi.as_deref(), Some("3"));
    assert_eq!(
        resp.pc.as_ref().and_then(|pc| pc["m2m:ae"]["aei"].as_str()),
        Some("Capp")
    );

    let cnt = Request {
        ty: Some(3),
        pc: Some(json!({"m2m:cnt": {"rn": "data", "lbl": ["sensor"]}})),
        ..req(Operation::Create, "cse-in/app", "Capp")
    };
    assert_eq!(
        client.send(&cse.url, &cnt).await.expect("response").rsc,
        Rsc::Created
    );

    // SP-relative address (/~ path) and a filter query.
    let mut disc = req(Operation::Retrieve, "/id-in/cse-in/app", "Capp");
    disc.fc.fu = Some(1);
    disc.fc.lbl = vec!["sensor".into()];
    let resp = client.send(&cse.url, &disc).await.expect("response");
    assert_eq!(resp.rsc, Rsc::Ok);
    assert_eq!(resp.pc, Some(json!({"m2m:uril": ["cse-in/app/data"]})));

    // Absolute address (/_ path), rcn.
    let mut get = req(
        Operation::Retrieve,
        "//bastion.example/id-in/cse-in/app/data",
        "Capp",
    );
    get.rcn = Some(1);
    let resp = client.send(&cse.url, &get).await.expect("response");
    assert_eq!(resp.rsc, Rsc::Ok);
    assert_eq!(
        resp.pc.as_ref().and_then(|pc| pc["m2m:cnt"]["rn"].as_str()),
        Some("data")
    );

    let upd = Request {
        pc: Some(json!({"m2m:cnt": {"lbl": ["x"]}})),
        ..req(Operation::Update, "cse-in/app/data", "Capp")
    };
    assert_eq!(
        client.send(&cse.url, &upd).await.expect("response").rsc,
        Rsc::Updated
    );

    // An unregistered AE-ID originator: 4106 (TS-0003 7.2.1).
    let other = req(Operation::Retrieve, "cse-in/app/data", "Cother");
    let resp = client.send(&cse.url, &other).await.expect("response");
    assert_eq!(resp.rsc, Rsc::OriginatorNotAuthenticated);

    let del = req(Operation::Delete, "cse-in/app/data", "Capp");
    assert_eq!(
        client.send(&cse.url, &del).await.expect("response").rsc,
        Rsc::Deleted
    );
    let gone = req(Operation::Retrieve, "cse-in/app/data", "Capp");
    assert_eq!(
        client.send(&cse.url, &gone).await.expect("response").rsc,
        Rsc::NotFound
    );
}

#[tokio::test]
async fn ts0009_bad_parameters_come_back_as_the_cse_reports_them() {
    let cse = start().await;
    let client = Client::default();
    // An unsupported release version travels in X-M2M-RVI.
    let mut r = req(Operation::Retrieve, "cse-in", "CAdmin");
    r.rvi = Some("1".into());
    let resp = client.send(&cse.url, &r).await.expect("response");
    assert_eq!(resp.rsc, Rsc::ReleaseVersionNotSupported);
    // A NOTIFY to the CSEBase is not allowed.
    let n = Request {
        pc: Some(json!({"m2m:sgn": {"vrq": true}})),
        ..req(Operation::Notify, "cse-in", "CAdmin")
    };
    let resp = client.send(&cse.url, &n).await.expect("response");
    assert_eq!(
        resp.pc.as_ref().map(|pc| pc.get("m2m:dbg").is_some()),
        Some(true)
    );
    assert!(!resp.rsc.is_success());
}

#[tokio::test]
async fn transport_failures_are_client_errors() {
    // Nothing listens on a port just freed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let client = Client::default();
    let r = req(Operation::Retrieve, "cse-in", "CAdmin");
    assert!(matches!(
        client.send(&format!("http://{addr}"), &r).await,
        Err(ClientError::Connect(_))
    ));
    assert!(matches!(
        client.send("https://127.0.0.1:1", &r).await,
        Err(ClientError::UnsupportedScheme(_))
    ));

    // A peer that accepts but never answers: the deadline applies.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("address");
    let hold = tokio::spawn(async move {
        let conn = silent.accept().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(conn);
    });
    let quick = Client::new(ClientConfig {
        timeout: Duration::from_millis(200),
        ..ClientConfig::default()
    });
    assert!(matches!(
        quick.send(&format!("http://{addr}"), &r).await,
        Err(ClientError::Timeout(_))
    ));
    hold.abort();

    // A response over the body limit.
    let cse = start().await;
    let tiny = Client::new(ClientConfig {
        max_body_bytes: 16,
        ..ClientConfig::default()
    });
    let big = req(Operation::Retrieve, "cse-in", "CAdmin");
    assert!(matches!(
        tiny.send(&cse.url, &big).await,
        Err(ClientError::BodyTooLarge(16))
    ));
}
