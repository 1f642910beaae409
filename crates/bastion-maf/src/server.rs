//! The MAF's HTTP binding (and the MEF's client procedures, mounted on the MEF's listener
//! through [`respond`] with the MEF's [`crate::Function`]): TS-0009 requests ([`bastion_proto::wire::http`] decodes the
//! head and the body in any oneM2M serialization) over the MAF security association,
//! answered as oneM2M responses (`X-M2M-RSC`, `m2m:dbg` reasons).
//!
//! | input | rsc |
//! |---|---|
//! | not over a MAF association (no binding or no key export) | 4107 |
//! | `X-M2M-Origin` missing | 4000 |
//! | `X-M2M-Origin` other than the association's identity | 4106 |
//! | path not `<this FQDN>/clients[/id]`, `/keys[/id]`, or a child of a registration the [`RegistrationChildren`] serve | 4004 |
//! | operation or `ty` the path does not take | 4005 |
//! | body too large, not decodable, members missing or not allowed | 4000 |
//! | body not complete within the body timeout | 4008 |
//! | a refusal of the rules (`rules.rs`) | its [`crate::MafError`] code |
//!
//! Caller identity (`who`) is the association's binding ([`AssociationDetails`],
//! computed once per association by the listener's session hook), so a client can only act as itself;
//! `X-M2M-Origin` must name it (SP-relative and absolute forms compare equal). Nothing
//! secret is logged: refusals log the rsc and the reason, key values never.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request as HttpRequest;
use axum::response::Response as HttpResponse;
use axum::Router;
use bastion_http::listen::{Gate, Timeouts};
use bastion_keys::Suid;
use bastion_proto::time::Timestamp;
use bastion_proto::wire::http as mapping;
use bastion_proto::{Operation, Request, RequestError, Rsc};
use bastion_tls::{PskKey, TlsServer};

use crate::rules::{
    absolute_identity, ClientRegistration, KeyRegistration, RegisterClient, RegisterKey, Update,
};
use crate::wire::{self, ClientRegMsg, KeyRegMsg};
use crate::{unix_now, Maf, MafError};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the MAF needs of the association a request arrived on, beyond its identity: the
/// kind of identity it is bound to, and the Kc/KcID both ends export from it with
/// `EXPORTER-oneM2M-Connection` (TS-0003 10.3.1). Computed once per association right
/// after its handshake ([`session_details`]); the key is wiped with the connection.
#[derive(Clone, Debug)]
pub struct AssociationDetails {
    /// The AE-ID, CSE-ID or Credential-ID the association is bound to, with its kind.
    pub binding: bastion_tls::Binding,
    /// The keying material exported from this association (Debug redacted).
    pub connection_key: Arc<bastion_keys::ExportedKey>,
}

/// The listener's session hook: [`AssociationDetails`] for an association bound by its
/// handshake; `None` (the connection is closed) when it is not bound or the export fails.
/// The MEF's listener runs it beside its own hook.
pub fn session_details(
    ssl: &openssl::ssl::SslRef,
    association: &bastion_tls::Association,
) -> Option<axum::http::Extensions> {
    let binding = association.identity()?.binding().clone();
    let key = match bastion_tls::exporter::export_connection_key(ssl) {
        Ok(key) => key,
        Err(e) => {
            tracing::info!(error = %e, "no Kc/KcID export from the association: closed");
            return None;
        }
    };
    let mut extensions = axum::http::Extensions::new();
    extensions.insert(AssociationDetails {
        binding,
        connection_key: Arc::new(key),
    });
    Some(extensions)
}

/// What a function keeps under a client registration: the MEF's `<mefClientCmd>`
/// (8.3.9) at `<FQDN>/clients/<id>/<child>`. Called only once the registration was found
/// live and the caller's own (else 4004, 4103), with the request's content decoded.
pub trait RegistrationChildren: Send + Sync {
    /// The answer to `req` for the child `child` of `registration`.
    fn serve(
        &self,
        registration: &ClientRegistration,
        child: &str,
        req: &Request,
        now: i64,
    ) -> Result<(Rsc, Option<serde_json::Value>), RequestError>;
}

#[derive(Clone)]
struct AppState {
    maf: Arc<Maf>,
    body_timeout: Duration,
}

/// The MAF's router: every path and method goes to one handler.
pub fn router(maf: Arc<Maf>, timeouts: Timeouts) -> Router {
    Router::new().fallback(handle).with_state(AppState {
        maf,
        body_timeout: timeouts.body,
    })
}

