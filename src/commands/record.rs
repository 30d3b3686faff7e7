//! Printing a card's record and what checking the card against it found (inspect, and verify
//! against a card's record).

use super::Global;
use crate::disk::cardcheck::CardCheck;
use crate::report::Target;
use crate::util::text::printable;
use anyhow::Result;

/// Prints the problems first, one per line; whether that is all (quiet, and none).
fn problems_first(path: &str, problems: &[String], g: &Global) -> bool {
    for line in problems {
        println!("{path}: {}", printable(line));
    }
    g.quiet && problems.is_empty()
}

/// Prints a record and what checking the card against it found.
pub fn print(target: &Target, c: &CardCheck, g: &Global) -> Result<()> {
    let (rec, problems) = (&c.record, &c.problems);
    let path = &target.path;
    if g.json {
        let j = serde_json::json!({
            "target": target, "record": rec, "intact": problems.is_empty(), "mismatches": problems,
            "changes": c.changes, "unchecked": c.unchecked,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    if problems_first(path, problems, g) {
        return Ok(());
    }
    // The record is read from the card: its text is printed escaped (no terminal control).
    let p = printable;
    let t = &rec.table;
    println!(
        "{path}: {} card{}: firmware {} {}, made by {}",
        p(&rec.board),
        rec.node
            .as_ref()
            .map(|n| format!(" for {}", p(n)))
            .unwrap_or_default(),
        p(&rec.board),
        p(&rec.firmware.version),
        p(&rec.made_by)
    );
    println!(
        "  zip sha256 {}\n  NAR        {}",
        p(&rec.firmware.zip_sha256),
        p(&rec.firmware.nar_sha256)
    );
    println!(
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
        println!(
            "  UEFI {} = {} (from {})",
            p(&s.name),
            p(&s.value.to_string()),
            p(&s.from)
        );
    }
    for e in &rec.config_txt {
        println!(
            "  config.txt {}={} (from {})",
            p(&e.key),
            p(&e.value),
            p(&e.from)
        );
    }
    if let Some(b) = &rec.firmware.start4 {
        println!("  start4.elf built {}", p(&b.date));
    }
    for ch in &c.changes {
        println!("  since burning: {}", p(ch));
    }
    for u in &c.unchecked {
        println!("  unchecked: {}", p(u));
    }
    if problems.is_empty() {
        println!(
            "{path}: OK: the table, all {} files{} and every claim the card can show match the record",
            rec.files.len(),
            if c.changes.is_empty() {
                ""
            } else {
                " (RPI_EFI.fd's variable store as the firmware changed it)"
            }
        );
    } else {
        println!(
            "{path}: {} from the record",
            crate::error::Mismatch::count(problems.len())
        );
    }
    Ok(())
}

/// Prints an EEPROM card's record and what checking the card against it found.
pub fn print_eeprom(
    target: &Target,
    c: &crate::eeprom::check::EepromCheck,
    g: &Global,
) -> Result<()> {
    let (rec, problems) = (&c.record, &c.problems);
    let path = &target.path;
    if g.json {
        let j = serde_json::json!({
            "target": target, "eeprom_record": rec, "intact": problems.is_empty(),
            "mismatches": problems, "checked": c.checked, "unchecked": c.unchecked,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    if problems_first(path, problems, g) {
        return Ok(());
    }
    let p = printable;
    println!(
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
        println!(
            "  bootloader BUILD_TIMESTAMP {ts}; pieeprom.sig ts: {}",
            rec.ts
        );
    }
    for b in &rec.bootconf {
        println!(
            "  bootconf {}={} ({}, from {})",
            p(&b.key),
            p(&b.value),
            p(&b.change),
            p(&b.from)
        );
    }
    println!("  bootconf.txt:");
    for l in rec.bootconf_txt.lines().take(200) {
        println!("    {}", p(l));
    }
    for ch in &c.checked {
        println!("  checked: {}", p(ch));
    }
    for u in &c.unchecked {
        println!("  unchecked: {}", p(u));
    }
    if problems.is_empty() {
        println!(
            "{path}: OK: the table, all {} files, pieeprom.bin's bootconf.txt and the .sig files match the record",
            rec.files.len()
        );
    } else {
        println!(
            "{path}: {} from the record",
            crate::error::Mismatch::count(problems.len())
        );
    }
    Ok(())
}
