//! What an originator or identity string names, by its form alone: the CSE it belongs
//! to, and whether two identities are the same (compared in constant time). It depends
//! on no other module, so routing, registration and identity checks can all use it.

use subtle::ConstantTimeEq;

/// Constant-time equality of two identity strings (their lengths are not secret).
pub(crate) fn same_identity(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whose an originator is, by its form (core-primitives.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// A CSE-relative form (AE-ID-Stem, the admin's name): an originator of this CSE.
    Local,
    /// The CSE-ID `/x` itself (SP-relative, also when written in absolute form).
    Cse(&'a str),
    /// A C-type AE-ID under the CSE `/x` (`/x/Cabc`).
    AeOf(&'a str),
    /// An S-type AE-ID (`/Sabc`), another SP's identifier, or anything else: no CSE of
    /// this SP is its registrar.
    Unanchored,
}

/// Classifies `fr` by the CSE it belongs to; `sp_id` is this CSE's SP-ID (`//sp`).
pub(crate) fn owner<'a>(sp_id: &str, fr: &'a str) -> Owner<'a> {
    let sp_relative = match fr.strip_prefix(sp_id) {
        Some(rest) if rest.starts_with('/') && !rest.starts_with("//") => rest,
        _ if fr.starts_with("//") => return Owner::Unanchored,
        _ => fr,
    };
    let Some(path) = sp_relative.strip_prefix('/') else {
        return Owner::Local;
    };
    match path.split_once('/') {
        None if path.is_empty() || path.starts_with('S') => Owner::Unanchored,
        None => Owner::Cse(sp_relative),
        Some((cse, stem))
            if !cse.is_empty()
                && (stem.starts_with('C') || stem.starts_with('S'))
                && stem.len() > 1
                && !stem.contains('/') =>
        {
            Owner::AeOf(&sp_relative[..cse.len() + 1])
        }
        Some(_) => Owner::Unanchored,
    }
}
