//! A MAF Client (TS-0003 8.8.2): the eight procedures as calls, for a device registering
//! a key for its CSE and for a CSE retrieving the keys presented to it. The same client
//! is a MEF Client (8.3.5.2) with [`MafClient::for_function`]`(`[`crate::MEF`]`)`.
//!
//! Requests go through [`bastion_client::Client`] (the workspace's HTTP client, encoding
//! through `wire::http`). A client opened with [`MafClient::session`] runs over exactly
//! one MAF security association and knows the Kc/KcID exported from it, so a key
//! registration without a key value registers that key (both ends export the same bytes,
//! 10.3.1); once the MAF closes that association the session's requests fail. A client
//! built with [`MafClient::over`] takes any client (pooled, reconnecting) and can
//! register only keys it sends.

use std::sync::Arc;

use async_trait::async_trait;
use bastion_client::{Client, ClientConfig, ClientError, Connector, Endpoint, Io};
use bastion_keys::{ExportedKey, KeyIdentifier, Suid};
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, Rsc};
use bastion_tls::{Binding, PskKey, TlsClient};
use parking_lot::Mutex;

use crate::wire::{self, ClientRegMsg, KeyRegMsg};

/// Why a procedure did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum MafClientError {
    /// No answer: connection, handshake, timeout, malformed HTTP.
    #[error("unreachable: {0}")]
    Unreachable(#[from] ClientError),
    /// The function (`MAF`, `MEF`) refused with this status and reason.
    #[error("{function} answered {rsc}: {reason}", rsc = .rsc.code())]
    Refused {
        function: &'static str,
        rsc: Rsc,
        reason: String,
    },
    /// The function answered success with content this client cannot use.
    #[error("response malformed: {0}")]
    Malformed(String),
    /// A key registration without a key value needs a session's exported key.
    #[error("no exported key: open the client with MafClient::session or send a key value")]
    NoSessionKey,
}

/// A client registration as the MAF answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub id: String,
    pub expires: i64,
    pub labels: Vec<String>,
    pub admin_fqdn: String,
    pub client_id: String,
}

/// What a key registration or retrieval returns.
#[derive(Clone, Debug)]
pub struct MafKey {
    /// `RelativeKeyID@MAF-FQDN`.
    pub identifier: KeyIdentifier,
    /// The key value (Kc).
    pub key: PskKey,
    pub expires: i64,
    pub suid: Suid,
    /// The Source MAF Client.
    pub source: Binding,
    pub target_ids: Vec<String>,
    pub admin_fqdn: String,
    pub labels: Vec<String>,
}

/// A key registration request.
#[derive(Clone, Debug)]
pub struct KeyRequest {
    pub expires: i64,
    pub labels: Vec<String>,
    pub admin_fqdn: String,
    pub suid: Suid,
    pub target_ids: Vec<String>,
    /// Self-generated value; `None`: Kc exported from the session.
    pub key: Option<PskKey>,
}

/// A MAF Client speaking to one MAF.
#[derive(Clone, Debug)]
pub struct MafClient {
    client: Client,
    url: String,
    maf_fqdn: String,
    origin: String,
    session_key: Option<Arc<ExportedKey>>,
    function: crate::Function,
}

/// Hands out one already-established stream, once.
struct OneAssociation(Mutex<Option<Box<dyn Io>>>);

#[async_trait]
impl Connector for OneAssociation {
    async fn connect(&self, _endpoint: &Endpoint) -> Result<Box<dyn Io>, ClientError> {
        self.0.lock().take().ok_or_else(|| {
            ClientError::Connect(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the MAF session has ended",
            ))
        })
    }
}

impl MafClient {
    /// Requests over `client` to the MAF at `url` (`https://host:port`), as `origin`
    /// (the identity the client's MAF credential is bound to).
    pub fn over(client: Client, url: &str, maf_fqdn: &str, origin: &str) -> MafClient {
        MafClient {
            client,
            url: url.trim_end_matches('/').to_owned(),
            maf_fqdn: maf_fqdn.to_owned(),
            origin: origin.to_owned(),
            session_key: None,
            function: crate::MAF,
        }
    }

