//! Sealed files: the one encryption of secrets at rest in Bastion. A file is
//! `MAGIC` (8 bytes, also the AEAD additional data) | nonce (12) | tag (16) | ciphertext,
//! AES-256-GCM under a [`StoreKey`], written atomically (temp file mode 0600, fsync,
//! rename, fsync of the directory). The credential store ([`crate::credentials`]) and
//! other holders of keys (the MAF's registrations) seal their JSON documents with it,
//! each under its own magic so that one kind of file is never read as another.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use openssl::rand::rand_bytes;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use zeroize::Zeroizing;

use crate::credentials::StoreKey;
use crate::hexutil;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a sealed file could not be opened. Never carries plaintext.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    /// Too short, or another magic: not a file of this kind.
    #[error("not a sealed file of this kind")]
    NotSealed,
    /// Authentication failed: wrong key, or the file was altered.
    #[error("cannot decrypt (wrong key or tampered file)")]
    Decrypt,
}

/// `plain` sealed under `key` with `magic`.
pub fn seal(
    key: &StoreKey,
    magic: &[u8; 8],
    plain: &[u8],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut nonce = [0u8; NONCE_LEN];
    rand_bytes(&mut nonce)?;
    let mut tag = [0u8; TAG_LEN];
    let cipher = encrypt_aead(
        Cipher::aes_256_gcm(),
        key.expose(),
        Some(&nonce),
        magic,
        plain,
        &mut tag,
    )?;
    let mut out = Vec::with_capacity(magic.len() + NONCE_LEN + TAG_LEN + cipher.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&cipher);
    Ok(out)
}

/// The plaintext of `data` sealed under `key` with `magic`; wiped on drop.
pub fn unseal(
    key: &StoreKey,
    magic: &[u8; 8],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
    let header = magic.len() + NONCE_LEN + TAG_LEN;
    if data.len() < header || &data[..magic.len()] != magic {
        return Err(UnsealError::NotSealed);
    }
    let nonce = &data[magic.len()..magic.len() + NONCE_LEN];
    let tag = &data[magic.len() + NONCE_LEN..header];
    decrypt_aead(
        Cipher::aes_256_gcm(),
        key.expose(),
        Some(nonce),
        magic,
        &data[header..],
        tag,
    )
    .map(Zeroizing::new)
    .map_err(|_| UnsealError::Decrypt)
}

/// Replaces `path` with `data`: temp file (0600, same directory) + fsync + rename +
/// fsync of the directory, so a crash leaves the old file or the new one.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?
        .to_string_lossy()
        .into_owned();
    let mut suffix = [0u8; 6];
    rand_bytes(&mut suffix).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hexutil::encode(&suffix)));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(&dir).and_then(|d| d.sync_all())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_magic() {
        let key = StoreKey::generate().unwrap();
        let sealed = seal(&key, b"TESTMAG1", b"secret document").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            unseal(&key, b"TESTMAG1", &sealed).unwrap().as_slice(),
            b"secret document"
        );
        assert!(matches!(
            unseal(&key, b"OTHERMAG", &sealed),
            Err(UnsealError::NotSealed)
        ));
        let other = StoreKey::generate().unwrap();
        assert!(matches!(
            unseal(&other, b"TESTMAG1", &sealed),
            Err(UnsealError::Decrypt)
        ));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            unseal(&key, b"TESTMAG1", &altered),
            Err(UnsealError::Decrypt)
        ));
    }
}
