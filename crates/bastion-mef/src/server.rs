//! The MEF's HTTP interface over its TLS listener (docs/provisioning.md, "the wire"):
//! `POST /enrolment` (the enrolment exchange) and `GET /fetchCredentials/<KeID>/<SUID>`
//! (a target's credential fetch), every answer a oneM2M response with `X-M2M-RSC`.
//!
//! ```text
//!  bastion_http::tls::serve_router_tls_with
//!    accept loop, caps, handshake timeout, per-request revocation check (4107)
//!    after the handshake: session_extensions() exports Ke/RelativeKeID
//!      (EXPORTER-oneM2M-Bootstrap) and opens the association's Conversation
//!    per request: SaIdentity + Session ─► handle()
//!         X-M2M-Origin == bound identity? (4106), X-M2M-RI present? (4000)
//!         /enrolment: profile of the credential (4103) ─► rules::Conversation
//!                     indications ─► instructions (tid, eid named)
//!                       a MAF enrolment among them ─► record now
//!                     final ─► record (once) ─► 2001, close
//!                       record: KeKeeper::keep (Ke into the key store, if any)
//!                               ─► EnrolmentStore::record (durable)
//!         /fetchCredentials: EnrolmentStore::get (4004) ─► rules::release
//!                           ─► KeKeeper::derive (in the key store, if any) ─► 2000
//!    /<MEF-FQDN>/…: the MEF client procedures and commands, bastion_maf::server::respond
//!         over the MEF's client records (with Kc/KcID exported by the same hook)
//! ```
//!
//! Logs name KeIDs, enrolee IDs and targets, never a key.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request as HttpRequest};
use axum::response::Response as HttpResponse;
use axum::Router;
use bastion_http::listen::{Gate, Timeouts};
use bastion_http::tls::{SaIdentity, SessionExtensions};
use bastion_keys::{ExportedKey, KeyIdentifier, Suid};
use bastion_proto::wire::http as mapping;
use bastion_proto::Rsc;
use bastion_tls::{Framework, TlsServer};
use parking_lot::Mutex;
use serde_json::Value;

use crate::config::{EnroleeCredential, InstructionKind, MefConfig, Profile};
use crate::error::MefError;
use crate::keys::KeKeeper;
use crate::rules::{self, Conversation, Enrolment, Grant};
use crate::store::EnrolmentStore;
use crate::wire::{self, names, Final, Indications};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest `X-M2M-RI` accepted.
pub const MAX_RI_LEN: usize = 64;

/// The MEF: its configuration, its store and the keeper of its enrolment keys.
#[derive(Debug)]
pub struct Mef {
    config: MefConfig,
    store: EnrolmentStore,
    clients: Option<Arc<bastion_maf::Maf>>,
    keys: KeKeeper,
}

impl Mef {
    /// An MEF over `store`, Ke sealed in the enrolment records.
    pub fn new(config: MefConfig, store: EnrolmentStore) -> Mef {
        Mef {
            config,
            store,
            clients: None,
            keys: KeKeeper::sealed(),
        }
    }

    /// The same, Ke kept by `keys` (a key store).
    pub fn with_keys(self, keys: KeKeeper) -> Mef {
        Mef { keys, ..self }
    }

    /// The keeper of the enrolment keys.
    pub fn keys(&self) -> &KeKeeper {
        &self.keys
    }

    /// Drops the enrolments expired at `now` and deletes their keys from the key store:
    /// a key outlives its enrolment by at most the period this runs at.
    pub fn sweep(&self, now: i64) -> Result<usize, crate::StoreError> {
        let gone = self.store.expire(now)?;
        self.keys.forget(&gone);
        Ok(gone.len())
    }

    /// Serves the MEF client procedures (8.3.5) and, as their children, the commands
    /// (8.3.9) of `clients` (built with [`bastion_maf::MEF`]) under `/<MEF-FQDN>/`.
    pub fn with_clients(mut self, clients: Arc<bastion_maf::Maf>) -> Mef {
        self.clients = Some(clients);
        self
    }

    /// The MEF client records, when served.
    pub fn clients(&self) -> Option<&Arc<bastion_maf::Maf>> {
        self.clients.as_ref()
    }

