//! End-to-end tests of the location PIP against a small OMA RESTful NetAPI Terminal
//! Location v1 server run in-process (axum on 127.0.0.1:0). The server records
//! subscriptions, deletions and queries, and on command POSTs notifications to the
//! callback URL the PIP gave it, over real HTTP. Time is a `ManualClock`: no sleeps.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::Router;
use bastion_location::{
    Circle, DeviceReport, LocationConfig, LocationError, LocationPip, ManualClock, NetworkConfig,
    StaticNode, Terminal,
};
use bastion_policy::{LocalIdentity, Location, LocationService};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;

const T0: u64 = 1_800_000_000;
const ALICE: &str = "//sp.example/cse1/CAlice";
const BOB: &str = "//sp.example/cse1/CBob";
const BERLIN: Location = Location {
    latitude: 52.52,
    longitude: 13.405,
};
const PARIS: Location = Location {
    latitude: 48.8566,
    longitude: 2.3522,
};

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//sp.example".into(),
        cse_id: "/cse1".into(),
        admin: "CAdmin".into(),
    }
}

fn stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

/// What the fake location server saw.
#[derive(Default)]
struct Recorded {
    /// (resource id, request body)
    subscriptions: Vec<(String, Value)>,
    deleted: Vec<String>,
    queries: Vec<String>,
    next_id: usize,
    query_answer: Value,
}

struct FakeServer {
    base: String,
    state: Arc<Mutex<Recorded>>,
    http: reqwest::Client,
}

async fn create_sub(State(s): State<Arc<Mutex<Recorded>>>, body: Bytes) -> impl IntoResponse {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let mut r = s.lock();
    r.next_id += 1;
    let id = format!("sub{}", r.next_id);
    r.subscriptions.push((id.clone(), v.clone()));
    let mut answer = v;
    // A relative resourceURL: the PIP must resolve it against the request URL.
    answer["circleNotificationSubscription"]["resourceURL"] = json!(format!("circle/{id}"));
    (StatusCode::CREATED, answer.to_string())
}

async fn delete_sub(State(s): State<Arc<Mutex<Recorded>>>, Path(id): Path<String>) -> StatusCode {
    s.lock().deleted.push(id);
    StatusCode::NO_CONTENT
}

async fn query(State(s): State<Arc<Mutex<Recorded>>>, RawQuery(q): RawQuery) -> impl IntoResponse {
    let mut r = s.lock();
    r.queries.push(q.unwrap_or_default());
    (StatusCode::OK, r.query_answer.to_string())
}

impl FakeServer {
    async fn start() -> FakeServer {
        let state = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .route(
                "/tl/location/v1/subscriptions/area/circle",
                post(create_sub),
            )
            .route(
                "/tl/location/v1/subscriptions/area/circle/{id}",
                delete(delete_sub),
            )
            .route("/tl/location/v1/queries/location", get(query))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeServer {
            base: format!("http://{addr}/tl"),
            state,
            http: reqwest::Client::new(),
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.state
            .lock()
            .subscriptions
            .iter()
            .map(|(_, b)| b["circleNotificationSubscription"].clone())
            .collect()
    }

    /// POSTs a notification for subscription `index` to the callback URL it names.
    async fn notify(&self, index: usize, payload: impl FnOnce(&str) -> Value) -> StatusCode {
        let sub =
            self.state.lock().subscriptions[index].1["circleNotificationSubscription"].clone();
        let url = sub["callbackReference"]["notifyURL"]
            .as_str()
            .unwrap()
            .to_owned();
        let data = sub["callbackReference"]["callbackData"]
            .as_str()
            .unwrap()
            .to_owned();
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(payload(&data).to_string())
            .send()
            .await
            .unwrap();
        StatusCode::from_u16(resp.status().as_u16()).unwrap()
    }

    /// A well-formed "Entering" notification for `address` at `loc`, measured at `at`.
    async fn enter(
        &self,
        index: usize,
        address: &str,
        loc: Location,
        at: SystemTime,
    ) -> StatusCode {
        let address = address.to_owned();
        self.notify(index, |data| entering(data, &address, loc, at))
            .await
    }
}

fn entering(data: &str, address: &str, loc: Location, at: SystemTime) -> Value {
    json!({"subscriptionNotification": {
        "callbackData": data,
        "enteringLeavingCriteria": "Entering",
        "isFinalNotification": false,
        "link": [{"rel": "CircleNotificationSubscription", "href": "http://x/y"}],
        "terminalLocation": [{
            "address": address,
            "locationRetrievalStatus": "Retrieved",
            "currentLocation": {
                "latitude": loc.latitude, "longitude": loc.longitude,
                "accuracy": 50, "timestamp": stamp(at)
            }
        }]
    }})
}

struct Setup {
    pip: Arc<LocationPip>,
    clock: Arc<ManualClock>,
    server: FakeServer,
    callback: SocketAddr,
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0)
}

