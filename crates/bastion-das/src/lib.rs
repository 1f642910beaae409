//! A Dynamic Authorization Server (TS-0003 7.3; digest §10): the DAS Server AE that a
//! hosting CSE consults by NOTIFY (direct flow, 7.3.2.2) and that an originator AE may ask
//! for tokens itself (indirect flow, 7.3.2.3; that exchange is out of scope of the
//! specification, Bastion uses the same NOTIFY, see docs/das.md).
//!
//! ```text
//!  NOTIFY {"m2m:seci":{"sit":1,"dreq":{..}}}
//!     │  bastion-http listeners (tls.rs, server::serve): accept loop, caps, timeouts;
//!     │  TLS association → requester = its bound identity (plain HTTP: 4107, unless
//!     │  started insecure)
//!     │  server: HTTP → checks (origin = requester, method, headers, JSON,
//!     │          securityInfo) → 4103/4000/4005/4015
//!     ▼
//!  Das::decide(requester, dreq, now)
//!     │  requester check (trusted CSE, or the originator itself) → 4103
//!     │  tids in dreq → tokens issued earlier with those IDs (same holder, unexpired)
//!     │  otherwise the first matching policy rule (policy.rs):
//!     │     acp   → dai {gp, pl}
//!     │     token → a JWT signed HS256/ES256 (jwt.rs), remembered by its ID
//!     │     none  → neither: denied
//!     ▼
//!  2000 {"m2m:seci":{"sit":2,"dres":{..}}}
//! ```
//!
//! [`consult`] is the CSE side of the direct flow; [`CseConsultant`] the hosting CSE's
//! transport, which marks answers that came over an authenticated association.
#![forbid(unsafe_code)]

pub mod jwt;
pub mod policy;
pub mod server;
pub mod tls;

use bastion_client::{Client, ClientError};
use bastion_proto::security_info::{
    DynAuthDasRequest, DynAuthDasResponse, DynamicAcpInfo, SecurityInfo,
};
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, RequestError, Rsc};
use jwt::{Claims, Signer};
use policy::{Grant, Policy};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

pub use server::{router, serve, Requester};
pub use tls::serve_tls;

/// Failures of configuration and of consulting a DAS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DasError {
    /// The policy file is unreadable or invalid.
    #[error("policy: {0}")]
    Policy(String),
    /// A signing key is unreadable or invalid (never contains key material).
    #[error("signing key: {0}")]
    Key(String),
    /// [`consult`]: the exchange failed.
    #[error("DAS unreachable: {0}")]
    Client(#[from] ClientError),
    /// [`consult`]: the DAS answered with this error status.
    #[error("DAS answered {0:?}")]
    Status(Rsc),
    /// [`consult`]: the DAS answered 2000 without a valid securityInfo response.
    #[error("DAS response malformed: {0}")]
    MalformedResponse(String),
}

/// A token kept for Token-ID requests.
struct IssuedToken {
    token: String,
    holder: String,
    expires: i64,
}

/// Issued tokens by ID, bounded; the oldest are dropped first.
#[derive(Default)]
struct TokenStore {
    by_id: HashMap<String, IssuedToken>,
    order: VecDeque<String>,
}

