//! Groups, roles and tokens in access decisions (TS-0001 9.6.13; TS-0003 7.1.3, 7.3.2.3-6,
//! 7.4; security-access-control.md §5, §8, §10.3-§11): `<group>` member validation, group
//! IDs in `acor` (nesting, cycles, re-registered members), `<role>` resources with the
//! `rids` parameter, tokens in the `Authorization` header and `<token>` resources named by
//! `tids`, each against the real binary over HTTP.

use crate::common;

use base64ct::{Base64UrlUnpadded, Encoding};
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const OWNER: &str = "Cowner";
const ISSUER: &str = "//das.example/CDas";
const AUTHORITY: &str = "//authority.example/CAuth";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const ROLE: &str = "operator@authority.example";

/// A server trusting [`ISSUER`] (HS256, [`SECRET`]) and the role authority [`AUTHORITY`].
/// The returned directory holds the secret file and must outlive the server.
fn start() -> (Server, tempfile::TempDir) {
    let keys = tempfile::tempdir().expect("key directory");
    let secret = keys.path().join("das.secret");
    std::fs::write(&secret, SECRET).expect("write the secret");
    // Secret files must be owner-only (bastion_tls::secret).
    let owner_only = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&secret, owner_only).expect("chmod the secret");
    let config = format!(
        "[authorization]\nrole-authorities = [\"{AUTHORITY}\"]\n\n\
         [[authorization.token-issuer]]\nissuer = \"{ISSUER}\"\nhs256-secret-file = \"{}\"\n",
        secret.display()
    );
    (Server::start_with_config(&config), keys)
}

fn absolute(aei: &str) -> String {
    format!("//{SP_FQDN}{CSE_ID}/{aei}")
}

