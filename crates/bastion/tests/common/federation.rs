//! Two real `bastion serve` processes: an IN-CSE (`/id-in`, plain and TLS listeners) and
//! an MN-CSE (`/id-mn`) registered with it over a TLS-PSK association bound to `/id-mn`.
//! With [`Federation::start`] the MN has only its plain listener, which the IN then uses
//! (a development set-up: the MN trusts other CSEs' originators from loopback peers,
//! `[http] trust-loopback-cses`); with [`Federation::start_secure`] it has a TLS listener
//! too, and the IN reaches it over TLS-PSK with the same key, bound there to `/id-in`
//! (TS-0003 8.2.1). Used by tests/federation.rs and tests/security_identity.rs.

use super::provision::{add_psk_credential, psk_req, Store};
use super::{path, tls_port, write_key_file, Server};
use serde_json::json;
use std::time::{Duration, Instant};

pub const KPSA_ID: &str = "mn@bastion.example";
pub const KPSA: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
pub const STORE_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// An IN and an MN registered with it.
pub struct Federation {
    /// Key file and the MN's credential store.
    pub files: tempfile::TempDir,
    pub inc: Server,
    pub in_tls: u16,
    pub mn: Server,
    /// The MN's TLS listener, when it has one.
    pub mn_tls: Option<u16>,
}

impl Federation {
    /// The MN listens on plain HTTP only.
    pub fn start() -> Federation {
        Federation::start_with(false)
    }

    /// The MN has a TLS-PSK listener too, whose credential store holds the shared key
    /// bound to `/id-in`.
    pub fn start_secure() -> Federation {
        Federation::start_with(true)
    }

    /// The MN listens on plain HTTP only; the IN's TLS listener (the MN's registrar URL)
    /// keeps its port when the IN restarts.
    pub fn start_restartable_in() -> Federation {
        // A port the system just handed out and let go; the IN binds it at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Federation::start_on(false, port)
    }

    fn start_with(mn_tls: bool) -> Federation {
        Federation::start_on(mn_tls, 0)
    }

    fn start_on(mn_tls: bool, in_tls_port: u16) -> Federation {
        let files = tempfile::tempdir().expect("files");
        let f = files.path();
        write_key_file(&f.join("store.key"), STORE_KEY);
        let inc = Server::start_with_config(&format!(
            "[tls]\nlisten = \"127.0.0.1:{in_tls_port}\"\nframeworks = [\"psk\"]\ncredentials-key-file = \"{}\"\n",
            path(f, "store.key")
        ));
        let in_tls = tls_port(&inc);
        let in_dir = inc.data_dir().to_string_lossy().into_owned();
        // The IN binds the PSK to the MN's CSE-ID; the MN holds the same key.
        for (dir, bound) in [
            (in_dir.as_str(), "/id-mn"),
            (&path(f, "mn-creds"), "/id-in"),
        ] {
            std::fs::create_dir_all(dir).expect("credential dir");
            write_key_file(&f.join("kpsa.hex"), KPSA);
            add_psk_credential(
                Store::DataDir(dir),
                &path(f, "store.key"),
                KPSA_ID,
                &path(f, "kpsa.hex"),
                &["--cse-id", bound],
            );
        }
        let mn_store = path(&f.join("mn-creds"), "credentials.store");
        let key_file = path(f, "store.key");
        let tls_section = if mn_tls {
            format!(
                "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"psk\"]\n\
                 credentials-store = \"{mn_store}\"\ncredentials-key-file = \"{key_file}\"\n"
            )
        } else {
            // Without a TLS listener the IN reaches the MN over plain HTTP, which the MN
            // accepts from loopback only in this development mode.
            "[http]\ntrust-loopback-cses = true\n".to_owned()
        };
        let mn = Server::start_with_config(&format!(
            "[cse]\ncse-id = \"/id-mn\"\ncse-name = \"cse-mn\"\ncse-type = \"mn\"\n\
             [registrar]\ncse-id = \"/id-in\"\ncse-base = \"cse-in\"\n\
             url = \"https://127.0.0.1:{in_tls}\"\npsk-id = \"{KPSA_ID}\"\n\
             credentials-store = \"{mn_store}\"\ncredentials-key-file = \"{key_file}\"\n\
             {tls_section}",
        ));
        let mn_tls = mn_tls.then(|| tls_port(&mn));
        let fed = Federation {
            files,
            inc,
            in_tls,
            mn,
            mn_tls,
        };
        fed.wait_registered(None);
        fed
    }

