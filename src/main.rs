//! pi-burn's entry point: parse, run, print one error line, map it to an exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 3 verification mismatch, 4 refused by a
//! safety check.

#![deny(unsafe_code)]

use clap::FromArgMatches as _;
use pi_burn::cli::Cli;
use pi_burn::commands::{self, Global};
use pi_burn::error::Mismatch;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like any Unix filter: a closed pipe (`pi-burn devices | head`) ends the program quietly.
    pi_burn::blockdev::sys::default_sigpipe();
    // Ctrl-C: exit 130 at once, or, while devices are written, after wiping their tables.
    pi_burn::blockdev::sys::handle_interrupts();
    let cli = match pi_burn::cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let g = Global {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
        progress: pi_burn::progress::for_terminal(cli.quiet, cli.verbose > 0),
    };
    let result = commands::run(&cli.command, &g);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Interrupted: 130, as shells report a SIGINT, whatever the error it caused.
            let code = if pi_burn::blockdev::sys::interrupted() {
                130
            } else {
                pi_burn::error::exit_code(&e)
            };
            match e.downcast_ref::<Mismatch>() {
                // The mismatches themselves went to stdout (one per line, or in the report).
                Some(m) => eprintln!(
                    "pi-burn: verification failed: {}",
                    Mismatch::count(m.0.len())
                ),
                None => {
                    eprintln!("pi-burn: {e:#}");
                    let reported = e.downcast_ref::<pi_burn::error::Reported>().is_some();
                    if g.json && !reported {
                        // A failure is one JSON object on stdout too.
                        println!(
                            "{}",
                            serde_json::json!({ "error": format!("{e:#}"), "exit_code": code })
                        );
                    }
                }
            }
            ExitCode::from(code)
        }
    }
}

/// clap's errors on one line, like every other error (help and version print as usual).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.trim_start_matches("error: ");
    eprintln!("pi-burn: {line}");
    // --json asked for one JSON object per run, failures included; the parse failed, so look
    // for it among the raw arguments (before any `--`).
    if std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
    {
        println!("{}", serde_json::json!({ "error": line, "exit_code": 2 }));
    }
    ExitCode::from(2)
}
