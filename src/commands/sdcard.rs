//! `pi-burn sdcard`: the UEFI firmware SD card.

use super::{image_size, load_firmware, sd_layout, timestamp, Global};
use crate::card::build_sdcard;
use crate::cli::SdcardArgs;
use crate::layout::{human, TableKind};
use crate::report::{Report, Target};
use crate::writer::{check_image_path, write_image_file};
use anyhow::Result;

pub fn run(args: &SdcardArgs, g: &Global) -> Result<()> {
    // Every check before anything is written.
    check_image_path(&args.image)?;
    let fw = load_firmware(&args.firmware, g)?;
    let layout = sd_layout(&args.layout, &fw)?;
    let size = image_size(&args.layout, &layout)?;
    let plan = layout.plan(size)?;
    if fw.gpt_boot_warning && plan.table == TableKind::Gpt {
        g.progress.notice(&format!(
            "warning: {} {}'s start4.elf predates the EEPROM 2025-02-11 GPT fix: with that EEPROM or newer a GPT card does not boot (rpi-eeprom #668); use v1.42+ or --table mbr",
            fw.board, fw.version
        ));
    }
    g.progress.phase(&format!(
        "building {} {} card: partition 1 at sector {}, {}, FAT32 '{}'",
        human(size),
        plan.table.name(),
        plan.partitions[0].first_lba,
        human(layout.partition_size),
        args.layout.label.to_ascii_uppercase()
    ));
    let card = build_sdcard(
        &plan,
        &fw.files,
        &args.layout.label,
        &layout.seed,
        timestamp(&fw)?,
    )?;
    g.progress.phase("card built in memory");
    let stats = write_image_file(&args.image, &card.disk, g.progress.as_ref())?;
    g.progress.phase("image written");
    let mut report = Report::new(
        Target {
            kind: "image",
            path: args.image.display().to_string(),
            size,
        },
        &plan,
    )
    .with_firmware(&fw);
    report.filesystem = Some(card.fat);
    report.bytes_written = Some(stats.bytes_written);
    if g.json {
        report.print_json()?;
    } else if !g.quiet {
        println!(
            "{}: {} {} image, firmware {} {} ({} files, {}), {} written",
            args.image.display(),
            human(size),
            plan.table.name(),
            fw.board,
            fw.version,
            fw.files.file_count(),
            human(fw.files.payload_bytes()),
            human(stats.bytes_written)
        );
    }
    Ok(())
}
