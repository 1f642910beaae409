//! Feeds arbitrary bytes to `TokenVerifier::verify` twice:
//!
//! 1. as the whole token string (structure, base64url, JOSE header, issuer lookup,
//!    signature paths);
//! 2. as the *payload* of a token correctly signed with the trusted HS256 secret, so that
//!    the claim checks and the `tkps` parser behind the signature are explored too.
//!
//! Neither may panic; an accepted token must really be held by the originator and be
//! inside its validity window.
#![no_main]

use base64ct::{Base64UrlUnpadded, Encoding};
use bastion_policy::{IssuerKey, LocalIdentity, TokenContext, TokenVerifier, ValidatedToken};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use std::sync::OnceLock;

const SECRET: &[u8] = b"bastion-fuzz-shared-secret-0123456789";
const ORIGINATOR: &str = "//bastion.example/id-in/Cae1";
const NOW: i64 = 1_500;

/// Generator point of P-256, uncompressed: a valid public key with no known use here.
const ES_PUBLIC: [u8; 65] = [
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
    0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2,
    0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e,
    0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51,
    0xf5,
];

fn verifier() -> &'static TokenVerifier {
    static V: OnceLock<TokenVerifier> = OnceLock::new();
    V.get_or_init(|| {
        TokenVerifier::new(LocalIdentity {
            sp_id: "//bastion.example".into(),
            cse_id: "/id-in".into(),
            admin: "CAdmin".into(),
        })
        .trust("Cdas", IssuerKey::hs256(SECRET.to_vec()).expect("hs key"))
        .trust(
            "//das.example/id-das/Cdas",
            IssuerKey::es256_sec1(&ES_PUBLIC).expect("es key"),
        )
    })
}

fn check(result: Result<ValidatedToken, bastion_policy::TokenError>) {
    if let Ok(t) = result {
        assert_eq!(t.holder, ORIGINATOR);
        assert!(t.not_before <= NOW && NOW < t.not_after);
    }
}

fuzz_target!(|data: &[u8]| {
    let ctx = TokenContext {
        now: NOW,
        originator: ORIGINATOR,
    };
    let v = verifier();

    // 1. The bytes as the token itself: without the secret or the private key nothing the
    //    fuzzer writes can verify.
    let raw = String::from_utf8_lossy(data);
    assert!(v.verify(&raw, &ctx).is_err());

    // 2. The bytes as the payload of a validly signed HS256 token.
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(br#"{"alg":"HS256","typ":"JWT"}"#),
        Base64UrlUnpadded::encode_string(data)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(input.as_bytes());
    let sig = Base64UrlUnpadded::encode_string(&mac.finalize().into_bytes());
    check(v.verify(&format!("{input}.{sig}"), &ctx));
});
