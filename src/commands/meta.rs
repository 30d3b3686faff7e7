//! `pi-burn completions` and `pi-burn man`: generated from the clap definitions.

use super::Outcome;
use crate::cli::{examples, ManArgs, Shell};
use crate::error::usage;
use anyhow::{bail, Context, Result};
use std::io::Write;

/// A generated text as the outcome: its lines as they are (`--json`: under `key`).
fn text_outcome(key: &str, what: &str, text: &str) -> Result<Outcome> {
    Ok(
        Outcome::of(&serde_json::json!({ key: what, "text": text }))?
            .line(text.strip_suffix('\n').unwrap_or(text)),
    )
}

pub fn completions(shell: Option<Shell>) -> Result<Outcome> {
    let Some(shell) = shell else {
        bail!(usage(
            "completions needs the shell to complete for: bash, zsh or fish (e.g. pi-burn completions bash > /etc/bash_completion.d/pi-burn)"
        ));
    };
    let mut cmd = crate::cli::command();
    let sh = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // clap_complete names bash's per-subcommand cases from the command name but fills the
    // state variable from the binary name, and turns the '-' of "pi-burn" into "__subcmd__" in
    // one and "__" in the other: `pi-burn sdcard --ta<TAB>` found no case. Generated for a
    // name without '-', then pointed at the real binary name.
    let mut out = Vec::new();
    let name = format!("{sh}");
    let text = match shell {
        Shell::Bash => {
            clap_complete::generate(sh, &mut cmd, "piburn", &mut out);
            let text = String::from_utf8(out)?;
            let fixed = text
                .lines()
                .map(|l| match l.strip_suffix(" piburn") {
                    Some(head) if l.trim_start().starts_with("complete ") => {
                        format!("{head} pi-burn")
                    }
                    _ => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            fixed
        }
        _ => {
            clap_complete::generate(sh, &mut cmd, "pi-burn", &mut out);
            String::from_utf8(out)?
        }
    };
    text_outcome("shell", &name, &text)
}

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    ("1", "Failure: bad input, a refused firmware or config, not a disk image, an I/O or network error. One line on standard error says what and why."),
    ("2", "Usage error: an unknown option, a malformed or out-of-range value, an option that does not apply. Checked before anything is read, downloaded or written."),
    ("3", "A check found that a card, image, zip or device is not what it should be: a difference found by verify or inspect, a card that cannot be read, a read-back after writing that differs, a zip whose hash matches no pin (firmware verify), a counterfeit device (probe, or the probe of a burn)."),
    ("4", "Refused by a safety check before anything was written: the device is mounted, busy, fixed or read-only, a path is unsafe, or the write was not confirmed."),
    ("130", "Interrupted (Ctrl-C). A device being written has its partition table areas wiped again and must be burned again; an image file is left as it was."),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("PI_BURN_CACHE_DIR", "The firmware cache (verified release zips). Default: $XDG_CACHE_HOME/pi-burn."),
    ("XDG_CACHE_HOME", "Where the cache goes when PI_BURN_CACHE_DIR is not set. Default: ~/.cache."),
    ("SOURCE_DATE_EPOCH", "Seconds since 1970 for the timestamps of the files on a card. Default: the firmware release's date (images are reproducible either way)."),
    ("HTTPS_PROXY, ALL_PROXY, NO_PROXY", "Proxies for firmware downloads, as curl reads them."),
    ("PI_BURN_DEVICE_TIMEOUT", "Seconds a device the user named may leave requests waiting with none completed before pi-burn ends the run without it, saying what the device was left as (default 30; 5 after SIGTERM or Ctrl-C)."),
    ("PI_BURN_REQUIRE_ALL_TESTS", "For pi-burn's own test suite: 1 makes a test that cannot run here (a missing tool, not root) fail instead of being ignored."),
];

/// Escapes text for roff.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn list_section(w: &mut dyn Write, title: &str, items: &[(&str, &str)]) -> Result<()> {
    writeln!(w, ".SH {title}")?;
    for (k, v) in items {
        writeln!(w, ".TP\n.B {}\n{}", roff(k), roff(v))?;
    }
    Ok(())
}

