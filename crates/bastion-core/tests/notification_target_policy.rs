//! A notification target leaving a subscription (TS-0004 7.4.33.2.4) under the rules of
//! the default `<notificationTargetPolicy>` (TS-0004 7.4.31, 7.4.32): a time window
//! read on the CSE's clock and a region answered by the location information the ACPs'
//! `aclr` uses (here the target's own device-based `<locationPolicy>`), each with the
//! request's originator and time.

use crate::common;

use bastion_core::Cse;
use bastion_location::LocationConfig;
use bastion_proto::clock::ManualClock;
use bastion_proto::time::Timestamp;
use bastion_proto::Operation;
use common::{call, created};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// 2020-01-01T00:00:00Z.
const START: Timestamp = Timestamp(1_577_836_800);
const ADMIN: &str = "CAdmin";
const OWNER: &str = "Cowner";
const NTSR: &str = "cse-in/Cowner/cnt/sub/ntsr";

async fn open() -> (Arc<Cse>, Arc<ManualClock>) {
    let location = LocationConfig {
        trust_device_reported: true,
        device_max_age_secs: 24 * 3600,
        ..LocationConfig::default()
    };
    common::located(location, START).await
}

/// Cowner registered, with a device-based `<locationPolicy>` (returns its container),
/// and subscribed to its container `cnt` with itself as the only target.
async fn owner_subscribed(cse: &Cse) -> String {
    let ae = json!({"m2m:ae": {"api": "Ntest", "rr": true, "srv": ["3"]}});
    created(cse, "cse-in", OWNER, 2, ae).await;
    let lcp = json!({"m2m:lcp": {"rn": "where", "los": 2}});
    let lcp = created(cse, "cse-in/Cowner", OWNER, 10, lcp).await;
    let cnt = json!({"m2m:cnt": {"rn": "cnt"}});
    created(cse, "cse-in/Cowner", OWNER, 3, cnt).await;
    let sub = json!({"m2m:sub": {"rn": "sub", "nu": [OWNER]}});
    created(cse, "cse-in/Cowner/cnt", OWNER, 23, sub).await;
    lcp["m2m:lcp"]["loi"].as_str().expect("loi").to_owned()
}

/// The operator's default policy (accept) with one group of rules `dr`.
async fn default_policy(cse: &Cse, dr: Value) {
    let ntp = json!({"m2m:ntp": {"rn": "policy", "acn": 1, "plbl": "Default"}});
    created(cse, "cse-in", ADMIN, 26, ntp).await;
    let pdr = json!({"m2m:pdr": {"rn": "rules", "dr": dr}});
    created(cse, "cse-in/policy", ADMIN, 27, pdr).await;
}

async fn leave(cse: &Cse) -> u16 {
    call(cse, Operation::Delete, NTSR, OWNER, None, None)
        .await
        .rsc
        .code()
}

async fn subscription_left(cse: &Cse) -> u16 {
    call(
        cse,
        Operation::Retrieve,
        "cse-in/Cowner/cnt/sub",
        OWNER,
        None,
        None,
    )
    .await
    .rsc
    .code()
}

#[tokio::test]
async fn ts0004_7_4_33_2_4_region_rule_reads_the_targets_position() {
    let (cse, _clock) = open().await;
    let positions = owner_subscribed(&cse).await;
    // A 1 km circle around Berlin.
    default_policy(&cse, json!({"lr": [{"accr": [52.52, 13.405, 1000.0]}]})).await;
    // No position yet: the rule does not hold.
    assert_eq!(leave(&cse).await, 4103);
    created(
        &cse,
        &positions,
        OWNER,
        4,
        json!({"m2m:cin": {"con": "48.8584,2.2945"}}),
    )
    .await;
    assert_eq!(leave(&cse).await, 4103, "in Paris");
    assert_eq!(subscription_left(&cse).await, 2000);
    created(
        &cse,
        &positions,
        OWNER,
        4,
        json!({"m2m:cin": {"con": "52.521,13.41"}}),
    )
    .await;
    assert_eq!(leave(&cse).await, 2002, "in Berlin");
    assert_eq!(subscription_left(&cse).await, 4004, "the last target left");
}

#[tokio::test]
async fn ts0004_7_4_33_2_4_time_rule_reads_the_cses_clock() {
    let (cse, clock) = open().await;
    owner_subscribed(&cse).await;
    // Between 08:00 and 09:59 UTC.
    default_policy(&cse, json!({"tod": ["* * 8-9 * * * *"]})).await;
    assert_eq!(leave(&cse).await, 4103, "at midnight");
    clock.advance(Duration::from_secs(8 * 3600 + 30));
    assert_eq!(leave(&cse).await, 2002, "at 08:00:30");
}

#[tokio::test]
async fn ts0004_7_4_31_an_expired_policy_does_not_apply() {
    let (cse, clock) = open().await;
    owner_subscribed(&cse).await;
    let et = Timestamp(START.0 + 60).format();
    let ntp = json!({"m2m:ntp": {"rn": "policy", "acn": 1, "plbl": "Default", "et": et}});
    created(&cse, "cse-in", ADMIN, 26, ntp).await;
    clock.advance(Duration::from_secs(120));
    assert_eq!(leave(&cse).await, 4103);
    assert_eq!(subscription_left(&cse).await, 2000);
}
