//! The CSE's outbound port ([`bastion_core::outbound::Outbound`]) over the transports of
//! `bastion-client`, chosen by each point of access's URI scheme: forwarding to remote
//! CSEs (TS-0001 7.3.2.6) and requests to notification targets; also the notification
//! engine's [`bastion_notify::Routes`], so that subscription notifications take the same
//! routes.
//!
//! Owns which transport carries a request to a point of access ([`Route`]):
//!
//! * the registrar's `url` (and any `poa` with the same scheme, host and port): the
//!   registrar client, over the configured TLS security association when `https://`;
//! * an `https://` point of access of a peer with which this CSE shares a PSK (the
//!   credential registry of its TLS listener holds a KpsaID bound to the peer's CSE-ID,
//!   or to the AE-ID of an AE hosted here whose own point of access it is):
//!   a TLS-PSK client presenting that KpsaID, the same key serving both directions of the
//!   pair (TS-0003 8.2.1). The registry is the listener's own, so a revocation reaches
//!   outbound connections as it reaches inbound ones; clients are cached per credential
//!   and dropped whenever the registry changes;
//! * a `coaps://` point of access of such a peer: CoAP over a DTLS-PSK association
//!   presenting the same KpsaID (`bastion_coap::CoapsTransport`), with the same cache;
//! * a point of access of any other scheme a transport is registered for
//!   ([`bastion_client::Schemes`]: `http` by default; `mqtt`, `coap`, `ws` when their
//!   crates register one, `bastion serve`): that transport, except
//!   towards a peer this CSE shares a credential with (active or revoked) that
//!   advertises an `https://` or `coaps://` one: a failed or revoked association never
//!   falls back to a transport outside it;
//! * anything else (an `https://` or `coaps://` point of access without a credential, a
//!   scheme no transport serves): skipped, as unreachable.
//!
//! Responses are returned as the peer sent them. Keys are never logged.
//!
//! At most `max_in_flight` requests are outstanding at once ([`OutboundRoutes::with_max_in_flight`],
//! `[limits] max-outbound-requests`); one more is refused at once, unsent
//! ([`OutboundError::Saturated`]), so a forwarding loop or a slow peer cannot pile up
//! connections and tasks without bound.

use bastion_client::transport::scheme_of;
use bastion_client::{Client, ClientError, Schemes, TlsConnector, Transport};
use bastion_coap::{CoapConfig, CoapsTransport};
use bastion_core::outbound::{Outbound, OutboundError};
use bastion_proto::{Request, Response};
use bastion_tls::{ClientOptions, CredentialRegistry, DtlsClient, PeerPsk, PskKey, TlsClient};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Built-in default of `[limits] max-outbound-requests`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Outbound requests, routed by association and URI scheme.
pub struct OutboundRoutes {
    /// Slots for requests in flight; one is held for the whole of [`Outbound::send`].
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    /// Saturation is logged once a minute, however many requests it refuses.
    saturated: bastion_core::throttle::Throttle,
    /// The transports of the schemes reached without a security association of this
    /// CSE's (`http` by default).
    schemes: Schemes,
    /// The registrar's URL and the client holding its credential.
    registrar: Option<(String, Client)>,
    /// The PSKs shared with peer CSEs (the TLS listener's registry).
    peers: Option<PeerCredentials>,
    /// The limits of requests to `coaps://` points of access (`[coap]`).
    coap: CoapConfig,
}

/// Peer CSEs' PSK credentials and the TLS clients built from them.
struct PeerCredentials {
    registry: Arc<CredentialRegistry>,
    /// This CSE's SP-ID (`//sp`): a binding may name the peer in absolute form.
    sp_id: String,
    cache: Mutex<ClientCache>,
}

/// TLS-PSK and DTLS-PSK clients by KpsaID, and what the registry answered for each
/// peer, valid for one generation of the registry. The answers are kept because every
/// notification to a local AE asks for its peer and the registry's lookup scans every
/// credential; a change of the registry (an addition, a revocation, a reload) starts a
/// new generation and drops both.
#[derive(Default)]
struct ClientCache {
    generation: u64,
    clients: HashMap<String, PeerClients>,
    answers: HashMap<String, Answer>,
}

