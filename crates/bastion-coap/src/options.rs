//! Option numbers and content formats: RFC 7252's options the binding reads or writes,
//! RFC 7959's block options, the oneM2M options of TS-0008 Table 6.2.2.4.0-1 and the
//! content-format numbers of TS-0008 6.2.2.2. Which options a request may carry
//! ([`first_unknown_critical`]) is decided here too.

use bastion_proto::wire::media::MediaKind;
use bastion_proto::wire::Serialization;

pub const IF_MATCH: u16 = 1;
pub const URI_HOST: u16 = 3;
pub const ETAG: u16 = 4;
pub const IF_NONE_MATCH: u16 = 5;
pub const OBSERVE: u16 = 6;
pub const URI_PORT: u16 = 7;
pub const LOCATION_PATH: u16 = 8;
pub const URI_PATH: u16 = 11;
pub const CONTENT_FORMAT: u16 = 12;
pub const MAX_AGE: u16 = 14;
pub const URI_QUERY: u16 = 15;
pub const ACCEPT: u16 = 17;
pub const LOCATION_QUERY: u16 = 20;
pub const BLOCK2: u16 = 23;
pub const BLOCK1: u16 = 27;
pub const SIZE2: u16 = 28;
pub const PROXY_URI: u16 = 35;
pub const PROXY_SCHEME: u16 = 39;
pub const SIZE1: u16 = 60;
pub const NO_RESPONSE: u16 = 258;

/// The oneM2M options (TS-0008 Table 6.2.2.4.0-1). All are critical and unsafe.
pub mod onem2m {
    pub const OT: u16 = 259;
    pub const RTURI: u16 = 263;
    pub const TY: u16 = 267;
    pub const RVI: u16 = 271;
    pub const ASRI: u16 = 275;
    pub const FR: u16 = 279;
    pub const RQI: u16 = 283;
    pub const RQET: u16 = 291;
    pub const RSET: u16 = 295;
    pub const OET: u16 = 299;
    pub const EC: u16 = 303;
    pub const RSC: u16 = 307;
    pub const GID: u16 = 311;
    pub const CTO: u16 = 319;
    pub const CTS: u16 = 323;
    pub const ATI: u16 = 327;
    pub const VSI: u16 = 331;
    pub const GTM: u16 = 335;
    pub const AUS: u16 = 339;
}

/// The options a request to this CSE may carry. Critical ones outside this list are
/// refused with 4.02 (RFC 7252 5.4.1). The oneM2M options of parameters Bastion does not
/// implement (ASRI, AUS, ATI, GTM, CTO) are left out: a request relying on them cannot be
/// served as meant, so it is refused rather than served without them.
const UNDERSTOOD: &[u16] = &[
    URI_HOST,
    URI_PORT,
    URI_PATH,
    CONTENT_FORMAT,
    URI_QUERY,
    ACCEPT,
    BLOCK2,
    BLOCK1,
    SIZE1,
    SIZE2,
    onem2m::OT,
    onem2m::RTURI,
    onem2m::TY,
    onem2m::RVI,
    onem2m::FR,
    onem2m::RQI,
    onem2m::RQET,
    onem2m::RSET,
    onem2m::OET,
    onem2m::EC,
    onem2m::GID,
    onem2m::VSI,
];

/// RFC 7252 5.4.6: an option is critical when its number is odd.
pub fn is_critical(number: u16) -> bool {
    number & 1 == 1
}

/// The first critical option of a request the binding does not understand, if any.
pub fn first_unknown_critical(numbers: impl IntoIterator<Item = u16>) -> Option<u16> {
    numbers
        .into_iter()
        .find(|n| is_critical(*n) && !UNDERSTOOD.contains(n))
}

/// The content formats Bastion reads and writes (RFC 7252 12.3 and TS-0008 Table
/// 6.2.2.2-1): (number, family, serialization). The whole-primitive types (`preq`,
/// `prsp`) are not among them: the CoAP binding carries content, not primitives.
const FORMATS: &[(u16, MediaKind, Serialization)] = &[
    (50, MediaKind::Plain, Serialization::Json),
    (60, MediaKind::Plain, Serialization::Cbor),
    (41, MediaKind::Plain, Serialization::Xml),
    (10001, MediaKind::Resource, Serialization::Json),
    (10003, MediaKind::Notification, Serialization::Json),
    (10010, MediaKind::Resource, Serialization::Cbor),
    (10011, MediaKind::Notification, Serialization::Cbor),
    (10014, MediaKind::Resource, Serialization::Xml),
    (10002, MediaKind::Notification, Serialization::Xml),
];

/// The serialization a content-format number names, if Bastion supports it.
pub fn serialization_of(format: u16) -> Option<Serialization> {
    FORMATS
        .iter()
        .find(|(n, _, _)| *n == format)
        .map(|(_, _, ser)| *ser)
}

/// The content-format number of `kind` in `ser`.
pub fn format_of(kind: MediaKind, ser: Serialization) -> u16 {
    FORMATS
        .iter()
        .find(|(_, k, s)| *k == kind && *s == ser)
        .map_or(50, |(n, _, _)| *n)
}

/// A uint option value (RFC 7252 3.2): big-endian, leading zero bytes dropped, at most
/// `max` bytes.
pub fn read_uint(bytes: &[u8], max: usize) -> Option<u64> {
    if bytes.len() > max || bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
}

/// A uint option value in its shortest form (0 is the empty value).
pub fn write_uint(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onem2m_options_are_critical_and_understood_ones_pass() {
        for n in [
            onem2m::FR,
            onem2m::RQI,
            onem2m::TY,
            onem2m::RSC,
            onem2m::AUS,
        ] {
            assert!(is_critical(n), "{n}");
        }
        assert_eq!(
            first_unknown_critical([URI_PATH, onem2m::FR, onem2m::TY]),
            None
        );
        // Elective options are ignored whatever they are; critical unknown ones are named.
        assert_eq!(first_unknown_critical([URI_PATH, 2048, OBSERVE]), None);
        assert_eq!(first_unknown_critical([URI_PATH, 2049]), Some(2049));
        assert_eq!(first_unknown_critical([IF_MATCH]), Some(IF_MATCH));
        assert_eq!(first_unknown_critical([onem2m::AUS]), Some(onem2m::AUS));
    }

    #[test]
    fn content_formats_of_ts0008() {
        assert_eq!(serialization_of(50), Some(Serialization::Json));
        assert_eq!(serialization_of(10001), Some(Serialization::Json));
        assert_eq!(serialization_of(10011), Some(Serialization::Cbor));
        assert_eq!(serialization_of(10014), Some(Serialization::Xml));
        assert_eq!(
            serialization_of(10007),
            None,
            "preq+json is a whole primitive"
        );
        assert_eq!(serialization_of(0), None, "text/plain");
        assert_eq!(format_of(MediaKind::Resource, Serialization::Cbor), 10010);
        assert_eq!(
            format_of(MediaKind::Notification, Serialization::Xml),
            10002
        );
    }

    #[test]
    fn uint_values() {
        assert_eq!(write_uint(0), Vec::<u8>::new());
        assert_eq!(write_uint(2), vec![2]);
        assert_eq!(write_uint(10001), vec![0x27, 0x11]);
        assert_eq!(read_uint(&[0x27, 0x11], 2), Some(10001));
        assert_eq!(read_uint(&[], 2), Some(0));
        assert_eq!(read_uint(&[1, 2, 3], 2), None);
    }
}