/// Serves the MAF over TLS on `listener` until the future is dropped, on bastion-http's
/// listener machinery (accept loop, `gate`, `timeouts`, revocation before every request),
/// with [`AssociationDetails`] (Kc/KcID exported) from every association.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    maf: Arc<Maf>,
    timeouts: Timeouts,
    gate: Gate,
) -> std::io::Result<()> {
    let app = router(maf, timeouts);
    let session: bastion_http::tls::SessionExtensions = Arc::new(session_details);
    bastion_http::tls::serve_router_tls_with(
        listener,
        tls,
        app,
        timeouts,
        gate,
        None,
        Some(session),
    )
    .await
}

async fn handle(State(state): State<AppState>, request: HttpRequest<Body>) -> HttpResponse {
    respond(&state.maf, state.body_timeout, request).await
}

/// Answers one request for `maf`'s resources (`<FQDN>/clients…`, `<FQDN>/keys…`): the
/// MAF's router, and the MEF's for paths under its FQDN. The association's
/// [`AssociationDetails`] must be in the request's extensions ([`session_details`]).
pub async fn respond(
    maf: &Arc<Maf>,
    body_timeout: Duration,
    request: HttpRequest<Body>,
) -> HttpResponse {
    let state = AppState {
        maf: maf.clone(),
        body_timeout,
    };
    let echoed = mapping::Echoed::from_headers(request.headers());
    let serialization = mapping::answer_serialization(request.headers())
        .unwrap_or(bastion_proto::wire::Serialization::Json);
    let mut close_connection = false;
    let resp = match answer(&state, request).await {
        Ok((rsc, pc)) => {
            let mut r = echoed.response(rsc);
            r.pc = pc;
            r
        }
        Err((e, body_unread)) => {
            let name = state.maf.config().function.name;
            tracing::info!(rsc = e.rsc().code(), reason = %e, "{name} request refused");
            close_connection = body_unread;
            echoed.error(&e)
        }
    };
    let mut http = bastion_http::encode_as(&resp, serialization);
    if close_connection {
        // Unread body bytes would be taken for the next request.
        http.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    http
}

type Answer = (Rsc, Option<serde_json::Value>);

/// The answer, or the refusal and whether the request body may be left unread.
async fn answer(
    state: &AppState,
    request: HttpRequest<Body>,
) -> Result<Answer, (RequestError, bool)> {
    let refused = |e: RequestError| (e, true);
    let (parts, body) = request.into_parts();
    let Some(details) = parts.extensions.get::<AssociationDetails>().cloned() else {
        let name = state.maf.config().function.name;
        return Err(refused(RequestError::SecurityAssociationRequired(
            format!("the {name} answers only inside a {name} security association").into(),
        )));
    };
    let (req, ct) =
        mapping::decode_request_head(&parts.method, &parts.uri, &parts.headers).map_err(refused)?;
    let maf = &state.maf;
    let sp_id = &maf.config().sp_id;
    let claimed = req
        .fr
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| refused(RequestError::bad_request("X-M2M-Origin missing")))?;
    let bound = details.binding.originator();
    if absolute_identity(sp_id, claimed) != absolute_identity(sp_id, bound) {
        return Err(refused(RequestError::NotAuthenticated(
            "originator does not match the authenticated identity".into(),
        )));
    }
    let bytes = bastion_http::read_body(body, MAX_BODY_BYTES, state.body_timeout)
        .await
        .map_err(refused)?;
    let pc = mapping::decode_body(ct.as_ref(), &bytes).map_err(|e| (e, false))?;
    let req = Request { pc, ..req };
    dispatch(maf, &details, &req, unix_now()).map_err(|e| match e {
        Refusal::Maf(e) => (e.to_request_error(), false),
        Refusal::Request(e) => (e, false),
    })
}

enum Refusal {
    Maf(MafError),
    Request(RequestError),
}

impl From<MafError> for Refusal {
    fn from(e: MafError) -> Self {
        Refusal::Maf(e)
    }
}

impl From<RequestError> for Refusal {
    fn from(e: RequestError) -> Self {
        Refusal::Request(e)
    }
}

fn bad(reason: impl Into<String>) -> Refusal {
    Refusal::Maf(MafError::BadRequest(reason.into()))
}

