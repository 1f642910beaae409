//! The location PIP wired into the server (TS-0003 7.1.2 `aclr`, annex F): the real
//! binary with a `[location]` section, over real HTTP. A static node location decides
//! `accr` circles; the operator's prefix table gives the country of a 127.0.0.1 peer for
//! `accc`.

use crate::common;

use common::*;
use serde_json::{json, Value};

const OWNER: &str = "Cowner";
const AE: &str = "/cse-in/Cowner";
const READER: &str = "Creader";

/// The reader's RETRIEVE of a container whose ACP lets the reader RETRIEVE under `acco`.
async fn reader_get(s: &Server, name: &str, acco: Value) -> u32 {
    if s.get(AE, OWNER).await.rsc != 2000 {
        s.ae(OWNER).await;
        s.ae(READER).await;
    }
    let pv = json!({"acr": [
        {"acor": [OWNER], "acop": 63},
        {"acor": [READER], "acop": 2, "acco": acco}
    ]});
    let pvs = json!({"acr": [{"acor": [OWNER], "acop": 63}]});
    let acp = s
        .create_acp(AE, OWNER, &format!("acp-{name}"), pv, pvs)
        .await;
    let acp_ri = acp["ri"].as_str().expect("ri").to_owned();
    s.create_cnt(AE, OWNER, json!({"rn": name, "acpi": [acp_ri]}))
        .await;
    let cnt = format!("{AE}/{name}");
    s.get(&cnt, OWNER).await.expect(2000);
    s.get(&cnt, READER).await.rsc
}

#[tokio::test]
async fn annex_f_static_node_location_decides_aclr_circles() {
    let s = Server::start_with_config(
        "[location]\n[[location.static_nodes]]\noriginator = \"Creader\"\n\
         latitude = 52.52\nlongitude = 13.405\n",
    );
    // 1 km around the configured position: inside.
    assert_eq!(
        reader_get(
            &s,
            "berlin",
            json!([{"aclr": {"accr": [52.52, 13.405, 1000.0]}}])
        )
        .await,
        2000
    );
    // Around Paris, 880 km away: outside.
    assert_eq!(
        reader_get(
            &s,
            "paris",
            json!([{"aclr": {"accr": [48.8566, 2.3522, 1000.0]}}])
        )
        .await,
        4103
    );
    assert!(s.log().contains("location=true"));
}

#[tokio::test]
async fn annex_f_country_from_the_operator_prefix_table() {
    let s = Server::start_with_config(
        "[location]\n[[location.country_prefixes]]\nprefix = \"127.0.0.0/8\"\ncountry = \"KR\"\n",
    );
    assert_eq!(
        reader_get(&s, "kr", json!([{"aclr": {"accc": ["KR"]}}])).await,
        2000
    );
    assert_eq!(
        reader_get(&s, "de", json!([{"aclr": {"accc": ["DE"]}}])).await,
        4103
    );
}

#[test]
fn invalid_location_section_stops_the_start() {
    let config = tempfile::tempdir().expect("dir");
    let file = config.path().join("bastion.toml");
    std::fs::write(
        &file,
        "[location]\n[[location.static_nodes]]\noriginator = \"Cx\"\nlatitude = 91.0\nlongitude = 0.0\n",
    )
    .expect("write");
    let data = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bastion"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bastion: error: [location]: ") && stderr.contains("static_nodes[0]"),
        "{stderr}"
    );
}
