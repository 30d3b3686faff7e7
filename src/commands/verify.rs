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
    f.pin.firmware.is_none()
        && f.firmware_zip.is_none()
        && f.firmware_url.is_none()
        && f.pin.sha256.is_none()
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
            // Every layout option given still says what is expected: none is ignored.
            problems.extend(layout_against_record(&args.layout, &rec, target.size)?);
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

/// The layout options against a card's record, one line per difference.
fn layout_against_record(
    l: &crate::cli::LayoutArgs,
    rec: &crate::disk::record::CardRecord,
    size: u64,
) -> Result<Vec<String>> {
    let t = &rec.table;
    let mut out = vec![];
    let mut differs = |what: &str, want: String, got: String| {
        if want != got {
            out.push(format!(
                "{what}: expected {want}, the card's record says {got}"
            ));
        }
    };
    let want_table = match l.table {
        crate::cli::Table::Gpt => "gpt",
        crate::cli::Table::Mbr => "mbr",
    };
    differs("partition table", want_table.into(), t.kind.clone());
    differs(
        "filesystem label",
        format!("'{}'", l.label.to_ascii_uppercase()),
        format!("'{}'", t.label),
    );
    if let Some(ss) = l.sector_size {
        differs("sector size", ss.0.to_string(), t.sector_size.to_string());
    }
    if let Some(p) = l.partition_size {
        // The record is read from the card: checked arithmetic.
        let got = t
            .last_lba
            .checked_sub(t.first_lba)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(t.sector_size))
            .map_or("an impossible range".to_string(), |b| b.to_string());
        differs("partition size", p.0.to_string(), got);
    }
    if let Some(n) = &l.partition_name {
        differs("partition name", format!("'{n}'"), format!("'{}'", t.name));
    }
    if let Some(code) = &l.gpt_type {
        let want = crate::disk::geometry::gpt_type(code)
            .map_err(|e| super::usage(format!("--gpt-type: {e:#}")))?;
        differs(
            "partition type",
            want.to_string().to_uppercase(),
            t.part_type.clone(),
        );
    }
    if let Some(b) = l.mbr_type {
        differs(
            "partition type",
            format!("0x{:02x}", b.0),
            t.part_type.clone(),
        );
    }
    if let Some(s) = l.size {
        // The message a firmware verify gives for the same difference.
        if s.0 != size {
            out.push(format!("image size: expected {}, found {size}", s.0));
        }
    }
    Ok(out)
}
