//! The response-code mapping of TS-0008 Table 6.2.4-1: the one table from a oneM2M
//! response status code to the CoAP response code of the answer. The exact code always
//! travels in the oneM2M-RSC option too, so the table only has to be right, not unique.

use bastion_proto::{Operation, Rsc};

/// A CoAP code as it stands in the header: class in the top 3 bits, detail in the low 5
/// (`2.05` is `0x45`).
pub const fn code(class: u8, detail: u8) -> u8 {
    (class << 5) | detail
}

pub const CREATED: u8 = code(2, 1);
pub const DELETED: u8 = code(2, 2);
pub const CHANGED: u8 = code(2, 4);
pub const CONTENT: u8 = code(2, 5);
pub const CONTINUE: u8 = code(2, 31);
pub const BAD_REQUEST: u8 = code(4, 0);
pub const BAD_OPTION: u8 = code(4, 2);
pub const FORBIDDEN: u8 = code(4, 3);
pub const NOT_FOUND: u8 = code(4, 4);
pub const METHOD_NOT_ALLOWED: u8 = code(4, 5);
pub const NOT_ACCEPTABLE: u8 = code(4, 6);
pub const REQUEST_ENTITY_INCOMPLETE: u8 = code(4, 8);
pub const REQUEST_ENTITY_TOO_LARGE: u8 = code(4, 13);
pub const UNSUPPORTED_CONTENT_FORMAT: u8 = code(4, 15);
pub const INTERNAL_SERVER_ERROR: u8 = code(5, 0);
pub const NOT_IMPLEMENTED: u8 = code(5, 1);
pub const SERVICE_UNAVAILABLE: u8 = code(5, 3);
pub const GATEWAY_TIMEOUT: u8 = code(5, 4);
pub const PROXYING_NOT_SUPPORTED: u8 = code(5, 5);

/// TS-0008 Table 6.2.4-1, every row with a single CoAP code: (RSC, CoAP code). 2000
/// depends on the operation and 1002 on the answer ([`coap_code`]); 1000 has none in the
/// table (docs/decisions.md).
const TABLE: &[(u16, u8)] = &[
    (1001, CREATED),
    (2001, CREATED),
    (2002, DELETED),
    (2004, CHANGED),
    (4000, BAD_REQUEST),
    (4001, NOT_IMPLEMENTED),
    (4004, NOT_FOUND),
    (4005, METHOD_NOT_ALLOWED),
    (4008, GATEWAY_TIMEOUT),
    (4015, UNSUPPORTED_CONTENT_FORMAT),
    (4101, FORBIDDEN),
    (4102, BAD_REQUEST),
    (4103, FORBIDDEN),
    (4104, BAD_REQUEST),
    (4105, FORBIDDEN),
    (4106, FORBIDDEN),
    (4107, FORBIDDEN),
    (4108, FORBIDDEN),
    (4109, FORBIDDEN),
    (4110, BAD_REQUEST),
    (4111, FORBIDDEN),
    (4112, FORBIDDEN),
    (4113, FORBIDDEN),
    (4114, FORBIDDEN),
    (4115, FORBIDDEN),
    (4116, FORBIDDEN),
    (4117, FORBIDDEN),
    (4118, NOT_FOUND),
    (4119, NOT_FOUND),
    (4120, BAD_OPTION),
    (4121, NOT_FOUND),
    (4122, BAD_OPTION),
    (4123, BAD_REQUEST),
    (4124, BAD_REQUEST),
    (4125, NOT_IMPLEMENTED),
    (4126, FORBIDDEN),
    (4127, FORBIDDEN),
    (4143, BAD_REQUEST),
    (5000, INTERNAL_SERVER_ERROR),
    (5001, NOT_IMPLEMENTED),
    (5103, NOT_FOUND),
    (5105, FORBIDDEN),
    (5106, BAD_REQUEST),
    (5107, NOT_FOUND),
    (5203, FORBIDDEN),
    (5204, INTERNAL_SERVER_ERROR),
    (5205, FORBIDDEN),
    (5206, NOT_IMPLEMENTED),
    (5207, NOT_ACCEPTABLE),
    (5208, FORBIDDEN),
    (5209, INTERNAL_SERVER_ERROR),
    (5210, INTERNAL_SERVER_ERROR),
    (5211, INTERNAL_SERVER_ERROR),
    (5212, INTERNAL_SERVER_ERROR),
    (5214, FORBIDDEN),
    (5215, FORBIDDEN),
    (5216, INTERNAL_SERVER_ERROR),
    (5217, INTERNAL_SERVER_ERROR),
    (5218, FORBIDDEN),
    (5219, BAD_REQUEST),
    (5220, BAD_REQUEST),
    (5221, INTERNAL_SERVER_ERROR),
    (5222, FORBIDDEN),
    (6003, NOT_FOUND),
    (6005, NOT_FOUND),
    (6010, BAD_REQUEST),
    (6020, INTERNAL_SERVER_ERROR),
    (6021, INTERNAL_SERVER_ERROR),
    (6022, BAD_REQUEST),
    (6023, BAD_REQUEST),
    (6024, BAD_REQUEST),
    (6025, INTERNAL_SERVER_ERROR),
    (6026, INTERNAL_SERVER_ERROR),
    (6028, BAD_REQUEST),
    (6029, BAD_REQUEST),
    (6030, GATEWAY_TIMEOUT),
    (6031, GATEWAY_TIMEOUT),
];

