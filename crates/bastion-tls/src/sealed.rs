//! Sealed files: the one encryption of Bastion's key files at rest. A sealed file is
//! AES-256-GCM under a 32-byte [`StoreKey`], with an 8-byte magic naming the file's kind
//! that is also the AEAD additional data (a key file cannot be passed off as a credential
//! store), written atomically and durably with mode 0600.
//!
//! Layout: magic (8) | nonce (12) | tag (16) | ciphertext. A fresh random nonce per write.
//! The credential store ([`crate::credentials`], magic `BSTNCRD1`) and the encrypted file
//! key store (`bastion-keystore`, `BSTNKEY1`) are its users; what the plaintext means is
//! theirs. [`SharedDocument`] is a sealed JSON document changed by several processes under
//! a file lock (the MEF's client command queues, `BSTNMCQ1`).

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

/// A sealed JSON document that more than one process changes, e.g. a running function
/// and its operator's command: every change runs under an exclusive lock on
/// `<file>.lock`, on the latest content (re-read when another process replaced the
/// file), and is durable ([`write_atomically`]) before [`SharedDocument::change`]
/// returns; every read re-reads the file when it changed. A change that fails leaves the
/// file and the cached content as they were.
pub struct SharedDocument<T> {
    path: PathBuf,
    lock_path: PathBuf,
    key: StoreKey,
    magic: [u8; MAGIC_LEN],
    cached: parking_lot::Mutex<(T, Option<FileStamp>)>,
}

/// Inode, size and modification time: another process's replacement changes it.
type FileStamp = (u64, u64, i64, i64);

fn stamp_of(path: &Path) -> std::io::Result<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path)?;
    Ok((meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec()))
}

/// Why a shared document could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Sealing, unsealing, reading, writing or locking failed.
    #[error(transparent)]
    Sealed(#[from] SealError),
    /// The decrypted content is not the expected document.
    #[error("{}: corrupt document: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (never content).
        reason: String,
    },
}

impl<T> SharedDocument<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default + Clone,
{
    /// The document at `path` sealed with `magic` under `key`; an absent file reads as
    /// `T::default()` until the first change writes it.
    pub fn open(
        path: &Path,
        key: StoreKey,
        magic: &[u8; MAGIC_LEN],
    ) -> Result<SharedDocument<T>, DocumentError> {
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let document = SharedDocument {
            path: path.to_owned(),
            lock_path: PathBuf::from(lock_name),
            key,
            magic: *magic,
            cached: parking_lot::Mutex::new((T::default(), None)),
        };
        document.read(|_| ())?;
        Ok(document)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `look` at the latest content.
    pub fn read<R>(&self, look: impl FnOnce(&T) -> R) -> Result<R, DocumentError> {
        let mut cached = self.cached.lock();
        self.refresh(&mut cached)?;
        Ok(look(&cached.0))
    }

    /// Runs `change` on the latest content under the file lock and writes the result
    /// durably when it returns `Ok`; on `Err` nothing is written or kept. The outer
    /// error is the file's, the inner one `change`'s.
    pub fn change<R, E>(
        &self,
        change: impl FnOnce(&mut T) -> Result<R, E>,
    ) -> Result<Result<R, E>, DocumentError> {
        let io = |source| SealError::Io {
            path: self.lock_path.clone(),
            source,
        };
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock_path)
            .map_err(io)?;
        lock.lock().map_err(io)?;
        let mut cached = self.cached.lock();
        self.refresh(&mut cached)?;
        let mut next = cached.0.clone();
        let out = match change(&mut next) {
            Ok(out) => out,
            Err(e) => return Ok(Err(e)),
        };
        let plain = crate::secret::to_json(&next).map_err(|e| DocumentError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.path, &seal(&self.key, &self.magic, &plain)?)?;
        *cached = (next, stamp_of(&self.path).ok());
        drop(lock);
        Ok(Ok(out))
    }

    fn refresh(&self, cached: &mut (T, Option<FileStamp>)) -> Result<(), DocumentError> {
        let io = |source| SealError::Io {
            path: self.path.clone(),
            source,
        };
        let stamp = match stamp_of(&self.path) {
            Ok(stamp) => stamp,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io(source).into()),
        };
        if cached.1 == Some(stamp) {
            return Ok(());
        }
        let data = fs::read(&self.path).map_err(io)?;
        let plain = unseal(&self.key, &self.magic, &data)?;
        cached.0 = serde_json::from_slice(&plain).map_err(|e| DocumentError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        cached.1 = Some(stamp);
        Ok(())
    }
}

impl<T> std::fmt::Debug for SharedDocument<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDocument")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn a_change_by_one_handle_is_read_by_another_and_failures_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.sealed");
        let key = StoreKey::generate().unwrap();
        let a: SharedDocument<Vec<String>> =
            SharedDocument::open(&path, key.clone(), b"BSTNTST1").unwrap();
        let b: SharedDocument<Vec<String>> =
            SharedDocument::open(&path, key.clone(), b"BSTNTST1").unwrap();
        assert!(!path.exists());
        a.change(|v| {
            v.push("secret-item".into());
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            b.read(|v| v.clone()).unwrap(),
            vec!["secret-item".to_owned()]
        );
        assert!(!fs::read(&path).unwrap().windows(6).any(|w| w == b"secret"));
        let refused = b
            .change(|v| {
                v.clear();
                Err::<(), _>("no")
            })
            .unwrap();
        assert_eq!(refused, Err("no"));
        assert_eq!(a.read(|v| v.len()).unwrap(), 1);
        assert_eq!(b.read(|v| v.len()).unwrap(), 1);
        let wrong: Result<SharedDocument<Vec<String>>, _> =
            SharedDocument::open(&path, StoreKey::generate().unwrap(), b"BSTNTST1");
        assert!(matches!(
            wrong,
            Err(DocumentError::Sealed(SealError::Decrypt))
        ));
    }
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