    /// The same client speaking to `function` (the MEF's client procedures, 8.3.5).
    pub fn for_function(mut self, function: crate::Function) -> MafClient {
        self.function = function;
        self
    }

    /// Opens one MAF security association with `tls` (the MAF handshake, 8.8.2.2) and
    /// exports Kc/KcID from it. `server_name` goes to SNI (default: the URL's host).
    pub async fn session(
        tls: &TlsClient,
        url: &str,
        server_name: Option<&str>,
        maf_fqdn: &str,
        origin: &str,
        config: ClientConfig,
    ) -> Result<MafClient, MafClientError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| ClientError::InvalidTarget(url.to_owned()))?;
        let host = uri
            .host()
            .ok_or_else(|| ClientError::InvalidTarget(url.to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let open = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(ClientError::Connect)?;
            let _ = tcp.set_nodelay(true);
            let stream = tls
                .connect(server_name.unwrap_or(&host), tcp)
                .await
                .map_err(ClientError::Handshake)?;
            let key = bastion_tls::exporter::export_connection_key(stream.ssl())
                .map_err(|e| ClientError::Connect(std::io::Error::other(e.to_string())))?;
            Ok::<_, ClientError>((stream, key))
        };
        let (stream, key) = tokio::time::timeout(config.timeout, open)
            .await
            .map_err(|_| ClientError::Timeout(config.timeout))??;
        let connector = OneAssociation(Mutex::new(Some(Box::new(stream))));
        let mut client = MafClient::over(
            Client::with_connector(Arc::new(connector), config),
            url,
            maf_fqdn,
            origin,
        );
        client.session_key = Some(Arc::new(key));
        Ok(client)
    }

    /// The Kc/KcID exported from this session's association, if it is one.
    pub fn session_key(&self) -> Option<&ExportedKey> {
        self.session_key.as_deref()
    }

    pub fn maf_fqdn(&self) -> &str {
        &self.maf_fqdn
    }

    /// The HTTP client and the URL (`https://host:port`) requests go to: the way to
    /// speak another protocol over the same association (EST on the MEF's listener).
    pub fn http(&self) -> (&Client, &str) {
        (&self.client, &self.url)
    }

    /// One request to `<FQDN>/<path>` as this client; the content of the answer when its
    /// rsc is `expect`, else the refusal with its `m2m:dbg` reason.
    pub async fn send(
        &self,
        op: Operation,
        path: &str,
        ty: Option<u64>,
        pc: Option<serde_json::Value>,
        expect: Rsc,
    ) -> Result<Option<serde_json::Value>, MafClientError> {
        let req = Request {
            op: Some(op),
            to: format!("{}/{path}", self.maf_fqdn),
            fr: Some(self.origin.clone()),
            ty,
            pc,
            rvi: Some("3".into()),
            ..Request::default()
        };
        let resp = self.client.send(&self.url, &req).await?;
        if resp.rsc != expect {
            let reason = resp
                .pc
                .as_ref()
                .and_then(|pc| pc.get("m2m:dbg"))
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned();
            return Err(MafClientError::Refused {
                function: self.function.name,
                rsc: resp.rsc,
                reason,
            });
        }
        Ok(resp.pc)
    }

    /// MAF Client Registration (8.8.2.3).
    pub async fn register(
        &self,
        expires: i64,
        labels: Vec<String>,
        admin_fqdn: &str,
    ) -> Result<Registered, MafClientError> {
        let msg = ClientRegMsg {
            et: Some(Timestamp(expires).format()),
            lbl: (!labels.is_empty()).then_some(labels),
            adfq: Some(admin_fqdn.to_owned()),
            ..ClientRegMsg::default()
        };
        let pc = self
            .send(
                Operation::Create,
                wire::CLIENTS,
                Some(self.function.client_reg_ty),
                Some(wire::wrap(self.function.client_reg_root, &msg)),
                Rsc::Created,
            )
            .await?;
        let got: ClientRegMsg = wire::unwrap(self.function.client_reg_root, pc.as_ref())
            .map_err(MafClientError::Malformed)?;
        Ok(Registered {
            id: got.mcri.ok_or_else(|| malformed("mcri missing"))?,
            expires: parse_time(got.et.as_deref())?,
            labels: got.lbl.unwrap_or_default(),
            admin_fqdn: got.adfq.ok_or_else(|| malformed("adfq missing"))?,
            client_id: got.mcid.ok_or_else(|| malformed("mcid missing"))?,
        })
    }

    /// MAF Client Configuration Retrieval (8.8.2.4): the `maf:mcc` content.
    pub async fn configuration(&self, id: &str) -> Result<ClientRegMsg, MafClientError> {
        let pc = self
            .send(
                Operation::Retrieve,
                &format!("{}/{id}", wire::CLIENTS),
                None,
                None,
                Rsc::Ok,
            )
            .await?;
        wire::unwrap(self.function.client_cfg_root, pc.as_ref()).map_err(MafClientError::Malformed)
    }

    /// MAF Client Registration Update (8.8.2.5): the echoed fields.
    pub async fn update_registration(
        &self,
        id: &str,
        expires: Option<i64>,
        labels: Option<Vec<String>>,
    ) -> Result<ClientRegMsg, MafClientError> {
        let msg = ClientRegMsg {
            et: expires.map(|e| Timestamp(e).format()),
            lbl: labels,
            ..ClientRegMsg::default()
        };
        let pc = self
            .send(
                Operation::Update,
                &format!("{}/{id}", wire::CLIENTS),
                None,
                Some(wire::wrap(self.function.client_reg_root, &msg)),
                Rsc::Updated,
            )
            .await?;
        wire::unwrap(self.function.client_reg_root, pc.as_ref()).map_err(MafClientError::Malformed)
    }

    /// MAF Client De-Registration (8.8.2.6).
    pub async fn deregister(&self, id: &str) -> Result<(), MafClientError> {
        self.send(
            Operation::Delete,
            &format!("{}/{id}", wire::CLIENTS),
            None,
            None,
            Rsc::Deleted,
        )
        .await
        .map(|_| ())
    }

    /// MAF Key Registration (8.8.2.7): the registered key and its identifier.
    pub async fn register_key(&self, request: KeyRequest) -> Result<MafKey, MafClientError> {
        let exported = match &request.key {
            Some(_) => None,
            None => Some(
                self.session_key
                    .clone()
                    .ok_or(MafClientError::NoSessionKey)?,
            ),
        };
        let msg = KeyRegMsg {
            et: Some(Timestamp(request.expires).format()),
            lbl: (!request.labels.is_empty()).then(|| request.labels.clone()),
            adfq: Some(request.admin_fqdn.clone()),
            suid: Some(u32::from(request.suid.code())),
            tids: Some(request.target_ids.clone()),
            kyv: request.key.as_ref().map(PskKey::to_hex),
            ..KeyRegMsg::default()
        };
        let pc = self
            .send(
                Operation::Create,
                wire::KEYS,
                Some(wire::TY_SYMM_KEY_REG),
                Some(wire::wrap(self.function.key_reg_root, &msg)),
                Rsc::Created,
            )
            .await?;
        let got: KeyRegMsg = wire::unwrap(self.function.key_reg_root, pc.as_ref())
            .map_err(MafClientError::Malformed)?;
        let rkid = got.rkid.clone().ok_or_else(|| malformed("rkid missing"))?;
        let key = match (request.key, exported) {
            (Some(key), _) => key,
            (None, Some(exported)) => {
                // 10.3.5: the MAF names an exported key by the hex of KcID.
                if rkid != bastion_keys::hex::encode(exported.key_id()) {
                    return Err(malformed("rkid is not the session's KcID"));
                }
                PskKey::new(exported.key()).map_err(|_| malformed("exported key"))?
            }
            (None, None) => return Err(MafClientError::NoSessionKey),
        };
        self.key_from(&rkid, got, key)
    }

    /// MAF Key Retrieval (8.8.2.8).
    pub async fn retrieve_key(&self, relative_key_id: &str) -> Result<MafKey, MafClientError> {
        let pc = self
            .send(
                Operation::Retrieve,
                &format!("{}/{relative_key_id}", wire::KEYS),
                None,
                None,
                Rsc::Ok,
            )
            .await?;
        let got: KeyRegMsg = wire::unwrap(self.function.key_reg_root, pc.as_ref())
            .map_err(MafClientError::Malformed)?;
        let hex = got.kyv.clone().ok_or_else(|| malformed("kyv missing"))?;
        let key = PskKey::from_hex(&hex).map_err(|_| malformed("kyv is not a key"))?;
        self.key_from(relative_key_id, got, key)
    }

    /// MAF Key Registration Update (8.8.2.9): the changed fields.
    pub async fn update_key(
        &self,
        relative_key_id: &str,
        expires: Option<i64>,
        labels: Option<Vec<String>>,
        target_ids: Option<Vec<String>>,
    ) -> Result<KeyRegMsg, MafClientError> {
        let msg = KeyRegMsg {
            et: expires.map(|e| Timestamp(e).format()),
            lbl: labels,
            tids: target_ids,
            ..KeyRegMsg::default()
        };
        let pc = self
            .send(
                Operation::Update,
                &format!("{}/{relative_key_id}", wire::KEYS),
                None,
                Some(wire::wrap(self.function.key_reg_root, &msg)),
                Rsc::Updated,
            )
            .await?;
        wire::unwrap(self.function.key_reg_root, pc.as_ref()).map_err(MafClientError::Malformed)
    }

    /// MAF Key De-Registration (8.8.2.10).
    pub async fn deregister_key(&self, relative_key_id: &str) -> Result<(), MafClientError> {
        self.send(
            Operation::Delete,
            &format!("{}/{relative_key_id}", wire::KEYS),
            None,
            None,
            Rsc::Deleted,
        )
        .await
        .map(|_| ())
    }

    fn key_from(&self, rkid: &str, got: KeyRegMsg, key: PskKey) -> Result<MafKey, MafClientError> {
        let identifier = KeyIdentifier::new(rkid, &self.maf_fqdn)
            .map_err(|e| malformed(&format!("RelativeKeyID: {e}")))?;
        let suid = got
            .suid
            .ok_or_else(|| malformed("suid missing"))
            .and_then(|s| Suid::from_code(s).map_err(|e| malformed(&e.to_string())))?;
        let (id, kind) = got
            .smci
            .as_deref()
            .zip(got.smck.as_deref())
            .ok_or_else(|| malformed("smci/smck missing"))?;
        let source =
            wire::binding_of(kind, id).ok_or_else(|| malformed("smci/smck is not an identity"))?;
        Ok(MafKey {
            identifier,
            key,
            expires: parse_time(got.et.as_deref())?,
            suid,
            source,
            target_ids: got.tids.unwrap_or_default(),
            admin_fqdn: got.adfq.unwrap_or_default(),
            labels: got.lbl.unwrap_or_default(),
        })
    }
}

fn malformed(what: &str) -> MafClientError {
    MafClientError::Malformed(what.to_owned())
}

fn parse_time(text: Option<&str>) -> Result<i64, MafClientError> {
    text.and_then(Timestamp::parse)
        .map(|t| t.0)
        .ok_or_else(|| malformed("et missing or not a timestamp"))
}
