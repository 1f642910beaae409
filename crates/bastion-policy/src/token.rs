//! oneM2M dynamic-authorization tokens (TS-0003 7.3.2.4-7.3.2.6; digest §10.4-§10.5):
//! strict decoding and validation of a JWT in JWS compact serialization, without I/O.
//!
//! A [`TokenVerifier`] is configured out of band with the trusted issuers (each with
//! exactly one algorithm and key, see [`IssuerKey`]), the CSE-IDs accepted in `aud` and a
//! clock leeway. [`TokenVerifier::verify`] takes the token string and the request's
//! [`TokenContext`] (the current time as Unix seconds and the `From` parameter) and returns
//! a [`ValidatedToken`] or the first [`TokenError`] met. Every error means "deny".
//!
//! Checks, in this order (the signature is verified before any claim is trusted; the
//! unverified payload is only decoded to find `iss`, i.e. which key to use):
//!
//! 1. at most [`MAX_TOKEN_LEN`] bytes; exactly three `.`-separated parts, none empty
//!    (a five-part JWE is not supported and fails here);
//! 2. each part is canonical base64url without padding;
//! 3. header and payload are JSON objects **with no duplicate member at any depth**
//!    (serde_json alone keeps the last one, which lets two parsers disagree about `alg`
//!    or `iss`; a strict visitor rejects duplicates instead);
//! 4. header: `typ`, if present, is `"JWT"` (case-insensitive, RFC 7519 §5.1); `alg` is
//!    present, not `none`, and one of `HS256`/`ES256`; `crit` and `cty` are rejected (no
//!    extension is understood; a single-layer token has no `cty`, digest §10.4);
//! 5. `iss` names a configured issuer (compared in absolute form, see
//!    [`normalize_originator`]);
//! 6. `alg` is exactly the algorithm of that issuer's key: an `HS256` token for an `ES256`
//!    issuer (the algorithm-confusion attack, HMAC keyed with the public key) and vice
//!    versa are rejected before any cryptography runs;
//! 7. the signature: HMAC-SHA-256 compared in constant time (`hmac`'s `verify_slice`), or
//!    ECDSA P-256/SHA-256 with the JWS signature as the raw 64-byte `r || s` (RFC 7518
//!    §3.4; DER is rejected);
//! 8. claims: `tkvr` (or its TS-0004 short name `vr`) and `jti` present; `azp` equals the
//!    originator, both in absolute form; `nbf - leeway <= now`; `now < exp + leeway`;
//!    `aud` present and naming one of our CSE-IDs; `tkps`, when present, well formed.
//!
//! Keys never appear in `Debug` output or in errors; HMAC secrets are zeroised on drop
//! (and so is the keyed HMAC state, through `hmac`'s `zeroize` feature).
//!
//! Choices where the specification leaves room (all fail closed):
//!
//! * `aud` absent is rejected: TS-0003 7.3.2.2 step 5 has the hosting CSE check that its
//!   own CSE-ID is in the audience; a token without one could be replayed at any CSE.
//!   An entry may be any form of a CSE-ID, also wildcarded (digest §10.3 step 5), but
//!   `all`, a bare SP-ID, AE-IDs and role/resource IDs never name us.
//! * Both `tkvr` and `vr` present is rejected (ambiguous version); either alone is
//!   accepted (digest §14 item 5).
//! * `jti` is required to be a non-empty string; its `name@fqdn` shape is not enforced
//!   (it is an identifier for caches, not a security input). `rids` entries must be
//!   well-formed Role-IDs ([`is_role_id`], lower-case FQDN) or the token is rejected.
//! * `ris` must be present and non-empty when `pv` is; [`ValidatedToken::rules_for`]
//!   compares resource IDs byte for byte (no normalisation).
//! * Non-integer NumericDates are accepted and rounded to shorten the window (`nbf` up,
//!   `exp` down); `nbf` and `exp` are both mandatory (digest §10.4 table).
//! * Unknown claims and unknown header members (`kid`, ...) are ignored; embedded key
//!   headers (`jwk`, `jku`, `x5u`, `x5c`) are never used: only configured keys verify.
//! * ECDSA signatures are accepted in either `s` form (no low-S rule in JWS).

