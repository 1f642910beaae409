//! Identifiers and addressing (TS-0001 §7.2; core-primitives.md §7): the three scopes of a
//! `to` address, resource-name syntax, and AE-ID / CSE-ID shapes.

use crate::error::RequestError;

/// Longest `to` address accepted, in bytes.
pub const MAX_ADDRESS_LEN: usize = 1024;
/// Longest resource name or identifier segment accepted, in bytes.
pub const MAX_SEGMENT_LEN: usize = 255;

/// A parsed `to` address, split by scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address<'a> {
    /// No leading `/`: `cse-in/ae/cnt`, `cnt123`, `-/ae`.
    CseRelative(&'a str),
    /// `/id-in/...`: the CSE-ID (with its slash) and the CSE-relative rest (may be empty).
    SpRelative { cse_id: &'a str, rest: &'a str },
    /// `//sp/id-in/...`: SP-ID (with `//`), CSE-ID (with `/`) and rest (may be empty).
    Absolute {
        sp_id: &'a str,
        cse_id: &'a str,
        rest: &'a str,
    },
}

impl<'a> Address<'a> {
    /// Splits a `to` address into its scope, validating every segment.
    pub fn parse(to: &'a str) -> Result<Address<'a>, RequestError> {
        if to.is_empty() {
            return Err(RequestError::bad_request("empty target address"));
        }
        if to.len() > MAX_ADDRESS_LEN {
            return Err(RequestError::bad_request("target address too long"));
        }
        let addr = if let Some(abs) = to.strip_prefix("//") {
            let (sp, after) = split_first(abs);
            let (cse, rest) = split_first(after.unwrap_or(""));
            if after.is_none() || cse.is_empty() {
                return Err(RequestError::bad_request("absolute address lacks a CSE-ID"));
            }
            Address::Absolute {
                sp_id: &to[..2 + sp.len()],
                cse_id: &to[2 + sp.len()..3 + sp.len() + cse.len()],
                rest: rest.unwrap_or(""),
            }
        } else if let Some(sp_rel) = to.strip_prefix('/') {
            let (cse, rest) = split_first(sp_rel);
            Address::SpRelative {
                cse_id: &to[..1 + cse.len()],
                rest: rest.unwrap_or(""),
            }
        } else {
            Address::CseRelative(to)
        };
        addr.validate()?;
        Ok(addr)
    }

    fn validate(&self) -> Result<(), RequestError> {
        let (sp, cse, rest) = match self {
            Address::CseRelative(rest) => (None, None, *rest),
            Address::SpRelative { cse_id, rest } => (None, Some(&cse_id[1..]), *rest),
            Address::Absolute {
                sp_id,
                cse_id,
                rest,
            } => (Some(&sp_id[2..]), Some(&cse_id[1..]), *rest),
        };
        if let Some(sp) = sp {
            check_segment(sp)?;
        }
        if let Some(cse) = cse {
            check_segment(cse)?;
        }
        if !rest.is_empty() {
            for seg in rest.split('/') {
                check_segment(seg)?;
            }
        }
        Ok(())
    }
}

fn split_first(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// One path segment: non-empty, not `.`/`..`, bounded, and made of visible ASCII that has
/// no meaning in addressing.
fn check_segment(seg: &str) -> Result<(), RequestError> {
    if seg.is_empty() {
        return Err(RequestError::bad_request("empty segment in target address"));
    }
    if seg == "." || seg == ".." {
        return Err(RequestError::bad_request("dot segment in target address"));
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(RequestError::bad_request("target address segment too long"));
    }
    if !seg.bytes().all(is_id_byte) {
        return Err(RequestError::bad_request(
            "invalid character in target address",
        ));
    }
    Ok(())
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@' | b'*')
}

/// Checks a resource name given in CREATE content.
pub fn validate_resource_name(rn: &str) -> Result<(), RequestError> {
    if rn.is_empty() || rn.len() > MAX_SEGMENT_LEN {
        return Err(RequestError::bad_request("rn must be 1 to 255 characters"));
    }
    if rn == "." || rn == ".." || rn == "-" {
        return Err(RequestError::bad_request("rn is a reserved name"));
    }
    if !rn
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(RequestError::bad_request(
            "rn may contain only letters, digits and - . _ ~",
        ));
    }
    Ok(())
}

/// Checks an originator (`fr`) value: printable ASCII without whitespace, bounded. The
/// value is data: nothing here gives any character a meaning.
pub fn validate_originator(fr: &str) -> Result<(), RequestError> {
    if fr.len() > MAX_ADDRESS_LEN {
        return Err(RequestError::bad_request("originator too long"));
    }
    if !fr.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::bad_request("invalid character in originator"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0001_7_2_three_scopes() {
        assert_eq!(
            Address::parse("cse-in/ae/cnt").unwrap(),
            Address::CseRelative("cse-in/ae/cnt")
        );
        assert_eq!(
            Address::parse("/id-in/cse-in/ae").unwrap(),
            Address::SpRelative {
                cse_id: "/id-in",
                rest: "cse-in/ae"
            }
        );
        assert_eq!(
            Address::parse("/id-in").unwrap(),
            Address::SpRelative {
                cse_id: "/id-in",
                rest: ""
            }
        );
        assert_eq!(
            Address::parse("//sp.example/id-in/cin1").unwrap(),
            Address::Absolute {
                sp_id: "//sp.example",
                cse_id: "/id-in",
                rest: "cin1"
            }
        );
    }

    #[test]
    fn odd_addresses_are_bad_requests() {
        for bad in [
            "",
            "cse-in//ae",
            "cse-in/../x",
            "cse-in/./x",
            "cse-in/a b",
            "cse-in/a\0b",
            "//sp",
            "//sp/",
            "/",
            "cse-in/",
            "cse-in/%2e%2e",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Address::parse(&"a".repeat(2000)).is_err());
    }
}
