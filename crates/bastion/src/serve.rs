//! `bastion serve`: logging set-up, the server's life cycle and its orderly stop.
//!
//! Start: open the store (`<data-dir>/bastion.db`) and the audit log, bind the HTTP listener
//! (and, with `[tls]`, open the credential store, build the TLS acceptor and bind the TLS
//! listener), build the location PIP when `[location]` is set, open the CSE (its CSEBase
//! `poa` advertises the bound address), start the background tasks, and only then log
//! `listening on ADDR:PORT` (then `accepting TLS on ADDR:PORT`), so whoever waits for that
//! line can send requests at once.
//!
//! Background tasks: the expiry sweep; with TLS, [`CREDENTIALS_RELOAD`]: the credential
//! store is re-read when another process (`bastion credentials`) changed it, so adds and
//! revocations reach new handshakes and live connections; with a network location source,
//! its polling and the reconciliation of its area subscriptions with every `aclr` circle
//! of the ACPs, every [`CIRCLES_RECONCILE`]. The location notification receiver is
//! mounted on the plain HTTP listener (docs/security.md).
//!
//! Stop, on SIGINT or SIGTERM: the accept loop is dropped (no new connections), the expiry
//! sweep is stopped, requests in flight get [`DRAIN_GRACE`] to finish, then the runtime is
//! shut down and the store closed; its writer commits every batch already queued before it
//! exits. A request answered with 2xx was durable before its answer was sent, so nothing
//! acknowledged can be lost by stopping.

use crate::settings::Settings;
use crate::Failure;
use bastion_client::Schemes;
use bastion_core::audit::{FileSink, NullSink, Rotation, DEFAULT_QUEUE};
use bastion_core::{AuditSink, Binding, Cse, Listener, Services};
use bastion_http::{HttpBinding, HttpsBinding};
use bastion_location::{Circle, LocationPip};
use bastion_store::Store;
use bastion_store_sqlite::SqliteStore;
use bastion_tls::{CredentialRegistry, ServerCertificate, ServerSettings, StoreKey, TlsServer};
use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// How long requests in flight may take to finish once a stop was asked for.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How often the credential store file is checked for changes by another process.
pub const CREDENTIALS_RELOAD: Duration = Duration::from_secs(1);
/// How often the location subscriptions are matched with the ACPs' `aclr` circles.
pub const CIRCLES_RECONCILE: Duration = Duration::from_secs(10);

/// Runs the server until a stop signal; returns once everything is closed.
pub fn serve(settings: Settings) -> Result<(), Failure> {
    init_logging(&settings.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bastion-worker")
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;

    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        Failure::Runtime(format!(
            "cannot create {}: {e}",
            settings.data_dir.display()
        ))
    })?;
    let _lock = lock_data_dir(&settings.data_dir, "by another bastion process")?;
    let db_path = settings.db_path();
    let store = Arc::new(SqliteStore::open(&db_path).map_err(|e| {
        Failure::Runtime(format!("cannot open the store {}: {e}", db_path.display()))
    })?);

    let audit = open_audit(&settings)?;
    let result = runtime.block_on(run(&settings, store.clone(), audit));

    // Dropping the runtime drops every remaining task, and with them the last references
    // to the CSE; dropping the store then lets its writer finish the queue and exit.
    drop(runtime);
    drop(store);
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

/// The security audit sink: the rotating file of `[audit]`, or nothing when disabled.
fn open_audit(settings: &Settings) -> Result<Arc<dyn AuditSink>, Failure> {
    if !settings.audit_enabled {
        return Ok(Arc::new(NullSink));
    }
    let path = settings.audit_file();
    let rotation = Rotation {
        max_bytes: settings.audit_max_bytes,
        keep: settings.audit_keep,
    };
    let sink = FileSink::open(&path, rotation, DEFAULT_QUEUE).map_err(|e| {
        Failure::Runtime(format!("cannot open the audit log {}: {e}", path.display()))
    })?;
    Ok(Arc::new(sink))
}

