//! **Tests only.** A software bootstrapping server function (BSF) of 3GPP GBA (TS 33.220)
//! for Bastion's GBA-based remote security provisioning tests (TS-0003 8.3.2.3, where the
//! MEF plays the BSF). Not part of the `bastion` binary and not for deployment.
//!
//! What it owns:
//!
//! * **Subscribers**: per IMPI a long-term key K (standing in for the USIM/HSS secret), the
//!   oneM2M Enrolee-ID the BSF reports to NAFs (TS-0003 8.3.2.3: "the MEF shall be
//!   configured with the Enrolee-ID"), the NAFs its user security settings allow, and the
//!   lifetime of its bootstraps.
//! * **Ub** (`POST /ub/bootstrap`, JSON): a faithful subset of the bootstrapping of
//!   33.220 4.5.2 with the HTTP Digest AKA of TS 24.109 replaced by a two-message
//!   challenge-response: the device names its IMPI and gets a fresh 16-byte RAND (401);
//!   it answers RES; the BSF checks RES, derives Ks, issues the B-TID
//!   `base64(RAND)@<domain>` and the bootstrap's expiry (200). The AKA functions are
//!   simulated with HMAC-SHA-256 under K ([`simulated_res`], [`simulated_ks`]); Milenage,
//!   AUTN, sequence numbers and resynchronisation are left out.
//! * **Zn** (`POST /zn/naf-key`, JSON): a NAF authenticated by a bearer secret asks for
//!   `{btid, nafId}` (NAF_Id octets in hex); the BSF checks that the NAF_Id's FQDN is that
//!   NAF's and that the subscriber allows it, and answers Ks_NAF, the IMPI, the
//!   Enrolee-ID and the expiry. Unknown B-TID 404, expired 410, NAF not allowed 403,
//!   unauthenticated 401, malformed 400.
//! * **Bounds**: request bodies of 4 KiB, at most [`MAX_PENDING_CHALLENGES`] open
//!   challenges (each valid [`CHALLENGE_TTL`]), at most `max_bootstraps` live bootstraps
//!   (expired ones are purged first; then 503).
//!
//! The device side of Ub is [`bootstrap`], which ends with RAND, Ks, B-TID and expiry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bastion_keys::gba::{derive_ks_naf, BTid, BootstrapKey, NafId, RAND_LEN};
use bastion_keys::hex;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Open challenges the BSF keeps at most.
pub const MAX_PENDING_CHALLENGES: usize = 256;
/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(30);
/// Largest Ub or Zn request body.
pub const MAX_BODY_BYTES: usize = 4096;

/// One subscriber of the BSF.
#[derive(Clone)]
pub struct Subscriber {
    /// The IP Multimedia Private Identity (the GBA user name).
    pub impi: String,
    /// The long-term key K (32 bytes).
    pub k: Zeroizing<[u8; 32]>,
    /// The oneM2M AE-ID or CSE-ID reported to NAFs for this subscriber.
    pub enrolee_id: String,
    /// FQDNs of the NAFs that may obtain keys for this subscriber.
    pub allowed_nafs: Vec<String>,
    /// Lifetime of each bootstrap (Ks, B-TID).
    pub lifetime: Duration,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("impi", &self.impi)
            .field("k", &"<redacted>")
            .field("enrolee_id", &self.enrolee_id)
            .finish_non_exhaustive()
    }
}

/// A NAF the BSF answers on Zn.
#[derive(Clone)]
pub struct NafClient {
    /// The NAF's FQDN: the only NAF_Id FQDN it may ask keys for.
    pub fqdn: String,
    /// Its bearer secret.
    pub secret: Zeroizing<String>,
}

/// Configuration of a software BSF.
#[derive(Clone)]
pub struct BsfConfig {
    /// The BSF's domain (after the `@` of every B-TID).
    pub domain: String,
    /// Subscribers by IMPI.
    pub subscribers: Vec<Subscriber>,
    /// NAFs allowed on Zn.
    pub nafs: Vec<NafClient>,
    /// Most live bootstraps.
    pub max_bootstraps: usize,
}

/// The simulated AKA response: HMAC-SHA-256(K, "bastion-test-bsf RES" || RAND).
pub fn simulated_res(k: &[u8; 32], rand: &[u8; RAND_LEN]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(k)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"bastion-test-bsf RES");
    mac.update(rand);
    mac.finalize().into_bytes().into()
}

