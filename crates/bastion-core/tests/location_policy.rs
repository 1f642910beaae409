//! The location check (TS-0003 7.1.2 `rq_loc`, annex F) reading the originator's own
//! positions from its device-based `<locationPolicy>` (TS-0001 9.6.10, 10.2.10): an ACP
//! with an `aclr` circle or country list grants while the newest position in the
//! originator's policy container lies inside, and refuses (4103) when it lies outside,
//! when there is none, when it is stale, when it is not `LAT,LON`, when the policy is
//! not device-based, and when the operator does not trust device positions.

use crate::common;

use bastion_core::{Cse, CseConfig, Services};
use bastion_location::{LocationConfig, LocationPip};
use bastion_policy::LocalIdentity;
use bastion_proto::clock::ManualClock;
use bastion_proto::time::Timestamp;
use bastion_proto::Operation;
use bastion_store::MemoryStore;
use common::{call, created};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// 2020-01-01T00:00:00Z.
const START: Timestamp = Timestamp(1_577_836_800);
/// `device_max_age_secs` of the trusting configuration.
const MAX_AGE: u64 = 300;

const BERLIN: &str = "52.5200,13.4050";
const NEAR_BERLIN: &str = "52.521, 13.41";
const PARIS: &str = "48.8584,2.2945";

async fn open(trust_device_reported: bool) -> (Arc<Cse>, Arc<ManualClock>) {
    let location = LocationConfig {
        trust_device_reported,
        device_max_age_secs: MAX_AGE,
        ..LocationConfig::default()
    };
    common::located(location, START).await
}

async fn register(cse: &Cse, originator: &str) {
    let ae = json!({"m2m:ae": {"api": "Ntest", "rr": true, "srv": ["3"]}});
    created(cse, "cse-in", originator, 2, ae).await;
}

/// A device-based policy of `originator` under its AE; the resource ID of its container.
async fn policy(cse: &Cse, originator: &str, los: u64) -> String {
    let lcp = created(
        cse,
        &format!("cse-in/{originator}"),
        originator,
        10,
        json!({"m2m:lcp": {"rn": "where", "los": los}}),
    )
    .await;
    lcp["m2m:lcp"]["loi"].as_str().expect("loi").to_owned()
}

/// `originator` stores `con` as its newest position.
async fn report(cse: &Cse, originator: &str, container: &str, con: Value) {
    created(
        cse,
        container,
        originator,
        4,
        json!({"m2m:cin": {"con": con}}),
    )
    .await;
}

/// Cowner's containers guarded by location: `berlin` (a 1 km circle around Berlin) and
/// `germany` (country DE), each readable by the readers only through its `aclr`.
async fn guarded(cse: &Cse, readers: &[&str]) {
    register(cse, "Cowner").await;
    for (rn, region) in [
        ("berlin", json!({"accr": [52.52, 13.405, 1000]})),
        ("germany", json!({"accc": ["DE"]})),
    ] {
        let acp = json!({"m2m:acp": {"rn": format!("{rn}-acp"),
            "pv": {"acr": [{"acor": ["Cowner"], "acop": 63},
                           {"acor": readers, "acop": 2, "acco": [{"aclr": region}]}]},
            "pvs": {"acr": [{"acor": ["Cowner"], "acop": 63}]}}});
        let acp = created(cse, "cse-in/Cowner", "Cowner", 1, acp).await;
        let acpi = acp["m2m:acp"]["ri"].clone();
        let cnt = json!({"m2m:cnt": {"rn": rn, "acpi": [acpi]}});
        created(cse, "cse-in/Cowner", "Cowner", 3, cnt).await;
    }
}

/// The status of `originator`'s RETRIEVE of Cowner's container `rn`.
async fn read(cse: &Cse, originator: &str, rn: &str) -> u16 {
    let to = format!("cse-in/Cowner/{rn}");
    call(cse, Operation::Retrieve, &to, originator, None, None)
        .await
        .rsc
        .code()
}

