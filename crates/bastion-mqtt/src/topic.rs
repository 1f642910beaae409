//! TS-0010 topic names (§6.4.2-§6.4.4, §6.5.4): how an AE-ID, CSE-ID or Credential-ID
//! becomes one topic level, and how a received topic is read back into its kind, its
//! originator level and the serialization of its payload. Topic levels are data: they
//! are compared as strings, never used as patterns.

use bastion_proto::Serialization;

/// The literal first level of every oneM2M topic (after the leading `/`).
const ROOT: &str = "oneM2M";

/// An ID as one topic level (TS-0010 6.4.2): an absolute ID's leading `//` becomes `:`;
/// otherwise leading `/`s are dropped; every other `/` becomes `:`.
/// `/id-mn/Cabc` → `id-mn:Cabc`, `/id-in` → `id-in`, `//sp/id-in` → `:sp:id-in`.
pub fn id_level(id: &str) -> String {
    match id.strip_prefix("//") {
        Some(rest) => format!(":{}", rest.replace('/', ":")),
        None => id.trim_start_matches('/').replace('/', ":"),
    }
}

/// Whether `level` can stand in a topic name: not empty, no wildcard, no separator.
fn usable_level(level: &str) -> bool {
    !level.is_empty() && !level.contains(['/', '+', '#', '\0'])
}

/// What a topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/oneM2M/req/…`: a request, its originator an AE-ID or CSE-ID.
    Request,
    /// `/oneM2M/reg_req/…`: a registration request, its originator a Credential-ID.
    Registration,
    /// `/oneM2M/resp/…`: the answer to a request this CSE sent.
    Response,
}

impl Kind {
    fn level(self) -> &'static str {
        match self {
            Kind::Request => "req",
            Kind::Registration => "reg_req",
            Kind::Response => "resp",
        }
    }

    /// The level of the topic the answer to a message of this kind is published on.
    fn answer_level(self) -> &'static str {
        match self {
            Kind::Request | Kind::Response => "resp",
            Kind::Registration => "reg_resp",
        }
    }
}

/// A received topic: `/oneM2M/<kind>/<originator>/<receiver>/<serialization>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub kind: Kind,
    /// The originator level as published (an encoded ID, or a Credential-ID).
    pub originator: String,
    /// The receiver level as published.
    pub receiver: String,
    pub ser: Serialization,
}

impl Topic {
    /// Reads a topic name; `None` for anything but the three oneM2M topic forms with a
    /// known serialization (`json`, `cbor`, `xml`, lower-case as TS-0010 writes them).
    pub fn parse(name: &str) -> Option<Topic> {
        let mut levels = name.strip_prefix('/')?.split('/');
        if levels.next()? != ROOT {
            return None;
        }
        let kind = match levels.next()? {
            "req" => Kind::Request,
            "reg_req" => Kind::Registration,
            "resp" => Kind::Response,
            _ => return None,
        };
        let originator = levels.next().filter(|l| usable_level(l))?;
        let receiver = levels.next().filter(|l| usable_level(l))?;
        let ser = match levels.next()? {
            "json" => Serialization::Json,
            "cbor" => Serialization::Cbor,
            "xml" => Serialization::Xml,
            _ => return None,
        };
        if levels.next().is_some() {
            return None;
        }
        Some(Topic {
            kind,
            originator: originator.to_owned(),
            receiver: receiver.to_owned(),
            ser,
        })
    }

    /// The topic the answer to this request is published on: `resp` (or `reg_resp`) with
    /// the same originator and receiver levels and serialization.
    pub fn answer(&self) -> String {
        format!(
            "/{ROOT}/{}/{}/{}/{}",
            self.kind.answer_level(),
            self.originator,
            self.receiver,
            self.ser.name()
        )
    }

    /// Whether `fr` is the originator this topic names: its own encoding, or, for an
    /// ID written CSE-relative (`Cabc`), the encoding of its SP-relative form under
    /// `cse_id` (`id-in:Cabc`), which TS-0010 prescribes and other CSEs also accept.
    pub fn names(&self, fr: &str, cse_id: &str) -> bool {
        if id_level(fr) == self.originator {
            return true;
        }
        !fr.is_empty()
            && !fr.starts_with('/')
            && id_level(&format!("{cse_id}/{fr}")) == self.originator
    }

    /// The Credential-ID a registration topic names, with its `:`s back to `/`s.
    pub fn credential_id(&self) -> String {
        self.originator.replace(':', "/")
    }
}

/// The entity a request to `to` is published to: the CSE an absolute or SP-relative
/// address starts with (the hop that serves it), or the AE-ID a CSE-relative `to` is
/// (`Cae`, the form a notification to an AE carries). `None` for a CSE-relative
/// structured path (`cse-in/ae`), which names no entity by ID.
pub fn receiver_of(to: &str) -> Option<&str> {
    if let Some(rest) = to.strip_prefix("//") {
        // `//sp/csi/…`: the CSE `//sp/csi`.
        let sp_end = rest.find('/')?;
        let csi_end = rest[sp_end + 1..]
            .find('/')
            .map_or(to.len(), |i| 2 + sp_end + 1 + i);
        return Some(&to[..csi_end]);
    }
    if let Some(rest) = to.strip_prefix('/') {
        return Some(&to[..1 + rest.find('/').unwrap_or(rest.len())]);
    }
    (!to.is_empty() && !to.contains('/')).then_some(to)
}