async fn setup(edit: impl FnOnce(&mut LocationConfig)) -> Setup {
    let server = FakeServer::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = listener.local_addr().unwrap();
    let mut config = LocationConfig {
        network: Some(NetworkConfig {
            base_url: format!("{}/", server.base),
            callback_url: format!("http://{callback}/oma/notify"),
            terminals: vec![
                Terminal {
                    originator: "CAlice".into(),
                    address: "tel:+491111".into(),
                },
                Terminal {
                    originator: "/cse1/CBob".into(),
                    address: "acr:bob".into(),
                },
            ],
            max_age_secs: 60,
            poll_interval_secs: None,
            tracking_accuracy_m: 25,
            requested_accuracy_m: 500,
            frequency_secs: 5,
            request_timeout_secs: 5,
        }),
        ..LocationConfig::default()
    };
    edit(&mut config);
    let clock = Arc::new(ManualClock::new(t0()));
    let pip = Arc::new(LocationPip::with_clock(&config, &local(), clock.clone()).unwrap());
    tokio::spawn(Arc::clone(&pip).serve(listener));
    Setup {
        pip,
        clock,
        server,
        callback,
    }
}

const CIRCLE: Circle = Circle {
    latitude: 52.5,
    longitude: 13.4,
    radius_m: 5000.0,
};

#[tokio::test]
async fn subscriptions_carry_each_terminal_and_circle() {
    let s = setup(|_| {}).await;
    let r = s.pip.set_circles(&[CIRCLE, CIRCLE]).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.created, r.deleted, r.unchanged), (4, 0, 0));
    let mut seen: Vec<(String, String)> = Vec::new();
    for b in s.server.bodies() {
        assert_eq!(b["latitude"], json!(52.5));
        assert_eq!(b["longitude"], json!(13.4));
        assert_eq!(b["radius"], json!(5000.0));
        assert_eq!(b["checkImmediate"], json!(true));
        assert_eq!(b["trackingAccuracy"], json!(25));
        assert_eq!(b["frequency"], json!(5));
        assert_eq!(
            b["callbackReference"]["notifyURL"],
            json!(format!("http://{}/oma/notify", s.callback))
        );
        assert_eq!(
            b["callbackReference"]["callbackData"]
                .as_str()
                .unwrap()
                .len(),
            32
        );
        let addr = b["address"].as_array().unwrap();
        assert_eq!(addr.len(), 1);
        seen.push((
            addr[0].as_str().unwrap().to_owned(),
            b["enteringLeavingCriteria"].as_str().unwrap().to_owned(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("acr:bob", "Entering"),
            ("acr:bob", "Leaving"),
            ("tel:+491111", "Entering"),
            ("tel:+491111", "Leaving"),
        ]
        .map(|(a, c)| (a.to_owned(), c.to_owned()))
    );
    // The relative resourceURLs were resolved against the request URL.
    let mut subs = s.pip.subscriptions().await;
    subs.sort();
    assert_eq!(
        subs[0],
        format!(
            "{}/location/v1/subscriptions/area/circle/sub1",
            s.server.base
        )
    );
    // Same circles again: nothing to do.
    let r = s.pip.set_circles(&[CIRCLE]).await.unwrap();
    assert_eq!((r.created, r.deleted, r.unchanged), (0, 0, 4));
    assert_eq!(s.server.bodies().len(), 4);
}

#[tokio::test]
async fn set_circles_deletes_subscriptions_of_dropped_circles() {
    let s = setup(|_| {}).await;
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    let other = Circle {
        latitude: 48.85,
        longitude: 2.35,
        radius_m: 1000.0,
    };
    let r = s.pip.set_circles(&[other]).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.created, r.deleted, r.unchanged), (4, 4, 0));
    let mut deleted = s.server.state.lock().deleted.clone();
    deleted.sort();
    assert_eq!(deleted, ["sub1", "sub2", "sub3", "sub4"]);
    let new: Vec<Value> = s.server.bodies().split_off(4);
    assert!(new
        .iter()
        .all(|b| b["latitude"] == json!(48.85) && b["radius"] == json!(1000.0)));
    let r = s.pip.set_circles(&[]).await.unwrap();
    assert_eq!((r.created, r.deleted, r.unchanged), (0, 4, 0));
    assert!(s.pip.subscriptions().await.is_empty());
}

