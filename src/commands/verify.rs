//! `pi-burn verify`: read a card or image back and compare it with the firmware, or, when no
//! firmware is named and the card carries a pi-burn record, with that record.

use super::Global;
use crate::cli::VerifyArgs;
use crate::disk::cardcheck::check;
use crate::disk::verify::verify_card;
use crate::error::Mismatch;
use crate::job::target::ReadTarget;
use crate::job::verify::VerifyJob;
use crate::report::Report;
use anyhow::Result;

pub fn run(args: &VerifyArgs, g: &Global) -> Result<()> {
    let job = VerifyJob::from_args(args)?;
    let mut t = ReadTarget::open(job.device.as_deref(), job.image.as_deref())?;
    let (size, path) = (t.size(), t.path().to_string());
    if let Some(checks) = &job.by_record {
        // A card whose FAT cannot be read is a difference, not a reason to fetch a firmware.
        if let crate::disk::identify::Identity::Damaged(e) =
            crate::disk::identify::identify(&mut t.file, size)
        {
            println!("{path}: {}", crate::util::text::printable(&e));
            return Err(Mismatch(vec![e]).into());
        }
        if let Ok(mut c) = check(&mut t.file, size, &path) {
            g.progress().phase(&format!(
                "{path}: no firmware named: checking against the card's record"
            ));
            crate::job::inspect::check_firmware(&mut c, &job.firmware.manifest, g.progress());
            // Every layout option given still says what is expected: none is ignored.
            let more = checks.against(&c.record, size);
            c.problems.extend(more);
            super::record::print(&t.report, &c, g)?;
            return if c.problems.is_empty() {
                Ok(())
            } else {
                Err(Mismatch(c.problems).into())
            };
        }
    }
    let ss = match &t.disk {
        Some(d) => {
            if let Some(s) = job
                .layout
                .sector_size
                .filter(|s| *s != d.info.logical_sector_size)
            {
                return Err(crate::error::usage(format!(
                    "--sector-size {s} does not match {}'s {}-byte sectors (a device's own sector size is always used)",
                    d.info.name, d.info.logical_sector_size
                )));
            }
            if job.layout.size.is_some() {
                return Err(crate::error::usage(
                    "--size is for image files; a device is used whole",
                ));
            }
            d.info.logical_sector_size
        }
        None => {
            if let Some(want) = job.layout.size.filter(|s| *s != size) {
                return Err(
                    Mismatch(vec![format!("image size: expected {want}, found {size}")]).into(),
                );
            }
            job.layout.sector_size.unwrap_or(512)
        }
    };
    let mut fw = job.firmware.obtain(g.progress())?;
    let done = crate::job::customise(&mut fw, &job.custom, g.progress())?;
    let node = job.node.as_ref().map(|n| n.name.as_str());
    let plan = job.layout.sd_layout(&fw, ss, node).plan(size)?;
    g.progress().phase(&format!("verifying {path}"));
    let v = verify_card(&mut t.file, &plan, 1, &fw.files, &job.layout.label)?;
    let mismatches = v.mismatches;
    if g.json {
        let mut report = Report::new(t.report, &plan).with_firmware(&fw);
        report.mismatches = Some(mismatches.clone());
        report.changes = v.changes.clone();
        report.uefi_settings = done.uefi;
        report.config_txt = done.config_txt;
        println!("{}", report.to_json()?);
    } else {
        for m in &mismatches {
            println!("{path}: {m}");
        }
        for c in &v.changes {
            println!("{path}: since burning: {c}");
        }
        if mismatches.is_empty() && !g.quiet {
            println!(
                "{path}: OK: {} table and {} files match firmware {} {}",
                plan.table.name(),
                fw.files.file_count(),
                fw.board,
                fw.version
            );
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(Mismatch(mismatches).into())
    }
}
