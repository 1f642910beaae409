//! Token issuing (TS-0003 7.3.2.4-7.3.2.6; digest §10.4): a JWS compact serialization
//! with the claims `bastion_policy::TokenVerifier` requires, signed HS256 or ES256 with
//! the same crates the verifier uses.
//!
//! Header `{"alg":..,"typ":"JWT"}` (no `cty`: single layer). Claims: `tkvr` "1", `jti`
//! `<32 hex>@<token_domain>`, `azp` the holder (absolute), `iss`, `nbf` = issue time,
//! `exp` = `nbf` + lifetime, `aud`, optional `tknm` and `tkps {"pm": [...]}`.

use crate::policy::{SigningConfig, TokenGrant};
use crate::DasError;
use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// The token version written in `tkvr`.
pub const TOKEN_VERSION: &str = "1";

/// A signing key. `Debug` never shows key material.
pub enum Signer {
    /// HS256 with a shared secret (zeroised on drop).
    Hs256(Zeroizing<Vec<u8>>),
    /// ES256 with a P-256 private key (zeroised on drop by `p256`).
    Es256(Box<SigningKey>),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Hs256(s) => write!(f, "Signer::Hs256(<redacted, {} bytes>)", s.len()),
            Signer::Es256(_) => f.write_str("Signer::Es256(<redacted>)"),
        }
    }
}

impl Signer {
    /// An HS256 signer; the secret must be at least 32 bytes (RFC 7518 §3.2).
    pub fn hs256(secret: Vec<u8>) -> Result<Signer, DasError> {
        let secret = Zeroizing::new(secret);
        if secret.len() < bastion_policy::token::MIN_HMAC_SECRET_LEN {
            return Err(DasError::Key("HS256 secret shorter than 32 bytes".into()));
        }
        Ok(Signer::Hs256(secret))
    }

    /// An ES256 signer from a P-256 private key in PEM (PKCS#8 or SEC1).
    pub fn es256_pem(pem: &str) -> Result<Signer, DasError> {
        let secret = p256::SecretKey::from_pem(pem)
            .map_err(|_| DasError::Key("not a P-256 private key in PEM".into()))?;
        Ok(Signer::Es256(Box::new(SigningKey::from(&secret))))
    }

    /// Loads the key a policy names.
    pub fn load(config: &SigningConfig) -> Result<Signer, DasError> {
        match config {
            // Secret files are read as every component reads them: owner-only, bounded,
            // wiped after use (bastion_tls::secret).
            SigningConfig::Hs256 { secret_file } => {
                let bytes = bastion_tls::secret::read_secret(secret_file)
                    .map_err(|e| DasError::Key(e.to_string()))?;
                let mut end = bytes.len();
                while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
                    end -= 1;
                }
                Signer::hs256(bytes[..end].to_vec())
            }
            SigningConfig::Es256 { private_key_file } => {
                let pem = bastion_tls::secret::read_secret_text(private_key_file)
                    .map_err(|e| DasError::Key(e.to_string()))?;
                Signer::es256_pem(&pem)
            }
        }
    }

    /// The JOSE `alg`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Signer::Hs256(_) => "HS256",
            Signer::Es256(_) => "ES256",
        }
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, DasError> {
        match self {
            Signer::Hs256(secret) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret)
                    .map_err(|_| DasError::Key("HMAC key rejected".into()))?;
                mac.update(input);
                Ok(mac.finalize().into_bytes().to_vec())
            }
            Signer::Es256(key) => {
                let sig: Signature = key.sign(input);
                Ok(sig.to_bytes().to_vec())
            }
        }
    }
}

/// What the token is for.
pub struct Claims<'a> {
    pub token_id: &'a str,
    pub issuer: &'a str,
    /// Absolute ID of the originator.
    pub holder: &'a str,
    /// Issue time, Unix seconds.
    pub now: i64,
    pub grant: &'a TokenGrant,
}

/// The claim set as JSON.
pub fn claims_json(c: &Claims<'_>) -> Value {
    let lifetime = i64::try_from(c.grant.lifetime).unwrap_or(i64::MAX);
    let mut claims = json!({
        "tkvr": TOKEN_VERSION,
        "jti": c.token_id,
        "azp": c.holder,
        "iss": c.issuer,
        "nbf": c.now,
        "exp": c.now.saturating_add(lifetime),
        "aud": c.grant.audience,
    });
    if let Some(map) = claims.as_object_mut() {
        if let Some(name) = &c.grant.name {
            map.insert("tknm".into(), Value::from(name.clone()));
        }
        if !c.grant.permissions.is_empty() {
            map.insert("tkps".into(), json!({ "pm": c.grant.permissions }));
        }
    }
    claims
}