#[tokio::test]
async fn invalid_circle_sends_nothing() {
    let s = setup(|_| {}).await;
    for bad in [
        Circle {
            radius_m: 0.0,
            ..CIRCLE
        },
        Circle {
            radius_m: f64::NAN,
            ..CIRCLE
        },
        Circle {
            latitude: 91.0,
            ..CIRCLE
        },
    ] {
        assert!(matches!(
            s.pip.set_circles(&[CIRCLE, bad]).await,
            Err(LocationError::InvalidCircle { .. })
        ));
    }
    assert!(s.server.bodies().is_empty());
}

#[tokio::test]
async fn entering_notification_sets_the_location_until_it_is_stale() {
    let s = setup(|_| {}).await;
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    assert_eq!(s.pip.locate(ALICE), None);
    let st = s
        .server
        .enter(0, "tel:+491111", BERLIN, t0() - Duration::from_secs(10))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(s.pip.locate(ALICE), Some(BERLIN));
    assert_eq!(s.pip.locate(BOB), None);
    // Measured 10 s ago, max age 60 s: fresh for 50 s more.
    s.clock.advance(Duration::from_secs(50));
    assert_eq!(s.pip.locate(ALICE), Some(BERLIN));
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(s.pip.locate(ALICE), None);
}

#[tokio::test]
async fn older_or_stale_fixes_do_not_replace_newer_ones() {
    let s = setup(|_| {}).await;
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    let st = s.server.enter(0, "tel:+491111", BERLIN, t0()).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // Delivered late: measured before the fix we hold.
    let st = s
        .server
        .enter(0, "tel:+491111", PARIS, t0() - Duration::from_secs(5))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(s.pip.locate(ALICE), Some(BERLIN));
    // A fix from the future counts as measured on arrival.
    let st = s
        .server
        .enter(0, "tel:+491111", PARIS, t0() + Duration::from_secs(3600))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(s.pip.locate(ALICE), Some(PARIS));
    s.clock.advance(Duration::from_secs(61));
    assert_eq!(s.pip.locate(ALICE), None);
    // Already stale when it arrives: not stored.
    let st = s.server.enter(0, "tel:+491111", BERLIN, t0()).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(s.pip.locate(ALICE), None);
}

/// Builds a notification body from our callbackData.
type Mutation = Box<dyn Fn(&str) -> Value>;