use crate::originator::{classify, normalize_originator, EntryKind, OriginatorEntry, Subject};
use crate::rules::{as_array, as_object, only_members};
use crate::{LocalIdentity, PolicyError, RuleSet};
use base64ct::{Base64UrlUnpadded, Encoding};
use bastion_proto::json::JsonError;
use hmac::{Hmac, KeyInit, Mac};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroize;

/// Longest token accepted, in bytes. A token carrying a few `tkps` rules is a few KiB;
/// anything this large is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Shortest HMAC secret accepted: RFC 7518 §3.2 requires a key at least as long as the
/// hash output (256 bits for HS256).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// The JWS algorithms supported (RFC 7518 §3.1). `none` is never one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256, shared secret.
    Hs256,
    /// ECDSA with P-256 and SHA-256, public key.
    Es256,
}

impl Algorithm {
    /// The JOSE `alg` value, `HS256` or `ES256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Es256 => "ES256",
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "HS256" => Some(Algorithm::Hs256),
            "ES256" => Some(Algorithm::Es256),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A shared HMAC secret. Zeroised on drop; `Debug` shows only its length.
#[derive(Clone)]
pub struct HmacSecret(Box<[u8]>);

impl Drop for HmacSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacSecret(<redacted, {} bytes>)", self.0.len())
    }
}

/// A P-256 public key with its fingerprint (first 8 bytes of SHA-256 over the compressed
/// SEC1 point), which is what `Debug` shows.
#[derive(Clone)]
pub struct EcPublicKey {
    key: VerifyingKey,
    fingerprint: [u8; 8],
}

impl EcPublicKey {
    fn new(key: VerifyingKey) -> Self {
        let digest = Sha256::digest(key.to_sec1_point(true).as_bytes());
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest[..8]);
        EcPublicKey { key, fingerprint }
    }

    /// The fingerprint as 16 lower-case hex digits.
    pub fn fingerprint(&self) -> String {
        self.fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for EcPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EcPublicKey(P-256, sha256:{})", self.fingerprint())
    }
}

/// One issuer's key; the variant fixes the only algorithm accepted from that issuer.
#[derive(Clone, Debug)]
pub enum IssuerKey {
    /// `HS256` with this shared secret.
    Hs256(HmacSecret),
    /// `ES256` with this public key.
    Es256(EcPublicKey),
}

/// A key that cannot be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The HMAC secret is shorter than [`MIN_HMAC_SECRET_LEN`] bytes.
    #[error("HMAC secret shorter than 32 bytes")]
    HmacSecretTooShort,
    /// Not a valid P-256 point in SEC1 encoding.
    #[error("not a P-256 public key in SEC1 encoding")]
    InvalidSec1,
    /// Not a P-256 `SubjectPublicKeyInfo` in PEM (`-----BEGIN PUBLIC KEY-----`).
    #[error("not a P-256 public key in SPKI PEM")]
    InvalidPem,
}

impl IssuerKey {
    /// An `HS256` key. The secret is moved in (so that the only copy is the one zeroised
    /// on drop) and must be at least [`MIN_HMAC_SECRET_LEN`] bytes.
    pub fn hs256(secret: Vec<u8>) -> Result<IssuerKey, KeyError> {
        let secret = HmacSecret(secret.into_boxed_slice());
        if secret.0.len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::HmacSecretTooShort);
        }
        Ok(IssuerKey::Hs256(secret))
    }

    /// An `ES256` key from a SEC1-encoded P-256 point (65-byte uncompressed `04 || x || y`
    /// or 33-byte compressed), the form JWK `x`/`y` and most certificates reduce to.
    pub fn es256_sec1(point: &[u8]) -> Result<IssuerKey, KeyError> {
        let key = VerifyingKey::from_sec1_bytes(point).map_err(|_| KeyError::InvalidSec1)?;
        Ok(IssuerKey::Es256(EcPublicKey::new(key)))
    }

    /// An `ES256` key from a PEM `SubjectPublicKeyInfo` (`-----BEGIN PUBLIC KEY-----`,
    /// as written by `openssl ec -pubout`).
    pub fn es256_spki_pem(pem: &str) -> Result<IssuerKey, KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|_| KeyError::InvalidPem)?;
        Ok(IssuerKey::Es256(EcPublicKey::new(key)))
    }

    /// The only algorithm accepted with this key.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            IssuerKey::Hs256(_) => Algorithm::Hs256,
            IssuerKey::Es256(_) => Algorithm::Es256,
        }
    }

    /// Verifies `signature` over `input`. Only called once `alg` has been matched.
    fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match self {
            IssuerKey::Hs256(secret) => match Hmac::<Sha256>::new_from_slice(&secret.0) {
                Ok(mut mac) => {
                    mac.update(input);
                    mac.verify_slice(signature).is_ok()
                }
                Err(_) => false,
            },
            IssuerKey::Es256(public) => match Signature::from_slice(signature) {
                Ok(sig) if signature.len() == 64 => public.key.verify(input, &sig).is_ok(),
                _ => false,
            },
        }
    }
}