/// An HS256 JWT over `claims`, signed with `secret`.
fn jwt(claims: &Value, secret: &[u8]) -> String {
    let header = Base64UrlUnpadded::encode_string(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = Base64UrlUnpadded::encode_string(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC key");
    mac.update(input.as_bytes());
    let sig = Base64UrlUnpadded::encode_string(&mac.finalize().into_bytes());
    format!("{input}.{sig}")
}

/// Claims of a token for `holder` (an AE-ID-Stem) valid for the next hour.
fn claims(jti: &str, holder: &str, tkps: Value) -> Value {
    let now = unix_now();
    json!({
        "tkvr": "1",
        "jti": jti,
        "azp": absolute(holder),
        "iss": ISSUER,
        "nbf": now - 60,
        "exp": now + 3600,
        "aud": [format!("//{SP_FQDN}{CSE_ID}")],
        "tkps": tkps,
    })
}

/// Registers the owner and a container under it whose ACP grants the owner everything
/// and `acor` RETRIEVE. Returns the container's path and resource ID.
async fn guarded_cnt(s: &Server, rn: &str, acor: &[&str]) -> (String, String) {
    if s.get(&format!("/{CSE_NAME}/{OWNER}"), OWNER).await.rsc != 2000 {
        s.ae(OWNER).await;
    }
    let ae = format!("/{CSE_NAME}/{OWNER}");
    let pv = json!({"acr": [
        {"acor": [OWNER], "acop": 63},
        {"acor": acor, "acop": 2},
    ]});
    let acp = s
        .create_acp(&ae, OWNER, &format!("acp-{rn}"), pv, rules(&[OWNER], 63))
        .await;
    let cnt = s
        .create_cnt(&ae, OWNER, json!({"rn": rn, "acpi": [acp["ri"]]}))
        .await;
    (
        format!("{ae}/{rn}"),
        cnt["ri"].as_str().expect("ri").to_owned(),
    )
}

async fn create_group(s: &Server, rn: &str, body: Value) -> Resp {
    let mut grp = body;
    grp["rn"] = json!(rn);
    s.create(&format!("/{CSE_NAME}"), ADMIN, 9, json!({ "m2m:grp": grp }))
        .await
}

// ---------- <group> ----------

#[tokio::test]
async fn ts0001_9_6_13_group_members_are_validated() {
    let (s, _keys) = start();
    s.ae("Cm1").await;
    s.ae("Cm2").await;
    let r = create_group(
        &s,
        "g1",
        json!({"mnm": 5, "mid": ["Cm1", "Cm1", "nothing-here", "/id-in/Cm2"]}),
    )
    .await;
    r.expect(2001);
    let g = r.inner("m2m:grp");
    assert_eq!(g["ty"], 9);
    // Duplicates and members that do not exist are dropped (csy ABANDON_MEMBER).
    assert_eq!(g["mid"], json!(["Cm1", "/id-in/Cm2"]));
    assert_eq!(g["cnm"], 2);
    assert_eq!(g["mtv"], true);
    assert_eq!(g["mt"], 0);
    assert_eq!(g["csy"], 1);

    // More members than mnm: 6010, nothing stored.
    create_group(&s, "g2", json!({"mnm": 1, "mid": ["Cm1", "Cm2"]}))
        .await
        .expect(6010);
    s.get(&format!("/{CSE_NAME}/g2"), ADMIN).await.expect(4004);
    // Lowering mnm below the member count is refused the same way, and changes nothing.
    s.update(
        &format!("/{CSE_NAME}/g1"),
        ADMIN,
        json!({"m2m:grp": {"mnm": 1}}),
    )
    .await
    .expect(6010);
    let g = s.get(&format!("/{CSE_NAME}/g1"), ADMIN).await;
    assert_eq!(g.inner("m2m:grp")["mnm"], 5);

    // mt = AE (2) with a container member: ABANDON_GROUP refuses (4110), SET_MIXED
    // turns the group mixed, ABANDON_MEMBER drops the member.
    let cnt = s
        .create_cnt(&format!("/{CSE_NAME}/Cm1"), "Cm1", json!({"rn": "box"}))
        .await;
    let box_ri = cnt["ri"].as_str().unwrap();
    create_group(
        &s,
        "g3",
        json!({"mnm": 5, "mt": 2, "csy": 2, "mid": ["Cm1", box_ri]}),
    )
    .await
    .expect(4110);
    let r = create_group(
        &s,
        "g4",
        json!({"mnm": 5, "mt": 2, "csy": 3, "mid": ["Cm1", box_ri]}),
    )
    .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:grp")["mt"], 0);
    assert_eq!(r.inner("m2m:grp")["cnm"], 2);
    let r = create_group(&s, "g5", json!({"mnm": 5, "mt": 2, "mid": ["Cm1", box_ri]})).await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:grp")["mid"], json!(["Cm1"]));
    // Bad csy, a type number that means nothing, CSE-owned attributes: 4000.
    for bad in [
        json!({"mnm": 5, "mid": [], "csy": 9}),
        json!({"mnm": 5, "mid": [], "mt": 33}),
        json!({"mnm": 5, "mid": [], "cnm": 0}),
        json!({"mnm": 5}),
    ] {
        create_group(&s, "bad", bad.clone()).await.expect(4000);
    }
}

#[tokio::test]
async fn ts0003_7_1_3_group_ids_in_acor_match_members_only() {
    let (s, _keys) = start();
    for ae in ["Cm1", "Cm2", "Cm3"] {
        s.ae(ae).await;
    }
    let g1 = create_group(&s, "g1", json!({"mnm": 10, "mid": ["Cm1"]})).await;
    let g1_ri = g1.inner("m2m:grp")["ri"].as_str().unwrap().to_owned();
    let g2 = create_group(&s, "g2", json!({"mnm": 10, "mid": ["Cm2", g1_ri]})).await;
    g2.expect(2001);
    let g2_ri = g2.inner("m2m:grp")["ri"].as_str().unwrap().to_owned();

    // The group named by resource ID; and by structured path.
    let (by_ri, _) = guarded_cnt(&s, "by-ri", &[&g1_ri]).await;
    let (by_path, _) = guarded_cnt(&s, "by-path", &["cse-in/g1"]).await;
    for path in [&by_ri, &by_path] {
        s.get(path, "Cm1").await.expect(2000);
        s.get(path, "Cm2").await.expect(4103);
        s.get(path, "Cm3").await.expect(4103);
    }
    // Nested: g2 holds Cm2 and g1 (so Cm1 too).
    let (nested, _) = guarded_cnt(&s, "nested", &[&g2_ri]).await;
    s.get(&nested, "Cm1").await.expect(2000);
    s.get(&nested, "Cm2").await.expect(2000);
    s.get(&nested, "Cm3").await.expect(4103);

    // A cycle (g1 holds g2, g2 holds g1) terminates and changes no answer.
    s.update(
        &format!("/{CSE_NAME}/g1"),
        ADMIN,
        json!({"m2m:grp": {"mid": ["Cm1", g2_ri]}}),
    )
    .await
    .expect(2004);
    s.get(&nested, "Cm3").await.expect(4103);
    s.get(&by_ri, "Cm2").await.expect(2000);
    s.get(&nested, "Cm1").await.expect(2000);

    // A resource ID that is not a group, or no resource at all, matches nobody.
    let (not_group, _) = guarded_cnt(&s, "not-group", &["Cm1/x", "grp-nothing"]).await;
    s.get(&not_group, "Cm1").await.expect(4103);

    // Membership belongs to the registration: Cm1 deleted and registered again is no
    // longer a member.
    s.delete(&format!("/{CSE_NAME}/Cm1"), "Cm1")
        .await
        .expect(2002);
    s.ae("Cm1").await;
    s.get(&by_ri, "Cm1").await.expect(4103);
}

#[tokio::test]
async fn ts0003_7_1_3_group_membership_survives_a_restart() {
    let (mut s, _keys) = start();
    s.ae("Cm1").await;
    s.ae("Cm2").await;
    // The group is created before its member's container; members resolve after load.
    let g = create_group(&s, "g1", json!({"mnm": 10, "mid": ["Cm1"]})).await;
    let g_ri = g.inner("m2m:grp")["ri"].as_str().unwrap().to_owned();
    let (path, _) = guarded_cnt(&s, "data", &[&g_ri]).await;
    s.get(&path, "Cm1").await.expect(2000);
    s.restart();
    s.get(&path, "Cm1").await.expect(2000);
    s.get(&path, "Cm2").await.expect(4103);
}

// ---------- <role> and rids ----------

async fn create_role(s: &Server, rn: &str, role: Value) -> Resp {
    let mut body = role;
    body["rn"] = json!(rn);
    s.create(
        &format!("/{CSE_NAME}"),
        ADMIN,
        31,
        json!({ "m2m:rol": body }),
    )
    .await
}

fn role_for(holder: &str, issuer: &str, from: i64, to: i64) -> Value {
    json!({
        "rlid": ROLE,
        "tkis": issuer,
        "tkhd": holder,
        "tknb": ts(from),
        "tkna": ts(to),
        "rlnm": "operator",
    })
}

/// A oneM2M basic-format timestamp of Unix seconds `t`.
fn ts(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[tokio::test]
async fn ts0003_7_4_roles_count_only_when_backed_held_valid_and_trusted() {
    let (s, _keys) = start();
    s.ae("Cm1").await;
    s.ae("Cm2").await;
    let now = unix_now();
    let r = create_role(&s, "r1", role_for("Cm1", AUTHORITY, now - 60, now + 3600)).await;
    r.expect(2001);
    let rol = r.inner("m2m:rol");
    assert_eq!(rol["ty"], 31);
    assert_eq!(rol["rlid"], ROLE);

    let (path, _) = guarded_cnt(&s, "ops", &[ROLE]).await;
    let with_rids = format!("{path}?rids={ROLE}");
    // The holder naming the role: granted. Without naming it: not.
    s.get(&with_rids, "Cm1").await.expect(2000);
    s.get(&path, "Cm1").await.expect(4103);
    // Someone else naming it: not the holder.
    s.get(&with_rids, "Cm2").await.expect(4103);
    // The FQDN of a Role-ID is case-insensitive.
    s.get(&format!("{path}?rids=operator@Authority.Example"), "Cm1")
        .await
        .expect(2000);

    // Roles for Cm2 that are expired, not yet valid or from an untrusted authority.
    let (p2, _) = guarded_cnt(&s, "ops2", &[ROLE]).await;
    for (rn, role) in [
        ("expired", role_for("Cm2", AUTHORITY, now - 7200, now - 60)),
        ("future", role_for("Cm2", AUTHORITY, now + 3600, now + 7200)),
        (
            "untrusted",
            role_for("Cm2", "//other.example/CX", now - 60, now + 3600),
        ),
    ] {
        create_role(&s, rn, role).await.expect(2001);
    }
    s.get(&format!("{p2}?rids={ROLE}"), "Cm2")
        .await
        .expect(4103);
    // A valid one for Cm2 makes the difference.
    create_role(
        &s,
        "valid2",
        role_for("Cm2", AUTHORITY, now - 60, now + 3600),
    )
    .await
    .expect(2001);
    s.get(&format!("{p2}?rids={ROLE}"), "Cm2")
        .await
        .expect(2000);

    // Malformed roles are refused.
    for bad in [
        json!({"rlid": "no-at-sign", "tkis": AUTHORITY, "tkhd": "Cm1", "tknb": ts(now), "tkna": ts(now + 60)}),
        json!({"rlid": ROLE, "tkis": AUTHORITY, "tkhd": "Cm1", "tknb": ts(now + 60), "tkna": ts(now)}),
        json!({"rlid": ROLE, "tkis": AUTHORITY, "tkhd": "Cm1", "tknb": ts(now)}),
    ] {
        create_role(&s, "bad", bad).await.expect(4000);
    }
    // rlid is write-once.
    s.update(
        &format!("/{CSE_NAME}/r1"),
        ADMIN,
        json!({"m2m:rol": {"rlid": "x@authority.example"}}),
    )
    .await
    .expect(4000);
}

// ---------- tokens ----------

fn read_permission(ri: &str) -> Value {
    json!({"pm": [{"ris": [ri], "pv": {"acr": [{"acor": ["all"], "acop": 2}]}}]})
}

async fn get_with_token(s: &Server, path: &str, originator: &str, token: &str) -> Resp {
    s.request("GET", path)
        .from(originator)
        .header("Authorization", token)
        .send()
        .await
}

#[tokio::test]
async fn ts0003_7_3_2_tokens_grant_what_their_permissions_say() {
    let (s, _keys) = start();
    s.ae("Cm1").await;
    s.ae("Cm2").await;
    let (path, ri) = guarded_cnt(&s, "data", &["Cnobody"]).await;
    let token = jwt(
        &claims("t1@das.example", "Cm1", read_permission(&ri)),
        SECRET,
    );
    s.get(&path, "Cm1").await.expect(4103);
    get_with_token(&s, &path, "Cm1", &token).await.expect(2000);
    // The permission covers RETRIEVE of that resource only.
    s.request("DELETE", &path)
        .from("Cm1")
        .header("Authorization", &token)
        .send()
        .await
        .expect(4103);
    let (other, _) = guarded_cnt(&s, "other", &["Cnobody"]).await;
    get_with_token(&s, &other, "Cm1", &token).await.expect(4103);
    // Structured `ris` names the same resource.
    let by_path = jwt(
        &claims("t2@das.example", "Cm1", read_permission(&path[1..])),
        SECRET,
    );
    get_with_token(&s, &path, "Cm1", &by_path)
        .await
        .expect(2000);

    // Each way a token can be wrong fails the request with 4103.
    let now = unix_now();
    let mut expired = claims("t3@das.example", "Cm1", read_permission(&ri));
    expired["exp"] = json!(now - 10);
    expired["nbf"] = json!(now - 100);
    let mut early = claims("t4@das.example", "Cm1", read_permission(&ri));
    early["nbf"] = json!(now + 600);
    let mut untrusted = claims("t5@das.example", "Cm1", read_permission(&ri));
    untrusted["iss"] = json!("//evil.example/CDas");
    let mut foreign = claims("t6@das.example", "Cm1", read_permission(&ri));
    foreign["aud"] = json!(["//other.example/cse"]);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let none_alg = format!(
        "{}.{}.",
        Base64UrlUnpadded::encode_string(br#"{"alg":"none","typ":"JWT"}"#),
        Base64UrlUnpadded::encode_string(
            claims("t7@das.example", "Cm1", read_permission(&ri))
                .to_string()
                .as_bytes()
        )
    );
    let cases = [
        ("expired", jwt(&expired, SECRET)),
        ("not yet valid", jwt(&early, SECRET)),
        ("untrusted issuer", jwt(&untrusted, SECRET)),
        ("other audience", jwt(&foreign, SECRET)),
        (
            "bad signature",
            jwt(
                &claims("t8@das.example", "Cm1", read_permission(&ri)),
                b"another secret that is long enough!!",
            ),
        ),
        ("tampered", tampered),
        ("alg none", none_alg),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, bad) in cases {
        let r = get_with_token(&s, &path, "Cm1", &bad).await;
        r.expect(4103);
        assert!(r.dbg().starts_with("token rejected"), "{what}: {}", r.dbg());
    }
    // Wrong holder: Cm2 presenting Cm1's token.
    let r = get_with_token(&s, &path, "Cm2", &token).await;
    r.expect(4103);
    assert!(r.dbg().contains("holder"), "{}", r.dbg());
    // Several tokens, '+'-joined: one bad one fails the request.
    get_with_token(&s, &path, "Cm1", &format!("{token}+not.a.token"))
        .await
        .expect(4103);
}

#[tokio::test]
async fn ts0003_7_3_2_token_roles_match_role_entries() {
    let (s, _keys) = start();
    s.ae("Cm1").await;
    let (path, _) = guarded_cnt(&s, "ops", &[ROLE]).await;
    let token = jwt(
        &claims("r1@das.example", "Cm1", json!({"pm": [{"rids": [ROLE]}]})),
        SECRET,
    );
    s.get(&path, "Cm1").await.expect(4103);
    get_with_token(&s, &path, "Cm1", &token).await.expect(2000);
}

#[tokio::test]
async fn ts0003_7_4_token_resources_and_token_ids() {
    let (s, _keys) = start();
    s.ae("Cm1").await;
    s.ae("Cm2").await;
    let (path, ri) = guarded_cnt(&s, "data", &["Cnobody"]).await;
    let token = jwt(
        &claims("stored@das.example", "Cm1", read_permission(&ri)),
        SECRET,
    );
    let r = s
        .create(
            &format!("/{CSE_NAME}"),
            ADMIN,
            32,
            json!({"m2m:tk": {"rn": "tk1", "tkob": token}}),
        )
        .await;
    r.expect(2001);
    let tk = r.inner("m2m:tk");
    // The claim copies come from the verified token.
    assert_eq!(tk["tkid"], "stored@das.example");
    assert_eq!(tk["tkis"], ISSUER);
    assert_eq!(tk["tkhd"], absolute("Cm1"));
    // The same token twice: 4105.
    s.create(
        &format!("/{CSE_NAME}"),
        ADMIN,
        32,
        json!({"m2m:tk": {"rn": "tk2", "tkob": token}}),
    )
    .await
    .expect(4105);

    s.get(&format!("{path}?tids=stored@das.example"), "Cm1")
        .await
        .expect(2000);
    // Not the holder; an unknown ID; a Local-Token-ID this CSE never assigned.
    s.get(&format!("{path}?tids=stored@das.example"), "Cm2")
        .await
        .expect(4103);
    s.get(&format!("{path}?tids=unknown@das.example"), "Cm1")
        .await
        .expect(4103);
    s.get(&format!("{path}?ltids=lt1"), "Cm1")
        .await
        .expect(4103);

    // Tokens that do not verify are not stored; plain-text copies are the CSE's.
    for bad in [
        json!({"rn": "b1", "tkob": "not.a.token"}),
        json!({"rn": "b2", "tkob": token, "tkid": "other@das.example"}),
        json!({"rn": "b3", "tkob": token, "tkhd": "Cm2"}),
    ] {
        s.create(&format!("/{CSE_NAME}"), ADMIN, 32, json!({ "m2m:tk": bad }))
            .await
            .expect(4000);
    }
    // Deleting the token resource withdraws it.
    s.delete(&format!("/{CSE_NAME}/tk1"), ADMIN)
        .await
        .expect(2002);
    s.get(&format!("{path}?tids=stored@das.example"), "Cm1")
        .await
        .expect(4103);
}
