//! Sealed files: the one encryption of Bastion's key files at rest. A sealed file is
//! AES-256-GCM under a 32-byte [`StoreKey`], with an 8-byte magic naming the file's kind
//! that is also the AEAD additional data (a key file cannot be passed off as a credential
//! store), written atomically and durably with mode 0600.
//!
//! Layout: magic (8) | nonce (12) | tag (16) | ciphertext. A fresh random nonce per write.
//! The credential store ([`crate::credentials`], magic `BSTNCRD1`) and the encrypted file
//! key store (`bastion-keystore`, `BSTNKEY1`) are its users; what the plaintext means is
//! theirs.

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
/// Length of the magic that opens every sealed file.
pub const MAGIC_LEN: usize = 8;

/// Why a sealed file was not opened or written. Never carries any plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data is too short or does not open with the expected magic.
    #[error("not a sealed file of the expected kind")]
    NotSealed,
    /// Authentication failed: wrong key, or the file was altered.
    #[error("cannot decrypt (wrong key or tampered file)")]
    Decrypt,
    /// OpenSSL failed (random numbers, cipher).
    #[error("crypto failure: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// `plain` encrypted under `key`, laid out as the module docs say.
pub fn seal(key: &StoreKey, magic: &[u8; MAGIC_LEN], plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand_bytes(&mut nonce)?;
    let mut tag = [0u8; TAG_LEN];
    let cipher = encrypt_aead(
        Cipher::aes_256_gcm(),
        key.bytes(),
        Some(&nonce),
        magic,
        plain,
        &mut tag,
    )?;
    let mut out = Vec::with_capacity(MAGIC_LEN + NONCE_LEN + TAG_LEN + cipher.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&cipher);
    Ok(out)
}

/// The plaintext of sealed `data`, in a buffer wiped on drop.
pub fn unseal(
    key: &StoreKey,
    magic: &[u8; MAGIC_LEN],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let header = MAGIC_LEN + NONCE_LEN + TAG_LEN;
    if data.len() < header || &data[..MAGIC_LEN] != magic {
        return Err(SealError::NotSealed);
    }
    let nonce = &data[MAGIC_LEN..MAGIC_LEN + NONCE_LEN];
    let tag = &data[MAGIC_LEN + NONCE_LEN..header];
    decrypt_aead(
        Cipher::aes_256_gcm(),
        key.bytes(),
        Some(nonce),
        magic,
        &data[header..],
        tag,
    )
    .map(Zeroizing::new)
    .map_err(|_| SealError::Decrypt)
}

/// Replaces `path` with `data` atomically and durably: a temp file (0600, same
/// directory), fsync, rename, fsync of the directory. A reader sees the old file or the
/// new one, never a mix, and a crash after return cannot lose the write.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), SealError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| SealError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        })?
        .to_string_lossy()
        .into_owned();
    let mut suffix = [0u8; 6];
    rand_bytes(&mut suffix)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hexutil::encode(&suffix)));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| SealError::Io { path: p, source }
    };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(data).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MAGIC: &[u8; 8] = b"BSTNTST1";

    #[test]
    fn round_trip_and_refusals() {
        let key = StoreKey::generate().unwrap();
        let sealed = seal(&key, MAGIC, b"plain text").unwrap();
        assert_eq!(&unseal(&key, MAGIC, &sealed).unwrap()[..], b"plain text");
        let other = StoreKey::generate().unwrap();
        assert!(matches!(
            unseal(&other, MAGIC, &sealed),
            Err(SealError::Decrypt)
        ));
        // The magic is authenticated: another kind of file is refused before decryption,
        // and a forged magic fails authentication.
        assert!(matches!(
            unseal(&key, b"BSTNOTHR", &sealed),
            Err(SealError::NotSealed)
        ));
        let mut forged = sealed.clone();
        forged[..8].copy_from_slice(b"BSTNOTHR");
        assert!(matches!(
            unseal(&key, b"BSTNOTHR", &forged),
            Err(SealError::Decrypt)
        ));
        let mut flipped = sealed;
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            unseal(&key, MAGIC, &flipped),
            Err(SealError::Decrypt)
        ));
        assert!(matches!(
            unseal(&key, MAGIC, b"BSTNTST1short"),
            Err(SealError::NotSealed)
        ));
    }

    #[test]
    fn atomic_writes_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
