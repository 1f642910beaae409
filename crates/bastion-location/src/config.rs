//! The `[location]` section of the CSE configuration: where originators' locations come
//! from (TS-0003 annex F) and the operator's address-to-country table. Parsing is strict
//! (`deny_unknown_fields`); semantic checks (coordinates, URLs, prefixes, duplicates) run
//! when a [`crate::LocationPip`] is built from it.
//!
//! ```toml
//! [location]
//! trust_device_reported = false      # annex F distrusts device (GPS) locations
//! device_max_age_secs = 300
//!
//! [[location.static_nodes]]
//! originator = "CSensor1"            # any originator form; normalised to //sp/cse/ae
//! latitude = 52.52
//! longitude = 13.405
//!
//! [location.network]                 # OMA RESTful NetAPI Terminal Location v1 server
//! base_url = "https://tl.operator.example/exampleAPI"
//! callback_url = "https://cse.example/location/notify"
//! max_age_secs = 600
//! poll_interval_secs = 120           # optional periodic one-shot queries
//! terminals = [
//!   { originator = "CTracker", address = "tel:+4912345" },
//! ]
//!
//! [[location.country_prefixes]]
//! prefix = "192.0.2.0/24"
//! country = "DE"
//! ```

use serde::Deserialize;

/// The whole `[location]` section. Every field is optional; the default knows nothing.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Whether locations reported by the devices themselves count: those reported through
    /// [`crate::LocationPip::report_device_location`] and the newest position in the
    /// container of an originator's device-based `<locationPolicy>` (read by the core).
    /// Off by default: annex F requires a network-based source and distrusts
    /// device-reported (GPS) positions.
    #[serde(default)]
    pub trust_device_reported: bool,
    /// Age after which a device-reported fix, or `<locationPolicy>` position, is stale.
    #[serde(default = "default_max_age_secs")]
    pub device_max_age_secs: u64,
    /// Fixed locations of nodes that do not move.
    #[serde(default)]
    pub static_nodes: Vec<StaticNode>,
    /// The network location server, if the operator has one.
    #[serde(default)]
    pub network: Option<NetworkConfig>,
    /// Address prefix → country, for `accc` when no location is known (annex F: "derive
    /// the country from the source IP"); the longest matching prefix wins.
    #[serde(default)]
    pub country_prefixes: Vec<CountryPrefix>,
}

impl Default for LocationConfig {
    fn default() -> LocationConfig {
        LocationConfig {
            trust_device_reported: false,
            device_max_age_secs: default_max_age_secs(),
            static_nodes: Vec::new(),
            network: None,
            country_prefixes: Vec::new(),
        }
    }
}

/// One node whose location is configured.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticNode {
    pub originator: String,
    /// WGS 84 degrees.
    pub latitude: f64,
    pub longitude: f64,
}

/// An OMA RESTful NetAPI Terminal Location v1 server (TS-0003 annex F; TS-0004 annex F).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The server root; the API lives under `{base_url}/location/v1/`.
    pub base_url: String,
    /// Where the server must POST notifications: the public URL of this PIP's receiver.
    /// Its path is the path the receiver's router answers on.
    pub callback_url: String,
    /// The terminals to follow: which network address belongs to which originator.
    #[serde(default)]
    pub terminals: Vec<Terminal>,
    /// Age after which a network fix is stale.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// If set, query every terminal's location this often (seconds).
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// `trackingAccuracy` of area subscriptions, metres.
    #[serde(default = "default_accuracy_m")]
    pub tracking_accuracy_m: u32,
    /// `requestedAccuracy` of location queries, metres.
    #[serde(default = "default_accuracy_m")]
    pub requested_accuracy_m: u32,
    /// `frequency` of area subscriptions: least seconds between two notifications.
    #[serde(default = "default_frequency_secs")]
    pub frequency_secs: u32,
    /// Time limit of one request to the server, seconds.
    #[serde(default = "default_timeout_secs")]
    pub request_timeout_secs: u64,
}

/// One followed terminal.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Terminal {
    /// The oneM2M originator (any form; normalised to `//sp/cse/ae`).
    pub originator: String,
    /// The network's address of the terminal: a `tel:`, `sip:` or `acr:` URI.
    pub address: String,
}

/// One row of the address-to-country table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CountryPrefix {
    /// `a.b.c.d/n`, `x:y::/n`, or a bare address (a host).
    pub prefix: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

fn default_max_age_secs() -> u64 {
    300
}

fn default_accuracy_m() -> u32 {
    100
}

fn default_frequency_secs() -> u32 {
    10
}

fn default_timeout_secs() -> u64 {
    10
}
