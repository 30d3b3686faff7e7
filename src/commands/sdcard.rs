//! `pi-burn sdcard`: the UEFI firmware SD card, as an image file or on a block device.

use super::prompt::{confirm, describe};
use super::{
    custom_for, customise, device_target, image_size, layout_for_device, load_firmware, sd_layout,
    timestamp, Customised, Global,
};
use crate::blockdev::{blockers, Allow};
use crate::cli::SdcardArgs;
use crate::disk::card::{build_sdcard, BuiltCard};
use crate::disk::geometry::{DiskPlan, SdLayout, TableKind};
use crate::disk::record::{self, CardRecord, Inputs};
use crate::disk::verify::Mismatch;
use crate::error::Refused;
use crate::firmware::Firmware;
use crate::report::{FileReport, Report, Target};
use crate::util::units::human;
use crate::write::device::burn;
use crate::write::image::check_replaceable;
use anyhow::{bail, Context, Result};

fn warn_old_start4(fw: &Firmware, plan: &DiskPlan, g: &Global) {
    if fw.gpt_boot_warning && plan.table == TableKind::Gpt {
        g.progress.notice(&format!(
            "warning: {} {}'s start4.elf predates the EEPROM 2025-02-11 GPT fix: with that EEPROM or newer a GPT card does not boot (rpi-eeprom #668); use v1.42+ or --table mbr",
            fw.board, fw.version
        ));
    }
}

fn plan_line(plan: &DiskPlan, layout: &SdLayout, label: &str) -> String {
    format!(
        "{} {} table; partition 1 at sector {}, {}, {}FAT32 '{}'",
        human(plan.size),
        plan.table.name(),
        plan.partitions[0].first_lba,
        human(layout.partition_size),
        if plan.table == TableKind::Gpt {
            format!("name '{}', ", layout.partition_name)
        } else {
            String::new()
        },
        label.to_ascii_uppercase()
    )
}

