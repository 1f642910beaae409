//! Dynamic authorization end to end (TS-0003 7.3.2.2-7.3.2.3; security-access-control.md
//! §10): a real `bastion das` and a real `bastion serve`, a
//! `<dynamicAuthorizationConsultation>` linked by `daci`, the direct procedure granting
//! by dynamic ACP information and by tokens, the indirect procedure's `tqf`, and a DAS
//! that is down. The CSE reaches the DAS over TLS-PSK (`common::das_tls`): dynamic ACP
//! information counts only from an authenticated DAS.

use crate::common;

use common::das_policy::{cm2_token_rule, das_policy, write_das_files, CM1_ACP_RULE};
use common::das_tls::{DasServer, Provisioned};
use common::*;
use serde_json::json;
const SECRET: &str = "dynamic-authorization-test-secret-0123456789";
const ISSUER: &str = "//bastion.example/id-das/Cdas";
const OWNER: &str = "Cowner";

/// The DAS, and a CSE trusting its tokens and reaching it over TLS-PSK, with
/// `Cowner/data` guarded by an owner-only ACP and linked by `daci` to a consultation
/// naming the DAS.
async fn setup() -> (DasServer, Server, Provisioned) {
    let p = Provisioned::new();
    let das_rules = format!("{CM1_ACP_RULE}{}", cm2_token_rule(&format!("{OWNER}/data")));
    let file = write_das_files(p.dir.path(), SECRET, &das_policy(&das_rules));
    let das = p.start_das(&file, &[]);
    let das_url = das.tls_url.clone().expect("TLS listener");
    let s = p.start_cse(&format!(
        "das-timeout-ms = 1500\n\n[[authorization.token-issuer]]\n\
         issuer = \"{ISSUER}\"\nhs256-secret-file = \"{}\"\n",
        p.file("das.secret").display()
    ));
    for ae in [OWNER, "Cm1", "Cm2", "Cm3"] {
        s.ae(ae).await;
    }
    let ae = format!("/{CSE_NAME}/{OWNER}");
    let dac = s
        .create(
            &ae,
            OWNER,
            34,
            json!({"m2m:dac": {"rn": "dac1", "dae": true, "dap": [das_url]}}),
        )
        .await;
    dac.expect(2001);
    assert_eq!(dac.inner("m2m:dac")["ty"], 34);
    let dac_ri = dac.inner("m2m:dac")["ri"].clone();
    let acp = s
        .create_acp(&ae, OWNER, "own", rules(&[OWNER], 63), rules(&[OWNER], 63))
        .await;
    s.create_cnt(
        &ae,
        OWNER,
        json!({"rn": "data", "acpi": [acp["ri"]], "daci": [dac_ri]}),
    )
    .await;
    (das, s, p)
}

#[tokio::test]
async fn ts0003_7_3_2_2_direct_procedure_grants_by_acp_info_and_by_token() {
    let (_das, s, _dir) = setup().await;
    let data = format!("/{CSE_NAME}/{OWNER}/data");
    // Dynamic ACP information for Cm1 (RETRIEVE only), kept for its lifetime.
    s.get(&data, "Cm1").await.expect(2000);
    s.get(&data, "Cm1").await.expect(2000);
    s.delete(&data, "Cm1").await.expect(4103);
    // A token for Cm2, issued by the DAS and verified by the CSE.
    s.get(&data, "Cm2").await.expect(2000);
    // No rule at the DAS for Cm3.
    let r = s.get(&data, "Cm3").await;
    r.expect(4103);
    assert_eq!(r.dbg(), "originator has no privilege");
    // A resource without daci is never consulted about.
    let other = s
        .create_cnt(
            &format!("/{CSE_NAME}/{OWNER}"),
            OWNER,
            json!({"rn": "plain"}),
        )
        .await;
    assert!(other.get("daci").is_none());
    s.get(&format!("/{CSE_NAME}/{OWNER}/plain"), "Cm1")
        .await
        .expect(4103);
}

#[tokio::test]
async fn ts0003_7_3_2_3_indirect_procedure_returns_token_request_information() {
    let (das, s, _dir) = setup().await;
    let data = format!("/{CSE_NAME}/{OWNER}/data");
    let r = s.get(&format!("{data}?tqi=true"), "Cm3").await;
    r.expect(4103);
    // tqf, and no debug text.
    assert!(r.body.get("m2m:dbg").is_none(), "{}", r.text);
    let dasi = &r.inner("m2m:dynAuthTokenReqInfo")["dasi"];
    assert_eq!(dasi.as_array().map(Vec::len), Some(1), "{}", r.text);
    assert_eq!(dasi[0]["uri"], das.tls_url.clone().expect("TLS listener"));
    assert_eq!(dasi[0]["dreq"]["or"], format!("//{SP_FQDN}{CSE_ID}/Cm3"));
    assert_eq!(dasi[0]["dreq"]["op"], 2);
    assert_eq!(dasi[0]["dreq"]["trt"], 3);
    // With the consultation disabled there is nobody to ask: a plain 4103.
    s.update(
        &format!("/{CSE_NAME}/{OWNER}/dac1"),
        OWNER,
        json!({"m2m:dac": {"dae": false}}),
    )
    .await
    .expect(2004);
    let r = s.get(&format!("{data}?tqi=true"), "Cm3").await;
    r.expect(4103);
    assert_eq!(r.dbg(), "originator has no privilege");
    // And nothing is granted directly either.
    s.get(&data, "Cm1").await.expect(4103);
}

#[tokio::test]
async fn ts0003_7_3_2_2_a_das_that_is_down_grants_nothing() {
    let (das, s, _dir) = setup().await;
    drop(das);
    let data = format!("/{CSE_NAME}/{OWNER}/data");
    s.get(&data, "Cm1").await.expect(4103);
    // Bad consultation targets are refused when written.
    s.create(
        &format!("/{CSE_NAME}/{OWNER}"),
        OWNER,
        34,
        json!({"m2m:dac": {"rn": "bad", "dae": true, "dap": ["ftp://x"]}}),
    )
    .await
    .expect(4000);
}