#[tokio::test]
async fn malformed_notifications_get_400_and_change_nothing() {
    let s = setup(|_| {}).await;
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    assert_eq!(
        s.server.enter(0, "tel:+491111", BERLIN, t0()).await,
        StatusCode::NO_CONTENT
    );
    let good = |data: &str| entering(data, "tel:+491111", PARIS, t0());
    let cases: Vec<Mutation> = vec![
        Box::new(|_| json!("not an object")),
        Box::new(|_| json!({"somethingElse": {}})),
        Box::new(move |d| {
            let mut v = good(d);
            v["subscriptionNotification"]["terminalLocation"] = json!([]);
            v
        }),
        Box::new(move |d| {
            let mut v = good(d);
            v["subscriptionNotification"]["terminalLocation"][0]
                .as_object_mut()
                .unwrap()
                .remove("address");
            v
        }),
        Box::new(move |d| {
            let mut v = good(d);
            v["subscriptionNotification"]["terminalLocation"][0]
                .as_object_mut()
                .unwrap()
                .remove("currentLocation");
            v
        }),
        Box::new(move |d| {
            let mut v = good(d);
            v["subscriptionNotification"]["terminalLocation"][0]["currentLocation"]["latitude"] =
                json!(95.0);
            v
        }),
        Box::new(move |d| {
            let mut v = good(d);
            v["subscriptionNotification"]["terminalLocation"][0]["currentLocation"]["longitude"] =
                json!("2.35");
            v
        }),
        Box::new(move |d| {
            let mut v = good(d);
            v["subscriptionNotification"]["terminalLocation"][0]["currentLocation"]["timestamp"] =
                json!("last tuesday");
            v
        }),
        Box::new(move |d| {
            let mut v = good(d);
            v["subscriptionNotification"]["terminalLocation"][0]["locationRetrievalStatus"] =
                json!("Maybe");
            v
        }),
        // One bad entry spoils the whole notification, including the good one before it.
        Box::new(move |d| {
            let mut v = good(d);
            let entries = v["subscriptionNotification"]["terminalLocation"]
                .as_array_mut()
                .unwrap();
            let mut bad = entries[0].clone();
            bad["currentLocation"]["latitude"] = json!(f64::MAX);
            bad["currentLocation"]["longitude"] = json!(-200.0);
            entries.push(bad);
            v
        }),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(
            s.server.notify(0, case).await,
            StatusCode::BAD_REQUEST,
            "case {i}"
        );
        assert_eq!(s.pip.locate(ALICE), Some(BERLIN), "case {i}");
    }
    // Not JSON at all.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/oma/notify", s.callback))
        .body("{\"subscriptionNotification\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(s.pip.locate(ALICE), Some(BERLIN));
}

#[tokio::test]
async fn notifications_without_our_callback_data_are_refused() {
    let s = setup(|_| {}).await;
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    let st = s
        .server
        .notify(0, |_| entering("guessed", "tel:+491111", BERLIN, t0()))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let st = s
        .server
        .notify(0, |d| {
            let mut v = entering(d, "tel:+491111", BERLIN, t0());
            v["subscriptionNotification"]
                .as_object_mut()
                .unwrap()
                .remove("callbackData");
            v
        })
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(s.pip.locate(ALICE), None);
}

#[tokio::test]
async fn unknown_addresses_and_unlocated_terminals_are_ignored() {
    let s = setup(|_| {}).await;
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    let st = s.server.enter(0, "tel:+499999", BERLIN, t0()).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(s.pip.locate(ALICE), None);
    assert_eq!(s.pip.locate(BOB), None);
    // Same through the HTTP-less entry point, which reports what it did.
    let sub = s.server.bodies()[0].clone();
    let data = sub["callbackReference"]["callbackData"].as_str().unwrap();
    let mut v = entering(data, "tel:+499999", BERLIN, t0());
    v["subscriptionNotification"]["terminalLocation"]
        .as_array_mut()
        .unwrap()
        .push(json!({"address": "acr:bob", "locationRetrievalStatus": "NotRetrieved"}));
    let out = s.pip.handle_notification(v.to_string().as_bytes()).unwrap();
    assert_eq!((out.updated, out.ignored, out.not_located), (0, 1, 1));
}

#[tokio::test]
async fn ended_subscriptions_are_recreated_by_the_next_reconciliation() {
    let s = setup(|_| {}).await;
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    let url = format!(
        "{}/location/v1/subscriptions/area/circle/sub1",
        s.server.base
    );
    let st = s
        .server
        .notify(0, |d| {
            json!({"subscriptionCancellationNotification": {
                "callbackData": d, "address": "tel:+491111", "reason": {},
                "link": [{"rel": "CircleNotificationSubscription", "href": url}]
            }})
        })
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let r = s.pip.set_circles(&[CIRCLE]).await.unwrap();
    assert_eq!((r.created, r.deleted, r.unchanged), (1, 0, 3));
    assert_eq!(s.server.bodies()[4], s.server.bodies()[0]);
    assert!(s.server.state.lock().deleted.is_empty());
}

#[tokio::test]
async fn periodic_queries_feed_the_cache() {
    let s = setup(|c| c.network.as_mut().unwrap().poll_interval_secs = Some(3600)).await;
    s.server.state.lock().query_answer = json!({"terminalLocationList": {"terminalLocation": [
        {"address": "tel:+491111", "locationRetrievalStatus": "Retrieved",
         "currentLocation": {"latitude": 52.52, "longitude": 13.405, "accuracy": 100,
                             "timestamp": stamp(t0())}},
        {"address": "acr:bob", "locationRetrievalStatus": "Error"}
    ]}});
    assert_eq!(s.pip.poll_once().await.unwrap(), 1);
    assert_eq!(s.pip.locate(ALICE), Some(BERLIN));
    assert_eq!(s.pip.locate(BOB), None);
    assert_eq!(
        s.server.state.lock().queries[0],
        "address=tel%3A%2B491111&address=acr%3Abob&requestedAccuracy=500"
    );
    // The background task queries at once, then every interval.
    let task = s.pip.spawn_polling().unwrap();
    for _ in 0..200 {
        if s.server.state.lock().queries.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.server.state.lock().queries.len(), 2);
    task.abort();
    // A malformed answer stores nothing.
    s.server.state.lock().query_answer = json!({"terminalLocationList": {"terminalLocation": [
        {"address": "acr:bob", "locationRetrievalStatus": "Retrieved"}
    ]}});
    assert!(matches!(
        s.pip.poll_once().await,
        Err(LocationError::BadAnswer { .. })
    ));
    assert_eq!(s.pip.locate(BOB), None);
}

#[tokio::test]
async fn network_beats_static_beats_device() {
    let s = setup(|c| {
        c.trust_device_reported = true;
        c.static_nodes.push(StaticNode {
            originator: "CAlice".into(),
            latitude: PARIS.latitude,
            longitude: PARIS.longitude,
        });
    })
    .await;
    let rome = Location {
        latitude: 41.9,
        longitude: 12.5,
    };
    assert_eq!(
        s.pip.report_device_location("CAlice", rome, t0()),
        DeviceReport::Stored
    );
    assert_eq!(
        s.pip.report_device_location(BOB, rome, t0()),
        DeviceReport::Stored
    );
    assert_eq!(s.pip.locate(ALICE), Some(PARIS)); // static over device
    assert_eq!(s.pip.locate(BOB), Some(rome)); // device alone
    s.pip.set_circles(&[CIRCLE]).await.unwrap();
    s.server.enter(0, "tel:+491111", BERLIN, t0()).await;
    assert_eq!(s.pip.locate(ALICE), Some(BERLIN)); // network over static
    s.clock.advance(Duration::from_secs(61));
    assert_eq!(s.pip.locate(ALICE), Some(PARIS)); // network stale: static again
}

#[test]
fn static_table_and_device_reports() {
    let config = LocationConfig {
        static_nodes: vec![StaticNode {
            originator: "Cgw".into(),
            latitude: 52.52,
            longitude: 13.405,
        }],
        ..LocationConfig::default()
    };
    let clock = Arc::new(ManualClock::new(t0()));
    let pip = LocationPip::with_clock(&config, &local(), clock.clone()).unwrap();
    assert_eq!(pip.locate("//sp.example/cse1/Cgw"), Some(BERLIN));
    // Compared exactly: only the absolute form matches.
    assert_eq!(pip.locate("Cgw"), None);
    assert_eq!(pip.locate("//sp.example/cse1/cgw"), None);
    // Device-reported locations are distrusted by default (annex F).
    assert_eq!(
        pip.report_device_location(ALICE, PARIS, t0()),
        DeviceReport::Untrusted
    );
    assert_eq!(pip.locate(ALICE), None);

    let trusting = LocationConfig {
        trust_device_reported: true,
        device_max_age_secs: 30,
        ..LocationConfig::default()
    };
    let pip = LocationPip::with_clock(&trusting, &local(), clock.clone()).unwrap();
    let bad = Location {
        latitude: f64::NAN,
        longitude: 0.0,
    };
    assert_eq!(
        pip.report_device_location(ALICE, bad, t0()),
        DeviceReport::Invalid
    );
    assert_eq!(
        pip.report_device_location(ALICE, PARIS, t0() - Duration::from_secs(31)),
        DeviceReport::Outdated
    );
    assert_eq!(
        pip.report_device_location("CAlice", PARIS, t0()),
        DeviceReport::Stored
    );
    assert_eq!(
        pip.report_device_location(ALICE, BERLIN, t0() - Duration::from_secs(1)),
        DeviceReport::Outdated
    );
    assert_eq!(pip.locate(ALICE), Some(PARIS));
    clock.advance(Duration::from_secs(31));
    assert_eq!(pip.locate(ALICE), None);
}

#[test]
fn country_from_coordinates_then_prefixes() {
    let config: LocationConfig = toml::from_str(
        r#"
        country_prefixes = [
            { prefix = "192.0.2.0/24", country = "de" },
            { prefix = "192.0.2.128/25", country = "FR" },
            { prefix = "2001:db8::/32", country = "NL" },
        ]
        "#,
    )
    .unwrap();
    let pip = LocationPip::new(&config, &local()).unwrap();
    let c = |l: Option<Location>, ip: Option<&str>| {
        pip.country(l, ip.map(|s| s.parse().unwrap()))
            .map(|c| c.to_string())
    };
    assert_eq!(c(Some(BERLIN), None).as_deref(), Some("DE"));
    assert_eq!(c(Some(PARIS), Some("192.0.2.1")).as_deref(), Some("FR"));
    let atlantic = Location {
        latitude: 30.0,
        longitude: -40.0,
    };
    assert_eq!(c(Some(atlantic), None), None);
    // A known location at sea is in no country, whatever the address says.
    assert_eq!(c(Some(atlantic), Some("192.0.2.1")), None);
    assert_eq!(c(None, Some("192.0.2.1")).as_deref(), Some("DE"));
    assert_eq!(c(None, Some("192.0.2.200")).as_deref(), Some("FR"));
    assert_eq!(c(None, Some("::ffff:192.0.2.7")).as_deref(), Some("DE"));
    assert_eq!(c(None, Some("2001:db8::1")).as_deref(), Some("NL"));
    assert_eq!(c(None, Some("198.51.100.1")), None);
    assert_eq!(c(None, None), None);
    // An invalid location is no location.
    let invalid = Location {
        latitude: 100.0,
        longitude: 0.0,
    };
    assert_eq!(c(Some(invalid), Some("192.0.2.1")).as_deref(), Some("DE"));
}

#[test]
fn the_documented_toml_parses() {
    let doc: toml::Table = toml::from_str(
        r#"
        [location]
        trust_device_reported = false
        device_max_age_secs = 300

        [[location.static_nodes]]
        originator = "CSensor1"
        latitude = 52.52
        longitude = 13.405

        [location.network]
        base_url = "https://tl.operator.example/exampleAPI"
        callback_url = "https://cse.example/location/notify"
        max_age_secs = 600
        poll_interval_secs = 120
        terminals = [
          { originator = "CTracker", address = "tel:+4912345" },
        ]

        [[location.country_prefixes]]
        prefix = "192.0.2.0/24"
        country = "DE"
        "#,
    )
    .unwrap();
    let config: LocationConfig = doc["location"].clone().try_into().unwrap();
    let net = config.network.as_ref().unwrap();
    assert_eq!(net.terminals[0].address, "tel:+4912345");
    assert_eq!(net.poll_interval_secs, Some(120));
    assert_eq!((net.tracking_accuracy_m, net.frequency_secs), (100, 10));
    let pip = LocationPip::new(&config, &local()).unwrap();
    assert!(pip.has_network());
    assert_eq!(pip.locate("//sp.example/cse1/CSensor1"), Some(BERLIN));
    // Unknown keys are refused.
    assert!(toml::from_str::<LocationConfig>("trust_device = true").is_err());
    assert!(toml::from_str::<LocationConfig>(
        "[network]\nbase_url = \"http://a\"\ncallback_url = \"http://b\"\nmax_age = 3"
    )
    .is_err());
}

#[test]
fn invalid_configurations_name_their_field() {
    let net = || NetworkConfig {
        base_url: "http://tl.example".into(),
        callback_url: "http://cse.example/notify".into(),
        terminals: vec![],
        max_age_secs: 60,
        poll_interval_secs: None,
        tracking_accuracy_m: 100,
        requested_accuracy_m: 100,
        frequency_secs: 10,
        request_timeout_secs: 10,
    };
    let term = |o: &str, a: &str| Terminal {
        originator: o.into(),
        address: a.into(),
    };
    let cases: Vec<(LocationConfig, &str)> = vec![
        (
            LocationConfig {
                static_nodes: vec![StaticNode {
                    originator: "Ca".into(),
                    latitude: 0.0,
                    longitude: 190.0,
                }],
                ..LocationConfig::default()
            },
            "static_nodes[0]",
        ),
        (
            LocationConfig {
                static_nodes: vec![
                    StaticNode {
                        originator: "Ca".into(),
                        latitude: 0.0,
                        longitude: 0.0,
                    },
                    StaticNode {
                        originator: "//sp.example/cse1/Ca".into(),
                        latitude: 1.0,
                        longitude: 1.0,
                    },
                ],
                ..LocationConfig::default()
            },
            "static_nodes[1].originator",
        ),
        (
            LocationConfig {
                device_max_age_secs: 0,
                ..LocationConfig::default()
            },
            "device_max_age_secs",
        ),
        (
            LocationConfig {
                network: Some(NetworkConfig {
                    base_url: "ftp://tl.example".into(),
                    ..net()
                }),
                ..LocationConfig::default()
            },
            "network.base_url",
        ),
        (
            LocationConfig {
                network: Some(NetworkConfig {
                    callback_url: "/notify".into(),
                    ..net()
                }),
                ..LocationConfig::default()
            },
            "network.callback_url",
        ),
        (
            LocationConfig {
                network: Some(NetworkConfig {
                    callback_url: "http://cse.example/:id".into(),
                    ..net()
                }),
                ..LocationConfig::default()
            },
            "network.callback_url",
        ),
        (
            LocationConfig {
                network: Some(NetworkConfig {
                    terminals: vec![term("Ca", "tel:+1"), term("Cb", "tel:+1")],
                    ..net()
                }),
                ..LocationConfig::default()
            },
            "network.terminals[1].address",
        ),
        (
            LocationConfig {
                network: Some(NetworkConfig {
                    terminals: vec![term("Ca", "tel:+1"), term("/cse1/Ca", "tel:+2")],
                    ..net()
                }),
                ..LocationConfig::default()
            },
            "network.terminals[1].originator",
        ),
        (
            LocationConfig {
                network: Some(NetworkConfig {
                    max_age_secs: 0,
                    ..net()
                }),
                ..LocationConfig::default()
            },
            "network.max_age_secs",
        ),
        (
            LocationConfig {
                network: Some(NetworkConfig {
                    poll_interval_secs: Some(0),
                    ..net()
                }),
                ..LocationConfig::default()
            },
            "network.poll_interval_secs",
        ),
    ];
    for (config, want) in cases {
        match LocationPip::new(&config, &local()) {
            Err(LocationError::Config { field, .. }) => assert_eq!(field, want),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn without_a_network_server_network_operations_say_so() {
    let pip = Arc::new(LocationPip::new(&LocationConfig::default(), &local()).unwrap());
    assert!(matches!(
        pip.set_circles(&[CIRCLE]).await,
        Err(LocationError::NoNetwork)
    ));
    assert!(matches!(
        pip.poll_once().await,
        Err(LocationError::NoNetwork)
    ));
    assert!(pip.spawn_polling().is_none());
    assert_eq!(pip.locate(ALICE), None);
}
