//! Subprotocol negotiation (TS-0020 6.2.2.7, 6.2.2.9, 6.2.3.5): which of the names a
//! client offers in `Sec-WebSocket-Protocol` the CSE accepts, and the serialization it
//! stands for. Names are compared without regard to case, in the TS-0020 form
//! (`oneM2M.json`) and the form of the IANA registry (`oneM2M.R2.0.json`); the first
//! acceptable name in the client's order wins and is echoed as the client spelled it
//! (docs/decisions.md).

use bastion_proto::wire::Serialization;

/// The serialization a subprotocol name stands for, when it is a oneM2M one.
pub fn serialization_of(name: &str) -> Option<Serialization> {
    let lower = name.trim().to_ascii_lowercase();
    let format = lower
        .strip_prefix("onem2m.r2.0.")
        .or_else(|| lower.strip_prefix("onem2m."))?;
    match format {
        "json" => Some(Serialization::Json),
        "xml" => Some(Serialization::Xml),
        "cbor" => Some(Serialization::Cbor),
        _ => None,
    }
}

/// The first acceptable of the offered names (each header value a comma-separated list,
/// in the client's order of preference) and its serialization.
pub fn negotiate<'a>(
    offered: impl IntoIterator<Item = &'a str>,
) -> Option<(String, Serialization)> {
    offered
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find_map(|name| serialization_of(name).map(|ser| (name.to_owned(), ser)))
}

/// The names this CSE accepts, for the refusal's explanation.
pub const ACCEPTED: &str = "oneM2M.json, oneM2M.cbor, oneM2M.xml (or oneM2M.R2.0.*)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_acceptable_name_wins_and_keeps_its_spelling() {
        assert_eq!(
            negotiate(["chat, onem2m.r2.0.cbor", "oneM2M.json"]),
            Some(("onem2m.r2.0.cbor".to_owned(), Serialization::Cbor))
        );
        assert_eq!(
            negotiate(["oneM2M.xml, oneM2M.json"]),
            Some(("oneM2M.xml".to_owned(), Serialization::Xml))
        );
    }

    #[test]
    fn other_names_are_not_accepted() {
        assert_eq!(negotiate(["chat", "oneM2M.yaml", "oneM2M.R3.0.json"]), None);
        assert_eq!(negotiate(Vec::<&str>::new()), None);
        assert_eq!(serialization_of("xoneM2M.json"), None);
    }
}
