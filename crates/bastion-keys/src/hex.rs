//! Hexadecimal text of key material: what `hexBinary(...)` means in TS-0003 10.3.4/10.3.5
//! and how keys are written on command lines and in the known-answer data.

use zeroize::Zeroizing;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` (the case Bastion writes; see docs/decisions.md).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Lower-case hex of secret bytes, in a buffer wiped on drop.
pub fn encode_secret(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(encode(bytes))
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex of either case; `None` on an odd length or a non-hex character. The
/// output is wiped on drop because callers decode keys with it.
pub fn decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let raw = text.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(raw.len() / 2));
    for pair in raw.chunks_exact(2) {
        out.push((nibble(pair[0])? << 4) | nibble(pair[1])?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_either_case_and_rejects() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode("00ABff").unwrap().as_slice(), &[0x00, 0xab, 0xff]);
        assert!(decode("abc").is_none());
        assert!(decode("zz").is_none());
        assert!(decode("").unwrap().is_empty());
    }
}
