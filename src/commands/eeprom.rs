//! `pi-burn eeprom`: the EEPROM bootloader update card, as an image file or on a card.

use super::prompt::{describe, go_ahead, probe_line, probe_summary};
use super::Global;
use crate::cli::EepromArgs;
use crate::eeprom::bootconf::describe_boot_order;
use crate::job::eeprom::{BuiltEeprom, EepromJob};
use crate::report::{EepromReport, Report};
use crate::util::text::printable;
use crate::util::units::human;
use crate::write::{target::planned_bytes, Target};
use anyhow::Result;

/// "BOOT_ORDER=0xf41 (SD card, then USB mass storage, then restart; from --boot-order)".
fn property_lines(b: &BuiltEeprom) -> Vec<String> {
    b.edited
        .applied
        .iter()
        .map(|a| {
            let what = if a.key == "BOOT_ORDER" {
                format!("{}; ", describe_boot_order(&a.value))
            } else {
                String::new()
            };
            format!(
                "{}={} ({what}{}, from {})",
                a.key,
                a.value,
                serde_json::to_value(a.change)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                a.from
            )
        })
        .collect()
}

fn show_plan(job: &EepromJob, target: &Target, b: &BuiltEeprom) {
    if let Target::Device(c) = target {
        eprint!("{}", describe(c.disk()));
        let d = &c.disk().info;
        eprint!(
            "{}",
            probe_line(d.size, d.logical_sector_size, job.device.probe)
        );
    }
    let rel = &job.release;
    eprintln!(
        "will write:  {} MBR card, partition 1 at sector {} (0x0c FAT32 '{}', {}): {} bootloader {}: {}{}",
        human(b.plan.size),
        b.plan.partitions[0].first_lba,
        crate::eeprom::LABEL,
        human(crate::eeprom::PARTITION_SIZE),
        job.board,
        rel.date,
        b.files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        match target {
            Target::Device(_) => format!(
                "; {} to write, table last",
                human(planned_bytes(&b.built.disk))
            ),
            Target::Image(_) => String::new(),
        }
    );
    for l in property_lines(b) {
        eprintln!("             bootconf {l}");
    }
}

pub fn run(a: &EepromArgs, g: &Global) -> Result<()> {
    let job = EepromJob::from_args(a)?;
    let target = job.target.claim(job.device.allow())?;
    let files = job.obtain(g.progress())?;
    let b = job.build(&files, &target)?;
    let mut report = Report::new(target.report(b.plan.size), &b.plan);
    report.filesystem = Some(b.built.fat.clone());
    report.files = b.files.clone();
    report.eeprom = Some(EepromReport {
        board: job.board.clone(),
        release: job.release.date.clone(),
        build_timestamp: b.record.build_timestamp,
        bootconf: b.edited.applied.clone(),
        bootconf_txt: b.edited.bootconf.clone(),
    });
    let opts = &job.device;
    if !g.quiet || opts.dry_run || (matches!(target, Target::Device(_)) && !opts.yes) {
        show_plan(&job, &target, &b);
    }
    if !go_ahead(&target, opts, &report, g)? {
        return Ok(());
    }
    let done = super::deliver_reported(
        &b.built.disk,
        &target,
        &opts.write_options(),
        &mut report,
        g,
    )?;
    if g.json {
        println!("{}", report.to_json()?);
        return Ok(());
    }
    if g.quiet {
        return Ok(());
    }
    let path = target.path().display();
    println!(
        "{path}: EEPROM card for the {} bootloader {}{}: {} written{}{}",
        job.board,
        job.release.date,
        job.node
            .as_deref()
            .map(|n| format!(" ({})", printable(n)))
            .unwrap_or_default(),
        human(done.bytes_written),
        if done.bytes_read_back.is_some() {
            ", read back and verified"
        } else {
            ""
        },
        match &target {
            Target::Device(_) => probe_summary(done.probe.as_ref()),
            Target::Image(_) => String::new(),
        }
    );
    println!(
        "next: power the {} off, insert this card, power it on; after about 10 s the green LED blinks fast and a screen shows green (red, or another pattern: the update failed). Power off and take the card out. pi-burn cannot undo an update: keep a card of the release before.",
        if job.board == "rpi5" { "Pi 5" } else { "Pi 4" }
    );
    Ok(())
}