/// Issues a signed token: `header.payload.signature`.
pub fn issue(signer: &Signer, claims: &Claims<'_>) -> Result<String, DasError> {
    let header = json!({"alg": signer.algorithm(), "typ": "JWT"});
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(claims_json(claims).to_string().as_bytes())
    );
    let sig = signer.sign(input.as_bytes())?;
    Ok(format!(
        "{input}.{}",
        Base64UrlUnpadded::encode_string(&sig)
    ))
}

/// A fresh token ID `<32 lower-case hex>@<domain>`.
pub fn new_token_id(domain: &str) -> String {
    let n: u128 = rand::random();
    format!("{n:032x}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_policy::{IssuerKey, LocalIdentity, TokenContext, TokenVerifier};
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-das";
    const ISSUER: &str = "//bastion.example/id-das/Cdas";
    const HOLDER: &str = "//bastion.example/id-in/Cae1";

    fn grant() -> TokenGrant {
        TokenGrant {
            audience: vec!["//bastion.example/id-in".into()],
            lifetime: 600,
            name: Some("read-farm".into()),
            permissions: vec![json!({"ris": ["/id-in/cnt1"],
                "pv": {"acr": [{"acor": ["all"], "acop": 2}]}, "rids": ["r1@roles.example"]})],
        }
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(LocalIdentity {
            sp_id: "//bastion.example".into(),
            cse_id: "/id-in".into(),
            admin: "CAdmin".into(),
        })
    }

    fn issue_with(signer: &Signer) -> String {
        let g = grant();
        issue(
            signer,
            &Claims {
                token_id: "t1@das.example",
                issuer: ISSUER,
                holder: HOLDER,
                now: 1_000,
                grant: &g,
            },
        )
        .expect("signed")
    }

    #[test]
    fn ts0003_7_3_2_4_hs256_tokens_pass_the_cse_verifier() {
        let token = issue_with(&Signer::hs256(SECRET.to_vec()).unwrap());
        let v = verifier().trust(ISSUER, IssuerKey::hs256(SECRET.to_vec()).unwrap());
        let ok = v
            .verify(
                &token,
                &TokenContext {
                    now: 1_000,
                    originator: "Cae1",
                },
            )
            .expect("valid token");
        assert_eq!(ok.token_id, "t1@das.example");
        assert_eq!(ok.holder, HOLDER);
        assert_eq!(ok.issuer, ISSUER);
        assert_eq!((ok.not_before, ok.not_after), (1_000, 1_600));
        assert_eq!(ok.version, "1");
        assert_eq!(ok.role_ids().collect::<Vec<_>>(), vec!["r1@roles.example"]);
        assert_eq!(ok.rules_for("/id-in/cnt1").count(), 1);
        assert!(v
            .verify(
                &token,
                &TokenContext {
                    now: 1_600,
                    originator: "Cae1"
                }
            )
            .is_err());
        assert!(v
            .verify(
                &token,
                &TokenContext {
                    now: 1_000,
                    originator: "Cae2"
                }
            )
            .is_err());
    }

    #[test]
    fn ts0003_7_3_2_4_es256_tokens_pass_the_cse_verifier() {
        let secret = p256::SecretKey::from_slice(&[0x42; 32]).expect("scalar");
        let pem = secret.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let signer = Signer::es256_pem(&pem).expect("key");
        let token = issue_with(&signer);
        let public = secret.public_key().to_sec1_bytes();
        let v = verifier().trust(ISSUER, IssuerKey::es256_sec1(&public).unwrap());
        assert!(v
            .verify(
                &token,
                &TokenContext {
                    now: 1_200,
                    originator: HOLDER
                }
            )
            .is_ok());
        assert!(format!("{signer:?}").contains("redacted"));
    }

    #[test]
    fn short_secrets_and_bad_pem_are_refused() {
        assert!(matches!(Signer::hs256(vec![1; 31]), Err(DasError::Key(_))));
        assert!(matches!(Signer::es256_pem("nope"), Err(DasError::Key(_))));
        let id = new_token_id("das.example");
        assert!(bastion_policy::token::is_role_id(&id), "{id}");
    }
}
