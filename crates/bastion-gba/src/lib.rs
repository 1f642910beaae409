//! The network application function (NAF) side of the GBA-based remote security
//! provisioning framework (TS-0003 8.3.2.3; 3GPP TS 33.220, TS 33.222): an Enrolment
//! Target (a CSE, a MAF, the MEF's own listener) whose TLS listener meets a PSK identity
//! `3GPP-bootstrapping.<B-TID>` asks the bootstrapping server function (BSF; in oneM2M the
//! MEF) over Zn for Ks_NAF, and uses it as the pre-shared key (Kpsa / Km), bound to the
//! Enrolee-ID the BSF reports.
//!
//! ```text
//!   device ── TLS-PSK, identity 3GPP-bootstrapping.<B-TID> ──▶ TlsServer (bastion-tls)
//!                                                               │ registry lacks it
//!                                                               ▼ RemotePskSource::fetch
//!   GbaPskSource ── cache hit (until the bootstrap's expiry) ──▶ key + binding
//!        │ miss: job to the Zn thread, bounded wait
//!        ▼
//!   Zn thread ── POST {bsf}/zn/naf-key {btid, nafId} ──▶ BSF: {ksNaf, impi, enroleeId, expires}
//! ```
//!
//! This crate owns the Zn client, the cache of fetched keys and the PSK-identity policy of
//! a NAF; the derivations are `bastion_keys::gba`, the handshake `bastion_tls`. Any
//! [`bastion_tls::TlsServer`] takes it as [`bastion_tls::ServerSettings::remote_psk`].
//!
//! Bounds: at most [`NafConfig::max_pending`] Zn requests in flight (more are refused at
//! once, failing the handshake), each waited for at most [`NafConfig::timeout`]; at most
//! [`NafConfig::max_cached`] keys kept (expired ones go first, then the soonest to
//! expire); answers over [`MAX_ANSWER_BYTES`] are refused. The BSF URL must be `http://`
//! on a loopback address: Zn carries keys, and this build has no protected Zn transport
//! (docs/decisions.md, "Issue 15 — GBA"). Keys and the NAF's Zn secret are wiped on drop
//! and never logged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bastion_keys::gba::{BTid, NafId, UaProtocolId};
use bastion_keys::hex;
use bastion_tls::{Binding, PskKey, RemotePsk, RemotePskSource};
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// Largest Zn answer read from the BSF.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// How this NAF reaches its BSF.
#[derive(Clone)]
pub struct NafConfig {
    /// The BSF's base URL, `http://127.0.0.1:PORT` (loopback only).
    pub bsf_url: String,
    /// The NAF's FQDN in NAF_Id: for a CSE the public domain name of its CSE-ID, for a
    /// MAF its FQDN (TS-0003 8.3.2.3).
    pub naf_fqdn: String,
    /// The Ua security protocol identifier in NAF_Id (default: TLS 1.2 shared key with
    /// TLS_PSK_WITH_AES_128_CBC_SHA256).
    pub ua: UaProtocolId,
    /// The bearer secret that authenticates this NAF to the BSF.
    pub zn_secret: Zeroizing<String>,
    /// Longest wait for one Zn answer.
    pub timeout: Duration,
    /// Most Zn requests in flight.
    pub max_pending: usize,
    /// Most keys cached.
    pub max_cached: usize,
}

impl std::fmt::Debug for NafConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NafConfig")
            .field("bsf_url", &self.bsf_url)
            .field("naf_fqdn", &self.naf_fqdn)
            .field("ua", &self.ua)
            .field("zn_secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("max_pending", &self.max_pending)
            .field("max_cached", &self.max_cached)
            .finish()
    }
}

impl NafConfig {
    /// A configuration with the default Ua identifier and bounds (5 s, 16 in flight,
    /// 4096 keys).
    pub fn new(bsf_url: &str, naf_fqdn: &str, zn_secret: Zeroizing<String>) -> NafConfig {
        NafConfig {
            bsf_url: bsf_url.trim_end_matches('/').to_owned(),
            naf_fqdn: naf_fqdn.to_owned(),
            ua: UaProtocolId::ONEM2M_DEFAULT,
            zn_secret,
            timeout: Duration::from_secs(5),
            max_pending: 16,
            max_cached: 4096,
        }
    }
}