    /// The client records when `path` is under `/<MEF-FQDN>/`.
    fn clients_for(&self, path: &str) -> Option<&Arc<bastion_maf::Maf>> {
        let first = path.strip_prefix('/')?.split('/').next()?;
        self.clients
            .as_ref()
            .filter(|_| first.eq_ignore_ascii_case(&self.config.fqdn))
    }

    /// The configuration.
    pub fn config(&self) -> &MefConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &EnrolmentStore {
        &self.store
    }
}

/// Who is at the other end of an association, as the handshake established it.
#[derive(Debug, Clone)]
struct Peer {
    framework: Framework,
    credential: String,
}

/// What the MEF keeps per association: the enrolment key exported from it, the peer's
/// credential, and the exchange.
struct Session {
    ke: ExportedKey,
    peer: Peer,
    conversation: Mutex<Conversation>,
    /// The enrolment, once recorded: at the indications when a MAF enrolment is
    /// instructed (the MAF fetches Km while the exchange runs), else at the final.
    recorded: Mutex<Option<Enrolment>>,
}

#[derive(Clone)]
struct SessionState(Arc<Session>);

/// The per-connection hook of the MEF's listener: exports Ke/RelativeKeID from the TLS
/// session (10.3.1) and opens the association's conversation. An association whose
/// export fails is closed.
pub fn session_extensions() -> SessionExtensions {
    Arc::new(|ssl, association| {
        let identity = association.identity()?;
        let ke = match bastion_tls::exporter::export_bootstrap_key(ssl) {
            Ok(ke) => ke,
            Err(e) => {
                tracing::warn!(error = %e, "enrolment key export failed; association closed");
                return None;
            }
        };
        let session = Session {
            ke,
            peer: Peer {
                framework: identity.framework(),
                credential: match identity.framework() {
                    Framework::Psk => identity.credential().to_owned(),
                    _ => identity.originator().to_owned(),
                },
            },
            conversation: Mutex::new(Conversation::default()),
            recorded: Mutex::new(None),
        };
        let mut extensions = axum::http::Extensions::new();
        extensions.insert(SessionState(Arc::new(session)));
        // The MEF client procedures' view of the association: its binding and Kc/KcID
        // (EXPORTER-oneM2M-Connection); without it they answer 4107.
        if let Some(client) = bastion_maf::server::session_details(ssl, association) {
            extensions.extend(client);
        }
        Some(extensions)
    })
}

#[derive(Clone)]
struct AppState {
    mef: Arc<Mef>,
    body_timeout: Duration,
}

/// The router: one handler for every method and path.
pub fn router(mef: Arc<Mef>, timeouts: Timeouts) -> Router {
    Router::new().fallback(handle).with_state(AppState {
        mef,
        body_timeout: timeouts.body,
    })
}

/// Serves the MEF on `listener` until the future is dropped, on bastion-http's TLS
/// listener machinery (the caps and timeouts every Bastion listener has).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    mef: Arc<Mef>,
    timeouts: Timeouts,
    gate: Gate,
) -> std::io::Result<()> {
    serve_app_tls(listener, tls, router(mef, timeouts), timeouts, gate).await
}

/// [`serve_tls`] of `app`: the MEF's [`router`] with other routes merged in (the EST
/// operations of `[mef.est]`), each request carrying the association's enrolment session.
pub async fn serve_app_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    app: Router,
    timeouts: Timeouts,
    gate: Gate,
) -> std::io::Result<()> {
    bastion_http::tls::serve_router_tls_with(
        listener,
        tls,
        app,
        timeouts,
        gate,
        None,
        Some(session_extensions()),
    )
    .await
}

/// A successful answer and whether the association ends after it.
struct Answer {
    rsc: Rsc,
    pc: Value,
    close: bool,
}

/// A refusal and whether the association ends after it.
struct Refusal {
    error: MefError,
    close: bool,
}

