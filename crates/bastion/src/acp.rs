//! `bastion acp explain`: how the CSE decides (or would decide) one request, rule by rule.
//!
//! Two sources: a stopped server's data directory (`--data-dir`, opened under the same
//! exclusive lock `serve` takes, so a running server is never read behind its back), or a
//! running server's admin API (`--url`, `GET /__bastion/explain` as the configured admin).
//! Both produce the JSON of [`bastion_core::explanation_json`]; this module prints it
//! as is (`--json`) or as a readable multi-line text.

use crate::cli::ExplainArgs;
use crate::settings::Settings;
use crate::Failure;
use bastion_client::{Client, ClientConfig};
use bastion_core::{explanation_json, Cse, ExplainQuery};
use bastion_policy::{AccessOperation, Location};
use bastion_proto::clock::{Clock, SystemClock};
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request};
use bastion_store::Store;
use bastion_store_sqlite::SqliteStore;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// How long `--url` waits for the server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `acp explain` and returns the text to print.
pub fn explain(args: &ExplainArgs, settings: &Settings) -> Result<String, Failure> {
    if args.ty.is_some() && args.op.operation() != AccessOperation::Create {
        return Err(Failure::Config(
            "--ty is only meaningful with --op create".to_owned(),
        ));
    }
    let query = ExplainQuery {
        originator: args.originator.clone(),
        operation: args.op.operation(),
        to: args.to.clone(),
        create_type: args.ty,
        time: Some(args.at.unwrap_or_else(|| SystemClock.timestamp())),
        peer_ip: args.ip,
        location: args.location,
    };
    let json = match &args.url {
        Some(url) => ask_server(url, &settings.admin, &query)?,
        None => from_data_dir(settings, &query)?,
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&json)
            .map_err(|e| Failure::Runtime(format!("cannot format the explanation: {e}")))?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(render(&json))
    }
}

/// Opens the data directory under its lock and explains with the core.
fn from_data_dir(settings: &Settings, query: &ExplainQuery) -> Result<Value, Failure> {
    let query = &ExplainQuery {
        to: bastion_http::admin::target_from_path(&query.to)
            .map_err(|e| Failure::Config(format!("--to {:?}: {e}", query.to)))?,
        ..query.clone()
    };
    let dir = &settings.data_dir;
    let db = settings.db_path();
    if !db.is_file() {
        return Err(Failure::Runtime(format!(
            "no Bastion database at {} (is --data-dir right?)",
            db.display()
        )));
    }
    // The lock `serve` holds, taken so that no server starts while the tree is read.
    let _lock = crate::serve::lock_data_dir(
        dir,
        "by a running bastion server; ask that server instead with --url http://ADDR:PORT",
    )?;
    let store =
        Arc::new(SqliteStore::open(&db).map_err(|e| {
            Failure::Runtime(format!("cannot open the store {}: {e}", db.display()))
        })?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        let store: Arc<dyn Store> = store.clone();
        let mut config = settings.cse_config(settings.listen);
        config.authorization = settings
            .authorization_config()
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        let cse = Cse::open(config, store)
            .await
            .map_err(|e| Failure::Runtime(format!("cannot load the CSE: {e}")))?;
        let explanation = cse.explain(query).await.map_err(|e| {
            Failure::Runtime(format!("cannot explain: {e} (rsc {})", e.rsc().code()))
        })?;
        Ok(explanation_json(&explanation, &query.to))
    });
    drop(runtime);
    drop(store);
    result
}

