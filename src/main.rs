//! pi-burn's entry point: parse, run, print one error line, map it to an exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 3 verification mismatch, 4 refused by a
//! safety check.

use clap::Parser;
use pi_burn::burn::Refused;
use pi_burn::cli::{Cli, Command};
use pi_burn::commands::{self, Global, UsageError};
use pi_burn::verify::Mismatch;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like any Unix filter: a closed pipe (`pi-burn devices | head`) ends the program quietly.
    // SAFETY: restoring the default action of SIGPIPE, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let g = Global {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
        progress: pi_burn::progress::for_terminal(cli.quiet, cli.verbose > 0),
    };
    let result = match &cli.command {
        Command::Sdcard(a) => commands::sdcard::run(a, &g),
        Command::Ssd(a) => commands::ssd::run(a, &g),
        Command::Verify(a) => commands::verify::run(a, &g),
        Command::Flash(a) => commands::flash::run(a, &g),
        Command::Devices => commands::devices::run(&g),
        Command::Firmware(c) => commands::firmware::run(c, &g),
        Command::Completions { shell } => commands::meta::completions(*shell),
        Command::Man => commands::meta::man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(m) = e.downcast_ref::<Mismatch>() {
                eprintln!("pi-burn: verification failed: {} mismatch(es)", m.0.len());
                return ExitCode::from(3);
            }
            eprintln!("pi-burn: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else if e.downcast_ref::<Refused>().is_some() {
                ExitCode::from(4)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