fn dispatch(
    maf: &Maf,
    details: &AssociationDetails,
    req: &Request,
    now: i64,
) -> Result<Answer, Refusal> {
    let who = &details.binding;
    let f = maf.config().function;
    let mut path = req.to.split('/');
    let (fqdn, collection, id, child, rest) = (
        path.next(),
        path.next(),
        path.next(),
        path.next(),
        path.next(),
    );
    let this_function = fqdn.is_some_and(|d| d.eq_ignore_ascii_case(&maf.config().fqdn));
    let no_resource = || {
        Refusal::Maf(MafError::NotFound(format!(
            "no {} resource {:?}",
            f.name, req.to
        )))
    };
    if !this_function || rest.is_some() || id == Some("") || child == Some("") {
        return Err(no_resource());
    }
    let op = req.op.unwrap_or(Operation::Retrieve);
    let not_allowed = || {
        Refusal::Request(RequestError::not_allowed(format!(
            "operation not allowed on this {} resource",
            f.name
        )))
    };
    if let (Some(wire::CLIENTS), Some(id), Some(child)) = (collection, id, child) {
        let Some(children) = maf.children() else {
            return Err(no_resource());
        };
        let registration = maf.client_registration(who, id, now)?;
        return Ok(children.serve(&registration, child, req, now)?);
    }
    if child.is_some() {
        return Err(no_resource());
    }
    match (collection, id, op) {
        (Some(wire::CLIENTS), None, Operation::Create) => {
            if req.ty != Some(f.client_reg_ty) {
                return Err(not_allowed());
            }
            let msg: ClientRegMsg =
                wire::unwrap(f.client_reg_root, req.pc.as_ref()).map_err(bad)?;
            only(&[
                ("mcri", msg.mcri.is_some()),
                ("mcid", msg.mcid.is_some()),
                ("mcik", msg.mcik.is_some()),
                ("fqdn", msg.fqdn.is_some()),
            ])?;
            let request = RegisterClient {
                expires: timestamp(msg.et.as_deref())?
                    .ok_or_else(|| bad("et (expirationTime) is required"))?,
                labels: msg.lbl.unwrap_or_default(),
                admin_fqdn: msg
                    .adfq
                    .ok_or_else(|| bad("adfq (adminFQDN) is required"))?,
            };
            let record = maf.register_client(who, request, now)?;
            tracing::info!(client = who.originator(), mcri = %record.id, "{} client registered", f.name);
            Ok((
                Rsc::Created,
                Some(wire::wrap(f.client_reg_root, &client_msg(&record))),
            ))
        }
        (Some(wire::CLIENTS), Some(id), Operation::Retrieve) => {
            let record = maf.client_registration(who, id, now)?;
            let cfg = ClientRegMsg {
                et: Some(Timestamp(record.expires).format()),
                lbl: (!record.labels.is_empty()).then(|| record.labels.clone()),
                adfq: Some(record.admin_fqdn.clone()),
                fqdn: Some(maf.config().fqdn.clone()),
                ..ClientRegMsg::default()
            };
            Ok((Rsc::Ok, Some(wire::wrap(f.client_cfg_root, &cfg))))
        }
        (Some(wire::CLIENTS), Some(id), Operation::Update) => {
            let msg: ClientRegMsg =
                wire::unwrap(f.client_reg_root, req.pc.as_ref()).map_err(bad)?;
            only(&[
                ("mcri", msg.mcri.is_some()),
                ("adfq", msg.adfq.is_some()),
                ("mcid", msg.mcid.is_some()),
                ("mcik", msg.mcik.is_some()),
                ("fqdn", msg.fqdn.is_some()),
            ])?;
            let update = Update {
                expires: timestamp(msg.et.as_deref())?,
                labels: msg.lbl.clone(),
                target_ids: None,
            };
            let record = maf.update_client(who, id, update, now)?;
            // 8.8.2.5: only what the request proposed comes back.
            let echo = ClientRegMsg {
                et: msg.et.is_some().then(|| Timestamp(record.expires).format()),
                lbl: msg.lbl.is_some().then(|| record.labels.clone()),
                ..ClientRegMsg::default()
            };
            Ok((Rsc::Updated, Some(wire::wrap(f.client_reg_root, &echo))))
        }
        (Some(wire::CLIENTS), Some(id), Operation::Delete) => {
            maf.deregister_client(who, id, now)?;
            tracing::info!(
                client = who.originator(),
                mcri = id,
                "{} client de-registered",
                f.name
            );
            Ok((Rsc::Deleted, None))
        }
        (Some(wire::KEYS), None, Operation::Create) => {
            if req.ty != Some(wire::TY_SYMM_KEY_REG) {
                return Err(not_allowed());
            }
            let msg: KeyRegMsg = wire::unwrap(f.key_reg_root, req.pc.as_ref()).map_err(bad)?;
            only(&[
                ("rkid", msg.rkid.is_some()),
                ("smci", msg.smci.is_some()),
                ("smck", msg.smck.is_some()),
            ])?;
            let suid = msg.suid.ok_or_else(|| bad("suid is required"))?;
            let request = RegisterKey {
                expires: timestamp(msg.et.as_deref())?
                    .ok_or_else(|| bad("et (expirationTime) is required"))?,
                labels: msg.lbl.unwrap_or_default(),
                admin_fqdn: msg
                    .adfq
                    .ok_or_else(|| bad("adfq (adminFQDN) is required"))?,
                suid: Suid::from_code(suid).map_err(|e| bad(e.to_string()))?,
                target_ids: msg.tids.unwrap_or_default(),
            };
            let sent = msg
                .kyv
                .as_deref()
                .map(|hex| {
                    PskKey::from_hex(hex).map_err(|_| bad("kyv must be 16 to 64 bytes in hex"))
                })
                .transpose()?;
            let exported = sent.is_none();
            let record = maf.register_key(who, request, sent, &details.connection_key, now)?;
            tracing::info!(
                source = who.originator(), rkid = %record.relative_key_id,
                suid = record.suid.code(), exported, "{} key registered", f.name
            );
            let mut out = key_msg(&record);
            out.tids = Some(record.target_ids.clone());
            Ok((Rsc::Created, Some(wire::wrap(f.key_reg_root, &out))))
        }
        (Some(wire::KEYS), Some(rkid), Operation::Retrieve) => {
            let record = maf.retrieve_key(who, rkid, now)?;
            tracing::info!(target = who.originator(), rkid, "{} key retrieved", f.name);
            let mut out = key_msg(&record);
            out.rkid = None;
            out.kyv = Some(record.key.to_hex());
            Ok((Rsc::Ok, Some(wire::wrap(f.key_reg_root, &out))))
        }
        (Some(wire::KEYS), Some(rkid), Operation::Update) => {
            let msg: KeyRegMsg = wire::unwrap(f.key_reg_root, req.pc.as_ref()).map_err(bad)?;
            only(&[
                ("rkid", msg.rkid.is_some()),
                ("adfq", msg.adfq.is_some()),
                ("suid", msg.suid.is_some()),
                ("kyv", msg.kyv.is_some()),
                ("smci", msg.smci.is_some()),
                ("smck", msg.smck.is_some()),
            ])?;
            let update = Update {
                expires: timestamp(msg.et.as_deref())?,
                labels: msg.lbl.clone(),
                target_ids: msg.tids.clone(),
            };
            let record = maf.update_key(who, rkid, update, now)?;
            let echo = KeyRegMsg {
                et: msg.et.is_some().then(|| Timestamp(record.expires).format()),
                lbl: msg.lbl.is_some().then(|| record.labels.clone()),
                tids: msg.tids.is_some().then(|| record.target_ids.clone()),
                ..KeyRegMsg::default()
            };
            Ok((Rsc::Updated, Some(wire::wrap(f.key_reg_root, &echo))))
        }
        (Some(wire::KEYS), Some(rkid), Operation::Delete) => {
            maf.deregister_key(who, rkid, now)?;
            tracing::info!(
                source = who.originator(),
                rkid,
                "{} key de-registered",
                f.name
            );
            Ok((Rsc::Deleted, None))
        }
        (Some(wire::CLIENTS | wire::KEYS), _, _) => Err(not_allowed()),
        _ => Err(no_resource()),
    }
}

