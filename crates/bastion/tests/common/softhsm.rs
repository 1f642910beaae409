//! The SoftHSM2 token of the PKCS#11 tests: `scripts/softhsm-env` installs SoftHSM2 when
//! missing and prepares the token `bastion-test`; under `CI=true` a missing one fails the
//! test, elsewhere the test is skipped with the reason printed.

use std::process::Command;

/// What `scripts/softhsm-env` printed: where the token is and how to open it.
#[derive(Debug, Clone)]
pub struct SoftHsm {
    /// SoftHSM2's configuration file (`SOFTHSM2_CONF`).
    pub conf: String,
    /// The PKCS#11 module.
    pub module: String,
    /// The token's label.
    pub token: String,
    /// The token's user PIN (a fixed test value of a throwaway token).
    pub pin: String,
}

impl SoftHsm {
    /// The store location `bastion_keystore` parses.
    pub fn spec(&self) -> String {
        format!("pkcs11:{}?token={}", self.module, self.token)
    }

    /// The environment a process opening the token needs.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("SOFTHSM2_CONF", self.conf.clone()),
            ("BASTION_PKCS11_PIN", self.pin.clone()),
        ]
    }
}

/// The token, or `None` (skip) outside CI.
pub fn softhsm() -> Option<SoftHsm> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/softhsm-env");
    let why = match Command::new(script).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let get = |key: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_owned())
                    .unwrap_or_else(|| panic!("scripts/softhsm-env did not print {key}"))
            };
            return Some(SoftHsm {
                conf: get("SOFTHSM2_CONF"),
                module: get("BASTION_PKCS11_MODULE"),
                token: get("BASTION_PKCS11_TOKEN"),
                pin: get("BASTION_PKCS11_PIN"),
            });
        }
        Ok(out) => format!(
            "scripts/softhsm-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("cannot run {script}: {e}"),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("SoftHSM2 is required under CI=true: {why}");
    }
    eprintln!("skipped: no SoftHSM2 token: {why}");
    None
}