#[tokio::test]
async fn ts0003_annex_f_latest_position_in_the_policy_container_decides() {
    let (cse, clock) = open(true).await;
    guarded(&cse, &["Cdevice"]).await;
    register(&cse, "Cdevice").await;
    // No policy, no position: the circle cannot be evaluated.
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 4103);
    let positions = policy(&cse, "Cdevice", 2).await;
    // A policy without a position yet.
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 4103);
    assert_eq!(read(&cse, "Cdevice", "germany").await, 4103);

    report(&cse, "Cdevice", &positions, json!(BERLIN)).await;
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 2000);
    assert_eq!(read(&cse, "Cdevice", "germany").await, 2000);

    // Only the newest position counts.
    report(&cse, "Cdevice", &positions, json!(PARIS)).await;
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 4103);
    assert_eq!(read(&cse, "Cdevice", "germany").await, 4103);

    report(&cse, "Cdevice", &positions, json!(NEAR_BERLIN)).await;
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 2000);
    // Stale once older than the configured age; the boundary still counts.
    clock.advance(Duration::from_secs(MAX_AGE));
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 2000);
    clock.advance(Duration::from_secs(1));
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 4103);
    assert_eq!(read(&cse, "Cdevice", "germany").await, 4103);
}

#[tokio::test]
async fn ts0003_annex_f_unreadable_newest_position_never_grants() {
    let (cse, _clock) = open(true).await;
    guarded(&cse, &["Cdevice"]).await;
    register(&cse, "Cdevice").await;
    let positions = policy(&cse, "Cdevice", 2).await;
    for malformed in [
        json!("somewhere in Berlin"),
        json!("52.52"),
        json!("52.52,13.405,34"),
        json!("91,13.405"),
        json!("52.52,181"),
        json!("NaN,13.405"),
        json!({"lat": 52.52, "lon": 13.405}),
        json!([52.52, 13.405]),
    ] {
        // A good position first, then the malformed one: it must not fall back.
        report(&cse, "Cdevice", &positions, json!(BERLIN)).await;
        assert_eq!(read(&cse, "Cdevice", "berlin").await, 2000);
        report(&cse, "Cdevice", &positions, malformed.clone()).await;
        assert_eq!(read(&cse, "Cdevice", "berlin").await, 4103, "{malformed}");
        assert_eq!(read(&cse, "Cdevice", "germany").await, 4103, "{malformed}");
    }
}

#[tokio::test]
async fn ts0003_annex_f_only_the_originators_own_device_based_policy_counts() {
    let (cse, _clock) = open(true).await;
    guarded(&cse, &["Cdevice", "Cnetwork", "Cother"]).await;
    for ae in ["Cdevice", "Cnetwork", "Cother"] {
        register(&cse, ae).await;
    }
    // A network-based policy's container holds no device report, whoever writes it.
    let network = policy(&cse, "Cnetwork", 1).await;
    report(&cse, "Cnetwork", &network, json!(BERLIN)).await;
    assert_eq!(read(&cse, "Cnetwork", "berlin").await, 4103);
    // Cdevice's position is Cdevice's, not Cother's.
    let device = policy(&cse, "Cdevice", 2).await;
    report(&cse, "Cdevice", &device, json!(BERLIN)).await;
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 2000);
    assert_eq!(read(&cse, "Cother", "berlin").await, 4103);
    // Deleting the policy takes its container and so the position with it.
    let r = call(
        &cse,
        Operation::Delete,
        "cse-in/Cdevice/where",
        "Cdevice",
        None,
        None,
    )
    .await;
    assert_eq!(r.rsc.code(), 2002, "{:?}", r.pc);
    let r = call(&cse, Operation::Retrieve, &device, "Cdevice", None, None).await;
    assert_eq!(r.rsc.code(), 4004, "{:?}", r.pc);
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 4103);
}