/// The simulated Ks (CK || IK): HMAC-SHA-256(K, "bastion-test-bsf Ks" || RAND).
pub fn simulated_ks(k: &[u8; 32], rand: &[u8; RAND_LEN]) -> BootstrapKey {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(k)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"bastion-test-bsf Ks");
    mac.update(rand);
    let out = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
    BootstrapKey::from_slice(out.as_slice()).unwrap_or_else(|_| unreachable!("32 bytes"))
}

/// Constant-time equality of two byte strings of any lengths (HMAC tags compared by
/// `verify_slice`).
fn same_secret(stored: &[u8], presented: &[u8]) -> bool {
    let tag = |bytes: &[u8]| {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"bastion-test-bsf compare")
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(bytes);
        mac
    };
    let expected = tag(stored).finalize().into_bytes();
    tag(presented).verify_slice(&expected).is_ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Bootstrap {
    impi: String,
    ks: BootstrapKey,
    btid: BTid,
    /// Unix seconds.
    expires: u64,
}

#[derive(Default)]
struct Records {
    challenges: HashMap<String, ([u8; RAND_LEN], Instant)>,
    bootstraps: HashMap<String, Bootstrap>,
}

struct Shared {
    config: BsfConfig,
    state: Mutex<Records>,
}

/// A running BSF.
pub struct RunningBsf {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningBsf {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the BSF on a free loopback port of the current Tokio runtime.
pub async fn start(config: BsfConfig) -> std::io::Result<RunningBsf> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let shared = Arc::new(Shared {
        config,
        state: Mutex::new(Records::default()),
    });
    let app = Router::new()
        .route("/ub/bootstrap", post(ub))
        .route("/zn/naf-key", post(zn))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RunningBsf { url, task })
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refuse(status: StatusCode, why: &str) -> Response {
    answer(status, json!({ "error": why }))
}

fn text<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

async fn ub(State(bsf): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(impi) = text(&body, "impi") else {
        return refuse(StatusCode::BAD_REQUEST, "impi missing");
    };
    let Some(subscriber) = bsf.config.subscribers.iter().find(|s| s.impi == impi) else {
        return refuse(StatusCode::FORBIDDEN, "unknown subscriber");
    };
    let mut state = bsf.state.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    state
        .challenges
        .retain(|_, (_, issued)| now.duration_since(*issued) < CHALLENGE_TTL);
    let Some(res) = text(&body, "res") else {
        // First message: a fresh challenge.
        if state.challenges.len() >= MAX_PENDING_CHALLENGES {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many open challenges");
        }
        let rand: [u8; RAND_LEN] = rand::random();
        state.challenges.insert(impi.to_owned(), (rand, now));
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({ "rand": hex::encode(&rand) }),
        );
    };
    // Second message: the answer to the open challenge, usable once.
    let Some((rand, _)) = state.challenges.remove(impi) else {
        return refuse(StatusCode::FORBIDDEN, "no open challenge");
    };
    let expected = simulated_res(&subscriber.k, &rand);
    let presented = hex::decode(res).unwrap_or_default();
    if !same_secret(&expected, &presented) {
        return refuse(StatusCode::FORBIDDEN, "wrong RES");
    }
    let unix = unix_now();
    state.bootstraps.retain(|_, b| b.expires > unix);
    if state.bootstraps.len() >= bsf.config.max_bootstraps {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many bootstraps");
    }
    let Ok(btid) = BTid::new(rand, &bsf.config.domain) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "bad BSF domain");
    };
    let expires = unix + subscriber.lifetime.as_secs();
    state.bootstraps.insert(
        btid.to_string(),
        Bootstrap {
            impi: impi.to_owned(),
            ks: simulated_ks(&subscriber.k, &rand),
            btid: btid.clone(),
            expires,
        },
    );
    answer(
        StatusCode::OK,
        json!({ "btid": btid.to_string(), "expires": expires }),
    )
}