/// SYNOPSIS with every option's value (clap_mangen's lists `[--table]` without it).
fn synopsis(cmd: &clap::Command, path: &str, w: &mut dyn Write) -> Result<()> {
    let mut parts = vec![format!(
        "\\fB{}\\fR",
        roff(&if path.is_empty() {
            "pi-burn".to_string()
        } else {
            format!("pi-burn {path}")
        })
    )];
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let values = a.get_value_names().map(|v| {
            v.iter()
                .map(|n| format!(" \\fI{}\\fR", roff(n)))
                .collect::<String>()
        });
        let takes = a.get_num_args().is_some_and(|n| n.takes_values());
        let value = match (takes, values) {
            (true, Some(v)) => v,
            (true, None) => format!(" \\fI{}\\fR", roff(&a.get_id().to_string().to_uppercase())),
            (false, _) => String::new(),
        };
        let flag = match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR|\\fB{}\\fR", roff(&format!("--{l}"))),
            (None, Some(l)) => format!("\\fB{}\\fR", roff(&format!("--{l}"))),
            (Some(s), None) => format!("\\fB\\-{s}\\fR"),
            (None, None) => {
                // A positional argument.
                let name = a
                    .get_value_names()
                    .and_then(|v| v.first().map(|n| n.to_string()))
                    .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
                let p = format!("\\fI{}\\fR", roff(&name));
                parts.push(if a.is_required_set() {
                    p
                } else {
                    format!("[{p}]")
                });
                continue;
            }
        };
        let repeat = if matches!(
            a.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        ) {
            "..."
        } else {
            ""
        };
        parts.push(format!("[{flag}{value}]{repeat}"));
    }
    if cmd.has_subcommands() {
        parts.push("\\fISUBCOMMAND\\fR".into());
    }
    writeln!(w, ".SH SYNOPSIS\n{}", parts.join(" "))?;
    Ok(())
}

/// One page: clap's sections, then EXAMPLES, EXIT STATUS and ENVIRONMENT.
fn page(cmd: &clap::Command, path: &str, w: &mut dyn Write) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    synopsis(cmd, path, w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    let ex = examples::of(path);
    if !ex.is_empty() {
        writeln!(w, ".SH EXAMPLES")?;
        for (what, command) in ex {
            writeln!(
                w,
                ".PP\n{}\n.PP\n.RS 4\n.B {}\n.RE",
                roff(what),
                roff(command)
            )?;
        }
    }
    list_section(w, "EXIT STATUS", EXIT_STATUS)?;
    list_section(w, "ENVIRONMENT", ENVIRONMENT)?;
    writeln!(
        w,
        ".SH SEE ALSO\n{}",
        roff("pi-burn(1); the README in pi-burn's repository.")
    )?;
    man.render_version_section(w)?;
    Ok(())
}

/// Every command with its path ("" for pi-burn, "firmware fetch" ...).
fn pages(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    out.push((path.to_string(), cmd.clone()));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let p = if path.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{path} {}", sub.get_name())
        };
        pages(sub, &p, out);
    }
}

pub fn man(a: &ManArgs) -> Result<Outcome> {
    let mut root = crate::cli::command().disable_help_subcommand(true);
    root.build();
    let mut all = vec![];
    pages(&root, "", &mut all);
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut written = vec![];
        for (path, cmd) in &all {
            let name = if path.is_empty() {
                "pi-burn".to_string()
            } else {
                format!("pi-burn-{}", path.replace(' ', "-"))
            };
            let file = dir.join(format!("{name}.1"));
            let mut text = Vec::new();
            page(cmd, path, &mut text)?;
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
            written.push(file.display().to_string());
        }
        return Outcome::of(
            &serde_json::json!({ "out": dir.display().to_string(), "pages": written }),
        );
    }
    let want = a.subcommand.join(" ");
    let Some((path, cmd)) = all.iter().find(|(p, _)| *p == want) else {
        bail!(usage(format!(
            "no page for '{want}'; pages: {}",
            all.iter()
                .filter(|(p, _)| !p.is_empty())
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let mut text = Vec::new();
    page(cmd, path, &mut text)?;
    text_outcome("page", path, &String::from_utf8(text)?)
}
