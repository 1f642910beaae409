//! The OMA RESTful NetAPI Terminal Location v1 JSON that the PIP speaks (TS-0003 annex F;
//! TS-0004 annex F maps `<locationPolicy>` onto it): the circle-subscription request we
//! send, and the terminal locations we receive in notifications and query answers.
//!
//! Requests are built exactly; answers are read leniently where the API allows variation
//! (unknown members are ignored; a list with one element may arrive as a bare object) and
//! strictly where the PIP depends on the value (address, status, coordinates, time).
//! Validation is separate from decoding, so a notification is checked whole before
//! anything it says is applied.

use bastion_policy::Location;
use serde::{Deserialize, Deserializer, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// `enteringLeavingCriteria`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Criteria {
    Entering,
    Leaving,
}

/// Body of `POST {base}/location/v1/subscriptions/area/circle`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CircleSubscriptionBody<'a> {
    pub circle_notification_subscription: CircleNotificationSubscription<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CircleNotificationSubscription<'a> {
    pub address: [&'a str; 1],
    pub callback_reference: CallbackReference<'a>,
    pub check_immediate: bool,
    pub entering_leaving_criteria: Criteria,
    pub frequency: u32,
    pub latitude: f64,
    pub longitude: f64,
    pub radius: f64,
    pub tracking_accuracy: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallbackReference<'a> {
    #[serde(rename = "notifyURL")]
    pub notify_url: &'a str,
    pub callback_data: &'a str,
}

/// The server's answer to a subscription: we need only its `resourceURL`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedSubscription {
    pub circle_notification_subscription: CreatedResource,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedResource {
    #[serde(rename = "resourceURL")]
    pub resource_url: Option<String>,
}

/// What may be POSTed to our callback URL.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Incoming {
    SubscriptionNotification(SubscriptionNotification),
    SubscriptionCancellationNotification(CancellationNotification),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscriptionNotification {
    pub callback_data: Option<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub terminal_location: Vec<TerminalLocation>,
    #[serde(default)]
    pub is_final_notification: bool,
    #[serde(default, deserialize_with = "one_or_many_default")]
    pub link: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancellationNotification {
    pub callback_data: Option<String>,
    #[serde(default, deserialize_with = "one_or_many_default")]
    pub link: Vec<Link>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Link {
    pub href: String,
}

/// Answer of `GET {base}/location/v1/queries/location`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryAnswer {
    pub terminal_location_list: TerminalLocationList,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TerminalLocationList {
    #[serde(deserialize_with = "one_or_many")]
    pub terminal_location: Vec<TerminalLocation>,
}

/// `locationRetrievalStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum RetrievalStatus {
    Retrieved,
    NotRetrieved,
    Error,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TerminalLocation {
    pub address: String,
    pub location_retrieval_status: RetrievalStatus,
    pub current_location: Option<LocationInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LocationInfo {
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy: Option<f64>,
    pub timestamp: String,
}

/// A validated fix from the network.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NetworkFix {
    pub address: String,
    pub location: Location,
    pub at: SystemTime,
}

impl TerminalLocation {
    /// `Ok(None)` for a terminal the server could not locate; `Err` for an entry that
    /// contradicts the API (retrieved but no or bad location).
    pub fn validate(&self) -> Result<Option<NetworkFix>, String> {
        if self.address.is_empty() {
            return Err("empty address".into());
        }
        if self.location_retrieval_status != RetrievalStatus::Retrieved {
            return Ok(None);
        }
        let info = self
            .current_location
            .as_ref()
            .ok_or_else(|| format!("{}: Retrieved without currentLocation", self.address))?;
        let location = Location {
            latitude: info.latitude,
            longitude: info.longitude,
        };
        if !location.is_valid() {
            return Err(format!("{}: coordinates out of range", self.address));
        }
        if let Some(a) = info.accuracy {
            if !(a.is_finite() && a >= 0.0) {
                return Err(format!("{}: bad accuracy", self.address));
            }
        }
        let at = parse_timestamp(&info.timestamp)
            .ok_or_else(|| format!("{}: bad timestamp {:?}", self.address, info.timestamp))?;
        Ok(Some(NetworkFix {
            address: self.address.clone(),
            location,
            at,
        }))
    }
}

/// An `xsd:dateTime`: RFC 3339, or without zone (taken as UTC).
pub(crate) fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|p| p.assume_utc()))
        .ok()?;
    let nanos = t.unix_timestamp_nanos();
    if nanos >= 0 {
        let n = u64::try_from(nanos).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_nanos(n))
    } else {
        let n = u64::try_from(-nanos).ok()?;
        UNIX_EPOCH.checked_sub(Duration::from_nanos(n))
    }
}

fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(t) => vec![t],
    })
}

fn one_or_many_default<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    one_or_many(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_zone() {
        let t = |s| parse_timestamp(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_millis());
        assert_eq!(t("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(t("1970-01-01T01:00:01.5+01:00"), Some(1500));
        assert_eq!(t("1970-01-01T00:00:02"), Some(2000));
        assert_eq!(t("yesterday"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn subscription_body_uses_the_api_names() {
        let body = CircleSubscriptionBody {
            circle_notification_subscription: CircleNotificationSubscription {
                address: ["tel:+4912345"],
                callback_reference: CallbackReference {
                    notify_url: "http://cse/notify",
                    callback_data: "k",
                },
                check_immediate: true,
                entering_leaving_criteria: Criteria::Leaving,
                frequency: 10,
                latitude: 1.5,
                longitude: 2.5,
                radius: 300.0,
                tracking_accuracy: 100,
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"circleNotificationSubscription": {
                "address": ["tel:+4912345"],
                "callbackReference": {"notifyURL": "http://cse/notify", "callbackData": "k"},
                "checkImmediate": true,
                "enteringLeavingCriteria": "Leaving",
                "frequency": 10,
                "latitude": 1.5,
                "longitude": 2.5,
                "radius": 300.0,
                "trackingAccuracy": 100
            }})
        );
    }

    #[test]
    fn a_single_terminal_location_may_be_a_bare_object() {
        let one: Incoming = serde_json::from_str(
            r#"{"subscriptionNotification": {"callbackData": "k", "terminalLocation":
                {"address": "tel:+1", "locationRetrievalStatus": "NotRetrieved"}}}"#,
        )
        .unwrap();
        let Incoming::SubscriptionNotification(n) = one else {
            panic!("wrong kind")
        };
        assert_eq!(n.terminal_location.len(), 1);
        assert_eq!(n.terminal_location[0].validate(), Ok(None));
    }
}