/// The plan on a disk of `size` bytes and the card built in memory (nothing is written); the
/// card's record joins the firmware's files.
pub fn build(
    fw: &mut Firmware,
    layout: &SdLayout,
    size: u64,
    done: &Customised,
    (label, node): (&str, Option<&str>),
    g: &Global,
) -> Result<(DiskPlan, BuiltCard, Vec<FileReport>)> {
    let plan = layout.plan(size)?;
    warn_old_start4(fw, &plan, g);
    let rec = CardRecord::new(
        &Inputs {
            fw,
            node,
            uefi: &done.uefi,
            config_txt: &done.config_txt,
            label,
        },
        &plan,
        &fw.files,
    );
    record::add_to(&mut fw.files, &rec)?;
    // The files as the report lists them: the record's hashes, and the record itself.
    let mut files: Vec<FileReport> = rec
        .files
        .iter()
        .map(|f| FileReport {
            path: f.path.clone(),
            size: f.bytes,
            sha256: f.sha256.clone(),
        })
        .collect();
    let bytes = rec.to_bytes();
    files.push(FileReport {
        path: record::PATH.into(),
        size: bytes.len() as u64,
        sha256: crate::firmware::digest::Sha256Digest::of(&bytes).hex(),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    g.progress
        .phase(&format!("building {}", plan_line(&plan, layout, label)));
    let card = build_sdcard(&plan, &fw.files, label, &layout.seed, timestamp(fw.date)?)?;
    Ok((plan, card, files))
}

/// The flake and node whose pi-burn.toml settings apply (with --node).
pub fn node_of_layout(l: &crate::cli::LayoutArgs) -> Option<(&std::path::Path, &str)> {
    l.node.as_deref().map(|n| (l.config.flake.as_path(), n))
}

fn card_names(args: &SdcardArgs) -> (&str, Option<&str>) {
    (&args.layout.label, args.layout.node.as_deref())
}

fn node_of(args: &SdcardArgs) -> Option<(&std::path::Path, &str)> {
    node_of_layout(&args.layout)
}

pub fn run(args: &SdcardArgs, g: &Global) -> Result<()> {
    match (&args.device, &args.image) {
        (Some(_), _) => run_device(args, g),
        (None, Some(image)) => run_image(args, image, g),
        (None, None) => unreachable!("clap requires DEVICE or --image"),
    }
}

fn run_image(args: &SdcardArgs, image: &std::path::Path, g: &Global) -> Result<()> {
    // Every check before anything is written.
    check_replaceable(image, args.force)?;
    let custom = custom_for(&args.custom, node_of(args))?;
    let mut fw = load_firmware(&args.firmware, g)?;
    let done = customise(&mut fw, &custom, g)?;
    let layout = sd_layout(&args.layout, &fw)?;
    let size = image_size(&args.layout, &layout)?;
    let (plan, card, files) = build(&mut fw, &layout, size, &done, card_names(args), g)?;
    g.progress.phase("card built in memory");
    let (stats, bmap) =
        crate::disk::bmap::write_image_and_map(image, &card.disk, g.progress.as_ref())?;
    g.progress
        .phase(&format!("image written, block map in {}", bmap.display()));
    let mut report = Report::new(
        Target {
            kind: "image",
            path: image.display().to_string(),
            size,
        },
        &plan,
    )
    .with_firmware_files(&fw, files);
    report.filesystem = Some(card.fat);
    report.uefi_settings = done.uefi;
    report.config_txt = done.config_txt;
    report.bytes_written = Some(stats.bytes_written);
    if g.json {
        println!("{}", report.to_json()?);
    } else if !g.quiet {
        println!(
            "{}: {} {} image, firmware {} {} ({} files and the card record, {}), {} written",
            image.display(),
            human(size),
            plan.table.name(),
            fw.board,
            fw.version,
            fw.files.file_count() - 1,
            human(fw.files.payload_bytes()),
            human(stats.bytes_written)
        );
    }
    Ok(())
}

fn run_device(args: &SdcardArgs, g: &Global) -> Result<()> {
    let dev_path = args.device.as_ref().expect("checked by the caller");
    let opts = &args.device_opts;
    // 1. The device: a whole disk that nothing uses.
    let (t, r, d) = device_target(dev_path)?;
    let blocked = blockers(
        &t,
        &d,
        Allow {
            fixed_disk: opts.allow_fixed_disk,
        },
    )?;
    if !blocked.is_empty() {
        bail!(Refused(format!(
            "refusing {}: {}",
            r.canonical.display(),
            blocked.join("; ")
        )));
    }
    // 2. The firmware, verified; the layout on this device; the card, built in memory.
    let custom = custom_for(&args.custom, node_of(args))?;
    let mut fw = load_firmware(&args.firmware, g)?;
    let done = customise(&mut fw, &custom, g)?;
    let layout = layout_for_device(&args.layout, &fw, &d)?;
    let (plan, card, files) = build(&mut fw, &layout, d.size, &done, card_names(args), g)
        .with_context(|| r.canonical.display().to_string())?;
    // 3. The plan, shown; the user's word.
    if !g.quiet || opts.dry_run || !opts.yes {
        eprint!("{}", describe(&r, &d));
        eprintln!(
            "will write:  {}; firmware {} {} ({} files and the card record); {} to write, table last",
            plan_line(&plan, &layout, &args.layout.label),
            fw.board,
            fw.version,
            fw.files.file_count() - 1,
            human(crate::write::device::planned_bytes(&card.disk))
        );
        // What the firmware gets besides the release, and where each value came from.
        for a in &done.uefi {
            eprintln!(
                "             UEFI {} = {} (from {})",
                a.name, a.value, a.from
            );
        }
        for e in &done.config_txt {
            eprintln!(
                "             config.txt {}={} (from {})",
                e.key, e.value, e.from
            );
        }
    }
    let mut report = Report::new(
        Target {
            kind: "device",
            path: r.canonical.display().to_string(),
            size: d.size,
        },
        &plan,
    )
    .with_firmware_files(&fw, files);
    report.filesystem = Some(card.fat.clone());
    report.uefi_settings = done.uefi;
    report.config_txt = done.config_txt;
    if opts.dry_run {
        g.progress.phase("dry run: nothing was written");
        if g.json {
            println!("{}", report.to_json()?);
        }
        return Ok(());
    }
    confirm(&d, &r, opts.yes)?;
    // 4. The write.
    let stats = burn(&t, &r, &d, &card.disk, !opts.no_verify, g.progress.as_ref())?;
    report.bytes_written = Some(stats.bytes_written);
    report.bytes_read_back = (!opts.no_verify).then_some(stats.bytes_read_back);
    if !stats.mismatches.is_empty() {
        report.mismatches = Some(stats.mismatches.clone());
    }
    if g.json {
        println!("{}", report.to_json()?);
    } else {
        for m in &stats.mismatches {
            println!("{}: {m}", r.canonical.display());
        }
        if stats.mismatches.is_empty() && !g.quiet {
            println!(
                "{}: burned firmware {} {}: {} written{}",
                r.canonical.display(),
                fw.board,
                fw.version,
                human(stats.bytes_written),
                if opts.no_verify {
                    ""
                } else {
                    ", read back and verified"
                }
            );
        }
    }
    if !stats.mismatches.is_empty() {
        return Err(Mismatch(stats.mismatches).into());
    }
    Ok(())
}
