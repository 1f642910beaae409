//! Criterion benchmark of `TokenVerifier::verify` on a valid token carrying one `tkps`
//! permission with a one-rule `pv`: `hs256` (HMAC-SHA-256) and `es256` (ECDSA P-256
//! verification, which dominates). Tokens are signed once, outside the measured loop.

use base64ct::{Base64UrlUnpadded, Encoding};
use bastion_policy::{IssuerKey, LocalIdentity, TokenContext, TokenVerifier};
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, KeyInit, Mac};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;
use sha2::Sha256;
use std::hint::black_box;

const SECRET: &[u8] = b"bastion-bench-shared-secret-0123456789";

fn token(alg: &str, issuer: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let header = json!({"alg": alg, "typ": "JWT"}).to_string();
    let claims = json!({
        "tkvr": "1",
        "jti": "tok1@das.example",
        "azp": "//bastion.example/id-in/Cae1",
        "iss": issuer,
        "nbf": 1_000,
        "exp": 2_000,
        "aud": ["//bastion.example/id-in"],
        "tkps": {"pm": [{"ris": ["/id-in/cnt1"], "pv": {"acr": [{"acor": ["Cae1"], "acop": 2}]}}]},
    })
    .to_string();
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.as_bytes()),
        Base64UrlUnpadded::encode_string(claims.as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig))
}

fn bench_verify(c: &mut Criterion) {
    let local = LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    };
    let es = SigningKey::from_slice(&[0x42; 32]).expect("scalar");
    let es_public = es.verifying_key().to_sec1_point(false).as_bytes().to_vec();
    let verifier = TokenVerifier::new(local)
        .trust("Cdas", IssuerKey::hs256(SECRET.to_vec()).expect("hs"))
        .trust(
            "//das.example/id-das/Cdas",
            IssuerKey::es256_sec1(&es_public).expect("es"),
        );
    let hs_token = token("HS256", "Cdas", |input| {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("key");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    });
    let es_token = token("ES256", "//das.example/id-das/Cdas", |input| {
        let sig: Signature = es.sign(input);
        sig.to_bytes().to_vec()
    });
    let ctx = TokenContext {
        now: 1_500,
        originator: "Cae1",
    };
    let mut group = c.benchmark_group("token_verify");
    for (name, token) in [("hs256", &hs_token), ("es256", &es_token)] {
        assert!(verifier.verify(token, &ctx).is_ok(), "{name} token valid");
        group.bench_function(name, |b| {
            b.iter(|| verifier.verify(black_box(token), black_box(&ctx)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
