//! The `tenantry` binary: parses the command line, sets up logging, and hands over to
//! [`tenantry::cli::run`].

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = tenantry::cli::Cli::parse();
    let default = match cli.command {
        tenantry::cli::Command::Serve(_) => "info",
        _ => "warn",
    };
    // `TENANTRY_LOG`, else `RUST_LOG` (the variable every tracing and env_logger program reads),
    // else the command's default.
    let filter = EnvFilter::try_from_env("TENANTRY_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if tenantry::systemd::stderr_is_journal() {
        // journald stamps each line and reads the `<N>` priority prefix.
        logs.event_format(tenantry::systemd::JournalFormat::default())
            .init();
    } else {
        use std::io::IsTerminal;
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(tenantry::cli::run(cli))
}
