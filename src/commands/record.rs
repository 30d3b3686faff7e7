//! Printing a card's record and what checking the card against it found (inspect, and verify
//! against a card's record).

use super::Global;
use crate::disk::cardcheck::CardCheck;
use crate::report::Target;
use crate::util::text::printable;
use anyhow::Result;

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
    for line in problems {
        println!("{path}: {}", printable(line));
    }
    if g.quiet && problems.is_empty() {
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
