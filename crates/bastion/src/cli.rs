//! The command line: subcommands, flags and their help text (clap derive), and the
//! conversion of flags into the highest-precedence [`RawSettings`] layer.

use crate::settings::{CseKind, RawSettings};
use bastion_policy::{AccessOperation, Location};
use bastion_proto::time::Timestamp;
use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

/// Bastion: a oneM2M CSE (Common Services Entity) with an HTTP binding and durable SQLite
/// storage.
///
/// Settings come from built-in defaults, overridden by a configuration file (--config),
/// overridden by flags. `bastion config default` prints a commented configuration file.
#[derive(Debug, Parser)]
#[command(name = "bastion", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the CSE: open the data directory and serve the HTTP binding until SIGINT or
    /// SIGTERM.
    ///
    /// Logs "listening on ADDR:PORT" (the address actually bound, useful with port 0) to
    /// standard error once the CSE is ready. Exit status: 0 after a signal-initiated stop,
    /// 1 when the server cannot start or fails, 2 for invalid configuration.
    Serve(SettingsArgs),
    /// Print or check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Access-control tools for operators.
    #[command(subcommand)]
    Acp(AcpCommand),
}

#[derive(Debug, Subcommand)]
pub enum AcpCommand {
    /// Explain how access control decides one request: the decision and, for every
    /// candidate rule, which condition held or failed.
    ///
    /// Reads a stopped server's data directory (--data-dir; refused while a server holds
    /// it) or asks a running server (--url, as the admin originator of the configuration).
    /// The registered-originator checks that precede access control (4106, 4107) are not
    /// part of the explanation. Exit status: 0 when explained (granted or denied), 1 when
    /// the data directory or server cannot be used or the target does not resolve, 2 for
    /// usage errors.
    Explain(ExplainArgs),
}

/// The operation to explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OpArg {
    Retrieve,
    Create,
    Update,
    Delete,
    Notify,
    Discovery,
}

impl OpArg {
    pub fn operation(self) -> AccessOperation {
        match self {
            OpArg::Retrieve => AccessOperation::Retrieve,
            OpArg::Create => AccessOperation::Create,
            OpArg::Update => AccessOperation::Update,
            OpArg::Delete => AccessOperation::Delete,
            OpArg::Notify => AccessOperation::Notify,
            OpArg::Discovery => AccessOperation::Discovery,
        }
    }
}

/// Arguments of `acp explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The originator (From) to explain, e.g. Creader
    #[arg(long, value_name = "ORIGINATOR")]
    pub originator: String,

    /// The operation
    #[arg(long, value_name = "OP", ignore_case = true)]
    pub op: OpArg,

    /// The target address, e.g. /cse-in/ae/cnt
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,

    /// With --op create: the resource type to create (checked against acod)
    #[arg(long, value_name = "N")]
    pub ty: Option<u16>,

    /// Request time, a oneM2M timestamp YYYYMMDDThhmmss in UTC [default: now]
    #[arg(long, value_name = "TIME", value_parser = crate::acp::parse_at)]
    pub at: Option<Timestamp>,

    /// Peer IP address to assume; without it every acip condition fails
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<IpAddr>,

    /// Originator location LAT,LON in degrees; without it every aclr condition fails
    #[arg(long, value_name = "LAT,LON", value_parser = crate::acp::parse_location, allow_hyphen_values = true)]
    pub location: Option<Location>,

    /// Ask a running server (http://HOST:PORT) instead of reading --data-dir
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    pub url: Option<String>,

    /// Print the explanation as JSON
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub settings: SettingsArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration file, every key set to its default and explained.
    Default,
    /// Validate a configuration file (and any flags given) and print the resolved settings.
    ///
    /// Takes the same options as `serve` and prints, as a configuration file, exactly the
    /// settings `serve` would run with. Exit status: 0 if valid, 2 if not.
    Check(SettingsArgs),
}

/// The settings flags shared by `serve` and `config check`. Each overrides the key of the
/// same name in the configuration file.
#[derive(Debug, Args, Default)]
pub struct SettingsArgs {
    /// Configuration file (TOML) to read; flags override its keys.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port for HTTP: an IP address, not a host name; port 0 picks a free port
    /// [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Directory for durable state; the database is DIR/bastion.db [default: ./bastion-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// CSE-ID, SP-relative: "/" followed by an identifier with no further "/"
    /// [default: /id-in]
    #[arg(long, value_name = "ID")]
    pub cse_id: Option<String>,

    /// Resource name of the CSEBase [default: cse-in]
    #[arg(long, value_name = "NAME")]
    pub cse_name: Option<String>,

    /// M2M service-provider ID: "//" followed by a domain name [default: //bastion.example]
    #[arg(long, value_name = "SPID")]
    pub sp_id: Option<String>,

    /// Role of this CSE [default: in]
    #[arg(long, value_name = "TYPE", ignore_case = true)]
    pub cse_type: Option<CseKind>,

    /// Originator granted every operation on this CSE [default: CAdmin]
    #[arg(long, value_name = "ORIGINATOR")]
    pub admin: Option<String>,

    /// Log filter: a level (off, error, warn, info, debug, trace) or target=level directives;
    /// overrides RUST_LOG and the file [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
}

impl SettingsArgs {
    /// The flags as the top settings layer.
    pub fn to_raw(&self) -> RawSettings {
        RawSettings {
            cse_id: self.cse_id.clone(),
            cse_name: self.cse_name.clone(),
            sp_id: self.sp_id.clone(),
            cse_type: self.cse_type,
            admin: self.admin.clone(),
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            log: self.log.clone(),
            ..RawSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_the_top_layer() {
        let cli = Cli::try_parse_from([
            "bastion",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cse-type",
            "MN",
            "--data-dir",
            "/tmp/x",
        ]);
        let Ok(Cli {
            command: Command::Serve(args),
        }) = cli
        else {
            panic!("serve did not parse: {cli:?}");
        };
        let raw = args.to_raw();
        assert_eq!(raw.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(raw.cse_type, Some(CseKind::Mn));
        assert_eq!(raw.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(raw.cse_id, None);
    }

    #[test]
    fn acp_explain_parses() {
        let cli = Cli::try_parse_from([
            "bastion",
            "acp",
            "explain",
            "--originator",
            "Creader",
            "--op",
            "create",
            "--ty",
            "4",
            "--to",
            "/cse-in/ae/cnt",
            "--at",
            "20250102T030405",
            "--ip",
            "10.1.2.3",
            "--location",
            "-33.9,151.2",
            "--data-dir",
            "/tmp/x",
        ]);
        let Ok(Cli {
            command: Command::Acp(AcpCommand::Explain(args)),
        }) = cli
        else {
            panic!("acp explain did not parse: {cli:?}");
        };
        assert_eq!(args.op, OpArg::Create);
        assert_eq!(args.ty, Some(4));
        assert_eq!(
            args.at.map(Timestamp::format).as_deref(),
            Some("20250102T030405")
        );
        assert_eq!(args.location.map(|l| l.latitude), Some(-33.9));
        assert_eq!(args.settings.data_dir, Some(PathBuf::from("/tmp/x")));
        let both = Cli::try_parse_from([
            "bastion",
            "acp",
            "explain",
            "--originator",
            "C",
            "--op",
            "retrieve",
            "--to",
            "/x",
            "--data-dir",
            "/tmp/x",
            "--url",
            "http://127.0.0.1:1",
        ]);
        assert!(both.is_err(), "--url and --data-dir must conflict");
    }
}
