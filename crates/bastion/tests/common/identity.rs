//! A server with a TLS-PSK listener beside its plain one, PSK credentials added with
//! `bastion credentials add`, and requests sent inside an association: oneM2M requests
//! with `bastion req`, any HTTP request (the operator endpoints) with hyper over
//! `bastion_tls::TlsClient`. Used by tests/security_identity.rs.

use super::provision::{add_psk_credential, psk_req, psk_stream, Store};
use super::{path, tls_port, write_key_file, Server};
use std::time::{Duration, Instant};

const STORE_KEY: &str = "5a1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// What a PSK credential is bound to.
pub enum Bound<'a> {
    /// `--originator AE-ID`.
    Ae(&'a str),
    /// Nothing: the Credential-ID `12-<KpsaID>`.
    CredentialId,
}

/// A server with a TLS-PSK listener and its files.
pub struct PskServer {
    pub srv: Server,
    files: tempfile::TempDir,
    pub tls_port: u16,
}

/// The answer to a request sent inside an association: `X-M2M-RSC` and the body.
pub struct Answer {
    pub rsc: u32,
    pub body: String,
}

impl PskServer {
    /// Starts a server whose configuration file holds `extra` besides the `[tls]` section.
    pub fn start(extra: &str) -> PskServer {
        let files = tempfile::tempdir().expect("files");
        write_key_file(&files.path().join("store.key"), STORE_KEY);
        let srv = Server::start_with_config(&format!(
            "{extra}\n[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"psk\"]\n\
             credentials-key-file = \"{}\"\n",
            path(files.path(), "store.key")
        ));
        let tls_port = tls_port(&srv);
        PskServer {
            srv,
            files,
            tls_port,
        }
    }

    /// Adds a PSK credential and waits until the running server accepts it.
    pub fn add_psk(&self, kpsa_id: &str, key_hex: &str, bound: Bound<'_>) {
        let dir = self.srv.data_dir().to_string_lossy().into_owned();
        let key_file = path(self.files.path(), "store.key");
        let psk_file = self.psk_file(kpsa_id, key_hex);
        let binding = match bound {
            Bound::Ae(id) => vec!["--originator", id],
            Bound::CredentialId => Vec::new(),
        };
        add_psk_credential(
            Store::DataDir(&dir),
            &key_file,
            kpsa_id,
            &psk_file,
            &binding,
        );
        // The server re-reads its store within about a second.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.req(kpsa_id, key_hex, &["--to", "/cse-in", "--from", "Cprobe"]);
            if out.rsc != 0 {
                return;
            }
            assert!(Instant::now() < deadline, "PSK {kpsa_id} never accepted");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `bastion credentials revoke` of `kpsa_id` in the running server's store; the server
    /// sees it within about a second.
    pub fn revoke(&self, kpsa_id: &str) {
        let dir = self.srv.data_dir().to_string_lossy().into_owned();
        let key_file = path(self.files.path(), "store.key");
        super::ok(&super::bastion(&[
            "credentials",
            "revoke",
            "--data-dir",
            &dir,
            "--key-file",
            &key_file,
            "--id",
            kpsa_id,
        ]));
    }

    /// Writes `key_hex` to an owner-only file named after the credential (keys never go
    /// on a command line); returns its path.
    fn psk_file(&self, kpsa_id: &str, key_hex: &str) -> String {
        let file = self.files.path().join(format!("{kpsa_id}.psk"));
        write_key_file(&file, key_hex);
        file.to_string_lossy().into_owned()
    }

    /// `bastion req` over TLS-PSK; `rsc` 0 when no response came (handshake refused).
    pub fn req(&self, kpsa_id: &str, key_hex: &str, args: &[&str]) -> Answer {
        let url = format!("https://127.0.0.1:{}", self.tls_port);
        let psk_file = self.psk_file(kpsa_id, key_hex);
        let out = psk_req(&url, kpsa_id, &psk_file, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (first, body) = stdout.split_once('\n').unwrap_or((&stdout, ""));
        Answer {
            rsc: first.trim().parse().unwrap_or(0),
            body: body.to_owned(),
        }
    }

    /// `GET path_and_query` with `X-M2M-Origin: origin` inside a TLS-PSK association.
    pub async fn get_over_psk(
        &self,
        kpsa_id: &str,
        key_hex: &str,
        path_and_query: &str,
        origin: &str,
    ) -> Answer {
        use http_body_util::{BodyExt, Empty};
        let stream = psk_stream(self.tls_port, kpsa_id, key_hex).await;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("http handshake");
        tokio::spawn(conn);
        let request = hyper::Request::get(path_and_query)
            .header("X-M2M-Origin", origin)
            .header("X-M2M-RI", "identity-1")
            .header("X-M2M-RVI", "3")
            .header("Accept", "application/json")
            .header("Host", "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let rsc = response.headers()["x-m2m-rsc"]
            .to_str()
            .expect("rsc")
            .parse()
            .expect("numeric rsc");
        let body = response.into_body().collect().await.expect("body");
        Answer {
            rsc,
            body: String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        }
    }
}