/// Takes an exclusive lock on `<data-dir>/bastion.lock` for as long as the returned file
/// lives: two processes working on one data directory would each trust their own
/// in-memory tree. `held` completes the message when another process has the lock.
pub(crate) fn lock_data_dir(dir: &std::path::Path, held: &str) -> Result<std::fs::File, Failure> {
    let path = dir.join("bastion.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::Runtime(format!("cannot open {}: {e}", path.display())))?;
    file.try_lock().map_err(|_| {
        Failure::Runtime(format!("data directory {} is in use {held}", dir.display()))
    })?;
    Ok(file)
}

/// Plain-text logs on standard error; colours only when standard error is a terminal.
fn init_logging(filter: &str) -> Result<(), Failure> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| Failure::Config(format!("invalid log filter {filter:?}: {e}")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| Failure::Runtime(format!("cannot set up logging: {e}")))
}

async fn run(
    settings: &Settings,
    store: Arc<SqliteStore>,
    audit: Arc<dyn AuditSink>,
) -> Result<(), Failure> {
    let plain = match settings.http_enabled {
        true => Some(bind_plain(settings.listen).await?),
        false => None,
    };
    if settings.trust_loopback_cses {
        tracing::warn!(
            "trust-loopback-cses = true: any local process may claim the CSE-ID of a CSE \
             that registered without a security association (development only)"
        );
    }
    let tls = match &settings.tls {
        Some(_) => Some(open_tls(settings).await?),
        None => None,
    };
    let location = open_location(settings)?;
    // Settings refuse `[http] enabled = false` without a TLS listener.
    let bound = match (&plain, &tls) {
        (Some((_, bound)), _) => *bound,
        (None, Some(tls)) => tls.bound,
        (None, None) => return Err(Failure::Config("no listener configured".to_owned())),
    };

    let store: Arc<dyn Store> = store;
    // The XML codec types the custom attributes of `<flexContainer>`s by the same
    // specializations as the CSE (before any binding decodes a request).
    bastion_proto::flex::install(settings.flex.specializations.clone());
    let mut config = settings.cse_config(bound);
    if plain.is_none() || !settings.http_advertise {
        // A TLS-only CSE, or one told not to, advertises no plain point of access.
        config.poa.clear();
    }
    config.authorization = settings
        .authorization_config()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(tls) = &tls {
        // The secure point of access first: peers try `poa` in order (TS-0001 9.6.3).
        config.poa.insert(0, format!("https://{}", tls.bound));
    }
    // The MQTT binding (docs/bindings.md): one broker session for requests to this CSE
    // and for its own requests to `mqtt://` points of access.
    let mqtt = match &settings.mqtt {
        Some(m) => {
            let binding_config = m
                .config(&settings.cse_id, |p| settings.data_path(p))
                .map_err(|e| Failure::Runtime(format!("mqtt: {e}")))?;
            let (binding, transport) = bastion_mqtt::connect(binding_config)
                .await
                .map_err(|e| Failure::Runtime(format!("mqtt: {e}")))?;
            if m.advertise {
                config.poa.push(m.broker.url());
            }
            Some((binding, transport))
        }
        None => None,
    };
    // The CoAP binding (docs/bindings.md): one UDP socket for requests to this CSE and
    // for its own requests to `coap://` points of access, whose answers come back to it.
    let coap = match settings
        .coap
        .as_ref()
        .and_then(|c| c.listen.map(|l| (c, l)))
    {
        Some((c, listen)) => {
            let (binding, transport) =
                bastion_coap::bind(listen, c.config.clone())
                    .await
                    .map_err(|e| {
                        Failure::Runtime(format!("cannot listen for CoAP on {listen}: {e}"))
                    })?;
            if c.advertise {
                config.poa.push(binding.listener().point_of_access());
            }
            Some((binding, transport))
        }
        None => None,
    };
    // CoAP over DTLS: the HTTPS listener's TLS server judges every handshake, so one
    // credential (and one revocation) holds on HTTPS, WSS and CoAPS alike.
    let coaps = match &settings.coap {
        Some(c) => open_coaps(c, tls.as_ref()).await?,
        None => None,
    };
    if let (Some(binding), Some(c)) = (&coaps, &settings.coap) {
        if c.advertise {
            // Beside the plain one; the secure point of access is listed after https.
            config.poa.push(binding.listener().point_of_access());
        }
    }
    let mut schemes = Schemes::http();
    if let (Some((_, transport)), Some(m)) = (&mqtt, &settings.mqtt) {
        schemes.register(m.broker.scheme(), Arc::new(transport.clone()));
    }
    // The WebSocket binding (docs/bindings.md): its listeners, and its transport for the
    // `ws://` and `wss://` points of access of registrees connected to them.
    let ws = match &settings.ws {
        Some(w) => Some(open_ws(settings, w, tls.as_ref()).await?),
        None => None,
    };
    if let Some(ws) = &ws {
        config.poa.extend(ws.advertised.iter().cloned());
        let transport = Arc::new(bastion_ws::WsTransport::new(ws.hub.clone()));
        schemes.register("ws", transport.clone());
        schemes.register("wss", transport);
    }
    if let Some((_, transport)) = &coap {
        schemes.register("coap", Arc::new(transport.clone()));
    }
    // Forwarding and registration (docs/federation.md): the registrar's client carries
    // the configured credential; another CSE's `https://` point of access is reached
    // over TLS-PSK (a `coaps://` one over DTLS-PSK) with the key shared with it, looked
    // up in the TLS listener's own registry so that a revocation cuts both directions at
    // once (TS-0003 8.2.1).
    let registrar_client = match &settings.registrar {
        Some(r) => Some(
            r.client(&settings.sp_id, |p| settings.data_path(p))
                .map_err(Failure::Runtime)?,
        ),
        None => None,
    };
    let outbound = Arc::new(
        crate::outbound::OutboundRoutes::new(
            // One transport per URI scheme reached without this CSE's associations; a
            // further binding's crate adds its scheme above.
            schemes,
            settings
                .registrar
                .as_ref()
                .zip(registrar_client.clone())
                .map(|(r, c)| (r.url.clone(), c)),
            tls.as_ref()
                .map(|t| (t.registry.clone(), settings.sp_id.clone())),
        )
        .with_max_in_flight(settings.limits.max_outbound_requests)
        .with_coap_config(
            settings
                .coap
                .as_ref()
                .map(|c| c.config.clone())
                .unwrap_or_default(),
        ),
    );
    // Fields this binary does not set keep their defaults (the core adds services).
    let sink = Arc::new(crate::notifications::EngineSink::new(
        &settings.cse_id,
        outbound.clone(),
        &settings.limits,
    ));
    #[allow(clippy::needless_update)]
    let services = Services {
        audit,
        location: location
            .clone()
            .map(|pip| pip as Arc<dyn bastion_policy::LocationService>),
        // Dynamic authorization (TS-0003 7.3.2.2): DAS Servers are asked as this CSE,
        // over a security association for `https://` (das_consult.rs).
        das: Some(crate::das_consult::consultant(
            settings,
            tls.as_ref().map(|t| &t.registry),
        )?),
        outbound: Some(outbound.clone()),
        // An identity holding a credential of the TLS listener's store may be claimed
        // only inside its association (docs/security.md, "Identity binding").
        credentials: tls.as_ref().map(|t| {
            Arc::new(crate::bindings::RegistryBindings::new(t.registry.clone()))
                as Arc<dyn bastion_core::CredentialBindings>
        }),
        // Subscriptions' notifications, delivered as this CSE over the same routes
        // (docs/notifications.md).
        notifications: Some(sink.clone()),
        ..Services::default()
    };
    let cse = Cse::open_with(config, store, services)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot start the CSE: {e}")))?;
    // Delivery attempts feed the subscriptions' statistics (`nse`, `nsi`).
    sink.observe(&cse);
    let mut tasks = vec![cse.spawn_expiry(), cse.spawn_announcement_retry()];
    // Registration checks in both directions (docs/federation.md, "Liveness").
    let check_every = (settings.liveness_check_secs > 0)
        .then(|| Duration::from_secs(settings.liveness_check_secs));
    if let (Some(r), Some(client)) = (&settings.registrar, registrar_client) {
        tasks.push(crate::registrar::spawn(
            cse.clone(),
            r.clone(),
            client,
            check_every,
        ));
    }
    if let Some(every) = check_every {
        tasks.push(crate::liveness::spawn(cse.clone(), every));
    }
    if let Some(tls) = &tls {
        tasks.push(spawn_revocation_refresh(tls.server.clone()));
        if let Some((fetcher, interval)) = &tls.crl_fetcher {
            tasks.push(spawn_crl_fetch(fetcher.clone(), *interval));
        }
    }
    let extra_routes = match &location {
        Some(pip) => {
            tasks.extend(pip.spawn_polling());
            if pip.has_network() {
                tasks.push(spawn_circles(pip.clone(), cse.clone()));
            }
            pip.router()
        }
        None => axum::Router::new(),
    };
    let mut stop = StopSignal::register()
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;

    match &plain {
        Some(_) => tracing::info!(
            cse_id = %settings.cse_id,
            cse_name = %settings.cse_name,
            cse_type = %settings.cse_type,
            data_dir = %settings.data_dir.display(),
            protection = %settings.plain_protection(),
            location = location.is_some(),
            "listening on {bound}"
        ),
        None => tracing::info!(
            cse_id = %settings.cse_id,
            cse_name = %settings.cse_name,
            cse_type = %settings.cse_type,
            data_dir = %settings.data_dir.display(),
            "listening on {bound} (TLS only: the plain HTTP listener is off)"
        ),
    }
    if let Some(tls) = &tls {
        tracing::info!(
            psk = tls.psk,
            certificate = tls.certificate,
            protection = %tls.protection,
            "accepting TLS on {}",
            tls.bound
        );
        if tls.peer_http_authentication {
            tracing::warn!(
                "peer HTTP authentication is on: clients without a certificate are accepted \
                 and bound by HTTP Basic/Bearer credentials, a weaker assurance than PSK or \
                 certificates (docs/security.md)"
            );
        }
    }

    // Building a binding fails only if its listener cannot tell its address; the
    // background tasks are stopped below either way.
    let mqtt_binding = mqtt.map(|(binding, _)| binding);
    let coap_listeners = CoapListeners {
        plain: coap.map(|(binding, _)| binding),
        secure: coaps,
    };
    let served = match bindings(
        settings,
        plain,
        tls,
        mqtt_binding,
        coap_listeners,
        ws,
        extra_routes,
    ) {
        Err(failure) => Some(Err(failure)),
        Ok(bindings) => {
            // Each listener's loop runs on a worker of the runtime, not on the thread
            // blocked in `block_on`: the tasks a loop spawns per datagram or connection
            // then start on the same worker, without a wake-up of another thread each.
            let mut serving: Vec<Serving> = bindings
                .into_iter()
                .map(|binding| {
                    let listener = binding.listener();
                    let cse = cse.clone();
                    let task = tokio::spawn(async move { binding.serve(cse).await });
                    (listener, task)
                })
                .collect();
            let ended = tokio::select! {
                (listener, result) = first_to_end(&mut serving) => Some(result.map_err(|e| {
                    Failure::Runtime(format!(
                        "{} listener on {} failed: {e}",
                        listener.scheme, listener.local
                    ))
                })),
                signal = stop.wait() => {
                    tracing::info!(signal, "stop requested; no longer accepting connections");
                    None
                }
            };
            // The accept loops (and the listeners) are dropped here.
            for (_, task) in &serving {
                task.abort();
            }
            for (_, task) in serving {
                let _ = task.await;
            }
            ended
        }
    };

    for task in &tasks {
        task.abort();
    }
    // A sweep cut short loses nothing: what it did not commit is swept again next start.
    for task in tasks {
        let _ = task.await;
    }

    match served {
        Some(Ok(())) => {
            tracing::warn!("a listener stopped by itself");
            Ok(())
        }
        Some(Err(failure)) => Err(failure),
        None => {
            drain(&cse).await;
            Ok(())
        }
    }
}

