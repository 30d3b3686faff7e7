//! Printing a card's record and what checking the card against it found (inspect, and verify
//! against a card's record).

use super::Outcome;
use crate::disk::cardcheck::CardCheck;
use crate::error::Mismatch;
use crate::report::Target;
use crate::util::text::printable;
use anyhow::Result;

/// The problems, one line each, prefixed with the card's path.
fn problem_lines(path: &str, problems: &[String]) -> Vec<String> {
    problems
        .iter()
        .map(|line| format!("{path}: {}", printable(line)))
        .collect()
}

/// The outcome of checking a card: intact, or a mismatch (exit 3) with its differences.
fn ending(o: Outcome, problems: &[String]) -> Outcome {
    if problems.is_empty() {
        o
    } else {
        o.ending(Err(Mismatch(problems.to_vec()).into()))
    }
}

/// A record and what checking the card against it found.
pub fn outcome(target: &Target, c: &CardCheck) -> Result<Outcome> {
    let (rec, problems) = (&c.record, &c.problems);
    let path = &target.path;
    let o = Outcome::of(&serde_json::json!({
        "target": target, "record": rec, "intact": problems.is_empty(), "mismatches": problems,
        "changes": c.changes, "unchecked": c.unchecked, "files_from": c.files_from,
    }))?
    .problems(problem_lines(path, problems));
    let mut lines = vec![];
    macro_rules! say {
        ($($t:tt)*) => { lines.push(format!($($t)*)) };
    }
    // The record is read from the card: its text is printed escaped (no terminal control).
    let p = printable;
    let t = &rec.table;
    let what = match &t.ssd {
        Some(s) => format!(
            "firmware ESP on {}'s SSD (disk {})",
            rec.node
                .as_deref()
                .map(p)
                .unwrap_or_else(|| "a node".into()),
            p(&s.disk)
        ),
        None => format!(
            "{} card{}",
            p(&rec.board),
            rec.node
                .as_ref()
                .map(|n| format!(" for {}", p(n)))
                .unwrap_or_default()
        ),
    };
    say!(
        "{path}: {what}: firmware {} {}, made by {}",
        p(&rec.board),
        p(&rec.firmware.version),
        p(&rec.made_by)
    );
    say!(
        "  zip sha256 {}\n  NAR        {}",
        p(&rec.firmware.zip_sha256),
        p(&rec.firmware.nar_sha256)
    );
    say!(
        "  {} table, {}-byte sectors; partition {} sectors {}-{}{}; FAT32 '{}'",
        p(&t.kind),
        t.sector_size,
        t.partition,
        t.first_lba,
        t.last_lba,
        if t.name.is_empty() {
            format!(", type {}", p(&t.part_type))
        } else {
            format!(", '{}'", p(&t.name))
        },
        p(&t.label)
    );
    for s in &rec.uefi {
        say!(
            "  UEFI {} = {} (from {})",
            p(&s.name),
            p(&s.value.to_string()),
            p(&s.from)
        );
    }
    for e in &rec.config_txt {
        say!(
            "  config.txt {}={} (from {})",
            p(&e.key),
            p(&e.value),
            p(&e.from)
        );
    }
    if let Some(b) = &rec.firmware.start4 {
        say!("  start4.elf built {}", p(&b.date));
    }
    for ch in &c.changes {
        say!("  since burning: {}", p(ch));
    }
    for u in &c.unchecked {
        say!("  unchecked: {}", p(u));
    }
    if problems.is_empty() {
        say!(
            "{path}: OK: the table, all {} files{} and every claim the card can show match the record{}",
            rec.files.len(),
            if c.booted {
                " (RPI_EFI.fd's variable store as the firmware changed it)"
            } else {
                ""
            },
            c.files_from
                .as_ref()
                .map(|f| format!("; its files are {f} with the recorded settings and edits"))
                .unwrap_or_default()
        );
    } else {
        // Each difference is a line above.
        say!(
            "{path}: {} (above)",
            crate::error::Mismatch::count(problems.len())
        );
    }
    Ok(ending(o.lines(lines), problems))
}

/// An EEPROM card's record and what checking the card against it found.
pub fn outcome_eeprom(target: &Target, c: &crate::eeprom::check::EepromCheck) -> Result<Outcome> {
    let (rec, problems) = (&c.record, &c.problems);
    let path = &target.path;
    let o = Outcome::of(&serde_json::json!({
        "target": target, "eeprom_record": rec, "intact": problems.is_empty(),
        "mismatches": problems, "checked": c.checked, "unchecked": c.unchecked,
    }))?
    .problems(problem_lines(path, problems));
    let mut lines = vec![];
    macro_rules! say {
        ($($t:tt)*) => { lines.push(format!($($t)*)) };
    }
    let p = printable;
    say!(
        "{path}: EEPROM card{}: {} bootloader {}, made by {}",
        rec.node
            .as_ref()
            .map(|n| format!(" for {}", p(n)))
            .unwrap_or_default(),
        p(&rec.board),
        p(&rec.release),
        p(&rec.made_by)
    );
    if let Some(ts) = rec.build_timestamp {
        say!(
            "  bootloader BUILD_TIMESTAMP {ts}; pieeprom.sig ts: {}",
            rec.ts
        );
    }
    if let Some(v) = rec.mfg_ver {
        say!("  MFG_VER {v} (a board whose rpi-min-boot-ver is higher needs a newer bootloader)");
    }
    for b in &rec.bootconf {
        say!(
            "  bootconf {}={} ({}, from {})",
            p(&b.key),
            p(&b.value),
            p(&b.change),
            p(&b.from)
        );
    }
    say!("  bootconf.txt:");
    for l in rec.bootconf_txt.lines().take(200) {
        say!("    {}", p(l));
    }
    for ch in &c.checked {
        say!("  checked: {}", p(ch));
    }
    for u in &c.unchecked {
        say!("  unchecked: {}", p(u));
    }
    if problems.is_empty() {
        say!(
            "{path}: OK: the table, all {} files, pieeprom.bin's bootconf.txt and the .sig files match the record",
            rec.files.len()
        );
    } else {
        // Each difference is a line above.
        say!(
            "{path}: {} (above)",
            crate::error::Mismatch::count(problems.len())
        );
    }
    Ok(ending(o.lines(lines), problems))
}
