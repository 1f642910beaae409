//! The durable record of what the CA issued and revoked, and the CRL it publishes.
//! A state directory holds `ledger.json` (every unexpired certificate: serial, identity,
//! fingerprint, validity, revocation) and `crl.pem` (the CRL last signed); an operation
//! returns success only once both are on disk (written to a temporary file, fsynced,
//! renamed, directory fsynced).
//!
//! The running EST server and the operator's `bastion est revoke` share the directory:
//! every operation reads, changes and writes the ledger under an exclusive lock on
//! `ledger.lock`, so neither loses the other's writes. Entries are dropped once their
//! certificate has expired (RFC 5280 5.1: a CRL need not list expired certificates); at
//! most [`MAX_ENTRIES`] unexpired certificates are kept (more is [`EstError::LedgerFull`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bastion_tls::certs::{self, CertAndKey, RevokedSerial};
use serde::{Deserialize, Serialize};

use crate::error::EstError;

/// The most unexpired certificates the ledger holds.
pub const MAX_ENTRIES: usize = 100_000;

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// The AE-ID or CSE-ID it names.
    pub id: String,
    /// `sha-256:<hex>` of its DER form.
    pub fingerprint: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// When it was revoked, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The number of the last CRL signed.
    crl_number: u64,
    certificates: Vec<Issued>,
}

/// The ledger in its state directory.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> EstError {
    EstError::Ledger(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically and durably.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), EstError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("replace", path, e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", dir, e))?;
    }
    Ok(())
}

/// Lower-case hex of a serial.
pub fn serial_hex(serial: &[u8]) -> String {
    bastion_keys::hex::encode(serial)
}

/// A serial given by an operator: hex, any case, `:` separators and leading zeros
/// allowed (`openssl x509 -serial` prints upper case).
pub fn normalize_serial(text: &str) -> Option<String> {
    let digits: String = text
        .trim()
        .trim_start_matches("serial=")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if digits.is_empty() || digits.len() > 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let even = if trimmed.len() % 2 == 1 {
        format!("0{trimmed}")
    } else {
        trimmed.to_owned()
    };
    Some(if even.is_empty() {
        "00".to_owned()
    } else {
        even
    })
}

fn hex_bytes(hex: &str) -> Result<Vec<u8>, EstError> {
    bastion_keys::hex::decode(hex)
        .map(|bytes| bytes.to_vec())
        .ok_or_else(|| EstError::Ledger(format!("bad serial {hex:?}")))
}

/// The ledger's state, locked for one operation.
struct Locked {
    _lock: File,
    path: PathBuf,
    state: State,
}

impl Ledger {
    /// The ledger in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, EstError> {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the CRL last signed is.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    fn lock(&self) -> Result<Locked, EstError> {
        let lock_path = self.dir.join("ledger.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("open", &lock_path, e))?;
        lock.lock().map_err(|e| io("lock", &lock_path, e))?;
        let path = self.dir.join("ledger.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io("parse", &path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io("read", &path, e)),
        };
        Ok(Locked {
            _lock: lock,
            path,
            state,
        })
    }

    fn save(locked: &Locked) -> Result<(), EstError> {
        let bytes = serde_json::to_vec_pretty(&locked.state)
            .map_err(|e| EstError::Ledger(e.to_string()))?;
        write_durably(&locked.path, &bytes)
    }

    /// Records a certificate just issued; durable on `Ok`.
    pub fn record(&self, issued: Issued, now: i64) -> Result<(), EstError> {
        let mut locked = self.lock()?;
        locked.state.certificates.retain(|c| c.not_after > now);
        if locked.state.certificates.len() >= MAX_ENTRIES {
            return Err(EstError::LedgerFull);
        }
        locked.state.certificates.push(issued);
        Self::save(&locked)
    }

    /// The certificate whose DER fingerprint is `fingerprint`.
    pub fn by_fingerprint(&self, fingerprint: &str) -> Result<Option<Issued>, EstError> {
        let locked = self.lock()?;
        Ok(locked
            .state
            .certificates
            .into_iter()
            .find(|c| c.fingerprint == fingerprint))
    }

    /// Every certificate recorded (unexpired at the last write).
    pub fn list(&self) -> Result<Vec<Issued>, EstError> {
        Ok(self.lock()?.state.certificates)
    }

