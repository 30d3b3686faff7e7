//! `pi-burn sdcard`: the UEFI firmware SD card, as an image file or on a block device.

use super::prompt::{describe, go_ahead, probe_line, probe_summary};
use super::Global;
use crate::cli::SdcardArgs;
use crate::job::card::Card;
use crate::job::CardJob;
use crate::util::units::human;
use crate::write::{target::planned_bytes, Target};
use anyhow::Result;

/// The plan shown before a device is written: the device, what goes on it, and each setting
/// and edit with where it came from.
fn show_plan(target: &Target, card: &Card, fw: &crate::firmware::Firmware, probe: bool) {
    if let Target::Device(c) = target {
        eprint!("{}", describe(c.disk()));
        let d = &c.disk().info;
        eprint!("{}", probe_line(d.size, d.logical_sector_size, probe));
    }
    eprintln!(
        "will write:  {}; firmware {} {} ({} files and the card record); {} to write, table last",
        card.plan_line(),
        fw.board,
        fw.version,
        fw.files.file_count() - 1,
        human(planned_bytes(&card.built().disk))
    );
    for a in &card.customised.uefi {
        eprintln!(
            "             UEFI {} = {} (from {})",
            a.name, a.value, a.from
        );
    }
    for e in &card.customised.config_txt {
        eprintln!(
            "             config.txt {}={} (from {})",
            e.key, e.value, e.from
        );
    }
}

pub fn run(args: &SdcardArgs, g: &Global) -> Result<()> {
    // Every check first: the options, then the target; then the firmware.
    let job = CardJob::from_args(args)?;
    for n in &job.notices {
        g.progress().notice(n);
    }
    let target = job.target.claim(job.device.allow())?;
    job.geometry(&target)?;
    let mut fw = job.firmware.obtain(g.progress())?;
    let card = job.build(&mut fw, &target, g.progress())?;
    let mut report = card.report(&fw, &target);
    let opts = &job.device;
    if let Target::Device(_) = &target {
        if !g.quiet || opts.dry_run || !opts.yes {
            show_plan(&target, &card, &fw, opts.probe);
        }
    } else {
        g.progress().phase("card built in memory");
    }
    if !go_ahead(&target, opts, &report, g)? {
        return Ok(());
    }
    let done = super::deliver_reported(
        &card.built().disk,
        &target,
        &opts.write_options(),
        &mut report,
        g,
    )?;
    if g.json {
        println!("{}", report.to_json()?);
    } else if !g.quiet {
        let path = target.path().display();
        match &target {
            Target::Image(_) => println!(
                "{path}: {} {} image, firmware {} {} ({} files and the card record, {}), {} written",
                human(card.plan.size),
                card.plan.table.name(),
                fw.board,
                fw.version,
                fw.files.file_count() - 1,
                human(fw.files.payload_bytes()),
                human(done.bytes_written)
            ),
            Target::Device(_) => println!(
                "{path}: burned firmware {} {}: {} written{}{}",
                fw.board,
                fw.version,
                human(done.bytes_written),
                if done.bytes_read_back.is_some() {
                    ", read back and verified"
                } else {
                    ""
                },
                probe_summary(done.probe.as_ref())
            ),
        }
    }
    Ok(())
}