impl TokenStore {
    fn insert(&mut self, id: String, token: IssuedToken, max: usize, now: i64) {
        self.by_id.retain(|_, t| t.expires > now);
        self.order.retain(|id| self.by_id.contains_key(id));
        while self.by_id.len() >= max.max(1) {
            match self.order.pop_front() {
                Some(old) => {
                    self.by_id.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, token);
    }
}

/// The DAS: a compiled policy, its signing key and the tokens it issued.
pub struct Das {
    policy: Policy,
    signer: Option<Signer>,
    tokens: Mutex<TokenStore>,
}

impl std::fmt::Debug for Das {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Das")
            .field("issuer", &self.policy.issuer)
            .field("rules", &self.policy.rules.len())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Das {
    /// A DAS from a compiled policy and the key its `[signing]` section names.
    pub fn new(policy: Policy, signer: Option<Signer>) -> Result<Das, DasError> {
        if policy.signing.is_some() && signer.is_none() {
            return Err(DasError::Key(
                "the policy names a key but none was given".into(),
            ));
        }
        Ok(Das {
            policy,
            signer,
            tokens: Mutex::new(TokenStore::default()),
        })
    }

    /// Loads the policy file and its key.
    pub fn load(policy_file: &Path) -> Result<Das, DasError> {
        let policy = Policy::load(policy_file)?;
        let signer = policy.signing.as_ref().map(Signer::load).transpose()?;
        Das::new(policy, signer)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Answers one dynamic authorization request sent by `requester` (the `From` of the
    /// NOTIFY) at `now` (Unix seconds). An error is the oneM2M error to send back.
    pub fn decide(
        &self,
        requester: &str,
        dreq: &DynAuthDasRequest,
        now: i64,
    ) -> Result<DynAuthDasResponse, RequestError> {
        if dreq.or.is_empty() || !dreq.or.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(RequestError::bad_request("dreq.or is not an originator"));
        }
        if Operation::from_number(dreq.op).is_none() {
            return Err(RequestError::bad_request("dreq.op is not an operation"));
        }
        let requester_abs = self.policy.normalize(requester);
        let originator = self.policy.normalize(&dreq.or);
        let direct = self.policy.trusted_cses.contains(&requester_abs);
        if !direct && requester_abs != originator {
            tracing::info!(
                requester = %requester_abs, originator = %originator,
                "refused: requester is neither a trusted CSE nor the originator"
            );
            return Err(RequestError::NoPrivilege(
                "requester may not ask for this originator".into(),
            ));
        }
        let flow = if direct { "direct" } else { "indirect" };

        if !dreq.tids.is_empty() {
            return Ok(self.tokens_by_id(&originator, &dreq.tids, now, flow));
        }

        let Some(rule) = self.policy.find(&originator, dreq, Timestamp(now)) else {
            tracing::info!(
                flow, originator = %originator, op = dreq.op, trid = ?dreq.trid,
                "denied: no rule matches"
            );
            return Ok(DynAuthDasResponse::default());
        };
        match &rule.grant {
            Grant::Acp { .. } if !direct => {
                tracing::info!(
                    flow, originator = %originator, op = dreq.op, trid = ?dreq.trid,
                    rule = %rule.name, "denied: ACP grants go to hosting CSEs only"
                );
                Ok(DynAuthDasResponse::default())
            }
            Grant::Acp {
                privileges,
                lifetime,
            } => {
                let mut until = Timestamp(now).plus_seconds(i64::try_from(*lifetime).unwrap_or(0));
                // A shorter proposed lifetime (ppl, TS-0003 7.3.2.2 step 3) is honoured.
                if let Some(p) = dreq.ppl.as_deref().and_then(Timestamp::parse) {
                    if p > Timestamp(now) && p < until {
                        until = p;
                    }
                }
                tracing::info!(
                    flow, originator = %originator, op = dreq.op, trid = ?dreq.trid,
                    rule = %rule.name, until = %until.format(), "granted: dynamic ACP info"
                );
                Ok(DynAuthDasResponse {
                    dai: Some(DynamicAcpInfo {
                        gp: privileges.clone(),
                        pl: Some(until.format()),
                    }),
                    tkns: Vec::new(),
                })
            }
            Grant::Token(grant) => {
                let Some(signer) = &self.signer else {
                    return Err(RequestError::Internal("no signing key".into()));
                };
                let token_id = jwt::new_token_id(&self.policy.token_domain);
                let claims = Claims {
                    token_id: &token_id,
                    issuer: &self.policy.issuer,
                    holder: &originator,
                    now,
                    grant,
                };
                let token = jwt::issue(signer, &claims)
                    .map_err(|_| RequestError::Internal("token signing failed".into()))?;
                let expires = now.saturating_add(i64::try_from(grant.lifetime).unwrap_or(0));
                if let Ok(mut store) = self.tokens.lock() {
                    store.insert(
                        token_id.clone(),
                        IssuedToken {
                            token: token.clone(),
                            holder: originator.clone(),
                            expires,
                        },
                        self.policy.max_tokens,
                        now,
                    );
                }
                tracing::info!(
                    flow, originator = %originator, op = dreq.op, trid = ?dreq.trid,
                    rule = %rule.name, token_id = %token_id, expires, "granted: token issued"
                );
                Ok(DynAuthDasResponse {
                    dai: None,
                    tkns: vec![token],
                })
            }
        }
    }

    /// Token-ID retrieval (TS-0003 7.3.2.3 step 4): the unexpired tokens with these IDs
    /// whose holder is the originator; unknown IDs are left out.
    fn tokens_by_id(
        &self,
        originator: &str,
        ids: &[String],
        now: i64,
        flow: &str,
    ) -> DynAuthDasResponse {
        let mut tkns = Vec::new();
        if let Ok(store) = self.tokens.lock() {
            for id in ids {
                if let Some(t) = store.by_id.get(id) {
                    if t.holder == originator && t.expires > now {
                        tkns.push(t.token.clone());
                    }
                }
            }
        }
        tracing::info!(
            flow, originator = %originator, asked = ids.len(), found = tkns.len(),
            "token-ID request answered"
        );
        DynAuthDasResponse { dai: None, tkns }
    }
}

/// Consults a DAS Server (TS-0003 7.3.2.2 steps 3-4): sends a NOTIFY with securityInfo
/// `sit` = 1 from `cse_originator` to `das_uri` (the DAS Server AE's point of access) and
/// returns the `dres` of its `sit` = 2 answer. Any status other than 2000 is an error.
pub async fn consult(
    client: &Client,
    das_uri: &str,
    cse_originator: &str,
    request: DynAuthDasRequest,
) -> Result<DynAuthDasResponse, DasError> {
    let req = Request {
        op: Some(Operation::Notify),
        to: String::new(),
        fr: Some(cse_originator.to_owned()),
        rvi: Some("3".into()),
        pc: Some(SecurityInfo::DasRequest(request).to_pc()),
        ..Request::default()
    };
    let resp = client.send(das_uri, &req).await?;
    if resp.rsc != Rsc::Ok {
        return Err(DasError::Status(resp.rsc));
    }
    let pc = resp
        .pc
        .ok_or_else(|| DasError::MalformedResponse("no content".into()))?;
    match SecurityInfo::from_pc(&pc) {
        Ok(SecurityInfo::DasResponse(dres)) => Ok(dres),
        Ok(SecurityInfo::DasRequest(_)) => {
            Err(DasError::MalformedResponse("sit 1 in a response".into()))
        }
        Err(e) => Err(DasError::MalformedResponse(e.to_string())),
    }
}

/// The hosting CSE's side of the direct procedure (TS-0003 7.3.2.2 step 3): how
/// `bastion serve` reaches a DAS Server, over the oneM2M HTTP binding.
///
/// An `https://` point of access is reached over a security association with the
/// configured credential ([`DasAssociation`]); its answers are marked as coming from
/// the DAS identity that association was checked against. A plain `http://` one is
/// reached without, and its answers carry no identity, so the core keeps only their
/// tokens (which are signed) and ignores their dynamic ACP information.
pub struct CseConsultant {
    plain: Client,
    association: Option<DasAssociation>,
    /// The CSE's own ID, the `From` of the NOTIFY.
    cse_originator: String,
}

/// A client whose TLS handshake authenticates the DAS Server, and the identity it checks.
pub struct DasAssociation {
    /// Over TLS (PSK or certificate), refusing any other peer.
    pub client: Client,
    /// The DAS Server AE's AE-ID the association is bound to: the binding of the PSK,
    /// or the SAN the server certificate must carry.
    pub das_id: String,
}

impl CseConsultant {
    pub fn new(
        plain: Client,
        association: Option<DasAssociation>,
        cse_originator: impl Into<String>,
    ) -> Self {
        CseConsultant {
            plain,
            association,
            cse_originator: cse_originator.into(),
        }
    }
}

#[async_trait::async_trait]
impl bastion_core::dynamic::DasConsultant for CseConsultant {
    async fn consult(
        &self,
        das_uri: &str,
        request: DynAuthDasRequest,
    ) -> Result<bastion_core::dynamic::DasAnswer, String> {
        let secure = das_uri
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        let (client, authenticated_das) = if secure {
            let Some(a) = &self.association else {
                return Err("no credential configured for an https:// DAS Server".into());
            };
            (&a.client, Some(a.das_id.clone()))
        } else {
            (&self.plain, None)
        };
        let response = consult(client, das_uri, &self.cse_originator, request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bastion_core::dynamic::DasAnswer {
            response,
            authenticated_das,
        })
    }
}