impl From<MefError> for Refusal {
    fn from(error: MefError) -> Refusal {
        // A replay abandons the exchange: nothing more is taken on that association.
        let close = matches!(error, MefError::Replay(_) | MefError::Revoked(_));
        Refusal { error, close }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn handle(State(state): State<AppState>, request: HttpRequest<Body>) -> HttpResponse {
    if let Some(clients) = state.mef.clients_for(request.uri().path()) {
        return bastion_maf::server::respond(clients, state.body_timeout, request).await;
    }
    let echoed = mapping::Echoed::from_headers(request.headers());
    let (resp, close) = match answer(&state, request).await {
        Ok(answer) => {
            let mut r = echoed.response(answer.rsc);
            r.pc = Some(answer.pc);
            (r, answer.close)
        }
        Err(refusal) => {
            let e = refusal.error;
            tracing::info!(rsc = e.rsc().code(), reason = %e, "MEF request refused");
            (echoed.error(&e.as_request_error()), refusal.close)
        }
    };
    let mut http = bastion_http::encode(&resp);
    if close {
        http.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    http
}

fn bad(e: bastion_proto::RequestError) -> MefError {
    MefError::BadRequest(e.to_string())
}

async fn answer(state: &AppState, request: HttpRequest<Body>) -> Result<Answer, Refusal> {
    let (parts, body) = request.into_parts();
    let (Some(SaIdentity(bound)), Some(SessionState(session))) = (
        parts.extensions.get::<SaIdentity>().cloned(),
        parts.extensions.get::<SessionState>().cloned(),
    ) else {
        return Err(MefError::Internal("no security association".into()).into());
    };
    let headers = &parts.headers;
    let origin = mapping::single_header(headers, mapping::header::ORIGIN)
        .map_err(bad)?
        .filter(|o| !o.is_empty())
        .ok_or_else(|| MefError::BadRequest("X-M2M-Origin missing".into()))?;
    if origin != bound {
        return Err(MefError::OriginMismatch.into());
    }
    let ri = mapping::single_header(headers, mapping::header::RI)
        .map_err(bad)?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| MefError::BadRequest("X-M2M-RI missing".into()))?;
    if ri.len() > MAX_RI_LEN {
        return Err(MefError::BadRequest(format!("X-M2M-RI longer than {MAX_RI_LEN}")).into());
    }
    let path = parts.uri.path();
    if path == wire::ENROLMENT_PATH {
        if parts.method != Method::POST {
            return Err(MefError::NotAllowed("the enrolment exchange takes POST".into()).into());
        }
        let content_type = mapping::content_type(headers).map_err(bad)?;
        if content_type.is_none_or(|ct| ct.media != "application/json") {
            return Err(MefError::UnsupportedMediaType.into());
        }
        let bytes = bastion_http::read_body(body, MAX_BODY_BYTES, state.body_timeout)
            .await
            .map_err(|e| Refusal {
                error: bad(e),
                close: true,
            })?;
        let pc = bastion_proto::json::parse_strict(&bytes).map_err(bad)?;
        return enrolment(state, &session, &bound, &ri, &pc).await;
    }
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    if segments.next() == Some(wire::FETCH_SEGMENT) {
        let (Some(ke_id), Some(suid), None) = (segments.next(), segments.next(), segments.next())
        else {
            return Err(
                MefError::NotFound("expected /fetchCredentials/<KeID>/<SUID>".into()).into(),
            );
        };
        if parts.method != Method::GET {
            return Err(
                MefError::NotAllowed("fetchCredentials takes GET (RETRIEVE)".into()).into(),
            );
        }
        let ke_id = percent_encoding::percent_decode_str(ke_id)
            .decode_utf8()
            .map_err(|_| MefError::BadRequest("KeID is not UTF-8".into()))?
            .into_owned();
        return fetch(state, &bound, &ke_id, suid)
            .await
            .map_err(Refusal::from);
    }
    Err(MefError::NotFound(format!("no resource at {path}")).into())
}

/// The profile of the association's enrolee credential.
fn profile_of<'a>(mef: &'a Mef, peer: &Peer) -> Result<&'a Profile, MefError> {
    let key = match peer.framework {
        Framework::Psk => EnroleeCredential::Kpm(peer.credential.clone()),
        Framework::Certificate => EnroleeCredential::Certificate(peer.credential.clone()),
        Framework::RawPublicKey => {
            return Err(MefError::NoPrivilege("raw public keys do not enrol".into()))
        }
    };
    mef.config
        .profiles
        .get(&key)
        .ok_or_else(|| MefError::NoPrivilege("no enrolee profile for this credential".into()))
}

fn credential_label(peer: &Peer) -> String {
    match peer.framework {
        Framework::Psk => format!("kpm:{}", peer.credential),
        _ => format!("certificate:{}", peer.credential),
    }
}

