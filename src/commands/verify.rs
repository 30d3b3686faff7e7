//! `pi-burn verify`: read a card or image back and compare it with the firmware, or, when no
//! firmware is named and the card carries a pi-burn record, with that record.

use super::sdcard::node_of_layout;
use super::{
    custom_for, customise, image_size, layout_for_device, load_firmware, open_target, sd_layout,
    Global,
};
use crate::cli::VerifyArgs;
use crate::disk::verify::{verify_card, Mismatch};
use crate::report::Report;
use anyhow::Result;

/// No firmware, no settings, no node: the card's own record is what it is checked against.
fn names_nothing(a: &VerifyArgs) -> bool {
    let f = &a.firmware;
    let c = &a.custom;
    f.firmware.is_none()
        && f.firmware_zip.is_none()
        && f.firmware_url.is_none()
        && f.sha256.is_none()
        && c.set.is_empty()
        && c.config_txt.is_empty()
        && c.ram_limit_3gb.is_none()
        && c.system_table.is_none()
        && a.layout.node.is_none()
}

pub fn run(args: &VerifyArgs, g: &Global) -> Result<()> {
    let custom = custom_for(&args.custom, node_of_layout(&args.layout))?;
    let (target, mut f) = open_target(args.device.as_deref(), args.image.as_deref())?;
    if names_nothing(args) {
        if let Ok((rec, mut problems)) = super::inspect::check(&mut f, target.size, &target.path) {
            g.progress.phase(&format!(
                "{}: no firmware named: checking against the card's record",
                target.path
            ));
            // The layout options still say what is expected.
            let want_table = match args.layout.table {
                crate::cli::Table::Gpt => "gpt",
                crate::cli::Table::Mbr => "mbr",
            };
            if rec.table.kind != want_table {
                problems.push(format!(
                    "partition table: expected {want_table}, the card's record says {}",
                    rec.table.kind
                ));
            }
            if rec.table.label != args.layout.label.to_ascii_uppercase() {
                problems.push(format!(
                    "filesystem label: expected '{}', the card's record says '{}'",
                    args.layout.label.to_ascii_uppercase(),
                    rec.table.label
                ));
            }
            super::inspect::print(&target, &rec, &problems, g)?;
            return if problems.is_empty() {
                Ok(())
            } else {
                Err(Mismatch(problems).into())
            };
        }
    }
    let mut fw = load_firmware(&args.firmware, g)?;
    let done = customise(&mut fw, &custom, g)?;
    let layout = match &args.device {
        Some(dev) => {
            let (_, _, d) = super::device_target(dev)?;
            layout_for_device(&args.layout, &fw, &d)?
        }
        None => {
            let layout = sd_layout(&args.layout, &fw)?;
            if args.layout.size.is_some() {
                let want = image_size(&args.layout, &layout)?;
                if want != target.size {
                    return Err(Mismatch(vec![format!(
                        "image size: expected {want}, found {}",
                        target.size
                    )])
                    .into());
                }
            }
            layout
        }
    };
    let path = target.path.clone();
    let plan = layout.plan(target.size)?;
    g.progress.phase(&format!("verifying {path}"));
    let mismatches = verify_card(&mut f, &plan, 1, &fw.files, &args.layout.label)?;
    if g.json {
        let mut report = Report::new(target, &plan).with_firmware(&fw);
        report.mismatches = Some(mismatches.clone());
        report.uefi_settings = done.uefi;
        report.config_txt = done.config_txt;
        println!("{}", report.to_json()?);
    } else {
        for m in &mismatches {
            println!("{path}: {m}");
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