/// An unusable NAF configuration (operator error).
#[derive(Debug, thiserror::Error)]
pub enum NafConfigError {
    /// The BSF URL is not `http://` on a loopback host.
    #[error("gba: the BSF URL must be http:// on a loopback address (127.0.0.0/8, [::1], localhost), got {0:?}")]
    BsfUrl(String),
    /// The NAF FQDN is not a DNS name.
    #[error("gba: the NAF FQDN {0:?} is not a fully qualified domain name")]
    NafFqdn(String),
    /// The Zn secret is empty.
    #[error("gba: the Zn secret is empty")]
    EmptySecret,
    /// A bound is zero.
    #[error("gba: timeout, max_pending and max_cached must be positive")]
    ZeroBound,
    /// The Zn thread could not start.
    #[error("gba: cannot start the Zn client: {0}")]
    Start(String),
}

/// Why one Zn fetch gave no key. Logged; the handshake fails.
#[derive(Debug, thiserror::Error)]
pub enum ZnError {
    /// Too many fetches already in flight.
    #[error("too many Zn requests in flight")]
    Busy,
    /// No answer within the timeout.
    #[error("the BSF did not answer in time")]
    Timeout,
    /// The BSF could not be reached.
    #[error("the BSF is unreachable: {0}")]
    Unreachable(String),
    /// The BSF refused (404 unknown B-TID, 410 expired, 403 not allowed, 401 …).
    #[error("the BSF refused with HTTP {0}")]
    Refused(u16),
    /// The BSF's answer is malformed or already expired.
    #[error("the BSF's answer is unusable: {0}")]
    BadAnswer(&'static str),
}

/// A key fetched over Zn.
struct Cached {
    key: PskKey,
    binding: Binding,
    /// Unix seconds.
    expires: u64,
}

struct Job {
    btid: String,
    reply: std::sync::mpsc::SyncSender<Result<Cached, ZnError>>,
}

/// The NAF: a [`RemotePskSource`] for GBA PSK identities.
pub struct GbaPskSource {
    naf_id: NafId,
    timeout: Duration,
    max_pending: usize,
    max_cached: usize,
    in_flight: Arc<AtomicUsize>,
    jobs: tokio::sync::mpsc::Sender<Job>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for GbaPskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GbaPskSource")
            .field("naf_id", &self.naf_id)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `url` is `http://` with a loopback host.
fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a configuration without starting anything; the NAF_Id it gives.
pub fn check(config: &NafConfig) -> Result<NafId, NafConfigError> {
    if !loopback_http(&config.bsf_url) {
        return Err(NafConfigError::BsfUrl(config.bsf_url.clone()));
    }
    let naf_id = NafId::new(&config.naf_fqdn, config.ua)
        .map_err(|_| NafConfigError::NafFqdn(config.naf_fqdn.clone()))?;
    if config.zn_secret.is_empty() {
        return Err(NafConfigError::EmptySecret);
    }
    if config.timeout.is_zero() || config.max_pending == 0 || config.max_cached == 0 {
        return Err(NafConfigError::ZeroBound);
    }
    Ok(naf_id)
}

impl GbaPskSource {
    /// Checks `config` and starts the Zn client thread (it ends when the source is
    /// dropped).
    pub fn new(config: NafConfig) -> Result<Arc<GbaPskSource>, NafConfigError> {
        let naf_id = check(&config)?;
        let (jobs, queue) = tokio::sync::mpsc::channel(config.max_pending);
        let zn = Zn {
            url: format!("{}/zn/naf-key", config.bsf_url),
            secret: config.zn_secret.clone(),
            naf_id: hex::encode(&naf_id.to_bytes()),
            timeout: config.timeout,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NafConfigError::Start(e.to_string()))?;
        std::thread::Builder::new()
            .name("gba-zn".into())
            .spawn(move || runtime.block_on(zn.serve(queue)))
            .map_err(|e| NafConfigError::Start(e.to_string()))?;
        Ok(Arc::new(GbaPskSource {
            naf_id,
            timeout: config.timeout,
            max_pending: config.max_pending,
            max_cached: config.max_cached,
            in_flight: Arc::new(AtomicUsize::new(0)),
            jobs,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// The NAF_Id this NAF presents to the BSF (and the device must derive with).
    pub fn naf_id(&self) -> &NafId {
        &self.naf_id
    }

    fn cached(&self, identity: &str) -> Option<RemotePsk> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(identity)
            .filter(|c| c.expires > unix_now())
            .map(|c| RemotePsk {
                key: c.key.clone(),
                binding: c.binding.clone(),
            })
    }

    fn remember(&self, identity: &str, fetched: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.max_cached && !cache.contains_key(identity) {
            let now = unix_now();
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= self.max_cached {
                let soonest = cache
                    .iter()
                    .min_by_key(|(_, c)| c.expires)
                    .map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    cache.remove(&soonest);
                }
            }
        }
        cache.insert(identity.to_owned(), fetched);
    }

    /// Asks the BSF for the key of `btid`, waiting at most the timeout.
    fn ask(&self, btid: &BTid) -> Result<Cached, ZnError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ZnError::Busy);
        }
        let in_flight = self.in_flight.clone();
        let _release = Release(in_flight);
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .try_send(Job {
                btid: btid.to_string(),
                reply,
            })
            .map_err(|_| ZnError::Busy)?;
        // The Zn thread applies the timeout to the request; the margin covers its reply.
        let wait = || {
            answer
                .recv_timeout(self.timeout + Duration::from_millis(200))
                .unwrap_or(Err(ZnError::Timeout))
        };
        let on_multi_thread_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        match on_multi_thread_worker {
            true => tokio::task::block_in_place(wait),
            false => wait(),
        }
    }
}

/// Decrements the in-flight count when a fetch ends, however it ends.
struct Release(Arc<AtomicUsize>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RemotePskSource for GbaPskSource {
    fn fetch(&self, identity: &str) -> Option<RemotePsk> {
        // Not a GBA identity: some other key server's, or unknown.
        let btid = BTid::from_psk_identity(identity).ok()?;
        if let Some(hit) = self.cached(identity) {
            return Some(hit);
        }
        match self.ask(&btid) {
            Ok(fetched) => {
                let psk = RemotePsk {
                    key: fetched.key.clone(),
                    binding: fetched.binding.clone(),
                };
                tracing::info!(
                    btid = %btid,
                    enrolee = fetched.binding.originator(),
                    expires = fetched.expires,
                    "gba: Ks_NAF fetched from the BSF"
                );
                self.remember(identity, fetched);
                Some(psk)
            }
            Err(e) => {
                tracing::warn!(btid = %btid, error = %e, "gba: no Ks_NAF for this B-TID");
                None
            }
        }
    }

    fn is_current(&self, identity: &str) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(identity).is_some_and(|c| c.expires > unix_now())
    }
}

/// The Zn client, on its own thread and runtime so a fetch works from any caller.
struct Zn {
    url: String,
    secret: Zeroizing<String>,
    naf_id: String,
    timeout: Duration,
}

impl Zn {
    async fn serve(self, mut queue: tokio::sync::mpsc::Receiver<Job>) {
        let client = match reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "gba: cannot build the Zn client");
                return;
            }
        };
        let zn = Arc::new(self);
        while let Some(job) = queue.recv().await {
            let zn = zn.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let answer = tokio::time::timeout(zn.timeout, zn.request(&client, &job.btid))
                    .await
                    .unwrap_or(Err(ZnError::Timeout));
                let _ = job.reply.send(answer);
            });
        }
    }

    async fn request(&self, client: &reqwest::Client, btid: &str) -> Result<Cached, ZnError> {
        let bearer = Zeroizing::new(format!("Bearer {}", self.secret.as_str()));
        let mut response = client
            .post(&self.url)
            .header("Authorization", bearer.as_str())
            .header("Content-Type", "application/json")
            .body(json!({ "btid": btid, "nafId": self.naf_id }).to_string())
            .send()
            .await
            .map_err(|e| ZnError::Unreachable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ZnError::Refused(status));
        }
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ZnError::Unreachable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ZnError::BadAnswer("answer too large"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_answer(&body)
    }
}