/// One binding per configured listener, all through the core's [`Binding`] port: plain
/// HTTP (with the location PIP's receiver on it), HTTP over TLS, MQTT, CoAP and
/// WebSocket (plain and over TLS). A further binding is one more `push` of its
/// crate's `Binding`.
fn bindings(
    settings: &Settings,
    plain: Option<(tokio::net::TcpListener, SocketAddr)>,
    tls: Option<Tls>,
    mqtt: Option<bastion_mqtt::MqttBinding>,
    coap: CoapListeners,
    ws: Option<WsListeners>,
    extra_routes: axum::Router,
) -> Result<Vec<Box<dyn Binding>>, Failure> {
    let gate = crate::limits::connection_gate(&settings.limits);
    let limits = settings.http_limits();
    let unready = |e: std::io::Error| Failure::Runtime(format!("listener not ready: {e}"));
    let mut bindings: Vec<Box<dyn Binding>> = Vec::new();
    if let Some((listener, _)) = plain {
        let http = HttpBinding::new(listener, limits, gate.clone()).map_err(unready)?;
        bindings.push(Box::new(http.with_routes(extra_routes)));
    }
    if let Some(t) = tls {
        let https = HttpsBinding::new(t.listener, t.server, limits, gate.clone());
        bindings.push(Box::new(https.map_err(unready)?));
    }
    if let Some(mqtt) = mqtt {
        bindings.push(Box::new(mqtt));
    }
    if let Some(coap) = coap.plain {
        bindings.push(Box::new(coap));
    }
    if let Some(coaps) = coap.secure {
        bindings.push(Box::new(coaps));
    }
    if let Some(ws) = ws {
        if let Some(listener) = ws.plain {
            let plain = bastion_ws::WsBinding::plain(listener, ws.hub.clone());
            bindings.push(Box::new(plain.map_err(unready)?));
        }
        if let Some((listener, server)) = ws.secure {
            let secure = bastion_ws::WsBinding::secure(listener, server, ws.hub.clone());
            bindings.push(Box::new(secure.map_err(unready)?));
        }
    }
    Ok(bindings)
}

