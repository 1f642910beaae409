//! The WebSocket runner: each case gets a fresh `bastion serve` with a plain WebSocket
//! listener on loopback (TS-0020; treated as the plain HTTP listener, so the admin is
//! honoured as there) and one connection speaking the subprotocol of one serialization;
//! each step travels as a whole request primitive in one message, and its answer is the
//! response primitive with the same `rqi` on that connection.

use super::format::{Case, Omit, Step};
use super::over_mqtt::request_primitive;
use super::{rvi_echo_problem, sent_rvi, Outcome, Target};
use crate::common::ws::{connect_plain, ws_port, WsClient};
use crate::common::Server;
use bastion_proto::wire::{primitive, Serialization};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// How long a step waits for its answer.
const ANSWER: Duration = Duration::from_secs(10);

/// Why a case cannot travel over WebSocket, if it cannot: a step without `rqi` cannot be
/// answered (TS-0020 correlates by `rqi`; the binding closes the connection, 1007).
pub fn cannot_carry(case: &Case) -> Option<&'static str> {
    let mut steps = case.setup.iter().chain([&case.request]).chain(&case.after);
    steps
        .any(|s| s.omit.contains(&Omit::Rqi))
        .then_some("a step without rqi gets no answer over WebSocket")
}

/// Why a case cannot travel over WebSocket in `ser` when it can in general: as over
/// MQTT, a whole primitive whose content does not read back in `ser` hides its `rqi`.
pub fn cannot_carry_in(case: &Case, ser: Serialization) -> Option<&'static str> {
    super::over_mqtt::cannot_carry_in(case, ser)
}

/// A fresh binary serving WebSocket, spoken to over one connection in one serialization.
pub struct OverWs {
    /// Kept for as long as the case runs (dropping it stops the binary).
    _server: Server,
    serialization: Serialization,
    client: Mutex<WsClient<tokio::net::TcpStream>>,
}

impl OverWs {
    pub async fn start(serialization: Serialization) -> OverWs {
        let (server, port) = tokio::task::spawn_blocking(|| {
            let server = Server::start_with_config("[ws]\nlisten = \"127.0.0.1:0\"\n");
            let port = ws_port(&server, "ws");
            (server, port)
        })
        .await
        .expect("start the binary");
        let client = connect_plain(port, serialization).await;
        OverWs {
            _server: server,
            serialization,
            client: Mutex::new(client),
        }
    }

    /// The answer to `rqi`: the next response primitive carrying it (requests of the
    /// CSE on this connection are left unanswered: the cases name no `ws://` target).
    async fn answer(
        &self,
        client: &mut WsClient<tokio::net::TcpStream>,
        rqi: &str,
    ) -> Result<bastion_proto::Response, String> {
        let deadline = tokio::time::Instant::now() + ANSWER;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message =
                match tokio::time::timeout(left, futures_util::StreamExt::next(&mut client.ws))
                    .await
                {
                    Err(_) => return Err(format!("no answer within {ANSWER:?}")),
                    Ok(None) | Ok(Some(Err(_))) => return Err("the connection ended".into()),
                    Ok(Some(Ok(message))) => message,
                };
            let bytes = match message {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                Message::Close(frame) => return Err(format!("closed: {frame:?}")),
                _ => continue,
            };
            if let Ok(answer) = primitive::decode_response(self.serialization, &bytes) {
                if answer.rqi == rqi {
                    return Ok(answer);
                }
            }
        }
    }
}

impl Target for OverWs {
    async fn send(&self, step: &Step, rqi: Option<String>) -> Outcome {
        let failed = |problems: Vec<String>| Outcome {
            rsc: 0,
            pc: Value::Null,
            problems,
        };
        let Some(rqi) = rqi else {
            return failed(vec![
                "a step without rqi cannot travel over WebSocket".into()
            ]);
        };
        let flat = request_primitive(step, &rqi, |v| v);
        let primitive = match self.serialization {
            // XML wraps the primitive in its root element.
            Serialization::Xml => json!({ "m2m:rqp": flat }),
            _ => flat,
        };
        if let Err(e) = self.serialization.encode_pc(&primitive) {
            return failed(vec![format!("cannot write the primitive: {e}")]);
        }
        let mut client = self.client.lock().await;
        client.send(&primitive).await;
        let answer = match self.answer(&mut client, &rqi).await {
            Ok(answer) => answer,
            Err(why) => return failed(vec![why]),
        };
        let mut problems = Vec::new();
        problems.extend(rvi_echo_problem(
            sent_rvi(step).as_deref(),
            answer.rsc.code(),
            answer.rvi.as_deref(),
        ));
        Outcome {
            rsc: answer.rsc.code(),
            pc: answer.pc.unwrap_or(Value::Null),
            problems,
        }
    }
}
