//! Originator identities and `acor` entries (TS-0003 7.1.3; TS-0001 7.2 identifier forms;
//! digest §5): normalisation to the absolute form, classification and compilation of
//! `acor` entries, and the wildcard matcher.
//!
//! Both sides are brought to the absolute form `//fqdn/...` before comparison:
//!
//! | written as            | absolute form                     |
//! |-----------------------|-----------------------------------|
//! | `Cxyz` (AE-ID-Stem)   | `sp_id` + `cse_id` + `/Cxyz`      |
//! | `Sxyz` (AE-ID-Stem)   | `sp_id` + `/Sxyz`                 |
//! | `/...` (SP-relative)  | `sp_id` + `/...`                  |
//! | `//...` (absolute)    | unchanged                         |
//!
//! Wildcards exist only in `acor` entries. The originator is data: its bytes are compared,
//! never interpreted, so an originator containing `*`, `?`, `.`, `%2A` or any other
//! "metacharacter" can only match an entry whose pattern accepts those literal bytes.
//!
//! The matcher is segment-wise: both strings are split on `/` and the segment counts must
//! agree, so a `*` can never cross a `/` (TS-0003 7.1.3). Within a segment a pattern is
//! `p0 * p1 * ... * pk`: `p0` must be a prefix, `pk` a suffix, and the middle pieces are
//! found left to right at their leftmost occurrence with KMP (failure tables built once at
//! parse time), so a match costs time linear in the originator plus the pattern. No regex.
//!
//! On the decision path the normalised originator is never materialised: `Subject` is a
//! view over up to four borrowed pieces (`sp_id`, `cse_id`, `/`, the id), which keeps
//! [`crate::decide`] allocation-free.

use crate::{LocalIdentity, Pip};
use serde::Serialize;

/// Most segments (after the leading `//`) an identifier pattern can have:
/// `fqdn / cse / ae`.
const MAX_SEGS: usize = 3;

/// Returns the absolute form of `id` (see the module table). Strings that are none of
/// the recognised forms (including the empty string) are returned unchanged; they can
/// only ever match the `all` entry (and the empty string not even that).
pub fn normalize_originator(local: &LocalIdentity, id: &str) -> String {
    let subject = Subject::new(local, id);
    let mut out = String::with_capacity(subject.len);
    for part in subject.parts {
        out.push_str(part);
    }
    out
}

/// Which of the four written forms `id` uses, and therefore which local prefix the
/// absolute form gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `//...`
    Absolute,
    /// `/...`
    SpRelative,
    /// `C...`
    CStem,
    /// `S...`
    SStem,
    /// Anything else, including the empty string.
    Other,
}

fn form_of(id: &str) -> Form {
    if id.starts_with("//") {
        Form::Absolute
    } else if id.starts_with('/') {
        Form::SpRelative
    } else if id.starts_with('C') {
        Form::CStem
    } else if id.starts_with('S') {
        Form::SStem
    } else {
        Form::Other
    }
}

/// The pieces whose concatenation is the absolute form of `id`, and the index of the
/// piece that is `id` itself.
fn absolute_parts<'a>(local: &'a LocalIdentity, id: &'a str) -> ([&'a str; 4], usize) {
    let sp = local.sp_id.as_str();
    match form_of(id) {
        Form::Absolute | Form::Other => ([id, "", "", ""], 0),
        Form::SpRelative => ([sp, id, "", ""], 1),
        Form::CStem => ([sp, local.cse_id.as_str(), "/", id], 3),
        Form::SStem => ([sp, "/", id, ""], 2),
    }
}