/// The CoAP listeners, bound: plain UDP and over DTLS.
struct CoapListeners {
    plain: Option<bastion_coap::CoapBinding>,
    secure: Option<bastion_coap::CoapsBinding>,
}

/// Binds the `coaps://` listener on the TLS listener's server (its credential store,
/// frameworks and CRLs); `[coap] tls-listen` without `[tls]` is a configuration error.
async fn open_coaps(
    coap: &crate::coap::CoapSettings,
    tls: Option<&Tls>,
) -> Result<Option<bastion_coap::CoapsBinding>, Failure> {
    let Some(addr) = coap.tls_listen else {
        return Ok(None);
    };
    let Some(tls) = tls else {
        return Err(Failure::Config(
            "[coap] tls-listen (--coaps-listen) needs [tls]".into(),
        ));
    };
    let limits = coap.dtls.limits(&coap.config);
    let binding = bastion_coap::bind_dtls(addr, tls.server.clone(), limits, coap.config.clone())
        .await
        .map_err(|e| {
            Failure::Runtime(format!("cannot listen for CoAP over DTLS on {addr}: {e}"))
        })?;
    Ok(Some(binding))
}

/// The WebSocket listeners, bound, with the hub they share and the points of access
/// `poa` advertises for them.
struct WsListeners {
    hub: Arc<bastion_ws::Hub>,
    plain: Option<tokio::net::TcpListener>,
    /// The listener and the HTTPS listener's TLS server: one credential store and one
    /// set of `[tls]` settings for both.
    secure: Option<(tokio::net::TcpListener, Arc<bastion_tls::TlsServer>)>,
    advertised: Vec<String>,
}

