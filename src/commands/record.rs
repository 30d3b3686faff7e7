//! Printing a card's record and what checking the card against it found (inspect, and verify
//! against a card's record).

use super::Global;
use crate::disk::record::CardRecord;
use crate::report::Target;
use anyhow::Result;

/// Prints a record and the check's outcome.
pub fn print(target: &Target, rec: &CardRecord, problems: &[String], g: &Global) -> Result<()> {
    let path = &target.path;
    if g.json {
        let j = serde_json::json!({
            "target": target, "record": rec, "intact": problems.is_empty(), "mismatches": problems,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    for p in problems {
        println!("{path}: {p}");
    }
    if g.quiet && problems.is_empty() {
        return Ok(());
    }
    let t = &rec.table;
    println!(
        "{path}: {} card{}: firmware {} {}, made by {}",
        rec.board,
        rec.node
            .as_ref()
            .map(|n| format!(" for {n}"))
            .unwrap_or_default(),
        rec.board,
        rec.firmware.version,
        rec.made_by
    );
    println!(
        "  zip sha256 {}\n  NAR        {}",
        rec.firmware.zip_sha256, rec.firmware.nar_sha256
    );
    println!(
        "  {} table, {}-byte sectors; partition {} sectors {}-{}{}; FAT32 '{}'",
        t.kind,
        t.sector_size,
        t.partition,
        t.first_lba,
        t.last_lba,
        if t.name.is_empty() {
            format!(", type {}", t.part_type)
        } else {
            format!(", '{}'", t.name)
        },
        t.label
    );
    for s in &rec.uefi {
        println!("  UEFI {} = {} (from {})", s.name, s.value, s.from);
    }
    for e in &rec.config_txt {
        println!("  config.txt {}={} (from {})", e.key, e.value, e.from);
    }
    if problems.is_empty() {
        println!(
            "{path}: OK: the table and all {} files match the record",
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
