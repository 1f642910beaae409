//! `<timeSeries>` missing-data detection end to end (TS-0001 9.6.36, 10.2.4.29; TS-0004
//! 7.4.36): the real binary on the wall clock, a subscription with `net` 8 and a real
//! HTTP notification target inside the test.

use crate::common;

use bastion_proto::time::{format_millis, Timestamp};
use common::*;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> Timestamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    Timestamp(i64::try_from(secs).expect("seconds"))
}

#[tokio::test]
async fn ts0001_10_2_4_29_a_missing_data_point_is_notified_to_the_subscriber() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    // A point every 3 s; it is missing 500 ms after its time.
    let ts = json!({"m2m:ts": {"rn": "ts", "pei": 3000, "mdt": 500, "mdd": true, "mdn": 4}});
    s.create(&ae, "Cowner", 29, ts).await.expect(2001);
    let path = format!("{ae}/ts");
    let rx = Receiver::start().await;
    let sub = json!({"m2m:sub": {"rn": "md", "nu": [rx.url], "enc": {"net": [8]}}});
    let r = s.create(&path, "Cowner", 23, sub).await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:sub")["nct"], 5);
    let sur = format!(
        "{CSE_ID}/{}",
        r.inner("m2m:sub")["ri"].as_str().expect("ri")
    );
    let dgt = now();
    let point = json!({"m2m:tsi": {"rn": "p0", "dgt": dgt.format(), "con": "20.5"}});
    s.create(&path, "Cowner", 30, point.clone())
        .await
        .expect(2001);
    // The same data generation time again is refused.
    let again = json!({"m2m:tsi": {"dgt": dgt.format(), "con": "20.5"}});
    s.create(&path, "Cowner", 30, again).await.expect(4105);

    // No second point comes: the one expected 3 s later is reported.
    let expected = Timestamp(dgt.0 + 3).format();
    let events = rx.wait_events(1).await;
    assert_eq!(
        events[0],
        json!({"m2m:sgn": {"nev": {"rep": {"m2m:tsn": {"mdlt": [expected], "mdc": 1}}, "net": 8},
                           "sur": sur}})
    );
    let got = s.get(&path, "Cowner").await;
    got.expect(2000);
    let ts = got.inner("m2m:ts");
    assert_eq!(ts["mdlt"][0], json!(expected));
    assert!(ts["mdc"].as_u64().is_some_and(|n| n >= 1), "{ts}");
    assert_eq!(ts["cni"], 1);
}

/// A point every 100 ms: the one at `base + 200` never comes, but the next points arrive
/// before the detection pass runs; the gap is still the first missing time reported, with
/// its milliseconds.
#[tokio::test]
async fn ts0001_10_2_4_29_a_sub_second_gap_is_found_after_later_points_arrived() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let ts = json!({"m2m:ts": {"rn": "ts", "pei": 100, "mdt": 20, "mdd": true, "mdn": 50}});
    s.create(&ae, "Cowner", 29, ts).await.expect(2001);
    let path = format!("{ae}/ts");
    let base = (now().0 + 1) * 1000;
    for (i, offset) in [0, 100, 300, 400].into_iter().enumerate() {
        let dgt = format_millis(base + offset);
        let point = json!({"m2m:tsi": {"rn": format!("p{i}"), "dgt": dgt, "con": "1"}});
        s.create(&path, "Cowner", 30, point).await.expect(2001);
    }
    // Until the series' times have passed and the pass ran (at least once a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ts = loop {
        let got = s.get(&path, "Cowner").await;
        got.expect(2000);
        let ts = got.inner("m2m:ts").clone();
        if ts["mdc"].as_u64().unwrap_or(0) >= 2 || std::time::Instant::now() > deadline {
            break ts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // The gap first, then the times after the last point (nothing more came).
    assert_eq!(ts["mdlt"][0], json!(format_millis(base + 200)), "{ts}");
    assert_eq!(ts["mdlt"][1], json!(format_millis(base + 500)), "{ts}");
    assert_eq!(ts["cni"], 4);
}