/// Binds the configured WebSocket listeners (`wss://` on the TLS listener's server;
/// settings refuse `tls-listen` without `[tls]`).
async fn open_ws(
    settings: &Settings,
    ws: &crate::ws::WsSettings,
    tls: Option<&Tls>,
) -> Result<WsListeners, Failure> {
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::Runtime(format!("ws: cannot listen on {addr}: {e}")))
    };
    let bound = |l: &tokio::net::TcpListener| {
        l.local_addr()
            .map_err(|e| Failure::Runtime(format!("ws: listener not ready: {e}")))
    };
    let mut advertised = Vec::new();
    let secure = match (ws.tls_listen, tls) {
        (Some(addr), Some(tls)) => {
            let listener = bind(addr).await?;
            advertised.push(format!("wss://{}", bound(&listener)?));
            Some((listener, tls.server.clone()))
        }
        (Some(_), None) => return Err(Failure::Config("[ws] tls-listen needs [tls]".into())),
        (None, _) => None,
    };
    let plain = match ws.listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            advertised.push(format!("ws://{}", bound(&listener)?));
            Some(listener)
        }
        None => None,
    };
    if !ws.advertise {
        advertised.clear();
    }
    Ok(WsListeners {
        hub: bastion_ws::Hub::new(ws.config(&settings.cse_id, &settings.sp_id)),
        plain,
        secure,
        advertised,
    })
}