/// At most this many peers' answers are kept; past it they are all dropped and asked
/// again.
const MAX_CACHED_ANSWERS: usize = 10_000;

/// The registry's answer for one peer, without the key (kept in its clients).
#[derive(Clone)]
enum Answer {
    None,
    Revoked,
    Active(String),
}

/// The clients presenting one KpsaID: over TLS (`https://`) and over DTLS (`coaps://`).
#[derive(Clone)]
struct PeerClients {
    https: Client,
    coaps: Arc<dyn Transport>,
}

/// How a request reaches one point of access.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    Registrar,
    /// The transport registered for this scheme.
    Scheme(String),
    /// TLS-PSK with this KpsaID.
    Psk(String),
    /// CoAP over DTLS-PSK with this KpsaID.
    DtlsPsk(String),
    /// Not tried, for this reason.
    Skip(String),
}

/// What this CSE holds for the peer of one request.
enum PeerState {
    /// No peer (an AE or URL target), or no credential shared with it.
    Unknown,
    /// An active PSK and the clients presenting it.
    Active {
        kpsa_id: String,
        clients: PeerClients,
    },
    /// Only revoked credentials: the peer may no longer be reached.
    Revoked,
}

impl OutboundRoutes {
    /// `schemes`: the transports of the points of access reached without this CSE's
    /// security associations (`http`, and each further binding's); `registrar`: the
    /// registrar's URL and client; `peers`: the credential registry of the TLS listener
    /// and this CSE's SP-ID, to reach other CSEs over TLS-PSK.
    pub fn new(
        schemes: Schemes,
        registrar: Option<(String, Client)>,
        peers: Option<(Arc<CredentialRegistry>, String)>,
    ) -> OutboundRoutes {
        OutboundRoutes {
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            saturated: bastion_core::throttle::Throttle::per_minute(),
            schemes,
            registrar,
            peers: peers.map(|(registry, sp_id)| PeerCredentials {
                registry,
                sp_id,
                cache: Mutex::new(ClientCache::default()),
            }),
            coap: CoapConfig::default(),
        }
    }

    /// Requests to `coaps://` points of access within the limits of `config`.
    pub fn with_coap_config(mut self, config: CoapConfig) -> OutboundRoutes {
        self.coap = config;
        self
    }

