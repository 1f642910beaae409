//! Reading secret files: the one way every Bastion component reads key material from a
//! file (credential store keys, PSKs, private keys, token-signing secrets).
//!
//! A secret file must be a regular file that neither its group nor others may access
//! (mode `0600` or stricter), at most [`MAX_SECRET_FILE_BYTES`] long. Its content comes
//! back in a buffer that is wiped when dropped. Errors name the file, never its content.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Largest secret file read (a PEM private key chain is a few KiB).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a secret file was not read. Never carries any of its bytes.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Group or others may access the file.
    #[error("{} is accessible by group or others; make it mode 0600 (chmod 600)", .0.display())]
    Permissions(PathBuf),
    /// Not a regular file, or larger than [`MAX_SECRET_FILE_BYTES`].
    #[error("{} is not a regular file of at most {MAX_SECRET_FILE_BYTES} bytes", .0.display())]
    NotASecretFile(PathBuf),
    /// [`read_secret_text`]: the content is not UTF-8.
    #[error("{} is not UTF-8 text", .0.display())]
    NotText(PathBuf),
}

/// The bytes of the secret file at `path`, after the checks above.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    let io = |source| SecretFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io)?;
    // The checks look at the file that was opened, not at a name that may change.
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::NotASecretFile(path.to_owned()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(SecretFileError::Permissions(path.to_owned()));
    }
    let mut content = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    (&mut file)
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(io)?;
    if content.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::NotASecretFile(path.to_owned()));
    }
    Ok(content)
}

/// [`read_secret`] for text (PEM, hex).
pub fn read_secret_text(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    let bytes = read_secret(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| SecretFileError::NotText(path.to_owned()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// `value` as JSON in a buffer that is wiped on drop, and that wipes each smaller buffer
/// it outgrows on the way (a growing `Vec` would leave copies of the secret behind in
/// freed memory).
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
    let mut out = WipingBuffer(Zeroizing::new(Vec::with_capacity(1024)));
    serde_json::to_writer(&mut out, value)?;
    Ok(out.0)
}

/// An `io::Write` into a wiped buffer that grows by copying into a new wiped buffer.
struct WipingBuffer(Zeroizing<Vec<u8>>);

impl std::io::Write for WipingBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len() + data.len();
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(self.0.capacity() * 2)));
            bigger.extend_from_slice(&self.0);
            // The old buffer is wiped when it is replaced here.
            self.0 = bigger;
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn owner_only_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "k", b"secret\n", 0o600);
        assert_eq!(&read_secret(&path).unwrap()[..], b"secret\n");
        assert_eq!(&*read_secret_text(&path).unwrap(), "secret\n");
        let path = write(dir.path(), "r", b"x", 0o400);
        assert_eq!(&read_secret(&path).unwrap()[..], b"x");
    }

    #[test]
    fn group_or_other_access_is_refused_without_naming_the_content() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660, 0o602] {
            let path = write(dir.path(), "k", b"top-secret-bytes", mode);
            let err = read_secret(&path).unwrap_err();
            assert!(matches!(err, SecretFileError::Permissions(_)), "{mode:o}");
            assert!(!err.to_string().contains("top-secret"));
        }
    }

    #[test]
    fn json_grows_without_reallocating_in_place() {
        let big: Vec<String> = (0..500).map(|i| format!("secret-{i:04}")).collect();
        let json = to_json(&big).unwrap();
        assert_eq!(serde_json::from_slice::<Vec<String>>(&json).unwrap(), big);
    }

    #[test]
    fn directories_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_secret(dir.path()),
            Err(SecretFileError::NotASecretFile(_))
        ));
        let big = vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1];
        let path = write(dir.path(), "big", &big, 0o600);
        assert!(matches!(
            read_secret(&path),
            Err(SecretFileError::NotASecretFile(_))
        ));
        assert!(matches!(
            read_secret(&dir.path().join("missing")),
            Err(SecretFileError::Io { .. })
        ));
    }
}