/// Reads `{ksNaf, enroleeId, expires}`: a 32-byte key in hex, an AE-ID or CSE-ID, a
/// future expiry in Unix seconds.
fn parse_answer(body: &[u8]) -> Result<Cached, ZnError> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| ZnError::BadAnswer("not JSON"))?;
    let key_hex = Zeroizing::new(
        answer
            .get("ksNaf")
            .and_then(Value::as_str)
            .ok_or(ZnError::BadAnswer("no ksNaf"))?
            .to_owned(),
    );
    let key_bytes = hex::decode(&key_hex).ok_or(ZnError::BadAnswer("ksNaf is not hex"))?;
    if key_bytes.len() != 32 {
        return Err(ZnError::BadAnswer("ksNaf is not 32 bytes"));
    }
    let key = PskKey::new(&key_bytes).map_err(|_| ZnError::BadAnswer("ksNaf unusable"))?;
    let enrolee = answer
        .get("enroleeId")
        .and_then(Value::as_str)
        .ok_or(ZnError::BadAnswer("no enroleeId"))?;
    let binding = Binding::ae(enrolee)
        .or_else(|_| Binding::cse(enrolee))
        .map_err(|_| ZnError::BadAnswer("enroleeId is neither an AE-ID nor a CSE-ID"))?;
    let expires = answer
        .get("expires")
        .and_then(Value::as_u64)
        .ok_or(ZnError::BadAnswer("no expires"))?;
    if expires <= unix_now() {
        return Err(ZnError::BadAnswer("already expired"));
    }
    Ok(Cached {
        key,
        binding,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_bsf_urls_are_accepted() {
        for ok in [
            "http://127.0.0.1:8000",
            "http://127.9.0.1",
            "http://localhost:1/x",
            "http://[::1]:80",
        ] {
            assert!(loopback_http(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1",
            "http://10.0.0.1:80",
            "http://bsf.example.com",
            "http://user@127.0.0.1",
            "http://127.0.0.1.example.com",
        ] {
            assert!(!loopback_http(bad), "{bad}");
        }
        let refused = GbaPskSource::new(NafConfig::new(
            "http://192.0.2.1:80",
            "naf.example.com",
            Zeroizing::new("s".into()),
        ))
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "gba: the BSF URL must be http:// on a loopback address (127.0.0.0/8, [::1], localhost), got \"http://192.0.2.1:80\""
        );
    }

    #[test]
    fn answers_are_checked() {
        let future = unix_now() + 60;
        let key = "11".repeat(32);
        let ok = json!({"ksNaf": key, "enroleeId": "Cdev", "expires": future}).to_string();
        assert_eq!(
            parse_answer(ok.as_bytes()).unwrap().binding,
            Binding::Ae("Cdev".into())
        );
        let cse = json!({"ksNaf": key, "enroleeId": "/id-mn", "expires": future}).to_string();
        assert_eq!(
            parse_answer(cse.as_bytes()).unwrap().binding,
            Binding::Cse("/id-mn".into())
        );
        for (body, why) in [
            (json!({"enroleeId": "Cdev", "expires": future}), "no ksNaf"),
            (
                json!({"ksNaf": "11", "enroleeId": "Cdev", "expires": future}),
                "ksNaf is not 32 bytes",
            ),
            (
                json!({"ksNaf": key, "enroleeId": "dev", "expires": future}),
                "enroleeId is neither an AE-ID nor a CSE-ID",
            ),
            (
                json!({"ksNaf": key, "enroleeId": "Cdev", "expires": 5}),
                "already expired",
            ),
        ] {
            match parse_answer(body.to_string().as_bytes()) {
                Err(ZnError::BadAnswer(reason)) => assert_eq!(reason, why),
                other => panic!("expected {why}, got {:?}", other.map(|_| ())),
            }
        }
    }
}