/// A binding serving, resolving with its listener and how it ended.
/// A listener and the task running its binding.
type Serving = (Listener, tokio::task::JoinHandle<std::io::Result<()>>);

/// Waits for the first binding to end; never resolves when there are none. A binding
/// whose task panicked ends with that as its error.
async fn first_to_end(serving: &mut [Serving]) -> (Listener, std::io::Result<()>) {
    std::future::poll_fn(|cx| {
        serving
            .iter_mut()
            .find_map(|(listener, task)| match Pin::new(task).poll(cx) {
                Poll::Ready(ended) => Some((
                    *listener,
                    ended.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()))),
                )),
                Poll::Pending => None,
            })
            .map_or(Poll::Pending, Poll::Ready)
    })
    .await
}

/// Binds the plain HTTP listener; warns when it is off loopback (`insecure = true`).
async fn bind_plain(listen: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Failure> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {listen}: {e}")))?;
    let bound: SocketAddr = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the bound address: {e}")))?;
    if !bound.ip().is_loopback() {
        tracing::warn!(
            "plain HTTP on {bound} (insecure = true): requests there carry no security \
             association and anyone who can reach it may claim any originator"
        );
    }
    Ok((listener, bound))
}

/// The TLS listener, ready to serve.
struct Tls {
    listener: tokio::net::TcpListener,
    bound: SocketAddr,
    server: Arc<TlsServer>,
    registry: Arc<CredentialRegistry>,
    psk: bool,
    certificate: bool,
    peer_http_authentication: bool,
    protection: crate::settings::Protection,
    /// `[tls] crl-url`, fetched periodically.
    crl_fetcher: Option<(bastion_est::crl_fetch::CrlFetcher, std::time::Duration)>,
}