/// A normalised originator as a borrowed, allocation-free view, with its segments
/// located once so that every `acor` entry can be tested without re-scanning.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject<'a> {
    parts: [&'a str; 4],
    len: usize,
    /// Starts with `//`.
    absolute: bool,
    /// The first `MAX_SEGS` segments after the leading `//`.
    segs: [Seg<'a>; MAX_SEGS],
    /// Total number of segments after the leading `//` (may exceed `MAX_SEGS`).
    nsegs: usize,
}

/// One `/`-free segment of a [`Subject`]. With a well-formed [`LocalIdentity`] every
/// segment lies inside one piece and is a plain slice; otherwise it is addressed by its
/// byte range in the concatenation.
#[derive(Clone, Copy, Debug)]
enum Seg<'a> {
    Slice(&'a [u8]),
    Spread(usize, usize),
}

impl<'a> Subject<'a> {
    pub(crate) fn new(local: &'a LocalIdentity, id: &'a str) -> Self {
        let (parts, _) = absolute_parts(local, id);
        let len = parts.iter().map(|p| p.len()).sum();
        let mut subject = Subject {
            parts,
            len,
            absolute: false,
            segs: [Seg::Slice(&[]); MAX_SEGS],
            nsegs: 0,
        };
        let mut head = subject.cursor(0);
        subject.absolute = head.next() == Some(b'/') && head.next() == Some(b'/');
        if subject.absolute {
            // Split after the leading "//" on every '/', scanning each piece directly.
            let mut start = 2;
            let mut base = 0;
            for part in parts {
                for (j, &b) in part.as_bytes().iter().enumerate() {
                    if b == b'/' && base + j >= 2 {
                        subject.push_seg(start, base + j);
                        start = base + j + 1;
                    }
                }
                base += part.len();
            }
            subject.push_seg(start, len);
        }
        subject
    }

    fn push_seg(&mut self, start: usize, end: usize) {
        if self.nsegs < MAX_SEGS {
            self.segs[self.nsegs] = self.locate(start, end);
        }
        self.nsegs += 1;
    }

    /// The segment `start..end` as a slice of one piece if it fits in one.
    fn locate(&self, start: usize, end: usize) -> Seg<'a> {
        if start == end {
            return Seg::Slice(&[]);
        }
        let mut off = start;
        for part in self.parts {
            let b = part.as_bytes();
            if off < b.len() {
                return match b.get(off..off + (end - start)) {
                    Some(slice) => Seg::Slice(slice),
                    None => Seg::Spread(start, end),
                };
            }
            off -= b.len();
        }
        Seg::Spread(start, end)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates the bytes of the absolute form starting at `start`.
    fn cursor(&self, start: usize) -> Cursor<'a> {
        let mut part = 0;
        let mut off = start;
        while part < self.parts.len() && off >= self.parts[part].len() {
            off -= self.parts[part].len();
            part += 1;
        }
        Cursor {
            parts: self.parts,
            part,
            off,
        }
    }

    /// True when the absolute form equals `lit` byte for byte. Compares the last piece
    /// first: the local prefix is shared by most entries, the id is what differs.
    pub(crate) fn eq_bytes(&self, lit: &[u8]) -> bool {
        if lit.len() != self.len {
            return false;
        }
        let mut end = lit.len();
        for part in self.parts.iter().rev() {
            let p = part.as_bytes();
            if lit[end - p.len()..end] != *p {
                return false;
            }
            end -= p.len();
        }
        true
    }

    /// True when `other_id` has the same absolute form (administrator and creator
    /// checks). Compares piece by piece, without locating segments.
    pub(crate) fn same_identity(&self, local: &LocalIdentity, other_id: &str) -> bool {
        let (other, _) = absolute_parts(local, other_id);
        let other_len: usize = other.iter().map(|p| p.len()).sum();
        other_len == self.len && pieces_eq(&self.parts, &other)
    }

    /// Does segment `i` (< `MAX_SEGS`, < `nsegs`) match `glob`?
    fn seg_matches(&self, glob: &SegGlob, i: usize) -> bool {
        match self.segs[i] {
            Seg::Slice(slice) => glob.matches(slice),
            Seg::Spread(start, end) => glob.matches(&Spread {
                subject: self,
                start,
                end,
            }),
        }
    }

    fn seg_len(&self, i: usize) -> usize {
        match self.segs[i] {
            Seg::Slice(slice) => slice.len(),
            Seg::Spread(start, end) => end - start,
        }
    }
}

