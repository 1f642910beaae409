//! Durability (docs/architecture.md "Write path and durability"): everything survives a
//! restart on the same data directory, and every acknowledged write survives SIGKILL in the
//! middle of a write storm, with exact container counters afterwards.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AE: &str = "/cse-in/Cowner";

#[tokio::test]
async fn restart_preserves_resources_counters_and_policies() {
    let mut s = Server::start();
    s.ae("Cowner").await;
    s.ae("Creader").await;
    s.ae("Cstranger").await;
    let acp = s
        .create_acp(
            AE,
            "Cowner",
            "acp",
            json!({"acr": [{"acor": ["Cowner"], "acop": 63}, {"acor": ["Creader"], "acop": 34}]}),
            rules(&["Cowner"], 63),
        )
        .await;
    let acp_ri = acp["ri"].as_str().unwrap().to_owned();
    let data = s
        .create_cnt(
            AE,
            "Cowner",
            json!({"rn": "data", "mni": 3, "lbl": ["keep"], "acpi": [acp_ri]}),
        )
        .await;
    let data_path = format!("{AE}/data");
    for i in 1..=5 {
        s.create(
            &data_path,
            "Cowner",
            4,
            json!({"m2m:cin": {"rn": format!("i{i}"), "con": "v".repeat(i)}}),
        )
        .await
        .expect(2001);
    }
    s.create_cnt(AE, "Cowner", json!({"rn": "free"})).await;
    s.create_cnt(
        &format!("{AE}/free"),
        "Cowner",
        json!({"rn": "nested", "cr": null}),
    )
    .await;
    let before = s.get(&data_path, "Cowner").await.inner("m2m:cnt").clone();
    assert_eq!(before["cni"], 3);
    assert_eq!(before["cbs"], 3 + 4 + 5);
    assert_eq!(before["st"], 5);

    s.restart();

    // The tree, attributes and counters.
    let r = s.get(&data_path, "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt"), &before);
    assert_eq!(r.inner("m2m:cnt")["ri"], data["ri"]);
    s.get(&format!("/{}", data["ri"].as_str().unwrap()), "Cowner")
        .await
        .expect(2000);
    let la = s.get(&format!("{data_path}/la"), "Cowner").await;
    assert_eq!(la.inner("m2m:cin")["rn"], "i5");
    let ol = s.get(&format!("{data_path}/ol"), "Cowner").await;
    assert_eq!(ol.inner("m2m:cin")["rn"], "i3");
    s.get(&format!("{data_path}/i2"), "Cowner")
        .await
        .expect(4004);
    let nested = s.get(&format!("{AE}/free/nested"), "Cowner").await;
    nested.expect(2000);
    assert_eq!(nested.inner("m2m:cnt")["cr"], "Cowner");
    let r = s.get(&format!("{AE}/acp"), "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:acp"), &acp);

    // The ACP still decides.
    s.get(&data_path, "Creader").await.expect(2000);
    s.create(&data_path, "Creader", 4, json!({"m2m:cin": {"con": "x"}}))
        .await
        .expect(4103);
    s.get(&data_path, "Cstranger").await.expect(4103);
    let r = s
        .request("GET", &format!("{AE}?fu=1"))
        .from("Creader")
        .send()
        .await;
    let mut found = r.uril();
    found.sort();
    assert_eq!(
        found,
        ["data", "data/i3", "data/i4", "data/i5"]
            .iter()
            .map(|p| format!("cse-in/Cowner/{p}"))
            .collect::<Vec<_>>()
    );
    // The default policy still knows the creators.
    s.get(&format!("{AE}/free"), "Cstranger").await.expect(4103);
    s.get(&format!("{AE}/free"), "Cowner").await.expect(2000);

    // Registrations survive; unregistered originators are still unknown.
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Cowner")
        .json(&json!({"m2m:ae": {"api": "Nagain", "rr": true, "srv": ["3"]}}))
        .send()
        .await;
    r.expect(4117);
    s.get(AE, "Cnobody").await.expect(4106);

    // Container semantics continue from the stored state.
    let c = s.create_cin(&data_path, "Cowner", "zz").await;
    assert_eq!(c["st"], 6);
    let r = s.get(&data_path, "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["cni"], 3);
    assert_eq!(r.inner("m2m:cnt")["cbs"], 4 + 5 + 2);
    s.get(&format!("{data_path}/i3"), "Cowner")
        .await
        .expect(4004);
    s.create(
        &data_path,
        "Cowner",
        4,
        json!({"m2m:cin": {"rn": "i5", "con": "dup"}}),
    )
    .await
    .expect(4105);

    // A second restart after more writes.
    s.delete(&format!("{AE}/free"), "Cowner").await.expect(2002);
    s.restart();
    s.get(&format!("{AE}/free"), "Cowner").await.expect(4004);
    s.get(&format!("{AE}/free/nested"), "Cowner")
        .await
        .expect(4004);
    let r = s.get(&data_path, "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["cni"], 3);
    assert_eq!(r.inner("m2m:cnt")["st"], 6);
}

/// One writer: creates instances until told to stop or the server goes away. Returns the
/// acknowledged (rn, cs) and any non-2001 answer received while the server was alive.
async fn writer(
    client: reqwest::Client,
    url: String,
    task: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<(String, usize)>, Vec<String>) {
    let mut acked = Vec::new();
    let mut unexpected = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let rn = format!("t{task}n{n}");
        let con = "x".repeat(1 + (task * 7 + n) % 23);
        let body = json!({"m2m:cin": {"rn": rn, "con": con}});
        let sent = client
            .post(&url)
            .header("X-M2M-Origin", "Cowner")
            .header("X-M2M-RI", format!("w-{task}-{n}"))
            .header("X-M2M-RVI", "3")
            .header("Content-Type", "application/json;ty=4")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await;
        let Ok(resp) = sent else { break };
        let rsc = resp
            .headers()
            .get("x-m2m-rsc")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if rsc == "2001" {
            acked.push((rn, con.len()));
        } else {
            unexpected.push(format!("{rn}: rsc {rsc:?}"));
        }
        n += 1;
    }
    (acked, unexpected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_every_acknowledged_write_survives_sigkill() {
    let mut s = Server::start();
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "load"})).await;
    let cnt = format!("{AE}/load");
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..16 {
        tasks.push(tokio::spawn(writer(
            s.client().clone(),
            s.url(&cnt),
            task,
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for t in tasks {
        let (a, u) = t.await.expect("writer task");
        acked.extend(a);
        unexpected.extend(u);
    }
    assert!(
        unexpected.is_empty(),
        "non-2001 answers before the kill: {unexpected:?}"
    );
    assert!(
        acked.len() >= 16,
        "too few writes to mean anything: {}",
        acked.len()
    );

    s.respawn();

    // Every acknowledged instance exists, with its content size.
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let entries: Vec<(String, usize)> = acked.clone().into_iter().collect();
    let mut checks = Vec::new();
    for chunk in entries.chunks(entries.len().div_ceil(8)) {
        let chunk = chunk.to_vec();
        let client = s.client().clone();
        let base = s.url(&cnt);
        let failures = failures.clone();
        checks.push(tokio::spawn(async move {
            for (rn, cs) in chunk {
                let resp = client
                    .get(format!("{base}/{rn}"))
                    .header("X-M2M-Origin", "Cowner")
                    .header("X-M2M-RI", format!("check-{rn}"))
                    .header("X-M2M-RVI", "3")
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) if r.headers().get("x-m2m-rsc").is_some_and(|v| v == "2000") => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        v["m2m:cin"]["cs"].as_u64() == Some(cs as u64)
                    }
                    _ => false,
                };
                if !ok {
                    failures.lock().unwrap().push(rn);
                }
            }
        }));
    }
    for c in checks {
        c.await.expect("check task");
    }
    let lost = failures.lock().unwrap().clone();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged instances lost after SIGKILL, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );

    // The counters agree exactly with what is stored.
    let r = s
        .request("GET", &format!("{cnt}?fu=1&ty=4&lim=10000000"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    let discovered: BTreeSet<String> = r.uril().into_iter().collect();
    let r = s
        .request("GET", &format!("{cnt}?rcn=4"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    let c = r.inner("m2m:cnt");
    let cni = c["cni"].as_u64().expect("cni");
    let cbs = c["cbs"].as_u64().expect("cbs");
    let nested = c
        .get("m2m:cin")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let nested_names: BTreeSet<String> = nested
        .iter()
        .map(|i| format!("cse-in/Cowner/load/{}", i["rn"].as_str().unwrap()))
        .collect();
    let sum: u64 = nested.iter().map(|i| i["cs"].as_u64().unwrap()).sum();
    eprintln!(
        "crash: {} acknowledged before SIGKILL, {} stored after restart",
        acked.len(),
        discovered.len()
    );
    assert_eq!(
        cni as usize,
        discovered.len(),
        "cni vs discovered instances"
    );
    assert_eq!(nested_names, discovered, "rcn=4 and discovery disagree");
    assert_eq!(cbs, sum, "cbs vs the sum of cs");
    for rn in acked.keys() {
        assert!(
            discovered.contains(&format!("cse-in/Cowner/load/{rn}")),
            "{rn} not discovered"
        );
    }
    // Unacknowledged writes may or may not have landed, but nothing invented.
    for name in &discovered {
        let rn = name.rsplit('/').next().unwrap();
        assert!(
            rn.starts_with('t') && rn.contains('n'),
            "unexpected instance {name}"
        );
    }
    // And the CSE keeps working on the recovered state.
    let c = s.create_cin(&cnt, "Cowner", "after").await;
    assert!(c["st"].as_u64().unwrap() > cni);
    let r = s.get(&cnt, "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["cni"].as_u64(), Some(cni + 1));
    assert_eq!(r.inner("m2m:cnt")["cbs"].as_u64(), Some(cbs + 5));
}

/// Evicted instances leave the container at once, but their rows are removed from disk in
/// batches. Neither a read before that nor a SIGKILL and restart may bring them back.
#[tokio::test]
async fn ts0004_7_4_7_2_evicted_instances_stay_gone_across_a_crash() {
    let mut s = Server::start();
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "ring", "mni": 5}))
        .await;
    let ring = format!("{AE}/ring");
    let mut names = Vec::new();
    for i in 0..20 {
        let cin = s.create_cin(&ring, "Cowner", &format!("v{i}")).await;
        names.push(cin["rn"].as_str().unwrap().to_owned());
    }
    only_the_newest_five(&s, &ring, &names).await;
    s.kill9();
    s.respawn();
    only_the_newest_five(&s, &ring, &names).await;
}

async fn only_the_newest_five(s: &Server, ring: &str, names: &[String]) {
    let cnt = s.get(ring, "Cowner").await;
    cnt.expect(2000);
    assert_eq!(cnt.inner("m2m:cnt")["cni"], 5);
    for old in &names[..15] {
        s.get(&format!("{ring}/{old}"), "Cowner").await.expect(4004);
    }
    for kept in &names[15..] {
        s.get(&format!("{ring}/{kept}"), "Cowner")
            .await
            .expect(2000);
    }
    let found = s.get(&format!("{ring}?fu=1&ty=4"), "Cowner").await;
    found.expect(2000);
    assert_eq!(found.body["m2m:uril"].as_array().unwrap().len(), 5);
    let all = s.get(&format!("{ring}?rcn=4"), "Cowner").await;
    all.expect(2000);
    assert_eq!(all.inner("m2m:cnt")["m2m:cin"].as_array().unwrap().len(), 5);
    let oldest = s.get(&format!("{ring}/ol"), "Cowner").await;
    assert_eq!(oldest.inner("m2m:cin")["con"], "v15");
}

/// Rules stored by an older, looser version that this version's parser rejects must not
/// keep the CSE from starting, and must not grant anything (fail closed).
#[tokio::test]
async fn stored_rules_that_no_longer_parse_grant_nothing() {
    use bastion_store::{Store, WriteBatch, WriteOp};
    use bastion_store_sqlite::SqliteStore;
    let mut s = Server::start();
    s.ae("Cowner").await;
    s.ae("Creader").await;
    let acp = s
        .create_acp(
            AE,
            "Cowner",
            "acp",
            json!({"acr": [{"acor": ["Cowner", "Creader"], "acop": 63}]}),
            rules(&["Cowner"], 63),
        )
        .await;
    let acp_ri = acp["ri"].as_str().unwrap().to_owned();
    s.create_cnt(AE, "Cowner", json!({"rn": "box", "acpi": [acp_ri.clone()]}))
        .await;
    let path = format!("{AE}/box");
    s.get(&path, "Creader").await.expect(2000);
    s.stop();
    {
        let store = SqliteStore::open(&s.data_dir().join("bastion.db")).expect("open store");
        let mut row = store.get(&acp_ri).await.expect("read").expect("acp row");
        let mut body: Value = serde_json::from_str(&row.body).unwrap();
        body["pv"]["acr"][0]["acco"] = json!([{"actw": ["not a schedule"]}]);
        row.body = body.to_string();
        store
            .apply(WriteBatch {
                ops: vec![WriteOp::Upsert(row)],
            })
            .await
            .expect("write");
    }
    s.respawn();
    s.get(&path, "Creader").await.expect(4103);
    s.get(&path, "Cowner").await.expect(4103);
    s.get(&path, "CAdmin").await.expect(2000);
}
