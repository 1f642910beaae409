//! Feeds arbitrary text, read as an HTTP request head (`METHOD URI` on the first line,
//! `name: value` header lines after it), to `bastion_http::decode_head`: the TS-0009
//! mapping of method, path, `X-M2M-*` headers and query parameters. It must never panic,
//! and whatever it accepts must carry an operation; its target goes on to the address
//! parser the core checks it with (which owns the length bound: a long path is the
//! core's 4000, not the binding's).
#![no_main]

use bastion_proto::id::Address;
use http::{HeaderName, HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let Some((method, uri)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut builder = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    if let Ok(primitive) = bastion_http::decode_head(&parts.method, &parts.uri, &parts.headers) {
        assert!(
            primitive.op.is_some(),
            "an accepted request has an operation"
        );
        let _ = Address::parse(&primitive.to);
    }
});
