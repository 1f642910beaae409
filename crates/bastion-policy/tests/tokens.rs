//! oneM2M JWT validation (TS-0003 7.3.2.4-7.3.2.6; digest §10.4): tokens are built here by
//! signing with the same crates the verifier uses (HS256 via `hmac`, ES256 via a `p256`
//! signing key from a fixed test scalar), then fed to [`TokenVerifier::verify`].

use base64ct::{Base64UrlUnpadded, Encoding};
use bastion_policy::token::{is_role_id, Part, MAX_TOKEN_LEN};
use bastion_policy::{
    Algorithm, IssuerKey, KeyError, LocalIdentity, TokenContext, TokenError, TokenVerifier,
    ValidatedToken,
};
use hmac::{Hmac, KeyInit, Mac};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use proptest::prelude::*;
use serde_json::{json, Value};
use sha2::Sha256;

const HS_SECRET: &[u8] = b"bastion-test-shared-secret-0123456789";
const HS_ISSUER: &str = "//bastion.example/id-in/Cdas";
const ES_ISSUER: &str = "//das.example/id-das/Cdas";
const HOLDER: &str = "//bastion.example/id-in/Cae1";
const NBF: i64 = 1_000;
const EXP: i64 = 2_000;

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    }
}

fn es_key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).expect("valid scalar")
}

fn es_public_sec1() -> Vec<u8> {
    es_key()
        .verifying_key()
        .to_sec1_point(false)
        .as_bytes()
        .to_vec()
}