/// Which part of the compact serialization an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Header,
    Payload,
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Payload => "payload",
            Part::Signature => "signature",
        })
    }
}

/// Why a token was refused. Every variant is a deny. No variant carries key material or
/// claim values from the token (except the member names of a rejected `tkps`, cut to 40
/// characters by the rule parser).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error("not a JWS compact serialization (three non-empty '.'-separated parts)")]
    Structure,
    #[error("{0}: not canonical base64url without padding")]
    Base64(Part),
    #[error("{0}: not a JSON object")]
    Json(Part),
    #[error("{0}: duplicate JSON member")]
    DuplicateMember(Part),
    #[error("header: typ is not JWT")]
    Type,
    #[error("header: '{0}' is not supported")]
    UnsupportedHeader(&'static str),
    #[error("header: alg missing")]
    AlgorithmMissing,
    #[error("header: alg none (unsecured JWT) is not accepted")]
    AlgorithmNone,
    #[error("header: alg not supported")]
    AlgorithmUnsupported,
    #[error("header: alg is not the one configured for the issuer ({expected})")]
    AlgorithmMismatch { expected: Algorithm },
    #[error("issuer not trusted")]
    UnknownIssuer,
    #[error("signature verification failed")]
    BadSignature,
    #[error("claim '{0}' missing")]
    MissingClaim(&'static str),
    #[error("claim '{0}' malformed")]
    InvalidClaim(&'static str),
    #[error("holder (azp) is not the originator")]
    HolderMismatch,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("token expired (exp)")]
    Expired,
    #[error("audience (aud) missing")]
    AudienceMissing,
    #[error("audience (aud) does not name this CSE")]
    AudienceMismatch,
    #[error("tkps: permission with pv but no ris")]
    PermissionWithoutResources,
    #[error("tkps: malformed role ID in rids")]
    InvalidRoleId,
    #[error("tkps: {0}")]
    Permissions(PolicyError),
}

impl TokenError {
    /// A short, fixed, human reason (no data from the token), e.g. for an `m2m:dbg`.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLong => "token too long",
            TokenError::Structure => "malformed token structure",
            TokenError::Base64(_) => "malformed base64url",
            TokenError::Json(_) => "malformed JSON",
            TokenError::DuplicateMember(_) => "duplicate JSON member",
            TokenError::Type => "token type is not JWT",
            TokenError::UnsupportedHeader(_) => "unsupported JOSE header",
            TokenError::AlgorithmMissing => "algorithm missing",
            TokenError::AlgorithmNone => "unsecured token",
            TokenError::AlgorithmUnsupported => "unsupported algorithm",
            TokenError::AlgorithmMismatch { .. } => "algorithm not allowed for issuer",
            TokenError::UnknownIssuer => "untrusted issuer",
            TokenError::BadSignature => "bad signature",
            TokenError::MissingClaim(_) => "missing claim",
            TokenError::InvalidClaim(_) => "malformed claim",
            TokenError::HolderMismatch => "token holder is not the originator",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::Expired => "token expired",
            TokenError::AudienceMissing => "token has no audience",
            TokenError::AudienceMismatch => "token not meant for this CSE",
            TokenError::PermissionWithoutResources => "permission without resources",
            TokenError::InvalidRoleId => "malformed role ID",
            TokenError::Permissions(_) => "malformed permissions",
        }
    }
}

/// The request-side inputs of a verification.
#[derive(Clone, Copy, Debug)]
pub struct TokenContext<'a> {
    /// The hosting CSE's current time, Unix seconds (UTC).
    pub now: i64,
    /// The request's `From` parameter, in any of its forms (normalised here).
    pub originator: &'a str,
}

