//! Operator tools end to end: `bastion acp explain` on a stopped server's data directory
//! and against a running server, the admin explanation API (`/__bastion/explain`), and
//! the security audit log (`<data-dir>/audit.log`).

use crate::common;

use common::{Server, ADMIN, CSE_NAME};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bastion");

fn explain(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["acp", "explain"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bastion acp explain")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An owner AE with an ACP (owner: everything; Creader: RETRIEVE from 10.0.0.0/8 only)
/// linked to a container; a registered reader AE. Returns (container path, ACP ri).
async fn setup(s: &Server) -> (String, String) {
    let owner = s.ae("Cowner").await;
    s.ae("Creader").await;
    let pv = json!({"acr": [
        {"acor": ["Cowner"], "acop": 63},
        {"acor": ["Creader"], "acop": 2, "acco": [{"acip": {"ipv4": ["10.0.0.0/8"]}}]}
    ]});
    let acp = s
        .create_acp(&owner, "Cowner", "acp", pv, common::rules(&["Cowner"], 63))
        .await;
    let acp_ri = acp["ri"].as_str().expect("ri").to_owned();
    let cnt = s
        .create_cnt(&owner, "Cowner", json!({"rn": "cnt", "acpi": [acp_ri]}))
        .await;
    assert_eq!(cnt["rn"], "cnt");
    (format!("{owner}/cnt"), acp_ri)
}

/// The audit log's lines as JSON, waiting (the writer is asynchronous) until `want`
/// holds for one of them.
fn audit_line(dir: &Path, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
            .collect();
        if let Some(hit) = lines.into_iter().find(|l| want(l)) {
            return hit;
        }
        assert!(
            Instant::now() < deadline,
            "no matching audit line in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn explain_on_a_stopped_servers_data_dir() {
    let mut s = Server::start();
    let (cnt, acp_ri) = setup(&s).await;
    let dir = s.data_dir().to_str().expect("utf-8 path").to_owned();

    // While the server runs, the data directory is refused: use --url.
    let busy = explain(&[
        "--data-dir",
        &dir,
        "--originator",
        "Creader",
        "--op",
        "retrieve",
        "--to",
        &cnt,
    ]);
    assert_eq!(busy.status.code(), Some(1));
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(err.contains("in use by a running bastion server"), "{err}");
    assert!(err.contains("--url"), "{err}");

    s.stop();

    // No --ip: the acip condition of the reader's rule fails, and says why.
    let deny = explain(&[
        "--data-dir",
        &dir,
        "--originator",
        "Creader",
        "--op",
        "retrieve",
        "--to",
        &cnt,
    ]);
    assert_eq!(deny.status.code(), Some(0), "{deny:?}");
    let text = stdout(&deny);
    assert!(
        text.starts_with("DENIED: no rule grants RETRIEVE to Creader"),
        "{text}"
    );
    assert!(
        text.contains("[FAIL] context         no acco element holds: [0] peer address unknown"),
        "{text}"
    );
    assert!(
        text.contains("none given: every acip condition fails"),
        "{text}"
    );
    assert!(text.contains(&format!("ACP {acp_ri}")), "{text}");

    // From inside 10.0.0.0/8 at a given time: rule 1 decides.
    let grant = explain(&[
        "--data-dir",
        &dir,
        "--originator",
        "Creader",
        "--op",
        "retrieve",
        "--to",
        &cnt,
        "--ip",
        "10.1.2.3",
        "--at",
        "20250102T030405",
    ]);
    assert_eq!(grant.status.code(), Some(0), "{grant:?}");
    let text = stdout(&grant);
    assert!(
        text.starts_with(&format!("GRANTED: RETRIEVE granted by rule 1 of {acp_ri}")),
        "{text}"
    );
    assert!(text.contains("rule 1: grants (deciding rule)"), "{text}");
    assert!(
        text.contains("[ok]   context         acco[0] holds: peer 10.1.2.3 in acip 10.0.0.0/8"),
        "{text}"
    );
    assert!(
        text.contains("time:          20250102T030405 (UTC)"),
        "{text}"
    );

    // acod: CREATE of a contentInstance by the reader fails on the operation.
    let json_out = explain(&[
        "--data-dir",
        &dir,
        "--originator",
        "Creader",
        "--op",
        "create",
        "--ty",
        "4",
        "--to",
        &cnt,
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&json_out.stdout).expect("--json prints JSON");
    assert_eq!(v["grant"], Value::Null);
    assert_eq!(v["create_type"], 4);
    assert_eq!(v["target"], format!("{}", cnt.trim_start_matches('/')));
    assert_eq!(
        v["basis"]["sources"][0]["rules"][1]["checks"][0]["reason"],
        "acop 2 does not include CREATE (1)"
    );

    // A target that does not exist: exit 1 with the oneM2M code.
    let missing = explain(&[
        "--data-dir",
        &dir,
        "--originator",
        "Creader",
        "--op",
        "retrieve",
        "--to",
        &format!("/{CSE_NAME}/nothing"),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("rsc 4004"));
}

#[tokio::test]
async fn admin_explain_api_answers_only_the_admin() {
    let s = Server::start();
    let (cnt, acp_ri) = setup(&s).await;
    let path = format!(
        "/__bastion/explain?originator=Creader&op=retrieve&to={}&ip=10.0.0.7",
        cnt.replace('/', "%2F")
    );

    let ok = s.get(&path, ADMIN).await;
    ok.expect(2000);
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert_eq!(
        ok.body["summary"],
        format!("RETRIEVE granted by rule 1 of {acp_ri}")
    );
    assert_eq!(
        ok.body["grant"],
        json!({"by": "rule", "source": 0, "rule": 1})
    );
    assert_eq!(ok.body["peer_ip"], "10.0.0.7");

    let stranger = s.get(&path, "Cstranger").await;
    stranger.expect(4103);
    assert_eq!(stranger.header("x-m2m-rsc"), Some("4103"));
    assert_eq!(stranger.dbg(), "originator has no privilege");
    assert!(stranger.body.get("summary").is_none());

    // Missing originator: 4103 too; bad parameters from the admin: 4000; not GET: 4005.
    s.request("GET", &path).send().await.expect(4103);
    s.get("/__bastion/explain?op=retrieve&to=/cse-in", ADMIN)
        .await
        .expect(4000);
    s.delete(&path, ADMIN).await.expect(4005);
    s.get(
        &format!("/__bastion/explain?originator=C&op=retrieve&to=/{CSE_NAME}/nothing"),
        ADMIN,
    )
    .await
    .expect(4004);

    // The CLI asks the running server as the admin.
    let url = format!("http://127.0.0.1:{}", s.port());
    let out = explain(&[
        "--url",
        &url,
        "--originator",
        "Creader",
        "--op",
        "retrieve",
        "--to",
        &cnt,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("DENIED: no rule grants RETRIEVE to Creader"));
    let wrong_admin = explain(&[
        "--url",
        &url,
        "--admin",
        "Cnotadmin",
        "--originator",
        "Creader",
        "--op",
        "retrieve",
        "--to",
        &cnt,
    ]);
    assert_eq!(wrong_admin.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong_admin.stderr).contains("rsc 4103"));
}

#[tokio::test]
async fn audit_log_records_denials_and_acp_changes() {
    let s = Server::start();
    let (cnt, acp_ri) = setup(&s).await;
    let dir = s.data_dir().to_path_buf();
    let cnt_rel = cnt.trim_start_matches('/').to_owned();

    let created = audit_line(&dir, |l| l["event"] == "acp-create");
    assert_eq!(created["originator"], "Cowner");
    assert_eq!(created["target"], format!("{CSE_NAME}/Cowner/acp"));
    assert_eq!(created["operation"], "CREATE");
    assert_eq!(created["rsc"], 2001);
    assert_eq!(created["rule"], json!({"by": "creator"}));
    assert!(created["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert_eq!(created["time"].as_str().map(str::len), Some(15));
    let linked = audit_line(&dir, |l| l["event"] == "acpi-change");
    assert_eq!(linked["target"], cnt_rel);

    // A denial: the reader is not in 10.0.0.0/8.
    s.get(&cnt, "Creader").await.expect(4103);
    let deny = audit_line(&dir, |l| l["event"] == "deny");
    assert_eq!(deny["originator"], "Creader");
    assert_eq!(deny["target"], cnt_rel);
    assert_eq!(deny["operation"], "RETRIEVE");
    assert_eq!(deny["rsc"], 4103);
    assert_eq!(deny["rule"], "none");

    // An ACP update by a rule, an acpi change, a delete; the admin is never named.
    let acp_path = format!("/{CSE_NAME}/Cowner/acp");
    s.update(
        &acp_path,
        "Cowner",
        json!({"m2m:acp": {"pv": common::rules(&["Cowner"], 63)}}),
    )
    .await
    .expect(2004);
    let updated = audit_line(&dir, |l| l["event"] == "acp-update");
    assert_eq!(updated["rsc"], 2004);
    assert_eq!(
        updated["rule"],
        json!({"by": "rule", "acp": acp_ri, "rule": 0})
    );
    s.update(&cnt, ADMIN, json!({"m2m:cnt": {"acpi": null}}))
        .await
        .expect(2004);
    let unlinked = audit_line(&dir, |l| {
        l["event"] == "acpi-change" && l["operation"] == "UPDATE"
    });
    assert_eq!(unlinked["originator"], "(admin)");
    assert_eq!(unlinked["rule"], json!({"by": "admin"}));
    s.delete(&acp_path, "Cowner").await.expect(2002);
    let deleted = audit_line(&dir, |l| l["event"] == "acp-delete");
    assert_eq!(deleted["rsc"], 2002);
    let text = std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default();
    assert!(
        !text.contains(ADMIN),
        "the admin originator leaked:\n{text}"
    );
}
