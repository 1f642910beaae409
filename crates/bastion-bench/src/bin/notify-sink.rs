//! `notify-sink`: the notification target of `bench/notify.sh`. It answers every POST
//! with `X-M2M-RSC: 2000` (so subscription verification succeeds) and counts the
//! notifications it received (verification requests excluded); `GET /count` returns
//! the count as plain text.
//!
//! ```text
//! notify-sink --listen 127.0.0.1:18095
//! ```

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use bastion_proto::wire::http::header;
use clap::Parser;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(about = "Counting notification target for the Bastion notification benchmark")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18095")]
    listen: SocketAddr,
}

async fn handle(
    State(count): State<Arc<AtomicU64>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    if method == Method::GET {
        return (
            StatusCode::OK,
            [(header::RSC, "2000")],
            count.load(Ordering::Relaxed).to_string(),
        );
    }
    // Verification requests carry `"vrq":true`; batches count each notification inside.
    let text = String::from_utf8_lossy(&body);
    if !text.contains("\"vrq\":true") {
        let events = text.matches("\"nev\"").count().max(1) as u64;
        count.fetch_add(events, Ordering::Relaxed);
    }
    let _ = headers;
    (StatusCode::OK, [(header::RSC, "2000")], String::new())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let count = Arc::new(AtomicU64::new(0));
    let app = Router::new().fallback(handle).with_state(count);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await
}