/// One entry of `tkps.pm` (digest §10.4 "Permission evaluation").
#[derive(Clone, Debug)]
pub struct TokenPermission {
    /// `ris`: the resource IDs the entry is limited to, as written in the token.
    pub resources: Vec<String>,
    /// `pv`: extra rules applicable to those resources.
    pub rules: Option<RuleSet>,
    /// `rids`: Role-IDs the holder is granted (`relative@fqdn`).
    pub role_ids: Vec<String>,
}

/// A token whose signature and claims passed every check.
#[derive(Clone, Debug)]
pub struct ValidatedToken {
    /// `jti` (tokenID).
    pub token_id: String,
    /// `tkvr`/`vr`, rendered as a string.
    pub version: String,
    /// `iss`, in absolute form.
    pub issuer: String,
    /// `azp`, in absolute form (equal to the normalised originator).
    pub holder: String,
    /// `nbf`, Unix seconds.
    pub not_before: i64,
    /// `exp`, Unix seconds.
    pub not_after: i64,
    /// `aud`, as written (a single string becomes a one-element list).
    pub audience: Vec<String>,
    /// `tkps.pm`, in document order (empty when `tkps` is absent).
    pub permissions: Vec<TokenPermission>,
}

impl ValidatedToken {
    /// The `pv` rule sets of the permissions whose `ris` names `resource_id` (compared
    /// byte for byte: the caller passes the ID in the form the issuer uses).
    pub fn rules_for<'a>(&'a self, resource_id: &'a str) -> impl Iterator<Item = &'a RuleSet> {
        self.permissions.iter().filter_map(move |p| match &p.rules {
            Some(rules) if p.resources.iter().any(|r| r == resource_id) => Some(rules),
            _ => None,
        })
    }

    /// Every Role-ID granted by the token's permissions, in document order.
    pub fn role_ids(&self) -> impl Iterator<Item = &str> {
        self.permissions
            .iter()
            .flat_map(|p| p.role_ids.iter().map(String::as_str))
    }
}

/// One trusted issuer.
#[derive(Clone, Debug)]
struct TrustedIssuer {
    /// `iss`, in absolute form.
    issuer: String,
    key: IssuerKey,
}

/// The out-of-band configuration of token verification (digest §10.4: "Verifier must be
/// configured with the issuer's allowed class/algorithm combinations and keys").
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    local: LocalIdentity,
    issuers: Vec<TrustedIssuer>,
    /// Accepted audience CSE-IDs, absolute form.
    audiences: Vec<String>,
    leeway: u32,
}

impl TokenVerifier {
    /// A verifier with no trusted issuer (it rejects everything until [`Self::trust`] is
    /// called), accepting our own CSE-ID (`sp_id` + `cse_id`) as audience, leeway 0.
    pub fn new(local: LocalIdentity) -> Self {
        let own = format!("{}{}", local.sp_id, local.cse_id);
        TokenVerifier {
            local,
            issuers: Vec::new(),
            audiences: vec![own],
            leeway: 0,
        }
    }

    /// Trusts `issuer` (any identifier form; compared in absolute form) with `key`, whose
    /// type fixes the only accepted algorithm. Replaces an earlier key for that issuer.
    pub fn trust(mut self, issuer: &str, key: IssuerKey) -> Self {
        let issuer = normalize_originator(&self.local, issuer);
        self.issuers.retain(|t| t.issuer != issuer);
        self.issuers.push(TrustedIssuer { issuer, key });
        self
    }

    /// Also accepts `cse_id` (any form; compared in absolute form) in `aud`.
    pub fn accept_audience(mut self, cse_id: &str) -> Self {
        let id = normalize_originator(&self.local, cse_id);
        if !self.audiences.contains(&id) {
            self.audiences.push(id);
        }
        self
    }

    /// Clock leeway in seconds applied to `nbf` and `exp` (default 0).
    pub fn leeway(mut self, seconds: u32) -> Self {
        self.leeway = seconds;
        self
    }

    /// The algorithm configured for `issuer`, if it is trusted.
    pub fn algorithm_for(&self, issuer: &str) -> Option<Algorithm> {
        let issuer = normalize_originator(&self.local, issuer);
        self.find_issuer(&issuer).map(|t| t.key.algorithm())
    }

    fn find_issuer(&self, normalized: &str) -> Option<&TrustedIssuer> {
        self.issuers.iter().find(|t| t.issuer == normalized)
    }