#[tokio::test]
async fn ts0003_annex_f_device_positions_count_only_when_trusted() {
    let (cse, _clock) = open(false).await;
    guarded(&cse, &["Cdevice"]).await;
    register(&cse, "Cdevice").await;
    let positions = policy(&cse, "Cdevice", 2).await;
    report(&cse, "Cdevice", &positions, json!(BERLIN)).await;
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 4103);
    assert_eq!(read(&cse, "Cdevice", "germany").await, 4103);
}

#[tokio::test]
async fn ts0003_annex_f_positions_survive_a_restart() {
    let store = Arc::new(MemoryStore::new());
    let config = CseConfig::default();
    let local = LocalIdentity {
        sp_id: config.sp_id.clone(),
        cse_id: config.cse_id.clone(),
        admin: config.admin.clone(),
    };
    let trusting = LocationConfig {
        trust_device_reported: true,
        device_max_age_secs: MAX_AGE,
        ..LocationConfig::default()
    };
    let services = || Services {
        clock: Arc::new(ManualClock::at(START)),
        location: Some(Arc::new(LocationPip::new(&trusting, &local).expect("pip"))),
        ..Services::default()
    };
    let cse = Cse::open_with(config.clone(), store.clone(), services())
        .await
        .expect("cse");
    guarded(&cse, &["Cdevice"]).await;
    register(&cse, "Cdevice").await;
    let positions = policy(&cse, "Cdevice", 2).await;
    report(&cse, "Cdevice", &positions, json!(BERLIN)).await;
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 2000);
    drop(cse);
    let cse = Cse::open_with(config, store, services())
        .await
        .expect("cse again");
    assert_eq!(read(&cse, "Cdevice", "berlin").await, 2000);
    let lcp = call(
        &cse,
        Operation::Retrieve,
        "cse-in/Cdevice/where",
        "Cdevice",
        None,
        None,
    )
    .await;
    assert_eq!(lcp.pc.expect("lcp")["m2m:lcp"]["loi"], json!(positions));
}

#[tokio::test]
async fn ts0004_7_4_10_2_4_an_expired_policy_takes_its_container() {
    let clock = Arc::new(ManualClock::at(START));
    let services = Services {
        clock: clock.clone(),
        ..Services::default()
    };
    let config = CseConfig {
        expiry_interval_ms: 10,
        ..CseConfig::default()
    };
    let cse = Cse::open_with(config, Arc::new(MemoryStore::new()), services)
        .await
        .expect("cse");
    register(&cse, "Cdevice").await;
    let et = Timestamp(START.0 + 60).format();
    let lcp = json!({"m2m:lcp": {"rn": "where", "los": 2, "lon": "positions", "et": et}});
    let lcp = created(&cse, "cse-in/Cdevice", "Cdevice", 10, lcp).await;
    let positions = lcp["m2m:lcp"]["loi"].as_str().expect("loi").to_owned();
    // The container does not expire on its own: it goes with its policy.
    let cnt = call(&cse, Operation::Retrieve, &positions, "Cdevice", None, None).await;
    assert_eq!(cnt.rsc.code(), 2000, "{:?}", cnt.pc);
    clock.advance(Duration::from_secs(61));
    let sweep = cse.spawn_expiry();
    let mut gone = false;
    for _ in 0..200 {
        let r = call(
            &cse,
            Operation::Retrieve,
            "cse-in/Cdevice/positions",
            "Cdevice",
            None,
            None,
        )
        .await;
        if r.rsc.code() == 4004 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sweep.abort();
    assert!(gone, "the container outlived its expired policy");
    let r = call(
        &cse,
        Operation::Retrieve,
        "cse-in/Cdevice/where",
        "Cdevice",
        None,
        None,
    )
    .await;
    assert_eq!(r.rsc.code(), 4004, "{:?}", r.pc);
    let r = call(
        &cse,
        Operation::Retrieve,
        "cse-in/Cdevice",
        "Cdevice",
        None,
        None,
    )
    .await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
}