/// Equality of two equally long concatenations, compared in the longest common chunks.
fn pieces_eq(a: &[&str; 4], b: &[&str; 4]) -> bool {
    let (mut ai, mut ao, mut bi, mut bo) = (0, 0, 0, 0);
    loop {
        while ai < a.len() && ao == a[ai].len() {
            ai += 1;
            ao = 0;
        }
        while bi < b.len() && bo == b[bi].len() {
            bi += 1;
            bo = 0;
        }
        if ai == a.len() || bi == b.len() {
            return ai == a.len() && bi == b.len();
        }
        let x = &a[ai].as_bytes()[ao..];
        let y = &b[bi].as_bytes()[bo..];
        let n = x.len().min(y.len());
        if x[..n] != y[..n] {
            return false;
        }
        ao += n;
        bo += n;
    }
}

/// Byte iterator over the pieces of a [`Subject`].
struct Cursor<'a> {
    parts: [&'a str; 4],
    part: usize,
    off: usize,
}

impl Iterator for Cursor<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        while let Some(p) = self.parts.get(self.part) {
            if let Some(&b) = p.as_bytes().get(self.off) {
                self.off += 1;
                return Some(b);
            }
            self.part += 1;
            self.off = 0;
        }
        None
    }
}

/// The text one segment pattern is matched against: a slice, or (fallback) a range of a
/// subject that straddles pieces.
trait Haystack {
    fn size(&self) -> usize;
    /// Bytes `from..to` (relative to the segment).
    fn bytes(&self, from: usize, to: usize) -> impl Iterator<Item = u8> + '_;
    /// Does `lit` occur at `at`?
    fn eq_at(&self, at: usize, lit: &[u8]) -> bool {
        self.bytes(at, at + lit.len()).eq(lit.iter().copied())
    }
}

impl Haystack for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn bytes(&self, from: usize, to: usize) -> impl Iterator<Item = u8> + '_ {
        self[from..to].iter().copied()
    }

    fn eq_at(&self, at: usize, lit: &[u8]) -> bool {
        self.get(at..at + lit.len()) == Some(lit)
    }
}

/// A segment of a subject that straddles pieces.
struct Spread<'s, 'a> {
    subject: &'s Subject<'a>,
    start: usize,
    end: usize,
}

impl Haystack for Spread<'_, '_> {
    fn size(&self) -> usize {
        self.end - self.start
    }

    fn bytes(&self, from: usize, to: usize) -> impl Iterator<Item = u8> + '_ {
        self.subject.cursor(self.start + from).take(to - from)
    }
}

/// What kind of `acor` entry this is (TS-0003 7.1.3 entry kinds; digest §5 table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// `all`: any non-empty originator.
    All,
    /// An M2M-SP-ID `//fqdn`: any originator under that SP.
    SpDomain,
    /// A CSE-ID or AE-ID in any of its forms, possibly with `*`.
    Identifier,
    /// A Role-ID (`name@issuer-fqdn`): matches an originator holding that role (TS-0003 7.4).
    Role,
    /// Something that is not an AE-ID/CSE-ID form: the resource ID of a `<group>`, matching
    /// its members (TS-0001 9.6.2.1); anything that is not a group matches nobody.
    ResourceId,
    /// Not a usable identifier at all (empty, empty segment, ...).
    Malformed,
}

impl EntryKind {
    /// Whether entries of this kind can ever match.
    pub fn evaluated(self) -> bool {
        self != EntryKind::Malformed
    }
}

/// True when `seg` can be the last segment of a C-type AE-ID pattern (`C...` or a
/// pattern that starts with a wildcard).
fn ae_stem_like(seg: &str) -> bool {
    seg.starts_with('C') || seg.starts_with('*')
}