    /// At most `max` (at least 1) requests in flight at once.
    pub fn with_max_in_flight(mut self, max: usize) -> OutboundRoutes {
        self.max_in_flight = max.max(1);
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(self.max_in_flight));
        self
    }

    /// The credential state for `peer`, looked up anew for every request so that a
    /// revocation applies to the very next one.
    fn peer_state(&self, peer: Option<&str>) -> Result<PeerState, String> {
        let (Some(peer), Some(creds)) = (peer, &self.peers) else {
            return Ok(PeerState::Unknown);
        };
        // A CSE-ID may be bound in absolute form; an AE-ID is looked up as given.
        let absolute = format!("{}{peer}", creds.sp_id);
        let forms = if peer.starts_with('/') {
            vec![peer, absolute.as_str()]
        } else {
            vec![peer]
        };
        let mut cache = creds
            .cache
            .lock()
            .map_err(|_| "client cache poisoned".to_owned())?;
        // The generation is read before the lookup: a change after it is seen by the
        // next request, which then drops every cached client.
        let generation = creds.registry.generation();
        if cache.generation != generation {
            cache.clients.clear();
            cache.answers.clear();
            cache.generation = generation;
        }
        let known = match cache.answers.get(peer) {
            Some(Answer::None) => return Ok(PeerState::Unknown),
            Some(Answer::Revoked) => return Ok(PeerState::Revoked),
            Some(Answer::Active(kpsa_id)) => cache.clients.get(kpsa_id).map(|c| (kpsa_id, c)),
            None => None,
        };
        if let Some((kpsa_id, clients)) = known {
            return Ok(PeerState::Active {
                kpsa_id: kpsa_id.clone(),
                clients: clients.clone(),
            });
        }
        if cache.answers.len() >= MAX_CACHED_ANSWERS {
            cache.answers.clear();
        }
        let answer = creds.registry.psk_for_peer(&forms);
        cache.answers.insert(
            peer.to_owned(),
            match &answer {
                PeerPsk::None => Answer::None,
                PeerPsk::Revoked => Answer::Revoked,
                PeerPsk::Active { kpsa_id, .. } => Answer::Active(kpsa_id.clone()),
            },
        );
        match answer {
            PeerPsk::None => Ok(PeerState::Unknown),
            PeerPsk::Revoked => Ok(PeerState::Revoked),
            PeerPsk::Active { kpsa_id, key } => {
                let clients = match cache.clients.get(&kpsa_id) {
                    Some(c) => c.clone(),
                    None => {
                        let c = self.peer_clients(peer, &kpsa_id, key)?;
                        cache.clients.insert(kpsa_id.clone(), c.clone());
                        c
                    }
                };
                Ok(PeerState::Active { kpsa_id, clients })
            }
        }
    }

    /// The TLS-PSK and DTLS-PSK clients presenting `kpsa_id` with `key` to `peer`.
    fn peer_clients(&self, peer: &str, kpsa_id: &str, key: PskKey) -> Result<PeerClients, String> {
        let options = ClientOptions::default();
        let dtls = DtlsClient::psk(kpsa_id, key.clone(), &options)
            .map_err(|e| format!("DTLS-PSK client for {peer}: {e}"))?;
        let tls = TlsClient::psk(kpsa_id, key, &options)
            .map_err(|e| format!("TLS-PSK client for {peer}: {e}"))?;
        Ok(PeerClients {
            https: Client::with_connector(Arc::new(TlsConnector::new(tls)), Default::default()),
            coaps: Arc::new(CoapsTransport::new(dtls, self.coap.clone())),
        })
    }

    /// The route to `target`, a point of access of `peer` (when known) whose `poa`
    /// lists an `https://` or `coaps://` one when `secure_offered`.
    fn route(
        &self,
        peer: Option<&str>,
        state: &PeerState,
        secure_offered: bool,
        target: &str,
    ) -> Route {
        if let Some((url, _)) = &self.registrar {
            if origin(target) == origin(url) {
                return Route::Registrar;
            }
        }
        let peer = peer.unwrap_or("the target");
        let scheme = scheme(target);
        match (scheme.as_str(), state) {
            ("https", PeerState::Active { kpsa_id, .. }) => Route::Psk(kpsa_id.clone()),
            ("coaps", PeerState::Active { kpsa_id, .. }) => Route::DtlsPsk(kpsa_id.clone()),
            ("https" | "coaps", PeerState::Revoked) => Route::Skip(format!(
                "{target}: the credential shared with {peer} is revoked"
            )),
            ("https" | "coaps", PeerState::Unknown) => Route::Skip(format!(
                "{target}: no client credential for this point of access"
            )),
            (_, _) if self.schemes.get(&scheme).is_none() => {
                Route::Skip(format!("{target}: unsupported scheme"))
            }
            // TS-0003 8.2.1: once a security association with the peer exists (or was
            // revoked), any other way to it would bypass it.
            (_, PeerState::Active { .. } | PeerState::Revoked) if secure_offered => Route::Skip(
                format!("{target}: {peer} is reached only over its security association"),
            ),
            (_, _) => Route::Scheme(scheme),
        }
    }

    fn transport(&self, route: &Route, state: &PeerState) -> Option<Arc<dyn Transport>> {
        let client = |c: &Client| Arc::new(c.clone()) as Arc<dyn Transport>;
        match (route, state) {
            (Route::Registrar, _) => self.registrar.as_ref().map(|(_, c)| client(c)),
            (Route::Scheme(scheme), _) => self.schemes.get(scheme).cloned(),
            (Route::Psk(_), PeerState::Active { clients, .. }) => Some(client(&clients.https)),
            (Route::DtlsPsk(_), PeerState::Active { clients, .. }) => Some(clients.coaps.clone()),
            _ => None,
        }
    }

    /// For each of `poa` (the points of access of `peer`, when the request goes to
    /// another CSE), the transport that reaches it, or why it must not be tried. Decided
    /// anew on every call, so a revocation applies to the next request.
    pub fn routes(
        &self,
        peer: Option<&str>,
        poa: &[String],
    ) -> Result<Vec<bastion_notify::Route>, String> {
        let state = self.peer_state(peer)?;
        let secure_offered = poa.iter().any(|p| is_secure(&scheme(p)));
        Ok(poa
            .iter()
            .map(|target| {
                let route = self.route(peer, &state, secure_offered, target);
                match self.transport(&route, &state) {
                    Some(transport) => Ok(transport),
                    None => Err(match route {
                        Route::Skip(why) => why,
                        _ => format!("{target}: no client"),
                    }),
                }
            })
            .collect())
    }
}