/// Opens the credential store, reads the certificate files, builds the acceptor and binds
/// the TLS listener.
async fn open_tls(settings: &Settings) -> Result<Tls, Failure> {
    let Some(t) = &settings.tls else {
        return Err(Failure::Config("no [tls] listener configured".to_owned()));
    };
    let read = |p: &std::path::Path| {
        let path = settings.data_path(p);
        std::fs::read_to_string(&path)
            .map_err(|e| Failure::Runtime(format!("tls: cannot read {}: {e}", path.display())))
    };
    let key_file = t
        .credentials_key_file
        .as_deref()
        .map(|p| settings.data_path(p));
    let key = StoreKey::from_env_or_file(key_file.as_deref())
        .map_err(|e| Failure::Runtime(format!("tls: credential store key: {e}")))?;
    let store = settings.data_path(&t.credentials_store);
    let registry = CredentialRegistry::open(&store, key)
        .map_err(|e| Failure::Runtime(format!("tls: credential store: {e}")))?;
    let mut server_certificates = Vec::new();
    if let (Some(chain), Some(key)) = (&t.certificate_file, &t.key_file) {
        server_certificates.push(ServerCertificate {
            server_names: Vec::new(),
            chain_pem: read(chain)?,
            key_pem: bastion_tls::secret::read_secret_text(&settings.data_path(key))
                .map_err(|e| Failure::Runtime(format!("tls: {e}")))?,
        });
    }
    let trust_anchors: Vec<String> = t
        .trust_anchor_files
        .iter()
        .map(|p| read(p))
        .collect::<Result<_, _>>()?;
    let mut crl_files: Vec<PathBuf> = t.crl_files.iter().map(|p| settings.data_path(p)).collect();
    let crl_fetcher = match &t.crl_url {
        Some(url) => {
            let fetcher = first_crl_fetch(settings, url, &trust_anchors).await?;
            crl_files.push(fetcher.target().to_path_buf());
            Some((fetcher, t.crl_refresh))
        }
        None => None,
    };
    let server_settings = ServerSettings {
        psk: t.psk,
        certificate: t.certificate,
        require_client_certificate: t.require_client_certificate,
        server_certificates,
        trust_anchors,
        crl_files,
        disable_tls13: t.disable_tls13,
        // [provisioning]: the key servers whose keys the listener accepts (GBA's BSF,
        // the MAF, the MEF), each asked only for its own identities.
        remote_psk: bastion_tls::RemotePskSources::combine(
            [
                settings
                    .provisioning
                    .remote_psk_source(|p| settings.data_path(p))?,
                crate::maf_source::remote_psk(settings)?,
                crate::mef_source::from_settings(settings)?,
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
        peer_http_authentication: t.peer_http_authentication,
    };
    let server = TlsServer::new(&server_settings, registry.clone())
        .map_err(|e| Failure::Runtime(format!("tls: {e}")))?;
    let listener = tokio::net::TcpListener::bind(t.listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {} (TLS): {e}", t.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the bound TLS address: {e}")))?;
    Ok(Tls {
        listener,
        bound,
        server: Arc::new(server),
        registry,
        psk: t.psk,
        certificate: t.certificate,
        peer_http_authentication: t.peer_http_authentication,
        protection: t.protection(),
        crl_fetcher,
    })
}

/// The first fetch of `[tls] crl-url`, before the listener is built (it loads the CRL
/// file). Fails closed: when the distribution point cannot give a valid CRL and no
/// previously fetched one is on disk, the CSE does not start; with one on disk it starts
/// with that (still checked: an expired CRL fails every certificate handshake).
async fn first_crl_fetch(
    settings: &Settings,
    url: &str,
    trust_anchors: &[String],
) -> Result<bastion_est::crl_fetch::CrlFetcher, Failure> {
    let target = settings.data_path(std::path::Path::new(crate::settings::FETCHED_CRL_FILE));
    let fetcher = bastion_est::crl_fetch::CrlFetcher::new(url, &target, trust_anchors.to_vec())
        .map_err(|e| Failure::Config(format!("tls: {e}")))?;
    match fetcher.fetch_once().await {
        Ok(fetched) => tracing::info!(url, ?fetched, "CRL fetched"),
        Err(e) if target.exists() => tracing::warn!(
            url, error = %e,
            "CRL not fetched; the one fetched before stays in force"
        ),
        Err(e) => {
            return Err(Failure::Runtime(format!(
                "tls: crl-url {url}: {e}; no CRL fetched before, so the listener cannot check revocation"
            )))
        }
    }
    Ok(fetcher)
}

