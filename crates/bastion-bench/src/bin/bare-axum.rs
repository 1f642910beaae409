//! `bare-axum`: the "ceiling" server of the load benchmark (`bench/load.sh`).
//!
//! It answers ANY method on ANY path with `200 OK`, `Content-Type: application/json`,
//! `X-M2M-RSC: 2000`, `X-M2M-RVI: 3`, the request's `X-M2M-RI` echoed, and a fixed JSON
//! body of `--body-bytes` bytes (default: about the size of an `m2m:cin` RETRIEVE
//! response). It does no oneM2M work at all, so its throughput on the same core and the
//! same HTTP stack (tokio + hyper + axum) is the upper bound a Bastion request can reach;
//! the benchmark reports every target as a ratio to it.
//!
//! ```text
//! bare-axum --listen 127.0.0.1:18090 --body-bytes 300
//! ```

use bastion_proto::wire::http::header as m2m;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::Router;
use clap::Parser;

/// Default body size: a typical `m2m:cin` RETRIEVE response with a ~100-byte `con`.
const DEFAULT_BODY_BYTES: usize = 300;

#[derive(Parser, Debug)]
#[command(about = "Bare axum ceiling server for the Bastion load benchmark")]
struct Args {
    /// Address to listen on (loopback only in the benchmark).
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: SocketAddr,
    /// Exact size in bytes of the JSON response body (at least 2: `{}`).
    #[arg(long, default_value_t = DEFAULT_BODY_BYTES)]
    body_bytes: usize,
}

static X_M2M_RI: HeaderName = HeaderName::from_static(m2m::RI);
static X_M2M_RSC: HeaderName = HeaderName::from_static(m2m::RSC);
static X_M2M_RVI: HeaderName = HeaderName::from_static(m2m::RVI);

/// A `m2m:cin`-shaped JSON document of exactly `n` bytes (the `con` is padded to fit).
/// Below the size of the empty template the body is `{}` padded with spaces (still JSON);
/// sizes under 2 give `{}`.
fn body_of(n: usize) -> String {
    let n = n.max(2);
    let make = |k: usize| {
        format!(
            concat!(
                r#"{{"m2m:cin":{{"rn":"cin_0123456789","ri":"cin0123456789","pi":"cnt0123456789","#,
                r#""ty":4,"ct":"20250101T000000,000000","lt":"20250101T000000,000000","#,
                r#""et":"20300101T000000,000000","st":1,"cnf":"text/plain:0","cs":{},"con":"{}"}}}}"#
            ),
            k,
            "x".repeat(k)
        )
    };
    // The length grows by one per unit of `k` except when `cs` gains a digit; a few
    // steps from the estimate always land on `n` or just past it.
    let base = make(0).len();
    if n < base {
        let mut s = String::from("{}");
        s.extend(std::iter::repeat_n(' ', n - 2));
        return s;
    }
    let mut k = n - base;
    while k > 0 && make(k).len() > n {
        k -= 1;
    }
    let mut s = make(k);
    s.extend(std::iter::repeat_n(' ', n - s.len()));
    s
}

async fn answer(State(body): State<Bytes>, req: HeaderMap) -> (StatusCode, HeaderMap, Bytes) {
    let mut h = HeaderMap::with_capacity(4);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(X_M2M_RSC.clone(), HeaderValue::from_static("2000"));
    h.insert(X_M2M_RVI.clone(), HeaderValue::from_static("3"));
    if let Some(ri) = req.get(&X_M2M_RI) {
        h.insert(X_M2M_RI.clone(), ri.clone());
    }
    (StatusCode::OK, h, body)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(body_of(args.body_bytes));
    let app = Router::new().fallback(answer).with_state(body);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "bare-axum listening on {} (body {} bytes)",
        listener.local_addr()?,
        args.body_bytes
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::body_of;

    #[test]
    fn body_has_the_requested_size_and_is_json_shaped() {
        for n in [2, 3, 50, 200, 299, 300, 301, 1000, 4096] {
            let b = body_of(n);
            assert_eq!(b.len(), n, "size {n}");
            assert!(b.starts_with('{'));
            assert!(b.trim_end().ends_with('}'));
        }
        assert_eq!(body_of(0), "{}");
    }
}
