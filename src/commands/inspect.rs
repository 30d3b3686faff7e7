//! `pi-burn inspect`: what a pi-burn card is, from its record, and whether its table and every
//! file still match that record (no zip needed).

use super::{open_target, Global};
use crate::cli::InspectArgs;
use crate::disk::cardread::read_card;
use crate::disk::record::{self, CardRecord};
use crate::disk::verify::Mismatch;
use crate::report::Target;
use anyhow::{bail, Result};
use std::fs::File;

/// Reads the card's record and checks the card against it: the record and the differences.
pub fn check(f: &mut File, size: u64, origin: &str) -> Result<(CardRecord, Vec<String>)> {
    let card = read_card(f, size, &[(record::PATH, record::MAX_BYTES)], origin)?;
    if card.files.contains_key(record::PATH) && !card.kept.contains_key(record::PATH) {
        bail!(
            "{origin}: /{} is larger than {} bytes: not a pi-burn card record",
            record::PATH,
            record::MAX_BYTES
        );
    }
    let Some(bytes) = card.kept.get(record::PATH) else {
        bail!(
            "{origin} is not a card pi-burn made: partition 1 has no /{} (check it against the firmware with `pi-burn verify --firmware VERSION`)",
            record::PATH
        );
    };
    let rec = CardRecord::parse(bytes, origin)?;
    let mut problems = card.table_problems.clone();
    problems.extend(rec.check_table(&card.table, &card.label));
    problems.extend(rec.check_files(&card.files, "found"));
    Ok((rec, problems))
}

pub fn run(args: &InspectArgs, g: &Global) -> Result<()> {
    let (target, mut f) = open_target(args.device.as_deref(), args.image.as_deref())?;
    let (rec, problems) = check(&mut f, target.size, &target.path)?;
    print(&target, &rec, &problems, g)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Mismatch(problems).into())
    }
}

/// Prints a record and the check's outcome (shared with `verify`).
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
            "{path}: {} difference{} from the record",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
