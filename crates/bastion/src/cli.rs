//! The command line: subcommands, flags and their help text (clap derive), and the
//! conversion of flags into the highest-precedence [`RawSettings`] layer.

use crate::settings::{CseKind, RawSettings};
use clap::{Args, Parser, Subcommand};
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
}