async fn enrolment(
    state: &AppState,
    session: &Session,
    bound: &str,
    ri: &str,
    pc: &Value,
) -> Result<Answer, Refusal> {
    let mef = &state.mef;
    let profile = profile_of(mef, &session.peer)?;
    let ke_key_id = session
        .ke
        .key_identifier(&mef.config.fqdn)
        .map_err(|e| MefError::Internal(format!("KeID: {e}")))?;
    let ke_id = ke_key_id.to_string();
    if pc.get(names::INDICATIONS).is_some() {
        let indications: Indications =
            wire::unwrap(names::INDICATIONS, pc).map_err(MefError::BadRequest)?;
        let revoked = mef
            .store
            .is_revoked(&profile.enrolee_id)
            .map_err(|e| MefError::Internal(e.to_string()))?;
        let mut ins = {
            let mut conversation = session.conversation.lock();
            if revoked {
                conversation.abandon();
                return Err(MefError::Revoked(profile.enrolee_id.clone()).into());
            }
            conversation.indications(ri, profile, indications)?
        };
        name_instruction_targets(mef, profile, &mut ins);
        if ins
            .iter()
            .any(|i| i.ity == InstructionKind::MafEnrolment.code())
        {
            // The MAF asks for Km (SUID 21) while the enrolee executes the instruction,
            // before the final message: the enrolment must exist by then.
            record(state, session, profile, &ke_key_id).await?;
        }
        tracing::info!(%ke_id, enrolee = %profile.enrolee_id, origin = %bound,
            instructions = ins.len(), "enrolment exchange: instructions sent");
        return Ok(Answer {
            rsc: Rsc::Ok,
            pc: wire::wrap(
                names::INSTRUCTIONS,
                &wire::Instructions {
                    ins,
                    eid: Some(profile.enrolee_id.clone()),
                },
            ),
            close: false,
        });
    }
    if pc.get(names::FINAL).is_some() {
        let fin: Final = wire::unwrap(names::FINAL, pc).map_err(MefError::BadRequest)?;
        session.conversation.lock().finish(ri, &fin)?;
        let recorded = session.recorded.lock().clone();
        let enrolment = match recorded {
            Some(enrolment) => enrolment,
            None => record(state, session, profile, &ke_key_id).await?,
        };
        tracing::info!(%ke_id, enrolee = %enrolment.enrolee_id,
            credential = %enrolment.credential, expires = enrolment.expires,
            targets = enrolment.grants.len(),
            instructions_failed = fin.res.iter().filter(|r| !r.ok).count(), "enrolled");
        let enrolled = wire::Enrolled {
            keid: ke_id,
            eid: enrolment.enrolee_id.clone(),
            exp: bastion_proto::time::Timestamp(enrolment.expires).format(),
            tgs: enrolment.grants.iter().map(Grant::message).collect(),
        };
        return Ok(Answer {
            rsc: Rsc::Created,
            pc: wire::wrap(names::ENROLLED, &enrolled),
            close: true,
        });
    }
    Err(MefError::BadRequest(format!(
        "expected {} or {}",
        names::INDICATIONS,
        names::FINAL
    ))
    .into())
}

/// Fills in `tid` of each instruction: the identity a certificate enrolment certifies
/// (`[mef.est]`), the MAF-ID of a MAF enrolment (the profile's SUID 21 target at the
/// instruction's URI, or its only one).
fn name_instruction_targets(mef: &Mef, profile: &Profile, ins: &mut [wire::InstructionMsg]) {
    let mafs: Vec<&crate::config::Target> = profile
        .targets
        .iter()
        .filter_map(|name| mef.config.targets.get(name))
        .filter(|t| t.suid.code() == 21)
        .collect();
    for i in ins.iter_mut() {
        i.tid = if i.ity == InstructionKind::CertificateEnrolment.code() {
            mef.config
                .est
                .as_ref()
                .map(|est| est.certify(&profile.enrolee_id))
        } else if i.ity == InstructionKind::MafEnrolment.code() {
            mafs.iter()
                .find(|t| t.uri.trim_end_matches('/') == i.uri.trim_end_matches('/'))
                .or(if mafs.len() == 1 { mafs.first() } else { None })
                .map(|t| t.id.clone())
        } else {
            None
        };
    }
}

