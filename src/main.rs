//! pi-burn's entry point: parse, run the command, render its outcome once, exit with its code
//! (the table is in `error.rs` and the README).

#![deny(unsafe_code)]

use clap::FromArgMatches as _;
use pi_burn::cli::{Cli, Command, FirmwareCommand};
use pi_burn::commands::{self, Global, Outcome};
use std::io::Write;
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
        Err(e) => return ExitCode::from(finish(usage_error(e), json_asked(), false)),
    };
    let run = || {
        let g = Global {
            json: cli.json,
            quiet: cli.quiet,
            verbose: cli.verbose,
            progress: pi_burn::progress::for_terminal(cli.quiet, cli.verbose > 0),
        };
        finish(commands::run(&cli.command, &g), cli.json, cli.quiet)
    };
    let code = if !may_touch_a_device(&cli.command) {
        run()
    } else {
        // A device the user named may stop answering: the work runs in a watched child.
        match pi_burn::watch::timeout() {
            Ok(bound) => pi_burn::watch::run(cli.json, bound, run),
            Err(e) => finish(Outcome::failed(e), cli.json, cli.quiet),
        }
    };
    ExitCode::from(code)
}

/// Prints the outcome (text or its JSON object) and gives its exit code.
fn finish(outcome: Outcome, json: bool, quiet: bool) -> u8 {
    let (out, err) = outcome.render(json, quiet);
    // stdout may be a closed pipe: nothing more to do about it.
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stdout().flush();
    eprint!("{err}");
    outcome.exit().code()
}

/// Commands that may read or write a device the user named (or a node's configured one).
fn may_touch_a_device(c: &Command) -> bool {
    match c {
        Command::Sdcard(_)
        | Command::Ssd(_)
        | Command::Eeprom(_)
        | Command::Flash(_)
        | Command::Probe(_) => true,
        Command::Inspect(a) => a.device.is_some(),
        Command::Verify(a) => a.device.is_some(),
        Command::Firmware(FirmwareCommand::Settings(a)) => a.image.is_none(),
        _ => false,
    }
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
