//! pi-burn's entry point: parse, run, print one error line, map it to an exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 3 verification mismatch, 4 refused by a
//! safety check.

#![deny(unsafe_code)]

use clap::Parser;
use pi_burn::cli::{Cli, Command};
use pi_burn::commands::{self, Global};
use pi_burn::error::Mismatch;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like any Unix filter: a closed pipe (`pi-burn devices | head`) ends the program quietly.
    pi_burn::blockdev::sys::default_sigpipe();
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
            match e.downcast_ref::<Mismatch>() {
                // The mismatches themselves went to stdout, one per line.
                Some(m) => eprintln!("pi-burn: verification failed: {} mismatch(es)", m.0.len()),
                None => eprintln!("pi-burn: {e:#}"),
            }
            ExitCode::from(pi_burn::error::exit_code(&e))
        }
    }
}