async fn zn(State(bsf): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(naf) = bsf
        .config
        .nafs
        .iter()
        .find(|n| same_secret(n.secret.as_bytes(), presented.as_bytes()))
    else {
        return refuse(StatusCode::UNAUTHORIZED, "unknown NAF");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let (Some(btid), Some(naf_id)) = (text(&body, "btid"), text(&body, "nafId")) else {
        return refuse(StatusCode::BAD_REQUEST, "btid and nafId are required");
    };
    let Some(naf_id) = hex::decode(naf_id).and_then(|b| NafId::from_bytes(&b).ok()) else {
        return refuse(StatusCode::BAD_REQUEST, "nafId is not a NAF_Id in hex");
    };
    if !naf_id.fqdn().eq_ignore_ascii_case(&naf.fqdn) {
        return refuse(StatusCode::FORBIDDEN, "NAF_Id names another NAF");
    }
    let state = bsf.state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bootstrap) = state.bootstraps.get(btid) else {
        return refuse(StatusCode::NOT_FOUND, "unknown B-TID");
    };
    if bootstrap.expires <= unix_now() {
        return refuse(StatusCode::GONE, "bootstrap expired");
    }
    let Some(subscriber) = bsf
        .config
        .subscribers
        .iter()
        .find(|s| s.impi == bootstrap.impi)
    else {
        return refuse(StatusCode::NOT_FOUND, "unknown B-TID");
    };
    if !subscriber
        .allowed_nafs
        .iter()
        .any(|n| n.eq_ignore_ascii_case(naf_id.fqdn()))
    {
        return refuse(StatusCode::FORBIDDEN, "NAF not allowed for this subscriber");
    }
    let Ok(ks_naf) = derive_ks_naf(
        &bootstrap.ks,
        bootstrap.btid.rand(),
        &bootstrap.impi,
        &naf_id,
    ) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "derivation failed");
    };
    answer(
        StatusCode::OK,
        json!({
            "ksNaf": ks_naf.to_hex().as_str(),
            "impi": bootstrap.impi,
            "enroleeId": subscriber.enrolee_id,
            "expires": bootstrap.expires,
        }),
    )
}

/// What a device holds after bootstrapping.
#[derive(Debug)]
pub struct DeviceBootstrap {
    /// The B-TID (KeID).
    pub btid: BTid,
    /// Ks (Ke).
    pub ks: BootstrapKey,
    /// Expiry, Unix seconds.
    pub expires: u64,
}

/// Why the device's bootstrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum UbError {
    /// The BSF could not be reached or answered out of protocol.
    #[error("Ub transport: {0}")]
    Transport(String),
    /// The BSF refused with this HTTP status.
    #[error("BSF refused with HTTP {0}")]
    Refused(u16),
}

/// The device side of Ub: asks `bsf_url` for a challenge for `impi`, answers it with K and
/// derives Ks; checks that the B-TID carries the challenge's RAND.
pub async fn bootstrap(
    bsf_url: &str,
    impi: &str,
    k: &[u8; 32],
) -> Result<DeviceBootstrap, UbError> {
    let client = reqwest::Client::new();
    let url = format!("{bsf_url}/ub/bootstrap");
    let post = |body: Value| {
        let request = client.post(&url).body(body.to_string());
        async move {
            let response = request
                .send()
                .await
                .map_err(|e| UbError::Transport(e.to_string()))?;
            let status = response.status().as_u16();
            let body: Value = response
                .json()
                .await
                .map_err(|e| UbError::Transport(e.to_string()))?;
            Ok::<_, UbError>((status, body))
        }
    };
    let (status, challenge) = post(json!({ "impi": impi })).await?;
    if status != 401 {
        return Err(UbError::Refused(status));
    }
    let rand: [u8; RAND_LEN] = text(&challenge, "rand")
        .and_then(hex::decode)
        .and_then(|r| <[u8; RAND_LEN]>::try_from(r.as_slice()).ok())
        .ok_or_else(|| UbError::Transport("challenge without a 16-byte rand".into()))?;
    let res = simulated_res(k, &rand);
    let (status, done) = post(json!({ "impi": impi, "res": hex::encode(&res) })).await?;
    if status != 200 {
        return Err(UbError::Refused(status));
    }
    let btid = text(&done, "btid")
        .and_then(|b| BTid::parse(b).ok())
        .filter(|b| b.rand() == &rand)
        .ok_or_else(|| UbError::Transport("answer without the challenge's B-TID".into()))?;
    let expires = done
        .get("expires")
        .and_then(Value::as_u64)
        .ok_or_else(|| UbError::Transport("answer without expires".into()))?;
    Ok(DeviceBootstrap {
        btid,
        ks: simulated_ks(k, &rand),
        expires,
    })
}