/// `enc.md` (TS-0001 9.6.8 missingData): no notification for one missing point, one
/// naming both once two are missing within the window.
#[tokio::test]
async fn ts0001_9_6_8_md_notifies_once_enough_points_are_missing_within_its_window() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let ts = json!({"m2m:ts": {"rn": "ts", "pei": 1500, "mdt": 300, "mdd": true, "mdn": 10}});
    s.create(&ae, "Cowner", 29, ts).await.expect(2001);
    let path = format!("{ae}/ts");
    let rx = Receiver::start().await;
    // `md` without `net` 8 is refused.
    let wrong = json!({"m2m:sub": {"nu": [rx.url], "enc": {"md": {"num": 2, "dur": "PT1M"}}}});
    s.create(&path, "Cowner", 23, wrong).await.expect(4000);
    let sub = json!({"m2m:sub": {"rn": "md", "nu": [rx.url],
        "enc": {"net": [8], "md": {"num": 2, "dur": "PT1M"}}}});
    s.create(&path, "Cowner", 23, sub).await.expect(2001);
    let dgt = now();
    let point = json!({"m2m:tsi": {"dgt": dgt.format(), "con": "1"}});
    s.create(&path, "Cowner", 30, point).await.expect(2001);
    let events = rx.wait_events(1).await;
    let tsn = &events[0]["m2m:sgn"]["nev"]["rep"]["m2m:tsn"];
    assert_eq!(tsn["mdc"], 2, "{}", events[0]);
    let mdlt = tsn["mdlt"].as_array().expect("mdlt");
    assert_eq!(mdlt.len(), 2);
    // The first missing point is 1.5 s after the data point, within that second or the next.
    let first = Timestamp::parse(mdlt[0].as_str().expect("time")).expect("timestamp");
    assert!((dgt.0 + 1..=dgt.0 + 2).contains(&first.0), "{mdlt:?}");
}

#[tokio::test]
async fn ts0001_9_6_37_counters_dgt_index_and_state_tag_survive_a_restart() {
    let mut s = Server::start();
    let ae = s.ae("Cowner").await;
    let ts = json!({"m2m:ts": {"rn": "ts", "mni": 2}});
    s.create(&ae, "Cowner", 29, ts).await.expect(2001);
    let path = format!("{ae}/ts");
    let base = now().0 - 100;
    for i in 0..3 {
        let dgt = Timestamp(base + i).format();
        let point = json!({"m2m:tsi": {"rn": format!("p{i}"), "dgt": dgt, "con": "ab"}});
        s.create(&path, "Cowner", 30, point).await.expect(2001);
    }
    let before = s.get(&path, "Cowner").await.inner("m2m:ts").clone();
    assert_eq!(
        (before["cni"].clone(), before["cbs"].clone()),
        (json!(2), json!(4))
    );
    assert_eq!(before["st"], 3);
    s.restart();
    let after = s.get(&path, "Cowner").await;
    after.expect(2000);
    let after = after.inner("m2m:ts");
    assert_eq!(
        (
            after["cni"].clone(),
            after["cbs"].clone(),
            after["st"].clone()
        ),
        (json!(2), json!(4), json!(3))
    );
    // The evicted point's time is free; a held one is still refused.
    let held = json!({"m2m:tsi": {"dgt": Timestamp(base + 2).format(), "con": "x"}});
    s.create(&path, "Cowner", 30, held).await.expect(4105);
    let freed = json!({"m2m:tsi": {"dgt": Timestamp(base).format(), "con": "x"}});
    s.create(&path, "Cowner", 30, freed).await.expect(2001);
    let la = s.get(&format!("{path}/la"), "Cowner").await;
    la.expect(2000);
    assert_eq!(la.inner("m2m:tsi")["dgt"], json!(Timestamp(base).format()));
}
