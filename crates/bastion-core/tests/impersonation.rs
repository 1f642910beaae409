//! Impersonation prevention (TS-0003 7.2.1) and `rq_authn` (7.1.2), with the identity of
//! the security association injected as a binding will supply it (the TLS listeners of
//! the security-association work fill it from the credential).

use crate::common;

use bastion_core::{Cse, CseConfig, RequestContext};
use bastion_proto::{Operation, Request, Response};
use bastion_store::MemoryStore;
use common::request;
use serde_json::{json, Value};
use std::sync::Arc;

async fn open() -> Arc<Cse> {
    Cse::open(CseConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .expect("cse")
}

async fn send(cse: &Cse, req: Request, identity: Option<&str>) -> Response {
    let ctx = RequestContext::new(None, identity.map(str::to_owned));
    cse.handle(req, &ctx).await
}

/// CREATE of a resource of type `ty` under `parent` by `fr`, outside any association.
async fn create(cse: &Cse, parent: &str, fr: &str, ty: u64, body: Value) -> Response {
    send(
        cse,
        request(Operation::Create, parent, fr, Some(ty), Some(body)),
        None,
    )
    .await
}

async fn register(cse: &Cse, aei: &str) {
    let body = json!({"m2m:ae": {"api": "Ntest", "rr": false, "srv": ["3"]}});
    let r = create(cse, "cse-in", aei, 2, body).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
}

#[tokio::test]
async fn ts0003_7_2_1_originator_must_be_the_authenticated_identity() {
    let cse = open().await;
    register(&cse, "Cabc").await;
    register(&cse, "Cxyz").await;
    let get = |fr: &str| request(Operation::Retrieve, "cse-in/Cabc", fr, None, None);
    assert_eq!(send(&cse, get("Cabc"), Some("Cabc")).await.rsc.code(), 2000);
    // The same identity in another addressing form is the same originator.
    assert_eq!(
        send(&cse, get("Cabc"), Some("/id-in/Cabc"))
            .await
            .rsc
            .code(),
        2000
    );
    // Another registered AE's name, or the admin's, over Cabc's association: 4106.
    let r = send(&cse, get("Cxyz"), Some("Cabc")).await;
    assert_eq!(r.rsc.code(), 4106);
    assert_eq!(
        r.pc,
        Some(json!({"m2m:dbg": "originator does not match the authenticated identity"}))
    );
    assert_eq!(
        send(&cse, get("CAdmin"), Some("Cabc")).await.rsc.code(),
        4106
    );
    // An AE asking for an assigned AE-ID is left to the registration rules.
    let body = json!({"m2m:ae": {"api": "Nnew", "rr": false, "srv": ["3"]}});
    let r = send(
        &cse,
        request(Operation::Create, "cse-in", "C", Some(2), Some(body)),
        Some("Cnew"),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001);
}

#[tokio::test]
async fn ts0003_7_1_2_acaf_rules_grant_only_verified_originators() {
    let cse = open().await;
    register(&cse, "Cabc").await;
    register(&cse, "Cxyz").await;
    let acp = json!({"m2m:acp": {"rn": "acp",
        "pv": {"acr": [{"acor": ["Cabc"], "acop": 63}, {"acor": ["Cxyz"], "acop": 2, "acaf": true}]},
        "pvs": {"acr": [{"acor": ["Cabc"], "acop": 63}]}}});
    let r = create(&cse, "cse-in/Cabc", "Cabc", 1, acp).await;
    assert_eq!(r.rsc.code(), 2001);
    let cnt = json!({"m2m:cnt": {"rn": "c", "acpi": ["cse-in/Cabc/acp"]}});
    let r = create(&cse, "cse-in/Cabc", "Cabc", 3, cnt).await;
    assert_eq!(r.rsc.code(), 2001);
    let get = || request(Operation::Retrieve, "cse-in/Cabc/c", "Cxyz", None, None);
    // Outside an association the acaf rule cannot hold.
    assert_eq!(send(&cse, get(), None).await.rsc.code(), 4103);
    // Inside Cxyz's association it does.
    assert_eq!(send(&cse, get(), Some("Cxyz")).await.rsc.code(), 2000);
}

/// A credential store holding only the admin's ID, in the form written there.
struct AdminHasCredential;

impl bastion_core::CredentialBindings for AdminHasCredential {
    fn is_bound(&self, forms: &[&str]) -> bool {
        forms.contains(&"CAdmin")
    }
}

#[tokio::test]
async fn ts0003_7_2_1_an_identity_holding_a_credential_is_bound_to_it() {
    let store = MemoryStore::new();
    let services = bastion_core::Services {
        credentials: Some(Arc::new(AdminHasCredential)),
        ..bastion_core::Services::default()
    };
    let cse = Cse::open_with(CseConfig::default(), Arc::new(store), services)
        .await
        .expect("cse");
    let get = |fr: &str| request(Operation::Retrieve, "cse-in", fr, None, None);
    for fr in ["CAdmin", "/id-in/CAdmin", "//bastion.example/id-in/CAdmin"] {
        // Outside any association: 4106, whatever the form.
        let r = send(&cse, get(fr), None).await;
        assert_eq!(r.rsc.code(), 4106, "{fr}");
        assert_eq!(
            r.pc,
            Some(
                json!({"m2m:dbg": "originator is bound to a security association and must use it"})
            )
        );
        // Inside the admin's association: the admin.
        assert_eq!(
            send(&cse, get(fr), Some("CAdmin")).await.rsc.code(),
            2000,
            "{fr}"
        );
    }
    // An AE with no credential is not affected.
    register(&cse, "Cfree").await;
    let r = send(
        &cse,
        request(Operation::Retrieve, "cse-in/Cfree", "Cfree", None, None),
        None,
    )
    .await;
    assert_eq!(r.rsc.code(), 2000);
}

#[tokio::test]
async fn ts0003_7_1_2_a_registree_cse_relays_its_aes_unauthenticated() {
    let cse = open().await;
    let csr = json!({"m2m:csr": {"cb": "/id-mn/cse-mn", "rr": true, "srv": ["3"]}});
    let r = send(
        &cse,
        request(Operation::Create, "cse-in", "/id-mn", Some(16), Some(csr)),
        Some("/id-mn"),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    register(&cse, "Cowner").await;
    let acp = json!({"m2m:acp": {"rn": "acp",
        "pv": {"acr": [{"acor": ["/id-mn", "/id-mn/Cabc"], "acop": 2, "acaf": true}]},
        "pvs": {"acr": [{"acor": ["Cowner"], "acop": 63}]}}});
    let r = create(&cse, "cse-in/Cowner", "Cowner", 1, acp).await;
    assert_eq!(r.rsc.code(), 2001);
    let cnt = json!({"m2m:cnt": {"rn": "c", "acpi": ["cse-in/Cowner/acp"]}});
    let r = create(&cse, "cse-in/Cowner", "Cowner", 3, cnt).await;
    assert_eq!(r.rsc.code(), 2001);
    let get = |fr: &str| request(Operation::Retrieve, "cse-in/Cowner/c", fr, None, None);
    // The MN itself, on its association, is authenticated.
    assert_eq!(
        send(&cse, get("/id-mn"), Some("/id-mn")).await.rsc.code(),
        2000
    );
    // Its AE, relayed on that association, is accepted but not authenticated.
    let relayed = send(&cse, get("/id-mn/Cabc"), Some("/id-mn")).await;
    assert_eq!(relayed.rsc.code(), 4103);
    // The MN's CSE-ID, and its AEs, outside that association: 4106.
    for fr in ["/id-mn", "//bastion.example/id-mn", "/id-mn/Cabc"] {
        assert_eq!(send(&cse, get(fr), None).await.rsc.code(), 4106, "{fr}");
    }
    // A CSE-ID nobody registered, outside any association: 4107.
    assert_eq!(send(&cse, get("/id-x"), None).await.rsc.code(), 4107);
}
