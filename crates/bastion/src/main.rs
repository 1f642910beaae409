//! The `bastion` binary: the command line ([`cli`]), configuration resolution
//! ([`settings`]), the server's life cycle ([`serve`]) and operator tools ([`acp`],
//! [`credentials`], [`cert`], [`req`], [`keys`], [`keystore`]) and the standalone
//! functions ([`das`], [`maf`] with [`maf_client`], [`mef`] with [`enrol`], [`est`]).
//!
//! Exit status: 0 on success (and after a signal-initiated stop), 1 when the server cannot
//! start or fails while running, 2 for invalid configuration or command-line usage.
#![forbid(unsafe_code)]

/// mimalloc rather than the system allocator: a request allocates and frees many small
/// buffers across tasks, which glibc's allocator serves markedly slower under load
/// (docs/benchmarks.md, "W1 over CoAP"; docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod acp;
mod bindings;
mod cert;
mod cli;
mod client_tls;
mod coap;
mod credentials;
mod das;
mod das_consult;
mod enrol;
mod est;
mod flex;
mod keys;
mod keystore;
mod limits;
mod liveness;
mod maf;
mod maf_client;
mod maf_source;
mod mef;
mod mef_source;
mod mqtt;
mod notifications;
mod outbound;
mod provisioning;
mod registrar;
mod req;
mod serve;
mod settings;
mod ws;

use clap::Parser;
use cli::{
    AcpCommand, Cli, Command, ConfigCommand, CredentialsCommand, EstCommand, KeysCommand,
    SettingsArgs,
};
use settings::{RawSettings, Settings, DEFAULT_CONFIG_TOML};
use std::io::Write;
use std::process::ExitCode;

/// Why the binary stops with a non-zero status.
#[derive(Debug)]
pub enum Failure {
    /// The configuration (file, flags or `RUST_LOG`) is invalid: exit status 2.
    Config(String),
    /// Starting or running the server failed: exit status 1.
    Runtime(String),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Config(_) => ExitCode::from(2),
            Failure::Runtime(_) => ExitCode::from(1),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Config(message) | Failure::Runtime(message) => f.write_str(message),
        }
    }
}

fn main() -> ExitCode {
    // clap prints help and version with status 0 and usage errors with status 2.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("bastion: error: {failure}");
            failure.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(args) => serve::serve(resolve(&args)?),
        Command::Das(args) => das::run(&args),
        Command::Credentials(CredentialsCommand::Add(args)) => print(&credentials::add(&args)?),
        Command::Credentials(CredentialsCommand::AddHttpPeer(args)) => {
            print(&credentials::add_http_peer(&args)?)
        }
        Command::Credentials(CredentialsCommand::List(args)) => print(&credentials::list(&args)?),
        Command::Credentials(CredentialsCommand::Revoke(args)) => {
            print(&credentials::revoke(&args)?)
        }
        Command::Cert(command) => print(&cert::run(&command)?),
        Command::Keys(KeysCommand::Derive(args)) => print(&keys::derive(&args)?),
        Command::Maf(args) => maf::run(&args),
        Command::MafClient(command) => print(&maf_client::run(&command)?),
        Command::MefClient(command) => print(&maf_client::run_mef(&command)?),
        Command::Enrol(args) => print(&enrol::run(&args)?),
        Command::Mef(args) => match mef::run(&args)? {
            Some(text) => print(&text),
            None => Ok(()),
        },
        Command::Est(EstCommand::Serve(args)) => est::serve(&args),
        Command::Est(EstCommand::Revoke(args)) => print(&est::revoke(&args)?),
        Command::Est(EstCommand::List(args)) => print(&est::list(&args)?),
        Command::Keystore(command) => print(&keystore::run(&command)?),
        Command::Req(args) => {
            let outcome = req::run(&args)?;
            print(&outcome.text)?;
            match outcome.success {
                true => Ok(()),
                false => Err(Failure::Runtime(format!(
                    "request answered with rsc {}",
                    outcome.text.lines().next().unwrap_or_default()
                ))),
            }
        }
        Command::Config(ConfigCommand::Default) => print(DEFAULT_CONFIG_TOML),
        Command::Acp(AcpCommand::Explain(args)) => {
            let settings = resolve(&args.settings)?;
            print(&acp::explain(&args, &settings)?)
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let settings = resolve(&args)?;
            let body = settings.to_toml().map_err(Failure::Config)?;
            let source = match &args.config {
                Some(path) => format!("{} is valid", path.display()),
                None => "no configuration file given".to_owned(),
            };
            print(&format!(
                "# {source}; resolved settings (flags > file > defaults):\n\
                 # database file: {}\n\n{body}",
                settings.db_path().display()
            ))
        }
    }
}

/// The settings layers merged (file < `RUST_LOG` < flags) and validated.
fn resolve(args: &SettingsArgs) -> Result<Settings, Failure> {
    let file = match &args.config {
        Some(path) => RawSettings::from_file(path).map_err(|e| Failure::Config(e.to_string()))?,
        None => RawSettings::default(),
    };
    let env = RawSettings::from_env_log(std::env::var("RUST_LOG").ok());
    let raw = file.overlay(env).overlay(args.to_raw());
    Settings::resolve(raw).map_err(|e| Failure::Config(e.to_string()))
}

/// Writes to standard output; a closed pipe (`bastion config default | head`) is not an
/// error worth a panic.
fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}