    /// Decodes and validates `token` for the request described by `ctx` (module docs
    /// give the checks and their order).
    pub fn verify(
        &self,
        token: &str,
        ctx: &TokenContext<'_>,
    ) -> Result<ValidatedToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Structure);
        };
        if h64.is_empty() || p64.is_empty() || s64.is_empty() {
            return Err(TokenError::Structure);
        }

        let header = decode_object(h64, Part::Header)?;
        let payload = decode_object(p64, Part::Payload)?;
        let signature =
            Base64UrlUnpadded::decode_vec(s64).map_err(|_| TokenError::Base64(Part::Signature))?;

        let alg = check_header(&header)?;

        let issuer = match payload.get("iss") {
            None => return Err(TokenError::MissingClaim("iss")),
            Some(Value::String(s)) if !s.is_empty() => normalize_originator(&self.local, s),
            Some(_) => return Err(TokenError::InvalidClaim("iss")),
        };
        let trusted = self.find_issuer(&issuer).ok_or(TokenError::UnknownIssuer)?;
        let expected = trusted.key.algorithm();
        if alg != expected {
            return Err(TokenError::AlgorithmMismatch { expected });
        }
        // JWS signing input: the ASCII of `header.payload` exactly as received.
        let input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        if !trusted.key.verify(input, &signature) {
            return Err(TokenError::BadSignature);
        }

        self.check_claims(payload, issuer, ctx)
    }

    fn check_claims(
        &self,
        mut claims: Map<String, Value>,
        issuer: String,
        ctx: &TokenContext<'_>,
    ) -> Result<ValidatedToken, TokenError> {
        let version = match (claims.get("tkvr"), claims.get("vr")) {
            (Some(_), Some(_)) => return Err(TokenError::InvalidClaim("tkvr")),
            (None, None) => return Err(TokenError::MissingClaim("tkvr")),
            (Some(v), None) | (None, Some(v)) => match v {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(TokenError::InvalidClaim("tkvr")),
            },
        };
        let token_id = non_empty_string(&claims, "jti")?;

        let holder_raw = non_empty_string(&claims, "azp")?;
        if ctx.originator.is_empty() {
            return Err(TokenError::HolderMismatch);
        }
        let holder = normalize_originator(&self.local, &holder_raw);
        if normalize_originator(&self.local, ctx.originator) != holder {
            return Err(TokenError::HolderMismatch);
        }

        let not_before = numeric_date(&claims, "nbf", Rounding::Up)?;
        let not_after = numeric_date(&claims, "exp", Rounding::Down)?;
        let leeway = i64::from(self.leeway);
        if not_before.saturating_sub(leeway) > ctx.now {
            return Err(TokenError::NotYetValid);
        }
        if not_after.saturating_add(leeway) <= ctx.now {
            return Err(TokenError::Expired);
        }

        let audience = match claims.get("aud") {
            None => return Err(TokenError::AudienceMissing),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(TokenError::InvalidClaim("aud")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(TokenError::InvalidClaim("aud")),
        };
        if !audience.iter().any(|a| self.audience_matches(a)) {
            return Err(TokenError::AudienceMismatch);
        }

        let permissions = match claims.remove("tkps") {
            None => Vec::new(),
            Some(v) => self.parse_permissions(&v)?,
        };

        Ok(ValidatedToken {
            token_id,
            version,
            issuer,
            holder,
            not_before,
            not_after,
            audience,
            permissions,
        })
    }

    /// An `aud` entry names us when it is a CSE-ID pattern (possibly wildcarded, digest
    /// §10.3 step 5) matching one of the accepted CSE-IDs. `all`, bare SP-IDs, role IDs
    /// and resource IDs never do.
    fn audience_matches(&self, entry: &str) -> bool {
        if classify(entry) != EntryKind::Identifier {
            return false;
        }
        let pattern = OriginatorEntry::compile(&self.local, entry);
        self.audiences
            .iter()
            .any(|ours| pattern.matches(&Subject::new(&self.local, ours), &crate::NoInformation))
    }

    fn parse_permissions(&self, value: &Value) -> Result<Vec<TokenPermission>, TokenError> {
        let perm = |e: PolicyError| TokenError::Permissions(e);
        let top = as_object(value, "tkps").map_err(perm)?;
        only_members(top, "tkps", &["pm"]).map_err(perm)?;
        let Some(pm) = top.get("pm") else {
            return Ok(Vec::new());
        };
        as_array(pm, "tkps.pm")
            .map_err(perm)?
            .iter()
            .enumerate()
            .map(|(i, entry)| self.parse_permission(entry, &format!("tkps.pm[{i}]")))
            .collect()
    }

    fn parse_permission(&self, value: &Value, path: &str) -> Result<TokenPermission, TokenError> {
        let perm = |e: PolicyError| TokenError::Permissions(e);
        let obj = as_object(value, path).map_err(perm)?;
        only_members(obj, path, &["ris", "pv", "rids"]).map_err(perm)?;
        let resources = match obj.get("ris") {
            None => Vec::new(),
            Some(v) => string_list(v, &format!("{path}.ris")).map_err(perm)?,
        };
        let rules = match obj.get("pv") {
            None => None,
            Some(pv) => {
                if resources.is_empty() {
                    return Err(TokenError::PermissionWithoutResources);
                }
                Some(RuleSet::parse(pv, &self.local).map_err(|e| {
                    TokenError::Permissions(PolicyError::new(
                        format!("{path}.pv.{}", e.path()),
                        e.reason(),
                    ))
                })?)
            }
        };
        let role_ids = match obj.get("rids") {
            None => Vec::new(),
            Some(v) => string_list(v, &format!("{path}.rids")).map_err(perm)?,
        };
        if !role_ids.iter().all(|r| is_role_id(r)) {
            return Err(TokenError::InvalidRoleId);
        }
        Ok(TokenPermission {
            resources,
            rules,
            role_ids,
        })
    }
}