/// Fetches `[tls] crl-url` every `interval`; a newer CRL is written to the file the
/// revocation refresh reloads within a second. Failures are logged (each one) and keep
/// the CRL in force; once it expires every certificate handshake fails, which is the
/// closed way to fail.
fn spawn_crl_fetch(
    fetcher: bastion_est::crl_fetch::CrlFetcher,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first fetch was made at start
        loop {
            tick.tick().await;
            match fetcher.fetch_once().await {
                Ok(bastion_est::crl_fetch::Fetched::Updated(number)) => {
                    tracing::info!(number, "newer CRL fetched")
                }
                Ok(bastion_est::crl_fetch::Fetched::Unchanged(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "CRL not fetched; the previous one stays in force")
                }
            }
        }
    })
}

/// Keeps revocation fresh (`TlsServer::refresh_revocation`): the credential store and
/// the CRL files are re-read when they changed; a failed read keeps what was in force
/// and is logged (the file may be half-way through a replacement on filesystems without
/// atomic rename); a CRL about to expire is reported.
fn spawn_revocation_refresh(server: Arc<TlsServer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CREDENTIALS_RELOAD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            server.refresh_revocation();
        }
    })
}

/// The location PIP of `[location]`, checked in full.
fn open_location(settings: &Settings) -> Result<Option<Arc<LocationPip>>, Failure> {
    let Some(config) = settings.location_config() else {
        return Ok(None);
    };
    let config = config.map_err(Failure::Config)?;
    let pip = LocationPip::new(&config, &settings.local_identity())
        .map_err(|e| Failure::Config(format!("[location]: {e}")))?;
    Ok(Some(Arc::new(pip)))
}

/// Keeps the network location server's area subscriptions equal to the circles of the
/// ACPs' `aclr` rules: at once, then whenever they changed, checked every
/// [`CIRCLES_RECONCILE`]. A failed reconciliation is tried again next time.
fn spawn_circles(pip: Arc<LocationPip>, cse: Arc<Cse>) -> tokio::task::JoinHandle<()> {
    let cse = Arc::downgrade(&cse);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CIRCLES_RECONCILE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut applied: Option<Vec<Circle>> = None;
        loop {
            tick.tick().await;
            let Some(cse) = cse.upgrade() else { break };
            let circles: Vec<Circle> = cse
                .location_regions()
                .iter()
                .filter_map(Circle::from_region)
                .collect();
            drop(cse);
            if applied.as_ref() == Some(&circles) {
                continue;
            }
            match pip.set_circles(&circles).await {
                Ok(report) if report.errors.is_empty() => {
                    tracing::info!(
                        created = report.created,
                        deleted = report.deleted,
                        unchanged = report.unchanged,
                        "location subscriptions reconciled"
                    );
                    applied = Some(circles);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "location subscriptions not reconciled"),
            }
        }
    })
}

/// Waits until no connection holds the CSE any more, or [`DRAIN_GRACE`] has passed.
async fn drain(cse: &Arc<Cse>) {
    let deadline = Instant::now() + DRAIN_GRACE;
    while Arc::strong_count(cse) > 1 {
        if Instant::now() >= deadline {
            tracing::info!(
                connections = Arc::strong_count(cse) - 1,
                "closing connections still open after the grace period"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGINT and SIGTERM, registered before the server announces itself so an early signal
/// is not lost.
struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    #[cfg(unix)]
    fn register() -> std::io::Result<StopSignal> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignal {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn register() -> std::io::Result<StopSignal> {
        Ok(StopSignal {})
    }

    /// Resolves with the signal's name when one arrives.
    #[cfg(unix)]
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    async fn wait(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl-c",
            Err(_) => std::future::pending().await,
        }
    }
}