/// Classifies a raw `acor` entry. Only the shape is looked at; wildcards are allowed
/// wherever a segment is allowed (also in SP-ID entries, digest §14 item 1).
pub(crate) fn classify(entry: &str) -> EntryKind {
    if entry == "all" {
        return EntryKind::All;
    }
    if entry.is_empty() {
        return EntryKind::Malformed;
    }
    if entry.contains('@') {
        return EntryKind::Role;
    }
    if let Some(rest) = entry.strip_prefix("//") {
        let segs: Vec<&str> = rest.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return EntryKind::Malformed;
        }
        return match segs.len() {
            1 => EntryKind::SpDomain,
            2 => EntryKind::Identifier,
            3 if ae_stem_like(segs[2]) => EntryKind::Identifier,
            _ => EntryKind::ResourceId,
        };
    }
    if let Some(rest) = entry.strip_prefix('/') {
        let segs: Vec<&str> = rest.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return EntryKind::Malformed;
        }
        return match segs.len() {
            1 => EntryKind::Identifier,
            2 if ae_stem_like(segs[1]) => EntryKind::Identifier,
            _ => EntryKind::ResourceId,
        };
    }
    match form_of(entry) {
        Form::CStem | Form::SStem if !entry.contains('/') => EntryKind::Identifier,
        _ => EntryKind::ResourceId,
    }
}

/// A Role-ID entry with its FQDN lower-cased (TS-0003 7.4: the FQDN part is
/// case-insensitive, stored lower-case), or `None` when it is not a well-formed Role-ID.
fn role_entry(raw: &str) -> Option<String> {
    let (relative, fqdn) = raw.split_once('@')?;
    let role = format!("{relative}@{}", fqdn.to_ascii_lowercase());
    crate::token::is_role_id(&role).then_some(role)
}

/// One literal piece between two `*` of a segment pattern, with its KMP failure table.
#[derive(Clone, Debug)]
struct Piece {
    bytes: Box<[u8]>,
    fail: Box<[usize]>,
}

