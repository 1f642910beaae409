//! base64url for this crate's modules (no external crate needed), and hex re-exported
//! from `bastion_keys::hex`.

// Hex has one home, `bastion_keys::hex` (pure, wiped buffers for secrets); this module
// keeps only what the key crate has no use for.
pub(crate) use bastion_keys::hex::{decode, encode, encode_secret};

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 4648 §5), as RFC 6920 "ni" URIs use it.
pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(B64URL[idx as usize] as char);
        }
    }
    out
}

/// Decodes unpadded base64url; `None` on any other character, a bad length or
/// non-zero trailing bits (so every value has exactly one spelling).
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let vals: Vec<u32> = text
        .bytes()
        .map(|c| B64URL.iter().position(|&d| d == c).map(|p| p as u32))
        .collect::<Option<_>>()?;
    if vals.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(vals.len() * 3 / 4);
    for chunk in vals.chunks(4) {
        let mut n = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            n |= v << (18 - 6 * i);
        }
        let bytes = chunk.len() - 1;
        for i in 0..bytes {
            out.push((n >> (16 - 8 * i)) as u8);
        }
        let used_bits = 8 * bytes;
        let mask = (1u32 << (24 - used_bits)) - 1;
        if n & mask != 0 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_vectors() {
        // RFC 4648 §10 vectors, unpadded and in the url alphabet.
        assert_eq!(b64url_encode(b"f"), "Zg");
        assert_eq!(b64url_encode(b"fo"), "Zm8");
        assert_eq!(b64url_encode(b"foo"), "Zm9v");
        assert_eq!(b64url_encode(b"foob"), "Zm9vYg");
        assert_eq!(b64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64url_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(b64url_decode("Zm9vYg").unwrap(), b"foob".to_vec());
        assert!(b64url_decode("Zm9vYh").is_none(), "non-zero trailing bits");
        assert!(b64url_decode("Z").is_none());
        assert!(b64url_decode("Zm9v+g").is_none());
    }
}