/// `GET /__bastion/explain` on a running server, as the configured admin, through
/// `bastion_client`.
fn ask_server(url: &str, admin: &str, query: &ExplainQuery) -> Result<Value, Failure> {
    let base = url
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .map(|authority| format!("http://{authority}{}", bastion_http::admin::EXPLAIN_PATH))
        .ok_or_else(|| {
            Failure::Config(format!(
                "--url {url:?}: expected http://HOST:PORT (https is not supported)"
            ))
        })?;
    // The explain endpoint's parameters are plain `name=value` query pairs, which a
    // request primitive carries as attribute conditions.
    let mut pairs = vec![
        ("originator".to_owned(), query.originator.clone()),
        ("op".to_owned(), query.operation.name().to_ascii_lowercase()),
        ("to".to_owned(), query.to.clone()),
    ];
    if let Some(ty) = query.create_type {
        pairs.push(("ty".to_owned(), ty.to_string()));
    }
    if let Some(at) = query.time {
        pairs.push(("at".to_owned(), at.format()));
    }
    if let Some(ip) = query.peer_ip {
        pairs.push(("ip".to_owned(), ip.to_string()));
    }
    if let Some(l) = query.location {
        pairs.push(("loc".to_owned(), format!("{},{}", l.latitude, l.longitude)));
    }
    let mut request = Request {
        op: Some(Operation::Retrieve),
        fr: Some(admin.to_owned()),
        rqi: Some("bastion-acp-explain".to_owned()),
        ..Request::default()
    };
    request.fc.atr = pairs;
    let client = Client::new(ClientConfig {
        timeout: HTTP_TIMEOUT,
        ..ClientConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let response = runtime
        .block_on(client.send(&base, &request))
        .map_err(|e| Failure::Runtime(format!("cannot reach {url}: {e}")))?;
    let rsc = response.rsc.code();
    let json = response.pc.unwrap_or(Value::Null);
    if rsc != 2000 {
        let dbg = json.get("m2m:dbg").and_then(Value::as_str).unwrap_or("");
        let hint = if rsc == 4103 {
            " (the server's admin originator differs: give --admin or --config)"
        } else {
            ""
        };
        return Err(Failure::Runtime(format!(
            "the server refused: rsc {rsc}: {dbg}{hint}"
        )));
    }
    Ok(json)
}

/// The readable form of an explanation's JSON.
pub fn render(v: &Value) -> String {
    let s = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or("");
    let granted = !v.get("grant").is_none_or(Value::is_null);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {}",
        if granted { "GRANTED" } else { "DENIED" },
        s("summary")
    );
    let ty = v.get("target_type").and_then(Value::as_u64).unwrap_or(0);
    let _ = writeln!(out, "  target:        {} (resource type {ty})", s("target"));
    if let Some(c) = v.get("create_type").and_then(Value::as_u64) {
        let _ = writeln!(out, "  creating:      resource type {c}");
    }
    let _ = writeln!(
        out,
        "  originator:    {} (compared as {})",
        s("originator"),
        s("normalized_originator")
    );
    let _ = writeln!(out, "  operation:     {}", s("operation"));
    let time = v.get("time").and_then(Value::as_i64).map_or_else(
        || "unknown".to_owned(),
        |t| format!("{} (UTC)", Timestamp(t).format()),
    );
    let _ = writeln!(out, "  time:          {time}");
    let _ = writeln!(
        out,
        "  peer address:  {}",
        v.get("peer_ip")
            .and_then(Value::as_str)
            .unwrap_or("none given: every acip condition fails (give --ip)")
    );
    let _ = writeln!(
        out,
        "  location:      {}",
        v.get("location")
            .and_then(Value::as_str)
            .unwrap_or("none given: every aclr condition fails (give --location)")
    );
    let _ = writeln!(
        out,
        "  authenticated: {}",
        if v.get("authenticated").and_then(Value::as_bool) == Some(true) {
            "yes"
        } else {
            "no (no security associations yet: acaf rules fail)"
        }
    );
    if v.get("admin").and_then(Value::as_bool) == Some(true) {
        let _ = writeln!(
            out,
            "  the originator is the CSE administrator: every operation is granted"
        );
    }
    out.push('\n');
    let grant = v.get("grant").cloned().unwrap_or(Value::Null);
    let basis = v.get("basis").cloned().unwrap_or(Value::Null);
    match basis.get("kind").and_then(Value::as_str) {
        Some("default") => {
            let creator = basis.get("creator").and_then(Value::as_str);
            let _ = writeln!(
                out,
                "Default access policy (the resource has no acpi): only its creator may operate."
            );
            let _ = writeln!(out, "  creator: {}", creator.unwrap_or("none recorded"));
            let is = basis.get("is_creator").and_then(Value::as_bool) == Some(true);
            let _ = writeln!(
                out,
                "  the originator {} the creator",
                if is { "is" } else { "is not" }
            );
        }
        Some("policies") => {
            let sources = basis
                .get("sources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "Rules (permit-overrides: the first rule whose conditions all hold decides):"
            );
            if sources.is_empty() {
                let _ = writeln!(out, "  no ACP applies (acpi names no existing ACP)");
            }
            for (si, source) in sources.iter().enumerate() {
                let acp = source.get("acp_id").and_then(Value::as_str).unwrap_or("");
                let _ = writeln!(out, "  ACP {acp}");
                let rules = source
                    .get("rules")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if rules.is_empty() {
                    let _ = writeln!(out, "    no rules");
                }
                for rule in &rules {
                    let ri = rule.get("rule").and_then(Value::as_u64).unwrap_or(0);
                    let deciding = grant.get("by").and_then(Value::as_str) == Some("rule")
                        && grant.get("source").and_then(Value::as_u64) == Some(si as u64)
                        && grant.get("rule").and_then(Value::as_u64) == Some(ri);
                    let permits = rule.get("permits").and_then(Value::as_bool) == Some(true);
                    let verdict = match (permits, deciding) {
                        (true, true) => "grants (deciding rule)",
                        (true, false) => "grants",
                        (false, _) => "does not grant",
                    };
                    let _ = writeln!(out, "    rule {ri}: {verdict}");
                    for check in rule
                        .get("checks")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let holds = check.get("holds").and_then(Value::as_bool) == Some(true);
                        let condition = check
                            .get("condition")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .replace('_', " ");
                        let _ = writeln!(
                            out,
                            "      {} {condition:<15} {}",
                            if holds { "[ok]  " } else { "[FAIL]" },
                            check.get("reason").and_then(Value::as_str).unwrap_or("")
                        );
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// `LAT,LON` for clap.
pub fn parse_location(text: &str) -> Result<Location, String> {
    bastion_http::admin::parse_location(text)
}

/// A oneM2M timestamp for clap.
pub fn parse_at(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text)
        .ok_or_else(|| format!("{text:?} is not a oneM2M timestamp (YYYYMMDDThhmmss, UTC)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_locations() {
        assert_eq!(
            parse_at("20250102T030405").map(Timestamp::format),
            Ok("20250102T030405".to_owned())
        );
        assert!(parse_at("2025-01-02").is_err());
        assert!(parse_location("48.85,2.35").is_ok());
        assert!(parse_location("48.85").is_err());
        assert!(parse_location("100,0").is_err());
    }
}
