//! `baton`: one binary for the node (`serve`), the client commands and the benchmarks.

mod archive;
mod bench;
mod chaos;
mod cli;
mod client;
mod keys;
mod output;
mod registry;
mod secrets;
mod telemetry;
mod workflow;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
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
    let code = runtime.block_on(cli::run(cli));
    // A read of stdin (`baton mcp`) may still block a thread; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