    /// Revokes the certificate with serial `serial` (hex) and signs a new CRL listing it
    /// (nextUpdate `next_update_secs` from `now`); durable on `Ok`.
    pub fn revoke(
        &self,
        serial: &str,
        ca: &CertAndKey,
        now: i64,
        next_update_secs: i64,
    ) -> Result<(Issued, u64), EstError> {
        let serial =
            normalize_serial(serial).ok_or_else(|| EstError::UnknownSerial(serial.to_owned()))?;
        let mut locked = self.lock()?;
        let entry = locked
            .state
            .certificates
            .iter_mut()
            .find(|c| c.serial == serial)
            .ok_or_else(|| EstError::UnknownSerial(serial.clone()))?;
        if entry.revoked_at.is_some() {
            return Err(EstError::AlreadyRevoked(serial));
        }
        entry.revoked_at = Some(now);
        let revoked = entry.clone();
        let number = Self::sign_crl(&mut locked, &self.crl_path(), ca, now, next_update_secs)?;
        Ok((revoked, number))
    }

    /// Signs a new CRL of every revoked, unexpired certificate and writes it; returns
    /// its number. Durable on `Ok`.
    pub fn publish_crl(
        &self,
        ca: &CertAndKey,
        now: i64,
        next_update_secs: i64,
    ) -> Result<u64, EstError> {
        let mut locked = self.lock()?;
        Self::sign_crl(&mut locked, &self.crl_path(), ca, now, next_update_secs)
    }

    fn sign_crl(
        locked: &mut Locked,
        crl_path: &Path,
        ca: &CertAndKey,
        now: i64,
        next_update_secs: i64,
    ) -> Result<u64, EstError> {
        locked.state.certificates.retain(|c| c.not_after > now);
        locked.state.crl_number += 1;
        let number = locked.state.crl_number;
        let revoked = locked
            .state
            .certificates
            .iter()
            .filter_map(|c| {
                c.revoked_at.map(|at| {
                    hex_bytes(&c.serial).map(|serial| RevokedSerial {
                        serial,
                        revoked_at: at,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pem =
            certs::create_crl_for_serials(ca, &revoked, number, now - 60, now + next_update_secs)
                .map_err(|e| EstError::Ca(e.to_string()))?;
        // The number first: a crash between the two writes skips a number, never reuses one.
        Self::save(locked)?;
        write_durably(crl_path, pem.as_bytes())?;
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_normalized() {
        assert_eq!(normalize_serial("serial=0A1B").as_deref(), Some("0a1b"));
        assert_eq!(normalize_serial("00:0a:1b").as_deref(), Some("0a1b"));
        assert_eq!(normalize_serial("abc").as_deref(), Some("0abc"));
        assert_eq!(normalize_serial("xyz"), None);
        assert_eq!(normalize_serial(""), None);
    }

    #[test]
    fn revocation_is_durable_and_numbers_grow() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let ca = certs::create_ca("CA", certs::Validity::days(1)).unwrap();
        let entry = |serial: &str| Issued {
            serial: serial.into(),
            id: "//a.example/Sx".into(),
            fingerprint: format!("sha-256:{serial}"),
            not_after: 2_000,
            issued_at: 1_000,
            revoked_at: None,
        };
        ledger.record(entry("0a"), 1_000).unwrap();
        ledger.record(entry("0b"), 1_000).unwrap();
        assert_eq!(ledger.publish_crl(&ca, 1_000, 3_600).unwrap(), 1);
        let (revoked, number) = ledger.revoke("0B", &ca, 1_100, 3_600).unwrap();
        assert_eq!((revoked.serial.as_str(), number), ("0b", 2));
        assert_eq!(
            ledger.revoke("0b", &ca, 1_100, 3_600).unwrap_err(),
            EstError::AlreadyRevoked("0b".into())
        );
        assert_eq!(
            ledger.revoke("0c", &ca, 1_100, 3_600).unwrap_err(),
            EstError::UnknownSerial("0c".into())
        );
        // Another handle on the same directory (the operator's command) sees it all.
        let again = Ledger::open(dir.path()).unwrap();
        let list = again.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].revoked_at, Some(1_100));
        let crl = std::fs::read(again.crl_path()).unwrap();
        let crl = openssl::x509::X509Crl::from_pem(&crl).unwrap();
        let serials: Vec<Vec<u8>> = crl
            .get_revoked()
            .unwrap()
            .iter()
            .map(|r| r.serial_number().to_bn().unwrap().to_vec())
            .collect();
        assert_eq!(serials, vec![vec![0x0b]]);
        // Expired certificates leave the ledger (and the CRL).
        assert_eq!(again.publish_crl(&ca, 2_000, 3_600).unwrap(), 3);
        assert!(again.list().unwrap().is_empty());
    }
}