/// A JSON array of non-empty strings.
fn string_list(value: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    as_array(value, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(PolicyError::new(
                format!("{path}[{i}]"),
                "must be a non-empty string",
            )),
        })
        .collect()
}

/// The `azp` (holder) claim of a JWS compact token, read without any verification. Only
/// for storing a token in a Token Repository, where the holder is not the requester:
/// the result must be handed to [`TokenVerifier::verify`], which checks everything else,
/// and the holder is compared with the originator again whenever the token is used.
pub fn unverified_holder(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let claims = decode_object(payload, Part::Payload).ok()?;
    match claims.get("azp") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `issuerRelativeID@issuer-fqdn` (digest §11): relative part `[A-Za-z0-9._-]+`; FQDN of
/// dot-separated non-empty labels of `[a-z0-9-]` (lower case only), not starting or ending
/// with `-`.
pub fn is_role_id(id: &str) -> bool {
    let Some((relative, fqdn)) = id.split_once('@') else {
        return false;
    };
    let relative_ok = !relative.is_empty()
        && relative
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let fqdn_ok = !fqdn.is_empty()
        && fqdn.len() <= 253
        && fqdn.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    relative_ok && fqdn_ok
}

fn non_empty_string(claims: &Map<String, Value>, name: &'static str) -> Result<String, TokenError> {
    match claims.get(name) {
        None => Err(TokenError::MissingClaim(name)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

#[derive(Clone, Copy)]
enum Rounding {
    Up,
    Down,
}

/// A NumericDate (RFC 7519 §2): integer seconds, or a finite non-integer rounded in the
/// direction that shortens the validity window.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
    rounding: Rounding,
) -> Result<i64, TokenError> {
    let value = claims.get(name).ok_or(TokenError::MissingClaim(name))?;
    let Value::Number(n) = value else {
        return Err(TokenError::InvalidClaim(name));
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    if n.as_u64().is_some() {
        // Beyond i64: a date in a future no clock reaches.
        return Ok(i64::MAX);
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e15 => {
            let r = match rounding {
                Rounding::Up => f.ceil(),
                Rounding::Down => f.floor(),
            };
            Ok(r as i64)
        }
        _ => Err(TokenError::InvalidClaim(name)),
    }
}

/// Checks the JOSE header and returns its algorithm.
fn check_header(header: &Map<String, Value>) -> Result<Algorithm, TokenError> {
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(TokenError::Type),
    }
    if header.contains_key("crit") {
        return Err(TokenError::UnsupportedHeader("crit"));
    }
    if header.contains_key("cty") {
        return Err(TokenError::UnsupportedHeader("cty"));
    }
    match header.get("alg") {
        None => Err(TokenError::AlgorithmMissing),
        Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => Err(TokenError::AlgorithmNone),
        Some(Value::String(a)) => Algorithm::from_name(a).ok_or(TokenError::AlgorithmUnsupported),
        Some(_) => Err(TokenError::AlgorithmUnsupported),
    }
}

/// base64url-decodes `part` and parses it as a JSON object without duplicate members.
fn decode_object(b64: &str, part: Part) -> Result<Map<String, Value>, TokenError> {
    let bytes = Base64UrlUnpadded::decode_vec(b64).map_err(|_| TokenError::Base64(part))?;
    match bastion_proto::json::parse_value(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TokenError::Json(part)),
        Err(JsonError::DuplicateMember(_)) => Err(TokenError::DuplicateMember(part)),
        Err(_) => Err(TokenError::Json(part)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        Base64UrlUnpadded::encode_string(json.as_bytes())
    }

    #[test]
    fn token_parts_reject_duplicate_members_at_any_depth() {
        for dup in [
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"a":{"c":1,"c":2}}"#,
            r#"{"a":[{"x":1,"x":1}]}"#,
        ] {
            assert_eq!(
                decode_object(&b64(dup), Part::Header),
                Err(TokenError::DuplicateMember(Part::Header)),
                "{dup}"
            );
        }
        assert_eq!(
            decode_object(&b64("[1]"), Part::Payload),
            Err(TokenError::Json(Part::Payload))
        );
        assert_eq!(
            decode_object(&b64("{"), Part::Payload),
            Err(TokenError::Json(Part::Payload))
        );
    }

    #[test]
    fn token_parts_keep_values() {
        let map = decode_object(
            &b64(r#"{"n":-1,"u":18446744073709551615,"f":1.5,"s":"x","z":null,"b":[true]}"#),
            Part::Payload,
        )
        .expect("valid");
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"n":-1,"u":18446744073709551615u64,"f":1.5,"s":"x","z":null,"b":[true]})
        );
    }

    #[test]
    fn role_ids() {
        for ok in ["1234abcd@role-issuer.com", "a.b_c-d@x", "R@a1.b2"] {
            assert!(is_role_id(ok), "{ok}");
        }
        for bad in [
            "",
            "@x.com",
            "a@",
            "a@X.com",
            "a@x..com",
            "a b@x.com",
            "a@-x.com",
            "a@x.com@y",
            "noat",
        ] {
            assert!(!is_role_id(bad), "{bad}");
        }
    }

    #[test]
    fn numeric_dates_round_towards_a_shorter_window() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"a":10.5,"b":-1,"c":"1","d":1e300,"e":18446744073709551615}"#)
                .expect("valid");
        assert_eq!(numeric_date(&claims, "a", Rounding::Up), Ok(11));
        assert_eq!(numeric_date(&claims, "a", Rounding::Down), Ok(10));
        assert_eq!(numeric_date(&claims, "b", Rounding::Up), Ok(-1));
        assert_eq!(
            numeric_date(&claims, "c", Rounding::Up),
            Err(TokenError::InvalidClaim("c"))
        );
        assert_eq!(
            numeric_date(&claims, "d", Rounding::Up),
            Err(TokenError::InvalidClaim("d"))
        );
        assert_eq!(numeric_date(&claims, "e", Rounding::Down), Ok(i64::MAX));
        assert_eq!(
            numeric_date(&claims, "x", Rounding::Down),
            Err(TokenError::MissingClaim("x"))
        );
    }

    #[test]
    fn debug_never_shows_keys() {
        let secret = b"0123456789abcdef0123456789abcdef-secret".to_vec();
        let key = IssuerKey::hs256(secret).expect("long enough");
        let shown = format!("{key:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert_eq!(
            IssuerKey::hs256(vec![7; 31]).err(),
            Some(KeyError::HmacSecretTooShort)
        );
    }

    #[test]
    fn every_error_has_a_reason() {
        let errors = [
            TokenError::TooLong,
            TokenError::Structure,
            TokenError::Base64(Part::Signature),
            TokenError::AlgorithmMismatch {
                expected: Algorithm::Es256,
            },
            TokenError::Permissions(PolicyError::new("tkps", "must be an object")),
        ];
        for e in errors {
            assert!(!e.reason().is_empty());
            assert!(!e.to_string().is_empty());
        }
    }
}