/// Records the association's enrolment durably (once), the exchange abandoned and the
/// association closed when the store refuses.
async fn record(
    state: &AppState,
    session: &Session,
    profile: &Profile,
    ke_key_id: &KeyIdentifier,
) -> Result<Enrolment, Refusal> {
    let mef = state.mef.clone();
    let now = unix_now();
    let lifetime = i64::try_from(profile.lifetime_seconds).unwrap_or(i64::MAX);
    let grants: Vec<Grant> = profile
        .targets
        .iter()
        .filter_map(|name| mef.config.targets.get(name))
        .map(Grant::from)
        .collect();
    let ke = zeroize::Zeroizing::new(*session.ke.key());
    let ke_key_id = ke_key_id.clone();
    let enrolee_id = profile.enrolee_id.clone();
    let credential = credential_label(&session.peer);
    // Ke into the key store first: a crash between the two leaves an orphan key no
    // record names, never a record whose key is missing.
    let recorded = tokio::task::spawn_blocking(move || {
        let enrolment = Enrolment {
            ke_id: ke_key_id.to_string(),
            ke: mef.keys.keep(&ke_key_id, &ke)?,
            enrolee_id,
            credential,
            created: now,
            expires: now.saturating_add(lifetime),
            grants,
            revoked: false,
        };
        match mef.store.record(&enrolment, now) {
            Ok(dropped) => {
                mef.keys.forget(&dropped);
                Ok(enrolment)
            }
            Err(e) => {
                if let rules::KeHeld::InStore(name) = &enrolment.ke {
                    mef.keys.forget(std::slice::from_ref(name));
                }
                Err(e)
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(MefError::Internal("the store task failed".into())));
    match recorded {
        Ok(enrolment) => {
            *session.recorded.lock() = Some(enrolment.clone());
            Ok(enrolment)
        }
        Err(e) => {
            session.conversation.lock().abandon();
            Err(Refusal {
                error: e,
                close: true,
            })
        }
    }
}

async fn fetch(
    state: &AppState,
    fetcher: &str,
    ke_id: &str,
    suid: &str,
) -> Result<Answer, MefError> {
    let mef = &state.mef;
    let suid = Suid::parse(suid).map_err(|e| MefError::BadRequest(e.to_string()))?;
    let parsed =
        KeyIdentifier::parse(ke_id).map_err(|e| MefError::BadRequest(format!("KeID: {e}")))?;
    if !parsed.fqdn().eq_ignore_ascii_case(&mef.config.fqdn) {
        return Err(MefError::NotFound("KeID of another MEF".into()));
    }
    let released = {
        let mef = mef.clone();
        let ke_id = ke_id.to_owned();
        let fetcher = fetcher.to_owned();
        // Blocking: the store file, and a derivation inside a key store (a token).
        tokio::task::spawn_blocking(move || {
            let enrolment = mef
                .store
                .get(&ke_id)
                .map_err(|e| {
                    tracing::error!(error = %e, "enrolment store unreadable");
                    MefError::Internal("the enrolment store is unreadable".into())
                })?
                .ok_or_else(|| MefError::NotFound("unknown KeID".into()))?;
            let released = rules::release(&enrolment, &fetcher, suid, unix_now(), |ke, input| {
                mef.keys.derive(ke, input)
            });
            if let (Err(MefError::Expired | MefError::Revoked(_)), rules::KeHeld::InStore(name)) =
                (&released, &enrolment.ke)
            {
                // The enrolment ended: its key goes now rather than at the next sweep.
                mef.keys.forget(std::slice::from_ref(name));
            }
            released
        })
        .await
        .map_err(|_| MefError::Internal("the store task failed".into()))??
    };
    tracing::info!(%ke_id, fetcher, suid = suid.code(), enrolee = %released.enrolee_id,
        "credential released");
    let credential = wire::Credential {
        keid: ke_id.to_owned(),
        suid: suid.code(),
        key: released.key.to_hex(),
        eid: released.enrolee_id,
        exp: bastion_proto::time::Timestamp(released.expires).format(),
    };
    Ok(Answer {
        rsc: Rsc::Ok,
        pc: wire::wrap(names::CREDENTIAL, &credential),
        close: false,
    })
}
