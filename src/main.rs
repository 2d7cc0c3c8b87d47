//! The `tenantry` binary: parses the command line, sets up logging, and hands over to
//! [`tenantry::cli::run`].

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's allocator: a profile of the lifecycle load put about 20% of the
/// server's CPU in glibc `malloc`/`free` (issue 13); mimalloc's thread-local free lists make
/// the many short-lived request buffers cheap, and it returns memory to the OS promptly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = tenantry::cli::Cli::parse();
    let default = match cli.command {
        tenantry::cli::Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter =
        EnvFilter::try_from_env("TENANTRY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
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