/// The CoAP response code of a response with `rsc` to an `op` request.
/// `names_request` says whether the answer names a created `<request>` resource (1002:
/// 2.01 then, else 2.04).
pub fn coap_code(rsc: Rsc, op: Option<Operation>, names_request: bool) -> u8 {
    match rsc.code() {
        2000 if op == Some(Operation::Notify) => CHANGED,
        2000 => CONTENT,
        1002 if names_request => CREATED,
        // 1000 ACCEPTED has no CoAP code in the table; it is an acceptance without a
        // <request> resource, like 1002 without one (docs/decisions.md).
        1000 | 1002 => CHANGED,
        n => TABLE
            .iter()
            .find(|(rsc, _)| *rsc == n)
            .map_or(INTERNAL_SERVER_ERROR, |(_, c)| *c),
    }
}

/// `c.dd` as RFC 7252 writes a code.
pub fn dotted(code: u8) -> String {
    format!("{}.{:02}", code >> 5, code & 0x1f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of TS-0008 Table 6.2.4-1 as the spec writes them.
    const SPEC: &[(u16, &str)] = &[
        (1001, "2.01"),
        (2001, "2.01"),
        (2002, "2.02"),
        (2004, "2.04"),
        (4000, "4.00"),
        (4001, "5.01"),
        (4004, "4.04"),
        (4005, "4.05"),
        (4008, "5.04"),
        (4015, "4.15"),
        (4101, "4.03"),
        (4103, "4.03"),
        (4105, "4.03"),
        (4106, "4.03"),
        (4107, "4.03"),
        (4108, "4.03"),
        (4109, "4.03"),
        (4110, "4.00"),
        (4117, "4.03"),
        (4120, "4.02"),
        (4124, "4.00"),
        (4126, "4.03"),
        (4127, "4.03"),
        (5000, "5.00"),
        (5001, "5.01"),
        (5103, "4.04"),
        (5105, "4.03"),
        (5106, "4.00"),
        (5107, "4.04"),
        (5203, "4.03"),
        (5204, "5.00"),
        (5205, "4.03"),
        (5206, "5.01"),
        (5207, "4.06"),
        (5209, "5.00"),
        (6010, "4.00"),
        (6030, "5.04"),
    ];

    #[test]
    fn ts0008_table_6_2_4_1() {
        for (rsc, expected) in SPEC {
            let got = TABLE
                .iter()
                .find(|(r, _)| r == rsc)
                .map(|(_, c)| dotted(*c));
            assert_eq!(got.as_deref(), Some(*expected), "rsc {rsc}");
        }
    }

    #[test]
    fn every_code_bastion_emits_has_a_coap_code() {
        for n in 1000..7000 {
            let Some(rsc) = Rsc::from_code(n) else {
                continue;
            };
            let coap = coap_code(rsc, Some(Operation::Retrieve), false);
            let class = coap >> 5;
            assert!(
                (rsc.is_success() || n < 2000) == (class == 2),
                "{n} maps to {}",
                dotted(coap)
            );
        }
    }

    #[test]
    fn ok_depends_on_the_operation_and_1002_on_the_request_resource() {
        assert_eq!(
            dotted(coap_code(Rsc::Ok, Some(Operation::Retrieve), false)),
            "2.05"
        );
        assert_eq!(
            dotted(coap_code(Rsc::Ok, Some(Operation::Notify), false)),
            "2.04"
        );
        let asynch = Rsc::AcceptedNonBlockingAsynch;
        assert_eq!(
            dotted(coap_code(asynch, Some(Operation::Create), true)),
            "2.01"
        );
        assert_eq!(
            dotted(coap_code(asynch, Some(Operation::Create), false)),
            "2.04"
        );
    }
}
