//! pi-burn's entry point: parse, run the command, render its outcome once, exit with its code
//! (the table is in `error.rs` and the README).

#![deny(unsafe_code)]

use clap::FromArgMatches as _;
use pi_burn::cli::Cli;
use pi_burn::commands::{self, Global, Outcome};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like any Unix filter: a closed pipe (`pi-burn devices | head`) ends the program quietly.
    pi_burn::blockdev::sys::default_sigpipe();
    // Ctrl-C: exit 130 at once, or, while devices are written, after wiping their tables.
    pi_burn::blockdev::sys::handle_interrupts();
    let (outcome, json, quiet) = match pi_burn::cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => {
            let g = Global {
                json: cli.json,
                quiet: cli.quiet,
                verbose: cli.verbose,
                progress: pi_burn::progress::for_terminal(cli.quiet, cli.verbose > 0),
            };
            (commands::run(&cli.command, &g), cli.json, cli.quiet)
        }
        Err(e) => (usage_error(e), json_asked(), false),
    };
    let (out, err) = outcome.render(json, quiet);
    // stdout may be a closed pipe: nothing more to do about it.
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stdout().flush();
    eprint!("{err}");
    ExitCode::from(outcome.exit().code())
}

/// clap's errors on one line, like every other error (help and version print as usual).
fn usage_error(e: clap::Error) -> Outcome {
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
    Outcome::failed(pi_burn::error::usage(line.trim_start_matches("error: ")))
}

/// Whether `--json` was asked for, among the raw arguments (before any `--`): the parse failed.
fn json_asked() -> bool {
    std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}