    /// Waits until both sides hold their `<remoteCSE>` and, with `port`, until the IN's
    /// one advertises the MN's plain listener on that port.
    pub fn wait_registered(&self, port: Option<u16>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // Called inside `block_in_place`.
        let rt = tokio::runtime::Handle::current();
        loop {
            let (on_in, on_mn) = rt.block_on(async {
                (
                    self.inc.get("/cse-in/id-mn", "CAdmin").await,
                    self.mn.get("/cse-mn/id-in", "CAdmin").await,
                )
            });
            let poa_ok = port.is_none_or(|p| {
                on_in.body["m2m:csr"]["poa"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(format!("http://127.0.0.1:{p}"))))
            });
            if on_in.rsc == 2000 && on_mn.rsc == 2000 && poa_ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "MN never registered:\nIN: {}\nMN: {}\nMN log:\n{}",
                on_in.text,
                on_mn.text,
                self.mn.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A third CSE, `/id-mn2`, registered with the MN over plain HTTP (the MN trusts
    /// loopback CSEs; [`Federation::start`] only), making the chain IN <- MN <- MN2. The
    /// MN's `<remoteCSE>` on the IN lists it in `dcse` (set over the MN's association):
    /// what MN2 sends the IN arrives there relayed by the MN.
    pub fn start_mn2(&self) -> Server {
        assert!(self.mn_tls.is_none(), "MN2 reaches the MN over plain HTTP");
        let mn2 = Server::start_with_config(&format!(
            "[cse]\ncse-id = \"/id-mn2\"\ncse-name = \"cse-mn2\"\ncse-type = \"mn\"\n\
             [registrar]\ncse-id = \"/id-mn\"\ncse-base = \"cse-mn\"\n\
             url = \"http://127.0.0.1:{}\"\n\
             [http]\ntrust-loopback-cses = true\n",
            self.mn.port()
        ));
        let out = psk_req(
            &format!("https://127.0.0.1:{}", self.in_tls),
            KPSA_ID,
            &path(self.files.path(), "kpsa.hex"),
            &[
                "--from",
                "/id-mn",
                "--to",
                "/cse-in/id-mn",
                "--op",
                "update",
                "--body",
                r#"{"m2m:csr": {"dcse": ["/id-mn2"]}}"#,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("/id-mn2"), "dcse not set: {text}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let rt = tokio::runtime::Handle::current();
        loop {
            let (on_mn, on_mn2) = rt.block_on(async {
                (
                    self.mn.get("/cse-mn/id-mn2", "CAdmin").await,
                    mn2.get("/cse-mn2/id-mn", "CAdmin").await,
                )
            });
            if on_mn.rsc == 2000 && on_mn2.rsc == 2000 {
                return mn2;
            }
            assert!(
                Instant::now() < deadline,
                "MN2 never registered:\nMN: {}\nMN2: {}\nMN2 log:\n{}",
                on_mn.text,
                on_mn2.text,
                mn2.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `bastion req` on the MN's association with the IN (its PSK) as `from`.
    pub fn on_mn_association(&self, from: &str, to: &str) -> String {
        let out = psk_req(
            &format!("https://127.0.0.1:{}", self.in_tls),
            KPSA_ID,
            &path(self.files.path(), "kpsa.hex"),
            &["--from", from, "--to", to],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Registers the AE `aei` on the CSE whose CSEBase is `base`; returns its path.
pub async fn ae(s: &Server, base: &str, aei: &str) -> String {
    let r = s
        .create(
            &format!("/{base}"),
            aei,
            2,
            json!({"m2m:ae": {"rn": aei.trim_start_matches('C'), "api": "Nfed", "rr": false, "srv": ["3"]}}),
        )
        .await;
    r.expect(2001);
    format!("/{base}/{}", aei.trim_start_matches('C'))
}

/// A container `data` under `ae` with one instance; `reader` may RETRIEVE it, and with
/// `authenticated` only over a security association (`acaf`, TS-0003 7.1.5): over plain
/// HTTP the same originator is then refused.
pub async fn readable_container(
    s: &Server,
    ae: &str,
    owner: &str,
    reader: &str,
    authenticated: bool,
) -> String {
    let (acp_name, con) = if authenticated {
        ("authn", "7")
    } else {
        ("share", "21.5")
    };
    s.create(
        ae,
        owner,
        1,
        json!({"m2m:acp": {"rn": acp_name,
            "pv": {"acr": [{"acor": [owner], "acop": 63},
                           {"acor": [reader], "acop": 2, "acaf": authenticated}]},
            "pvs": {"acr": [{"acor": [owner], "acop": 63}]}}}),
    )
    .await
    .expect(2001);
    let acp = format!("{}/{acp_name}", ae.trim_start_matches('/'));
    s.create(
        ae,
        owner,
        3,
        json!({"m2m:cnt": {"rn": "data", "acpi": [acp]}}),
    )
    .await
    .expect(2001);
    let cnt = format!("{ae}/data");
    s.create(&cnt, owner, 4, json!({"m2m:cin": {"con": con}}))
        .await
        .expect(2001);
    cnt
}