fn verifier() -> TokenVerifier {
    TokenVerifier::new(local())
        .trust(
            HS_ISSUER,
            IssuerKey::hs256(HS_SECRET.to_vec()).expect("hs key"),
        )
        .trust(
            ES_ISSUER,
            IssuerKey::es256_sec1(&es_public_sec1()).expect("es key"),
        )
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// How to sign a token under construction.
enum Sign<'a> {
    Hs(&'a [u8]),
    Es,
    /// Any fixed signature bytes.
    Raw(&'a [u8]),
}

/// `header.payload.signature` from raw JSON texts.
fn token_raw(header: &str, payload: &str, sign: Sign<'_>) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = match sign {
        Sign::Hs(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any length");
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Sign::Es => {
            let sig: Signature = es_key().sign(input.as_bytes());
            sig.to_bytes().to_vec()
        }
        Sign::Raw(bytes) => bytes.to_vec(),
    };
    format!("{input}.{}", b64(&sig))
}

fn claims(issuer: &str) -> Value {
    json!({
        "tkvr": "1",
        "jti": "tok1@das.example",
        "azp": HOLDER,
        "iss": issuer,
        "nbf": NBF,
        "exp": EXP,
        "aud": ["//bastion.example/id-in"],
    })
}

fn hs_token(claims: &Value) -> String {
    token_raw(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims.to_string(),
        Sign::Hs(HS_SECRET),
    )
}

fn es_token(claims: &Value) -> String {
    token_raw(
        r#"{"alg":"ES256","typ":"JWT"}"#,
        &claims.to_string(),
        Sign::Es,
    )
}

fn ctx(now: i64) -> TokenContext<'static> {
    TokenContext {
        now,
        originator: HOLDER,
    }
}

fn verify(token: &str) -> Result<ValidatedToken, TokenError> {
    verifier().verify(token, &ctx(1_500))
}

fn with(mut base: Value, member: &str, value: Value) -> Value {
    base[member] = value;
    base
}

fn without(mut base: Value, member: &str) -> Value {
    base.as_object_mut().expect("object").remove(member);
    base
}

// ---------- acceptance ----------

#[test]
fn valid_hs256_token_is_accepted() {
    let t = verify(&hs_token(&claims(HS_ISSUER))).expect("valid");
    assert_eq!(t.token_id, "tok1@das.example");
    assert_eq!(t.version, "1");
    assert_eq!(t.issuer, HS_ISSUER);
    assert_eq!(t.holder, HOLDER);
    assert_eq!((t.not_before, t.not_after), (NBF, EXP));
    assert_eq!(t.audience, vec!["//bastion.example/id-in".to_string()]);
    assert!(t.permissions.is_empty());
}

#[test]
fn valid_es256_token_is_accepted() {
    let t = verify(&es_token(&claims(ES_ISSUER))).expect("valid");
    assert_eq!(t.issuer, ES_ISSUER);
}

#[test]
fn es256_key_from_spki_pem_verifies() {
    let pem = es_key()
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let v = TokenVerifier::new(local())
        .trust(ES_ISSUER, IssuerKey::es256_spki_pem(&pem).expect("pem key"));
    assert!(v.verify(&es_token(&claims(ES_ISSUER)), &ctx(1_500)).is_ok());
    assert_eq!(
        IssuerKey::es256_spki_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .err(),
        Some(KeyError::InvalidPem)
    );
    assert_eq!(
        IssuerKey::es256_sec1(&[4; 65]).err(),
        Some(KeyError::InvalidSec1)
    );
}

#[test]
fn issuer_is_compared_in_absolute_form() {
    // Configured as an AE-ID-Stem, written absolute in the token.
    let v = TokenVerifier::new(local())
        .trust("Cdas", IssuerKey::hs256(HS_SECRET.to_vec()).expect("key"));
    assert!(v.verify(&hs_token(&claims(HS_ISSUER)), &ctx(1_500)).is_ok());
    assert_eq!(v.algorithm_for(HS_ISSUER), Some(Algorithm::Hs256));
    assert_eq!(v.algorithm_for("Cother"), None);
}

#[test]
fn version_may_use_the_short_name_vr() {
    let c = with(without(claims(HS_ISSUER), "tkvr"), "vr", json!(1));
    assert_eq!(verify(&hs_token(&c)).expect("valid").version, "1");
    let both = with(claims(HS_ISSUER), "vr", json!("1"));
    assert_eq!(
        verify(&hs_token(&both)).err(),
        Some(TokenError::InvalidClaim("tkvr"))
    );
}

#[test]
fn unknown_claims_and_header_members_are_ignored() {
    let c = with(claims(HS_ISSUER), "tknm", json!("a name"));
    let c = with(c, "iat", json!(900));
    let t = token_raw(
        r#"{"alg":"HS256","kid":"k1"}"#,
        &c.to_string(),
        Sign::Hs(HS_SECRET),
    );
    assert!(verify(&t).is_ok());
}

// ---------- validity window ----------

#[test]
fn expired_token_is_rejected() {
    let t = hs_token(&claims(HS_ISSUER));
    assert_eq!(
        verifier().verify(&t, &ctx(5_000)).err(),
        Some(TokenError::Expired)
    );
}

#[test]
fn token_not_yet_valid_is_rejected() {
    let t = hs_token(&claims(HS_ISSUER));
    assert_eq!(
        verifier().verify(&t, &ctx(10)).err(),
        Some(TokenError::NotYetValid)
    );
}

#[test]
fn boundaries_nbf_inclusive_exp_exclusive() {
    let t = hs_token(&claims(HS_ISSUER));
    let v = verifier();
    assert_eq!(
        v.verify(&t, &ctx(NBF - 1)).err(),
        Some(TokenError::NotYetValid)
    );
    assert!(v.verify(&t, &ctx(NBF)).is_ok());
    assert!(v.verify(&t, &ctx(EXP - 1)).is_ok());
    assert_eq!(v.verify(&t, &ctx(EXP)).err(), Some(TokenError::Expired));
}

#[test]
fn leeway_widens_both_ends() {
    let t = hs_token(&claims(HS_ISSUER));
    let v = verifier().leeway(5);
    assert!(v.verify(&t, &ctx(NBF - 5)).is_ok());
    assert_eq!(
        v.verify(&t, &ctx(NBF - 6)).err(),
        Some(TokenError::NotYetValid)
    );
    assert!(v.verify(&t, &ctx(EXP + 4)).is_ok());
    assert_eq!(v.verify(&t, &ctx(EXP + 5)).err(), Some(TokenError::Expired));
}

#[test]
fn nbf_and_exp_are_mandatory_numbers() {
    for member in ["nbf", "exp"] {
        let c = without(claims(HS_ISSUER), member);
        assert_eq!(
            verify(&hs_token(&c)).err(),
            Some(TokenError::MissingClaim(member))
        );
    }
    let c = with(claims(HS_ISSUER), "exp", json!("2000"));
    assert_eq!(
        verify(&hs_token(&c)).err(),
        Some(TokenError::InvalidClaim("exp"))
    );
}

// ---------- holder ----------

#[test]
fn wrong_holder_is_rejected() {
    let t = hs_token(&claims(HS_ISSUER));
    for originator in ["//bastion.example/id-in/Cae2", "Cae2", "", "all", "Cae*"] {
        let c = TokenContext {
            now: 1_500,
            originator,
        };
        assert_eq!(
            verifier().verify(&t, &c).err(),
            Some(TokenError::HolderMismatch),
            "{originator}"
        );
    }
}

#[test]
fn holder_in_another_addressing_form_is_accepted() {
    for holder in [HOLDER, "Cae1", "/id-in/Cae1"] {
        let t = hs_token(&with(claims(HS_ISSUER), "azp", json!(holder)));
        for originator in [HOLDER, "Cae1", "/id-in/Cae1"] {
            let c = TokenContext {
                now: 1_500,
                originator,
            };
            let v = verifier().verify(&t, &c).expect("same identity");
            assert_eq!(v.holder, HOLDER);
        }
    }
}

#[test]
fn wildcard_holder_is_literal() {
    let t = hs_token(&with(claims(HS_ISSUER), "azp", json!("Cae*")));
    assert_eq!(verify(&t).err(), Some(TokenError::HolderMismatch));
}

// ---------- issuer, algorithm, signature ----------

#[test]
fn untrusted_issuer_is_rejected() {
    let c = claims("//evil.example/id-x/Cdas");
    let t = token_raw(r#"{"alg":"HS256"}"#, &c.to_string(), Sign::Hs(HS_SECRET));
    assert_eq!(verify(&t).err(), Some(TokenError::UnknownIssuer));
    let no_iss = without(claims(HS_ISSUER), "iss");
    assert_eq!(
        verify(&hs_token(&no_iss)).err(),
        Some(TokenError::MissingClaim("iss"))
    );
    // A verifier with no issuer rejects everything.
    assert_eq!(
        TokenVerifier::new(local())
            .verify(&hs_token(&claims(HS_ISSUER)), &ctx(1_500))
            .err(),
        Some(TokenError::UnknownIssuer)
    );
}

/// Flips one bit of the decoded signature and re-encodes it.
fn flip_signature_bit(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').expect("three parts");
    let mut bytes = Base64UrlUnpadded::decode_vec(sig).expect("b64");
    bytes[0] ^= 0x01;
    format!("{input}.{}", b64(&bytes))
}

#[test]
fn one_flipped_signature_bit_is_rejected() {
    for t in [hs_token(&claims(HS_ISSUER)), es_token(&claims(ES_ISSUER))] {
        assert!(verify(&t).is_ok());
        assert_eq!(
            verify(&flip_signature_bit(&t)).err(),
            Some(TokenError::BadSignature)
        );
    }
}

#[test]
fn changed_payload_is_rejected() {
    let t = hs_token(&claims(HS_ISSUER));
    let forged = with(claims(HS_ISSUER), "exp", json!(9_999_999));
    let parts: Vec<&str> = t.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(verify(&tampered).err(), Some(TokenError::BadSignature));
}

#[test]
fn wrong_secret_is_rejected() {
    let t = token_raw(
        r#"{"alg":"HS256"}"#,
        &claims(HS_ISSUER).to_string(),
        Sign::Hs(b"another-secret-of-enough-length-000000"),
    );
    assert_eq!(verify(&t).err(), Some(TokenError::BadSignature));
}

#[test]
fn alg_none_is_rejected() {
    let payload = claims(HS_ISSUER).to_string();
    for header in [r#"{"alg":"none"}"#, r#"{"alg":"NONE","typ":"JWT"}"#] {
        let t = token_raw(header, &payload, Sign::Raw(b"x"));
        assert_eq!(verify(&t).err(), Some(TokenError::AlgorithmNone));
        // The RFC 7519 unsecured form has an empty signature part.
        let (unsecured, _) = t.rsplit_once('.').expect("parts");
        assert_eq!(
            verify(&format!("{unsecured}.")).err(),
            Some(TokenError::Structure)
        );
    }
}

#[test]
fn unsupported_or_missing_alg_is_rejected() {
    let payload = claims(HS_ISSUER).to_string();
    for header in [
        r#"{"alg":"HS512"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":1}"#,
    ] {
        let t = token_raw(header, &payload, Sign::Hs(HS_SECRET));
        assert_eq!(
            verify(&t).err(),
            Some(TokenError::AlgorithmUnsupported),
            "{header}"
        );
    }
    let t = token_raw(r#"{"typ":"JWT"}"#, &payload, Sign::Hs(HS_SECRET));
    assert_eq!(verify(&t).err(), Some(TokenError::AlgorithmMissing));
}

#[test]
fn algorithm_confusion_is_rejected() {
    // HS256 keyed with the ES256 issuer's public key bytes (the classic attack).
    let public = es_public_sec1();
    let pem = es_key()
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    for secret in [public.as_slice(), pem.as_bytes()] {
        let t = token_raw(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &claims(ES_ISSUER).to_string(),
            Sign::Hs(secret),
        );
        assert_eq!(
            verify(&t).err(),
            Some(TokenError::AlgorithmMismatch {
                expected: Algorithm::Es256
            })
        );
    }
    // And the other way round: an ES256 token for an HS256 issuer.
    let t = token_raw(
        r#"{"alg":"ES256"}"#,
        &claims(HS_ISSUER).to_string(),
        Sign::Es,
    );
    assert_eq!(
        verify(&t).err(),
        Some(TokenError::AlgorithmMismatch {
            expected: Algorithm::Hs256
        })
    );
}

#[test]
fn es256_signature_must_be_raw_r_s() {
    let input_token = es_token(&claims(ES_ISSUER));
    let (input, _) = input_token.rsplit_once('.').expect("parts");
    let sig: Signature = es_key().sign(input.as_bytes());
    let der = sig.to_der();
    let t = format!("{input}.{}", b64(der.as_bytes()));
    assert_eq!(verify(&t).err(), Some(TokenError::BadSignature));
    let short = format!("{input}.{}", b64(&sig.to_bytes()[..63]));
    assert_eq!(verify(&short).err(), Some(TokenError::BadSignature));
    let zero = format!("{input}.{}", b64(&[0u8; 64]));
    assert_eq!(verify(&zero).err(), Some(TokenError::BadSignature));
}

#[test]
fn truncated_hmac_is_rejected() {
    let t = hs_token(&claims(HS_ISSUER));
    let (input, sig) = t.rsplit_once('.').expect("parts");
    let bytes = Base64UrlUnpadded::decode_vec(sig).expect("b64");
    let truncated = format!("{input}.{}", b64(&bytes[..16]));
    assert_eq!(verify(&truncated).err(), Some(TokenError::BadSignature));
}

// ---------- claims ----------

#[test]
fn missing_jti_or_version_is_rejected() {
    for (member, name) in [("jti", "jti"), ("tkvr", "tkvr"), ("azp", "azp")] {
        let c = without(claims(HS_ISSUER), member);
        assert_eq!(
            verify(&hs_token(&c)).err(),
            Some(TokenError::MissingClaim(name)),
            "{member}"
        );
    }
    for (member, value) in [
        ("jti", json!("")),
        ("jti", json!(5)),
        ("tkvr", json!(null)),
        ("azp", json!("")),
    ] {
        let c = with(claims(HS_ISSUER), member, value);
        assert_eq!(
            verify(&hs_token(&c)).err(),
            Some(TokenError::InvalidClaim(member)),
            "{member}"
        );
    }
}

#[test]
fn missing_audience_is_rejected() {
    let c = without(claims(HS_ISSUER), "aud");
    assert_eq!(
        verify(&hs_token(&c)).err(),
        Some(TokenError::AudienceMissing)
    );
}

#[test]
fn audience_not_naming_us_is_rejected() {
    for aud in [
        json!(["//bastion.example/id-other"]),
        json!("//other.example/id-in"),
        json!([]),
        json!(["all"]),
        json!(["//*"]),
        json!(["//bastion.example"]),
        json!(["//bastion.example/id-in/Cae1"]),
    ] {
        let c = with(claims(HS_ISSUER), "aud", aud.clone());
        assert_eq!(
            verify(&hs_token(&c)).err(),
            Some(TokenError::AudienceMismatch),
            "{aud}"
        );
    }
    for aud in [json!(7), json!(["//bastion.example/id-in", 7])] {
        let c = with(claims(HS_ISSUER), "aud", aud);
        assert_eq!(
            verify(&hs_token(&c)).err(),
            Some(TokenError::InvalidClaim("aud"))
        );
    }
}

#[test]
fn audience_forms_naming_us_are_accepted() {
    for aud in [
        json!("//bastion.example/id-in"),
        json!("/id-in"),
        json!(["//other.example/id-x", "//bastion.example/id-in"]),
        json!(["//bastion.example/*"]),
        json!(["//*/id-in"]),
        json!(["//bastion.example/id-*"]),
    ] {
        let c = with(claims(HS_ISSUER), "aud", aud.clone());
        assert!(verify(&hs_token(&c)).is_ok(), "{aud}");
    }
    // An extra accepted CSE-ID.
    let c = with(claims(HS_ISSUER), "aud", json!(["/id-alias"]));
    let v = verifier().accept_audience("//bastion.example/id-alias");
    assert!(v.verify(&hs_token(&c), &ctx(1_500)).is_ok());
}

// ---------- structure ----------

#[test]
fn malformed_structure_is_rejected() {
    let good = hs_token(&claims(HS_ISSUER));
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        String::new(),
        "abc".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        format!("{good}."),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        "..".to_string(),
    ] {
        assert_eq!(verify(&bad).err(), Some(TokenError::Structure), "{bad}");
    }
}

#[test]
fn malformed_base64_is_rejected() {
    let good = hs_token(&claims(HS_ISSUER));
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        (
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            Part::Header,
        ),
        (
            format!("{}.{}*.{}", parts[0], parts[1], parts[2]),
            Part::Payload,
        ),
        (
            format!("{}.{}.{}+", parts[0], parts[1], parts[2]),
            Part::Signature,
        ),
        (
            format!("{}.{}.{}/", parts[0], parts[1], parts[2]),
            Part::Signature,
        ),
        // 43 + 2 characters leave a 1-character final block: never valid base64.
        (
            format!("{}.{}.{}AA", parts[0], parts[1], parts[2]),
            Part::Signature,
        ),
    ];
    for (bad, part) in cases {
        assert_eq!(verify(&bad).err(), Some(TokenError::Base64(part)), "{bad}");
    }
    // Non-canonical trailing bits: "{" is "ew"; "e3" carries non-zero unused bits.
    let noncanonical = format!("e3.{}.{}", parts[1], parts[2]);
    assert_eq!(
        verify(&noncanonical).err(),
        Some(TokenError::Base64(Part::Header))
    );
}

#[test]
fn malformed_json_is_rejected() {
    let payload = claims(HS_ISSUER).to_string();
    for (header, body, part) in [
        ("not json", payload.as_str(), Part::Header),
        (r#"["HS256"]"#, payload.as_str(), Part::Header),
        (r#"{"alg":"HS256"}"#, "{", Part::Payload),
        (r#"{"alg":"HS256"}"#, "\"claims\"", Part::Payload),
        (r#"{"alg":"HS256"} x"#, payload.as_str(), Part::Header),
    ] {
        let t = token_raw(header, body, Sign::Hs(HS_SECRET));
        assert_eq!(verify(&t).err(), Some(TokenError::Json(part)), "{header}");
    }
}

#[test]
fn duplicate_members_are_rejected() {
    let payload = claims(HS_ISSUER).to_string();
    let t = token_raw(
        r#"{"alg":"ES256","alg":"HS256"}"#,
        &payload,
        Sign::Hs(HS_SECRET),
    );
    assert_eq!(
        verify(&t).err(),
        Some(TokenError::DuplicateMember(Part::Header))
    );
    let dup_payload = payload.replacen('{', r#"{"iss":"//evil.example/x/Cx","#, 1);
    let t = token_raw(r#"{"alg":"HS256"}"#, &dup_payload, Sign::Hs(HS_SECRET));
    assert_eq!(
        verify(&t).err(),
        Some(TokenError::DuplicateMember(Part::Payload))
    );
}

#[test]
fn header_typ_crit_cty() {
    let payload = claims(HS_ISSUER).to_string();
    let t = token_raw(
        r#"{"alg":"HS256","typ":"jwt"}"#,
        &payload,
        Sign::Hs(HS_SECRET),
    );
    assert!(verify(&t).is_ok());
    for (header, err) in [
        (r#"{"alg":"HS256","typ":"JOSE"}"#, TokenError::Type),
        (r#"{"alg":"HS256","typ":1}"#, TokenError::Type),
        (
            r#"{"alg":"HS256","crit":["exp"]}"#,
            TokenError::UnsupportedHeader("crit"),
        ),
        (
            r#"{"alg":"HS256","cty":"JWT"}"#,
            TokenError::UnsupportedHeader("cty"),
        ),
    ] {
        let t = token_raw(header, &payload, Sign::Hs(HS_SECRET));
        assert_eq!(verify(&t).err(), Some(err), "{header}");
    }
}

#[test]
fn too_long_token_is_rejected() {
    let t = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(verify(&t).err(), Some(TokenError::TooLong));
}

// ---------- permissions ----------

#[test]
fn permissions_are_parsed_and_rules_for_selects_by_resource() {
    let tkps = json!({"pm": [
        {"ris": ["/id-in/cnt1", "/id-in/cnt2"],
         "pv": {"acr": [{"acor": ["Cae1"], "acop": 2}]},
         "rids": ["r1@role-issuer.example"]},
        {"ris": ["/id-in/cnt2"], "pv": {"acr": [{"acor": ["all"], "acop": 1}, {"acor": ["Cx"], "acop": 4}]}},
        {"rids": ["r2@role-issuer.example"]},
        {"ris": ["/id-in/cnt3"]},
        {}
    ]});
    let c = with(claims(HS_ISSUER), "tkps", tkps);
    let t = verify(&hs_token(&c)).expect("valid");
    assert_eq!(t.permissions.len(), 5);
    assert_eq!(
        t.permissions[0].resources,
        vec!["/id-in/cnt1", "/id-in/cnt2"]
    );
    assert_eq!(t.permissions[0].role_ids, vec!["r1@role-issuer.example"]);
    assert!(t.permissions[2].rules.is_none());

    let sizes = |id: &str| t.rules_for(id).map(|r| r.len()).collect::<Vec<_>>();
    assert_eq!(sizes("/id-in/cnt1"), vec![1]);
    assert_eq!(sizes("/id-in/cnt2"), vec![1, 2]);
    assert!(sizes("/id-in/cnt3").is_empty());
    assert!(sizes("/id-in/other").is_empty());
    assert_eq!(
        t.role_ids().collect::<Vec<_>>(),
        vec!["r1@role-issuer.example", "r2@role-issuer.example"]
    );
}

#[test]
fn permission_with_pv_but_no_ris_is_rejected() {
    for pm in [
        json!({"pv": {"acr": [{"acor": ["all"], "acop": 63}]}}),
        json!({"ris": [], "pv": {"acr": []}}),
    ] {
        let c = with(claims(HS_ISSUER), "tkps", json!({"pm": [pm]}));
        assert_eq!(
            verify(&hs_token(&c)).err(),
            Some(TokenError::PermissionWithoutResources)
        );
    }
}

#[test]
fn malformed_permissions_are_rejected() {
    let bad_role = json!({"pm": [{"rids": ["r1@Role-Issuer.example"]}]});
    let c = with(claims(HS_ISSUER), "tkps", bad_role);
    assert_eq!(verify(&hs_token(&c)).err(), Some(TokenError::InvalidRoleId));

    for (tkps, path) in [
        (json!([]), "tkps"),
        (json!({"pm": {}}), "tkps.pm"),
        (json!({"pm": [], "x": 1}), "tkps"),
        (json!({"pm": [{"ris": "/id-in/a"}]}), "tkps.pm[0].ris"),
        (json!({"pm": [{"ris": [""]}]}), "tkps.pm[0].ris[0]"),
        (json!({"pm": [{"zz": 1}]}), "tkps.pm[0]"),
        (
            json!({"pm": [{"ris": ["/id-in/a"], "pv": {"acr": [{"acor": ["all"], "acop": 64}]}}]}),
            "tkps.pm[0].pv.acr[0].acop",
        ),
    ] {
        let c = with(claims(HS_ISSUER), "tkps", tkps.clone());
        match verify(&hs_token(&c)) {
            Err(TokenError::Permissions(e)) => assert_eq!(e.path(), path, "{tkps}"),
            other => panic!("{tkps}: {other:?}"),
        }
    }
}

#[test]
fn role_id_format() {
    assert!(is_role_id("1234abcd@role-issuer.com"));
    assert!(!is_role_id("1234abcd@Role-Issuer.com"));
    assert!(!is_role_id("12 34@role-issuer.com"));
}

// ---------- secrets ----------

#[test]
fn verifier_debug_and_errors_never_show_keys() {
    let shown = format!("{:?}", verifier());
    assert!(!shown.contains("bastion-test-shared-secret"), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", &HS_SECRET[..8])),
        "{shown}"
    );
    assert!(shown.contains("redacted"), "{shown}");
    assert!(shown.contains("EcPublicKey(P-256, sha256:"), "{shown}");
    let err = verify(&flip_signature_bit(&hs_token(&claims(HS_ISSUER)))).unwrap_err();
    assert_eq!(err.reason(), "bad signature");
    assert!(!format!("{err:?} {err}").contains("secret"));
}

// ---------- properties ----------

proptest! {
    /// Arbitrary strings never panic and are never accepted.
    #[test]
    fn arbitrary_strings_are_rejected(s in ".{0,300}") {
        prop_assert!(verify(&s).is_err());
    }

    /// Strings made of three base64url-looking parts never panic and are never accepted.
    #[test]
    fn arbitrary_three_part_strings_are_rejected(
        s in "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,90}"
    ) {
        prop_assert!(verify(&s).is_err());
    }

    /// Any one-byte change to a valid token (either algorithm) makes it invalid.
    #[test]
    fn mutated_valid_tokens_are_rejected(es in any::<bool>(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let token = if es { es_token(&claims(ES_ISSUER)) } else { hs_token(&claims(HS_ISSUER)) };
        let mut bytes = token.into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let s = String::from_utf8_lossy(&bytes);
        prop_assert!(verify(&s).is_err());
    }

    /// Arbitrary JSON claims signed with the right key never panic; when accepted, the
    /// holder and window really hold.
    #[test]
    fn signed_arbitrary_claims_never_panic(
        azp in prop_oneof![Just(HOLDER.to_string()), "[C/a-z]{0,12}"],
        nbf in -5i64..3000, exp in -5i64..3000, now in 0i64..3000,
        aud in prop_oneof![Just(json!("/id-in")), Just(json!([])), Just(json!(null))],
    ) {
        let c = json!({"tkvr":"1","jti":"t@x","azp":azp,"iss":HS_ISSUER,"nbf":nbf,"exp":exp,"aud":aud});
        let r = verifier().verify(&hs_token(&c), &ctx(now));
        if let Ok(t) = r {
            prop_assert_eq!(t.holder.as_str(), HOLDER);
            prop_assert!(nbf <= now && now < exp);
        }
    }
}