/// A request topic from `originator` to `receiver` (both IDs), in `ser`; `None` when an
/// ID cannot stand in a topic.
pub fn request_topic(originator: &str, receiver: &str, ser: Serialization) -> Option<String> {
    let (o, r) = (id_level(originator), id_level(receiver));
    (usable_level(&o) && usable_level(&r))
        .then(|| format!("/{ROOT}/{}/{o}/{r}/{}", Kind::Request.level(), ser.name()))
}

/// The topic filters a CSE with the level `me` subscribes to: requests and registration
/// requests to it, and answers to its own requests, in every serialization.
pub fn filters(me: &str) -> [String; 3] {
    [
        format!("/{ROOT}/{}/+/{me}/+", Kind::Request.level()),
        format!("/{ROOT}/{}/+/{me}/+", Kind::Registration.level()),
        format!("/{ROOT}/{}/{me}/+/+", Kind::Response.level()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_one_level() {
        assert_eq!(id_level("/id-mn/Cabc"), "id-mn:Cabc");
        assert_eq!(id_level("/id-in"), "id-in");
        assert_eq!(id_level("Cabc"), "Cabc");
        assert_eq!(id_level("//sp.example/id-in"), ":sp.example:id-in");
    }

    #[test]
    fn topics_are_read_exactly() {
        let t = Topic::parse("/oneM2M/req/Cae/id-in/json").expect("request");
        assert_eq!((t.kind, t.originator.as_str()), (Kind::Request, "Cae"));
        assert_eq!((t.receiver.as_str(), t.ser), ("id-in", Serialization::Json));
        assert_eq!(t.answer(), "/oneM2M/resp/Cae/id-in/json");
        let r = Topic::parse("/oneM2M/reg_req/cred:1/id-in/cbor").expect("registration");
        assert_eq!(r.answer(), "/oneM2M/reg_resp/cred:1/id-in/cbor");
        assert_eq!(r.credential_id(), "cred/1");
        for bad in [
            "oneM2M/req/Cae/id-in/json",
            "/oneM2M/req/Cae/id-in",
            "/oneM2M/req/Cae/id-in/JSON",
            "/oneM2M/req/Cae/id-in/yaml",
            "/oneM2M/req//id-in/json",
            "/oneM2M/req/Cae/id-in/json/extra",
            "/oneM2M/other/Cae/id-in/json",
            "/other/req/Cae/id-in/json",
        ] {
            assert_eq!(Topic::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_originator_level_names_fr_in_its_forms_only() {
        let t = Topic::parse("/oneM2M/req/Cae/id-in/json").expect("topic");
        assert!(t.names("Cae", "/id-in"));
        assert!(!t.names("Cother", "/id-in"));
        assert!(!t.names("Ca", "/id-in"));
        let sp = Topic::parse("/oneM2M/req/id-in:Cae/id-in/json").expect("topic");
        assert!(sp.names("Cae", "/id-in"));
        assert!(sp.names("/id-in/Cae", "/id-in"));
        assert!(!sp.names("/id-mn/Cae", "/id-in"));
    }

    #[test]
    fn the_receiver_is_the_first_hop_or_the_ae() {
        assert_eq!(receiver_of("Cae"), Some("Cae"));
        assert_eq!(receiver_of("/id-mn/cse-mn/cnt"), Some("/id-mn"));
        assert_eq!(receiver_of("/id-mn"), Some("/id-mn"));
        assert_eq!(receiver_of("/Sae"), Some("/Sae"));
        assert_eq!(
            receiver_of("//sp.example/id-in/Cae"),
            Some("//sp.example/id-in")
        );
        assert_eq!(
            receiver_of("//sp.example/id-in"),
            Some("//sp.example/id-in")
        );
        assert_eq!(receiver_of("//sp.example"), None);
        assert_eq!(receiver_of("cse-in/ae"), None);
        assert_eq!(receiver_of(""), None);
        assert_eq!(
            id_level(receiver_of("//sp.example/id-in/x").unwrap()),
            ":sp.example:id-in"
        );
    }

    #[test]
    fn request_topics_and_filters() {
        assert_eq!(
            request_topic("/id-in", "Cae", Serialization::Cbor).as_deref(),
            Some("/oneM2M/req/id-in/Cae/cbor")
        );
        assert_eq!(request_topic("/id-in", "C+#", Serialization::Json), None);
        assert_eq!(
            filters("id-in"),
            [
                "/oneM2M/req/+/id-in/+".to_owned(),
                "/oneM2M/reg_req/+/id-in/+".to_owned(),
                "/oneM2M/resp/id-in/+/+".to_owned(),
            ]
        );
    }
}