/// Subscription notifications (bastion-notify) take the routes of forwarded requests: a
/// receiver behind another CSE is reached over the association with that CSE, never
/// around it (TS-0003 8.2.1).
impl bastion_notify::Routes for OutboundRoutes {
    fn routes(&self, peer: Option<&str>, targets: &[String]) -> Vec<bastion_notify::Route> {
        match OutboundRoutes::routes(self, peer, targets) {
            Ok(routes) => routes,
            Err(why) => targets.iter().map(|_| Err(why.clone())).collect(),
        }
    }
}

/// `scheme://authority` of a URI, lower-cased.
fn origin(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let authority = rest.split('/').next().unwrap_or("");
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

fn scheme(uri: &str) -> String {
    scheme_of(uri).unwrap_or_default()
}

/// The schemes this CSE reaches a peer on only over the security association it shares
/// with that peer.
fn is_secure(scheme: &str) -> bool {
    matches!(scheme, "https" | "coaps")
}

#[async_trait::async_trait]
impl Outbound for OutboundRoutes {
    async fn send(
        &self,
        peer: Option<&str>,
        poa: &[String],
        req: Request,
    ) -> Result<Response, OutboundError> {
        let Ok(_slot) = self.in_flight.try_acquire() else {
            let why = format!(
                "the limit of {} outbound requests in flight is reached (max-outbound-requests)",
                self.max_in_flight
            );
            if self.saturated.ready() {
                tracing::warn!("outbound requests refused: {why}");
            }
            return Err(OutboundError::Saturated(why));
        };
        let routes = self.routes(peer, poa).map_err(OutboundError::Unreachable)?;
        let mut last = String::from("no usable point of access");
        for (target, route) in poa.iter().zip(routes) {
            let transport = match route {
                Ok(transport) => transport,
                Err(why) => {
                    last = why;
                    continue;
                }
            };
            match transport.send(target, &req).await {
                Ok(resp) => return Ok(resp),
                // Nothing reached the peer: the next point of access may be tried.
                Err(e @ (ClientError::Connect(_) | ClientError::Handshake(_))) => {
                    last = format!("{target}: {e}");
                }
                Err(e @ (ClientError::UnknownRsc(_) | ClientError::MalformedResponse(_))) => {
                    return Err(OutboundError::InvalidResponse(e.to_string()))
                }
                Err(e) => return Err(OutboundError::Unreachable(format!("{target}: {e}"))),
            }
        }
        Err(OutboundError::Unreachable(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_tls::{Binding, PskKey, StoreKey};

    const SP: &str = "//bastion.example";
    const KEY: &str = "000102030405060708090a0b0c0d0e0f";

    fn registry() -> (tempfile::TempDir, Arc<CredentialRegistry>) {
        let dir = tempfile::tempdir().expect("dir");
        let reg = CredentialRegistry::open(
            dir.path().join("credentials.store"),
            StoreKey::generate().expect("key"),
        )
        .expect("registry");
        (dir, reg)
    }

    fn add(reg: &CredentialRegistry, id: &str, cse: &str) {
        reg.add_psk(
            id,
            PskKey::from_hex(KEY).expect("psk"),
            Some(Binding::cse(cse).expect("binding")),
        )
        .expect("add");
    }

    /// An outbound side whose registry holds `mn@bastion.example`, bound to `/id-mn`.
    fn outbound_with_mn_key() -> (tempfile::TempDir, Arc<CredentialRegistry>, OutboundRoutes) {
        let (dir, reg) = registry();
        add(&reg, "mn@bastion.example", "/id-mn");
        let out = OutboundRoutes::new(Schemes::http(), None, Some((reg.clone(), SP.into())));
        (dir, reg, out)
    }

    /// How many TLS-PSK clients `out` has built and kept.
    fn cached_clients(out: &OutboundRoutes) -> usize {
        let peers = out.peers.as_ref().expect("peers");
        let cache = peers.cache.lock().expect("lock");
        cache.clients.len()
    }

    /// The routes `out` takes to each of `poa` for `peer`.
    fn routes(out: &OutboundRoutes, peer: Option<&str>, poa: &[&str]) -> Vec<Route> {
        let state = out.peer_state(peer).expect("state");
        let secure = poa.iter().any(|p| is_secure(&scheme(p)));
        poa.iter()
            .map(|t| {
                let r = out.route(peer, &state, secure, t);
                // Every route but a skip has a client.
                assert_eq!(
                    out.transport(&r, &state).is_some(),
                    !matches!(r, Route::Skip(_))
                );
                r
            })
            .collect()
    }

    fn skipped(r: &Route) -> bool {
        matches!(r, Route::Skip(_))
    }

    #[test]
    fn registrar_url_selects_the_registrar_client() {
        let out = OutboundRoutes::new(
            Schemes::http(),
            Some(("https://127.0.0.1:8443".into(), Client::default())),
            None,
        );
        let r = routes(
            &out,
            None,
            &[
                "https://127.0.0.1:8443",
                "HTTPS://127.0.0.1:8443/",
                "https://127.0.0.1:9443",
                "http://127.0.0.1:8080",
                "mqtt://broker",
            ],
        );
        assert_eq!(r[0], Route::Registrar);
        assert_eq!(r[1], Route::Registrar);
        assert!(skipped(&r[2]));
        assert_eq!(r[3], Route::Scheme("http".into()));
        assert!(skipped(&r[4]));
        // The registrar's URL wins even when the peer is known.
        let r = routes(&out, Some("/id-in"), &["https://127.0.0.1:8443"]);
        assert_eq!(r, [Route::Registrar]);
    }

    #[test]
    fn ts0003_8_2_1_https_poa_of_a_peer_with_a_shared_psk_uses_it() {
        let (_dir, reg, out) = outbound_with_mn_key();
        add(&reg, "asn@bastion.example", "//bastion.example/id-asn");
        let poa = ["https://127.0.0.1:9443", "http://127.0.0.1:9080"];
        let r = routes(&out, Some("/id-mn"), &poa);
        assert_eq!(r[0], Route::Psk("mn@bastion.example".into()));
        // A peer that offers TLS is never reached over plain HTTP.
        assert!(skipped(&r[1]), "{r:?}");
        // A binding in absolute form names the same CSE.
        let r = routes(&out, Some("/id-asn"), &poa);
        assert_eq!(r[0], Route::Psk("asn@bastion.example".into()));
        // The client is built once per credential.
        out.peer_state(Some("/id-mn")).expect("state");
        assert_eq!(cached_clients(&out), 2);
    }

    #[test]
    fn ts0003_8_2_1_no_credential_for_the_peer_or_no_peer_is_skipped() {
        let (_dir, _reg, out) = outbound_with_mn_key();
        let poa = ["https://127.0.0.1:9443", "http://127.0.0.1:9080"];
        // Another CSE's key is not used; as before, plain HTTP remains (no association
        // with that CSE exists to be bypassed).
        let r = routes(&out, Some("/id-other"), &poa);
        assert!(skipped(&r[0]));
        assert_eq!(r[1], Route::Scheme("http".into()));
        // An AE's or URL target: no peer, no credential.
        let r = routes(&out, None, &poa);
        assert!(skipped(&r[0]));
        assert_eq!(r[1], Route::Scheme("http".into()));
        // Without a TLS listener there is no registry at all.
        let bare = OutboundRoutes::new(Schemes::http(), None, None);
        let r = routes(&bare, Some("/id-mn"), &poa);
        assert!(skipped(&r[0]));
        assert_eq!(r[1], Route::Scheme("http".into()));
    }

    #[test]
    fn ts0003_8_2_1_peer_offering_only_plain_http_is_reached_plainly() {
        let (_dir, _reg, out) = outbound_with_mn_key();
        let r = routes(&out, Some("/id-mn"), &["http://127.0.0.1:9080"]);
        assert_eq!(r, [Route::Scheme("http".into())]);
    }

    #[test]
    fn revocation_applies_to_the_next_request_and_never_falls_back_to_plain() {
        let (_dir, reg, out) = outbound_with_mn_key();
        let poa = ["https://127.0.0.1:9443", "http://127.0.0.1:9080"];
        let r = routes(&out, Some("/id-mn"), &poa);
        assert_eq!(r[0], Route::Psk("mn@bastion.example".into()));
        reg.revoke("mn@bastion.example").expect("revoke");
        let r = routes(&out, Some("/id-mn"), &poa);
        assert!(r.iter().all(skipped), "{r:?}");
        // The revoked credential's client is gone from the cache.
        assert_eq!(cached_clients(&out), 0);
    }

    /// A transport for a scheme outside `bastion-client`: answers 2000 and records the
    /// targets it carried.
    #[derive(Default)]
    struct FakeBinding(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Transport for FakeBinding {
        async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
            self.0.lock().expect("lock").push(target.to_owned());
            Ok(Response::new(
                bastion_proto::Rsc::Ok,
                req.rqi.clone().unwrap_or_default(),
            ))
        }
    }

    #[tokio::test]
    async fn a_registered_scheme_carries_requests_and_notifications() {
        let mqtt = Arc::new(FakeBinding::default());
        let out = OutboundRoutes::new(Schemes::http().with("mqtt", mqtt.clone()), None, None);
        let r = routes(&out, None, &["MQTT://broker:1883/ae", "coap://h:5683"]);
        assert_eq!(r[0], Route::Scheme("mqtt".into()));
        assert!(skipped(&r[1]), "{r:?}");
        // The outbound port: the unsupported scheme is passed over, the registered one
        // answers.
        let poa = [
            "coap://h:5683".to_owned(),
            "mqtt://broker:1883/ae".to_owned(),
        ];
        let req = Request {
            rqi: Some("q1".into()),
            ..Request::default()
        };
        let resp = out.send(None, &poa, req).await.expect("answered");
        assert_eq!(
            (resp.rsc, resp.rqi.as_str()),
            (bastion_proto::Rsc::Ok, "q1")
        );
        // The notification engine's routes: the same transport.
        let routes = bastion_notify::Routes::routes(&out, None, &poa);
        assert_eq!(
            routes[0].as_ref().err().map(String::as_str),
            Some("coap://h:5683: unsupported scheme")
        );
        let transport = routes[1].as_ref().expect("mqtt route");
        transport
            .send(&poa[1], &Request::default())
            .await
            .expect("answered");
        assert_eq!(
            *mqtt.0.lock().expect("lock"),
            [poa[1].clone(), poa[1].clone()]
        );
    }

    #[tokio::test]
    async fn a_coaps_target_without_a_shared_credential_is_refused_with_its_reason() {
        let out = OutboundRoutes::new(Schemes::http(), None, None);
        let poa = ["coaps://127.0.0.1:1/ae".to_owned()];
        let err = out
            .send(None, &poa, Request::default())
            .await
            .expect_err("unreachable");
        let why = "coaps://127.0.0.1:1/ae: no client credential for this point of access";
        assert!(
            matches!(err, OutboundError::Unreachable(ref w) if w == why),
            "{err}"
        );
        let routes = bastion_notify::Routes::routes(&out, None, &poa);
        assert_eq!(routes[0].as_ref().err().map(String::as_str), Some(why));
    }

    #[test]
    fn registry_answers_are_kept_until_the_registry_changes() {
        let (_dir, reg, out) = outbound_with_mn_key();
        let poa = ["coaps://127.0.0.1:5684"];
        let answers = |out: &OutboundRoutes| {
            let peers = out.peers.as_ref().expect("peers");
            let cache = peers.cache.lock().expect("lock");
            cache.answers.len()
        };
        routes(&out, Some("/id-mn"), &poa);
        routes(&out, Some("Cnobody"), &poa);
        assert_eq!(answers(&out), 2);
        // Asked again: answered from the cache, the same route.
        let r = routes(&out, Some("/id-mn"), &poa);
        assert_eq!(r[0], Route::DtlsPsk("mn@bastion.example".into()));
        assert_eq!(answers(&out), 2);
        // A revocation is a new generation: the kept answers are dropped.
        reg.revoke("mn@bastion.example").expect("revoke");
        let r = routes(&out, Some("/id-mn"), &poa);
        assert!(skipped(&r[0]), "{r:?}");
        assert_eq!(answers(&out), 1);
    }

    #[test]
    fn ts0003_8_2_1_a_peer_offering_coaps_is_reached_over_dtls_psk_only() {
        let (_dir, reg, out) = outbound_with_mn_key();
        let poa = ["coaps://127.0.0.1:5684", "http://127.0.0.1:8080"];
        let r = routes(&out, Some("/id-mn"), &poa);
        assert_eq!(r[0], Route::DtlsPsk("mn@bastion.example".into()));
        assert!(skipped(&r[1]), "{r:?}");
        assert_eq!(cached_clients(&out), 1);
        reg.revoke("mn@bastion.example").expect("revoke");
        let r = routes(&out, Some("/id-mn"), &poa);
        assert_eq!(
            r[0],
            Route::Skip(
                "coaps://127.0.0.1:5684: the credential shared with /id-mn is revoked".into()
            )
        );
        assert!(skipped(&r[1]), "{r:?}");
    }

    #[tokio::test]
    async fn an_unsupported_scheme_is_unreachable_without_a_connection() {
        let out = OutboundRoutes::new(Schemes::http(), None, None);
        let poa = [
            "coap://127.0.0.1:1/cse".to_owned(),
            "ws://127.0.0.1:1".to_owned(),
        ];
        let err = out
            .send(None, &poa, Request::default())
            .await
            .expect_err("unreachable");
        assert!(
            matches!(err, OutboundError::Unreachable(ref why) if why == "ws://127.0.0.1:1: unsupported scheme"),
            "{err}"
        );
    }

    #[test]
    fn ts0003_8_2_1_a_peer_with_an_association_is_not_reached_over_another_scheme() {
        let (_dir, _reg, mut out) = outbound_with_mn_key();
        let mqtt: Arc<dyn Transport> = Arc::new(FakeBinding::default());
        out.schemes.register("mqtt", mqtt);
        let poa = ["https://127.0.0.1:9443", "mqtt://127.0.0.1:1883"];
        let r = routes(&out, Some("/id-mn"), &poa);
        assert_eq!(r[0], Route::Psk("mn@bastion.example".into()));
        assert!(skipped(&r[1]), "{r:?}");
        // Without a secure point of access on offer, the registered scheme is used.
        let r = routes(&out, Some("/id-mn"), &poa[1..]);
        assert_eq!(r, [Route::Scheme("mqtt".into())]);
    }

    #[tokio::test]
    async fn everything_skipped_is_unreachable_without_a_connection() {
        let (_dir, reg) = registry();
        add(&reg, "mn@bastion.example", "/id-mn");
        reg.revoke("mn@bastion.example").expect("revoke");
        let out = OutboundRoutes::new(Schemes::http(), None, Some((reg, SP.into())));
        let poa = [
            "https://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:1".to_owned(),
        ];
        let err = out
            .send(Some("/id-mn"), &poa, Request::default())
            .await
            .expect_err("unreachable");
        assert!(
            matches!(err, OutboundError::Unreachable(ref why) if why.contains("revoked") || why.contains("security association")),
            "{err}"
        );
    }
}
