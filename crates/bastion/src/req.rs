//! `bastion req`: one oneM2M request from the command line, over `http://` or over TLS
//! (`https://`, PSK with `--psk-id` and `--psk-file` or `BASTION_PSK_HEX` or certificates with
//! `--cert`/`--key`/`--ca`), through `bastion_client`. Prints the response's rsc on the
//! first line and its JSON body after it; never prints key material.

use crate::cli::{ReqArgs, ReqOp, TlsClientArgs};
use crate::Failure;
use bastion_client::{Client, ClientConfig, TlsConnector};
use bastion_proto::{Operation, Request, Response};
use bastion_tls::{ClientOptions, TlsClient};
use std::sync::Arc;
use std::time::Duration;

/// What `req` prints and whether the rsc was a success.
pub struct Outcome {
    pub text: String,
    pub success: bool,
}

/// Builds the request and client from the flags, sends, and formats the response.
pub fn run(args: &ReqArgs) -> Result<Outcome, Failure> {
    let request = primitive(args)?;
    let client = client(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let response = runtime
        .block_on(client.send(&args.url, &request))
        .map_err(|e| Failure::Runtime(format!("no response: {e}")))?;
    Ok(outcome(&response))
}

fn primitive(args: &ReqArgs) -> Result<Request, Failure> {
    let pc = match &args.body {
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| Failure::Config(format!("--body is not JSON: {e}")))?,
        ),
        None => None,
    };
    if args.op == ReqOp::Create && args.ty.is_none() {
        return Err(Failure::Config("--op create needs --ty".to_owned()));
    }
    Ok(Request {
        op: Some(match args.op {
            ReqOp::Create => Operation::Create,
            ReqOp::Retrieve => Operation::Retrieve,
            ReqOp::Update => Operation::Update,
            ReqOp::Delete => Operation::Delete,
            ReqOp::Notify => Operation::Notify,
        }),
        to: to_address(&args.to)?,
        fr: args.from.clone(),
        rqi: args.rqi.clone(),
        rvi: args.rvi.clone(),
        ty: args.ty,
        pc,
        rcn: args.rcn,
        ..Request::default()
    })
}

/// `--to` as written in an HTTP path (TS-0009 6.2.2.1): `/cse-in/x` is CSE-relative,
/// `/~/id-in/x` SP-relative, `/_/sp.example/id-in/x` absolute; without a leading `/` the
/// address is taken as it is. The binding's own path mapping reads it.
fn to_address(to: &str) -> Result<String, Failure> {
    bastion_proto::wire::http::target_decoded(to)
        .map_err(|e| Failure::Config(format!("--to {to}: {e}")))
}

fn client(args: &ReqArgs) -> Result<Client, Failure> {
    let config = ClientConfig {
        timeout: Duration::from_secs(args.timeout.max(1)),
        ..ClientConfig::default()
    };
    Ok(match tls_client(&args.tls)? {
        Some(tls) => {
            let mut connector = TlsConnector::new(tls);
            if let Some(name) = &args.tls.server_name {
                connector = connector.with_server_name(name);
            }
            Client::with_connector(Arc::new(connector), config)
        }
        None => Client::new(config),
    })
}

/// The TLS client of `--psk-id`/`--psk-file` or `--cert`/`--key`/`--ca`; `None` with
/// neither. Shared with `maf-client`.
pub(crate) fn tls_client(args: &TlsClientArgs) -> Result<Option<TlsClient>, Failure> {
    let options = ClientOptions::default();
    Ok(match (&args.psk_id, &args.cert) {
        (Some(id), _) => {
            let key = crate::credentials::psk_key(args.psk_file.as_deref())?;
            Some(TlsClient::psk(id, key, &options).map_err(|e| Failure::Config(e.to_string()))?)
        }
        (None, Some(cert)) => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p)
                    .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", p.display())))
            };
            let (Some(key), Some(ca)) = (&args.key, &args.ca) else {
                return Err(Failure::Config("--cert needs --key and --ca".to_owned()));
            };
            let key_pem = bastion_tls::secret::read_secret_text(key)
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            Some(
                TlsClient::certificate(&read(cert)?, &key_pem, &read(ca)?, None, &options)
                    .map_err(|e| Failure::Config(e.to_string()))?,
            )
        }
        (None, None) => None,
    })
}

fn outcome(response: &Response) -> Outcome {
    let code = response.rsc.code();
    let mut text = format!("{code}\n");
    if let Some(pc) = &response.pc {
        text.push_str(&serde_json::to_string_pretty(pc).unwrap_or_default());
        text.push('\n');
    }
    Outcome {
        text,
        success: (2000..3000).contains(&code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(extra: &[&str]) -> ReqArgs {
        let mut argv = vec![
            "bastion",
            "req",
            "--url",
            "http://127.0.0.1:1",
            "--to",
            "/cse-in",
        ];
        argv.extend_from_slice(extra);
        match <crate::cli::Cli as clap::Parser>::try_parse_from(argv) {
            Ok(crate::cli::Cli {
                command: crate::cli::Command::Req(args),
            }) => args,
            other => panic!("req did not parse: {other:?}"),
        }
    }

    #[test]
    fn rvi_is_sent_as_given_else_left_to_the_client_default() {
        let five = primitive(&parsed(&["--rvi", "5"])).unwrap();
        assert_eq!(five.rvi.as_deref(), Some("5"));
        let unset = primitive(&parsed(&[])).unwrap();
        assert_eq!(unset.rvi, None);
    }

    #[test]
    fn to_follows_the_http_path_forms() {
        assert_eq!(to_address("/cse-in/ae").unwrap(), "cse-in/ae");
        assert_eq!(to_address("cse-in/ae").unwrap(), "cse-in/ae");
        assert_eq!(to_address("/~/id-in/ae").unwrap(), "/id-in/ae");
        assert_eq!(
            to_address("/_/sp.example/id-in/ae").unwrap(),
            "//sp.example/id-in/ae"
        );
        assert!(matches!(to_address("/~"), Err(Failure::Config(_))));
    }
}