impl Piece {
    fn new(bytes: Vec<u8>) -> Self {
        let mut fail = vec![0usize; bytes.len()];
        let mut k = 0;
        for i in 1..bytes.len() {
            while k > 0 && bytes[i] != bytes[k] {
                k = fail[k - 1];
            }
            if bytes[i] == bytes[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Piece {
            bytes: bytes.into(),
            fail: fail.into(),
        }
    }

    /// Leftmost occurrence of the piece in `hay[from..to]`; returns the index just past it.
    fn find_in<H: Haystack + ?Sized>(&self, hay: &H, from: usize, to: usize) -> Option<usize> {
        let p = &self.bytes;
        if p.is_empty() {
            return Some(from);
        }
        let mut k = 0;
        for (i, c) in hay.bytes(from, to).enumerate() {
            while k > 0 && p[k] != c {
                k = self.fail[k - 1];
            }
            if p[k] == c {
                k += 1;
                if k == p.len() {
                    return Some(from + i + 1);
                }
            }
        }
        None
    }
}

/// A pattern for one `/`-free segment.
#[derive(Clone, Debug)]
enum SegGlob {
    /// No wildcard: the segment must be exactly these bytes.
    Literal(Box<[u8]>),
    /// `first * middle... * last`.
    Wild {
        first: Box<[u8]>,
        middle: Box<[Piece]>,
        last: Box<[u8]>,
    },
}

impl SegGlob {
    /// `tokens`: bytes of the segment with a flag telling whether the byte is a `*`
    /// wildcard (only bytes that came from an `acor` entry can be).
    fn compile(tokens: &[(u8, bool)]) -> SegGlob {
        let mut pieces: Vec<Vec<u8>> = vec![Vec::new()];
        for &(b, wild) in tokens {
            if wild {
                pieces.push(Vec::new());
            } else if let Some(cur) = pieces.last_mut() {
                cur.push(b);
            }
        }
        if pieces.len() == 1 {
            return SegGlob::Literal(pieces.pop().unwrap_or_default().into());
        }
        let last = pieces.pop().unwrap_or_default();
        let mut rest = pieces.into_iter();
        let first = rest.next().unwrap_or_default();
        let middle: Vec<Piece> = rest.filter(|p| !p.is_empty()).map(Piece::new).collect();
        SegGlob::Wild {
            first: first.into(),
            middle: middle.into(),
            last: last.into(),
        }
    }

    /// Does the (`/`-free) segment `hay` match?
    fn matches<H: Haystack + ?Sized>(&self, hay: &H) -> bool {
        let size = hay.size();
        match self {
            SegGlob::Literal(lit) => size == lit.len() && hay.eq_at(0, lit),
            SegGlob::Wild {
                first,
                middle,
                last,
            } => {
                if size < first.len() + last.len() {
                    return false;
                }
                let stop = size - last.len();
                if !hay.eq_at(0, first) || !hay.eq_at(stop, last) {
                    return false;
                }
                // Middle pieces must fit, in order, between prefix and suffix; taking
                // each at its leftmost occurrence is optimal for `*`-only patterns.
                let mut pos = first.len();
                for piece in middle.iter() {
                    match piece.find_in(hay, pos, stop) {
                        Some(next) => pos = next,
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

/// The compiled form of one `acor` entry.
#[derive(Clone, Debug)]
enum Matcher {
    All,
    /// `//fqdn-pattern`: the first segment must match and something must follow it.
    SpDomain(SegGlob),
    /// Wildcard-free absolute identifier: byte equality.
    Exact(Box<[u8]>),
    /// Absolute identifier pattern, one glob per segment after `//`.
    Segments(Box<[SegGlob]>),
    /// A Role-ID, FQDN lower-cased: asks the PIP whether the originator holds it.
    Role(Box<str>),
    /// A group resource ID as written: asks the PIP whether the originator is a member.
    Group(Box<str>),
    /// Never matches (malformed).
    Never,
}

/// One `acor` entry: as written, in absolute form, its kind and its compiled matcher.
#[derive(Clone, Debug)]
pub struct OriginatorEntry {
    raw: Box<str>,
    normalized: Box<str>,
    kind: EntryKind,
    matcher: Matcher,
}

impl OriginatorEntry {
    /// Classifies, normalises and compiles `raw` (TS-0003 7.1.3).
    pub(crate) fn compile(local: &LocalIdentity, raw: &str) -> Self {
        let mut kind = classify(raw);
        let never = |kind| OriginatorEntry {
            raw: raw.into(),
            normalized: raw.into(),
            kind,
            matcher: Matcher::Never,
        };
        match kind {
            EntryKind::All => {
                return OriginatorEntry {
                    raw: raw.into(),
                    normalized: raw.into(),
                    kind,
                    matcher: Matcher::All,
                }
            }
            EntryKind::Role => {
                return match role_entry(raw) {
                    Some(role) => OriginatorEntry {
                        raw: raw.into(),
                        normalized: role.clone().into(),
                        kind,
                        matcher: Matcher::Role(role.into()),
                    },
                    None => never(EntryKind::Malformed),
                }
            }
            EntryKind::ResourceId => {
                return OriginatorEntry {
                    raw: raw.into(),
                    normalized: raw.into(),
                    kind,
                    matcher: Matcher::Group(raw.into()),
                }
            }
            EntryKind::Malformed => return never(kind),
            EntryKind::SpDomain | EntryKind::Identifier => {}
        }

        // Bytes of the local prefix are literal even if they contain '*'; only the
        // entry's own '*' are wildcards.
        let mut tokens: Vec<(u8, bool)> = Vec::new();
        let mut normalized = String::new();
        let (parts, entry_index) = absolute_parts(local, raw);
        for (i, part) in parts.into_iter().enumerate() {
            let from_entry = i == entry_index;
            normalized.push_str(part);
            tokens.extend(part.bytes().map(|b| (b, from_entry && b == b'*')));
        }
        if tokens.len() < 2 || tokens[0] != (b'/', false) || tokens[1] != (b'/', false) {
            // Only reachable with a local identity that is not in `//fqdn` form.
            kind = EntryKind::Malformed;
            return never(kind);
        }
        let segs: Vec<SegGlob> = tokens[2..]
            .split(|&(b, _)| b == b'/')
            .map(SegGlob::compile)
            .collect();
        let wild = tokens.iter().any(|&(_, w)| w);
        let matcher = match kind {
            EntryKind::SpDomain => match segs.into_iter().next() {
                Some(host) => Matcher::SpDomain(host),
                None => Matcher::Never,
            },
            _ if segs.len() > MAX_SEGS => Matcher::Never,
            _ if !wild => Matcher::Exact(normalized.as_bytes().into()),
            _ => Matcher::Segments(segs.into()),
        };
        if matches!(matcher, Matcher::Never) {
            kind = EntryKind::Malformed;
        }
        OriginatorEntry {
            raw: raw.into(),
            normalized: normalized.into(),
            kind,
            matcher,
        }
    }

    /// For explanations: what a group or role entry found, or why an entry never matches.
    pub(crate) fn note(&self, subject: &Subject<'_>, pip: &dyn Pip) -> Option<String> {
        match &self.matcher {
            Matcher::Never => Some("malformed entry, never matches".to_owned()),
            Matcher::Role(role) if subject.is_empty() => Some(format!("role {role}")),
            Matcher::Role(role) => Some(if pip.holds_role(role) {
                format!("originator holds role {role}")
            } else {
                format!("originator holds no valid role {role}")
            }),
            Matcher::Group(group) => Some(match pip.member_of(group) {
                Some(true) => format!("originator is a member of group {group}"),
                Some(false) => format!("originator is not a member of group {group}"),
                None => format!("{group} is not a resolvable group, never matches"),
            }),
            _ => None,
        }
    }

    /// The entry as written in the rule.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The entry in absolute form (unchanged for `all` and for unsupported kinds).
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// Does the (normalised) originator match this entry? Empty originators never do.
    /// Group and role entries ask `pip`; an unresolvable group does not match.
    pub(crate) fn matches(&self, subject: &Subject<'_>, pip: &dyn Pip) -> bool {
        if subject.is_empty() {
            return false;
        }
        match &self.matcher {
            Matcher::All => true,
            Matcher::Never => false,
            Matcher::Role(role) => pip.holds_role(role),
            Matcher::Group(group) => pip.member_of(group) == Some(true),
            Matcher::Exact(lit) => subject.eq_bytes(lit),
            Matcher::SpDomain(host) => {
                // `//host/rest` with a non-empty `rest`.
                subject.absolute
                    && (subject.nsegs > 2 || (subject.nsegs == 2 && subject.seg_len(1) > 0))
                    && subject.seg_matches(host, 0)
            }
            Matcher::Segments(segs) => {
                // Last segment first: it is the one that differs between identities.
                subject.absolute
                    && subject.nsegs == segs.len()
                    && (0..segs.len())
                        .rev()
                        .all(|i| subject.seg_matches(&segs[i], i))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalIdentity {
        LocalIdentity {
            sp_id: "//bastion.example".into(),
            cse_id: "/id-in".into(),
            admin: "CAdmin".into(),
        }
    }

    fn hit(entry: &str, originator: &str) -> bool {
        let l = local();
        OriginatorEntry::compile(&l, entry)
            .matches(&Subject::new(&l, originator), &crate::NoInformation)
    }

    #[test]
    fn ts0001_7_2_normalisation_of_every_form() {
        let l = local();
        let n = |id| normalize_originator(&l, id);
        assert_eq!(n("Cabc"), "//bastion.example/id-in/Cabc");
        assert_eq!(n("Sabc"), "//bastion.example/Sabc");
        assert_eq!(n("/id-in/Cabc"), "//bastion.example/id-in/Cabc");
        assert_eq!(n("/other"), "//bastion.example/other");
        assert_eq!(n("//x.example/cse/Cq"), "//x.example/cse/Cq");
        assert_eq!(n("abc"), "abc");
        assert_eq!(n(""), "");
    }

    #[test]
    fn subject_segments() {
        let l = local();
        let s = Subject::new(&l, "Cabc");
        assert!(s.absolute);
        assert_eq!(s.nsegs, 3);
        let seg = |i: usize| match s.segs[i] {
            Seg::Slice(b) => std::str::from_utf8(b).unwrap().to_owned(),
            Seg::Spread(..) => panic!("well-formed identity gives slices"),
        };
        assert_eq!(
            (seg(0), seg(1), seg(2)),
            ("bastion.example".into(), "id-in".into(), "Cabc".into())
        );
        assert_eq!(Subject::new(&l, "//a/b/c/d/e").nsegs, 5);
        assert!(!Subject::new(&l, "xyz").absolute);
    }

    #[test]
    fn ts0003_7_1_3_classification() {
        assert_eq!(classify("all"), EntryKind::All);
        assert_eq!(classify("//sp.example"), EntryKind::SpDomain);
        assert_eq!(classify("//*.example"), EntryKind::SpDomain);
        assert_eq!(classify("//sp/cse"), EntryKind::Identifier);
        assert_eq!(classify("//sp/cse/Cae"), EntryKind::Identifier);
        assert_eq!(classify("//sp/cse/*"), EntryKind::Identifier);
        assert_eq!(classify("//sp/cse/grp1"), EntryKind::ResourceId);
        assert_eq!(classify("//sp/cse/a/b"), EntryKind::ResourceId);
        assert_eq!(classify("/cse"), EntryKind::Identifier);
        assert_eq!(classify("/Sae"), EntryKind::Identifier);
        assert_eq!(classify("/cse/Cae"), EntryKind::Identifier);
        assert_eq!(classify("/cse/grp"), EntryKind::ResourceId);
        assert_eq!(classify("Cae"), EntryKind::Identifier);
        assert_eq!(classify("Sae*"), EntryKind::Identifier);
        assert_eq!(classify("Cae/x"), EntryKind::ResourceId);
        assert_eq!(classify("grp-42"), EntryKind::ResourceId);
        assert_eq!(classify("*"), EntryKind::ResourceId);
        assert_eq!(classify("ops@roles.example"), EntryKind::Role);
        assert_eq!(classify(""), EntryKind::Malformed);
        assert_eq!(classify("/"), EntryKind::Malformed);
        assert_eq!(classify("//"), EntryKind::Malformed);
        assert_eq!(classify("/cse//Cx"), EntryKind::Malformed);
        assert_eq!(classify("All"), EntryKind::ResourceId);
    }

    #[test]
    fn ts0003_7_1_3_relative_and_absolute_forms_are_equivalent() {
        for entry in [
            "Cabc",
            "/id-in/Cabc",
            "//bastion.example/id-in/Cabc",
            "/id-in/C*",
            "//*/id-in/Cabc",
        ] {
            for orig in ["Cabc", "/id-in/Cabc", "//bastion.example/id-in/Cabc"] {
                assert!(hit(entry, orig), "{entry} vs {orig}");
            }
        }
        assert!(hit("Sx", "/Sx"));
        assert!(hit("/Sx", "//bastion.example/Sx"));
        assert!(!hit("Sx", "Cx"));
        // An AE-ID-Stem names an AE of *this* SP.
        assert!(!hit("Cabc", "//other.example/id-in/Cabc"));
        assert!(!hit("/id-in/Cabc", "//other.example/id-in/Cabc"));
    }

    #[test]
    fn ts0003_7_1_3_wildcard_stays_within_a_segment() {
        assert!(hit("/id-*/C98*", "/id-in/C987"));
        assert!(hit("//*/id-in", "//anything.example/id-in"));
        assert!(hit("//*/myCSE*", "//sp/myCSE-7"));
        assert!(hit("/SmyAE*", "SmyAE-1"));
        assert!(hit("C*", "C"));
        assert!(hit("C*b*c", "Cxbyc"));
        assert!(hit("C*b*c", "Cbc"));
        assert!(hit("C*aa*aa", "Caaaa"));
        assert!(!hit("C*aa*aa", "Caaa"));
        // '*' never swallows a '/'.
        assert!(!hit("//*/Cabc", "//sp/id-in/Cabc"));
        assert!(!hit("/id-in/C*", "/id-in/Cabc/x"));
        assert!(!hit("//bastion.example/*", "Cabc"));
        assert!(hit("//bastion.example/*", "/id-in"));
    }

    #[test]
    fn ts0003_7_1_3_originator_metacharacters_are_data() {
        assert!(!hit("Cabc", "C*"));
        assert!(!hit("Cabc", "Cab."));
        assert!(!hit("Cabc", "C.*"));
        assert!(!hit("Cabc", "Cab?"));
        assert!(!hit("Cabc", "C%2A"));
        assert!(!hit("Cabc", "Ca[b]c"));
        assert!(!hit("Cabc", "Cab\\c"));
        assert!(!hit("/id-in/Cabc", "/id-in/*"));
        assert!(!hit("//bastion.example", "//*"));
        // A literal star in the originator is matched by a pattern that accepts it.
        assert!(hit("C*", "C*"));
        assert!(hit("C*", "C.*"));
        assert!(hit("C%2A", "C%2A"));
        assert!(!hit("C%2A", "Cx"));
    }

    #[test]
    fn ts0003_7_1_3_all_and_sp_domain() {
        assert!(hit("all", "Cabc"));
        assert!(hit("all", "whatever"));
        assert!(!hit("all", ""));
        assert!(hit("//bastion.example", "Cabc"));
        assert!(hit("//bastion.example", "/id-in"));
        assert!(hit("//bastion.example", "//bastion.example/x/y/z"));
        assert!(!hit("//bastion.example", "//bastion.example"));
        assert!(!hit("//bastion.example", "//bastion.example/"));
        assert!(!hit("//bastion.example", "//other.example/id-in/Cabc"));
        assert!(!hit("//bastion.example", "//bastion.example.evil/x"));
        assert!(hit("//*.example", "//other.example/cse"));
        assert!(!hit("//bastion.example", "abc"));
    }

    #[test]
    fn unsupported_entries_never_match() {
        assert!(!hit("grp-42", "grp-42"));
        assert!(!hit("/id-in/grp1", "/id-in/grp1"));
        assert!(!hit("ops@roles.example", "ops@roles.example"));
        assert!(!hit("", ""));
        assert!(!hit("*", "Cabc"));
    }

    #[test]
    fn local_prefix_star_is_literal() {
        let l = LocalIdentity {
            sp_id: "//sp*".into(),
            cse_id: "/c".into(),
            admin: "CAdmin".into(),
        };
        let e = OriginatorEntry::compile(&l, "Cx");
        assert!(e.matches(&Subject::new(&l, "Cx"), &crate::NoInformation));
        assert!(!e.matches(&Subject::new(&l, "//spA/c/Cx"), &crate::NoInformation));
    }

    #[test]
    fn bad_local_identity_fails_closed() {
        let l = LocalIdentity {
            sp_id: "bastion.example".into(),
            cse_id: "/id-in".into(),
            admin: "CAdmin".into(),
        };
        let e = OriginatorEntry::compile(&l, "Cabc");
        assert_eq!(e.kind(), EntryKind::Malformed);
        assert!(!e.matches(&Subject::new(&l, "Cabc"), &crate::NoInformation));
        assert!(l.validate().is_err());
        assert!(local().validate().is_ok());
    }

    #[test]
    fn segments_straddling_pieces_use_the_fallback() {
        // A cse_id without its leading '/' glues onto the SP segment: "//spx/Cabc".
        let l = LocalIdentity {
            sp_id: "//sp".into(),
            cse_id: "x".into(),
            admin: "CAdmin".into(),
        };
        let s = Subject::new(&l, "Cabc");
        assert!(matches!(s.segs[0], Seg::Spread(2, 5)));
        assert_eq!(s.nsegs, 2);
        let hit = |entry: &str, who: &str| {
            OriginatorEntry::compile(&l, entry)
                .matches(&Subject::new(&l, who), &crate::NoInformation)
        };
        assert!(hit("//spx/Cabc", "Cabc"));
        assert!(hit("//s*x/C*", "Cabc"));
        assert!(hit("//*p*/Ca*", "Cabc"));
        assert!(hit("//*/Cabc", "Cabc"));
        assert!(!hit("//s*y/Cabc", "Cabc"));
        assert!(!hit("//sp/Cabc", "Cabc"));
        assert!(hit("//spx", "Cabc"));
        assert!(hit("//s*", "Cabc"));
        assert!(!hit("//spxx*", "Cabc"));
        assert!(hit("Cabc", "//spx/Cabc"));
    }

    #[test]
    fn kmp_failure_table() {
        let p = Piece::new(b"aabaaab".to_vec());
        assert_eq!(&*p.fail, &[0, 1, 0, 1, 2, 2, 3]);
    }
}