/// Refuses members the procedure's request does not carry.
fn only(forbidden: &[(&str, bool)]) -> Result<(), Refusal> {
    match forbidden.iter().find(|(_, present)| *present) {
        Some((name, _)) => Err(bad(format!("{name} is not allowed in this request"))),
        None => Ok(()),
    }
}

fn timestamp(text: Option<&str>) -> Result<Option<i64>, Refusal> {
    text.map(|t| {
        Timestamp::parse(t)
            .map(|ts| ts.0)
            .ok_or_else(|| bad(format!("et {t:?} is not a oneM2M timestamp")))
    })
    .transpose()
}

fn client_msg(record: &ClientRegistration) -> ClientRegMsg {
    ClientRegMsg {
        mcri: Some(record.id.clone()),
        et: Some(Timestamp(record.expires).format()),
        lbl: (!record.labels.is_empty()).then(|| record.labels.clone()),
        adfq: Some(record.admin_fqdn.clone()),
        mcid: Some(record.client.originator().to_owned()),
        mcik: Some(wire::kind_of(&record.client).to_owned()),
        fqdn: None,
    }
}

fn key_msg(record: &KeyRegistration) -> KeyRegMsg {
    KeyRegMsg {
        rkid: Some(record.relative_key_id.clone()),
        et: Some(Timestamp(record.expires).format()),
        lbl: (!record.labels.is_empty()).then(|| record.labels.clone()),
        adfq: Some(record.admin_fqdn.clone()),
        suid: Some(u32::from(record.suid.code())),
        tids: None,
        kyv: None,
        smci: Some(record.source.originator().to_owned()),
        smck: Some(wire::kind_of(&record.source).to_owned()),
    }
}
