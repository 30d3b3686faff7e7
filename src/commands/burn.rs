//! The one burn driver, for every command that writes a disk it built (sdcard, ssd, eeprom):
//! the plan shown, a dry run ended, the device confirmed, the disk delivered (probed, written
//! table last, read back), the outcome summarised. The job built everything before: nothing
//! here reads a device (what it holds was read when it was claimed).

use super::prompt::{confirm, describe, probe_line, probe_summary};
use super::{Global, Outcome};
use crate::error::Mismatch;
use crate::job::{Burn, DeviceOpts};
use crate::write::Target;
use anyhow::Result;

/// Burns `b` onto `target`.
pub fn burn(target: &Target, device: &DeviceOpts, b: Burn, g: &Global) -> Result<Outcome> {
    let on_device = matches!(target, Target::Device(_));
    if !g.quiet || device.dry_run || (on_device && !device.yes) {
        if let Target::Device(c) = target {
            let d = &c.disk().info;
            eprint!("{}", describe(c));
            eprint!(
                "{}",
                probe_line(d.size, d.logical_sector_size, device.probe)
            );
        }
        for l in &b.plan {
            eprintln!("{l}");
        }
    }
    let mut report = b.report;
    if device.dry_run {
        g.progress().phase("dry run: nothing was written");
        return Outcome::of(&report);
    }
    if let Target::Device(c) = target {
        confirm(&[c], device.yes)?;
    }
    let done = match crate::write::deliver(&b.image, target, &b.options, g.progress()) {
        Ok(done) => done,
        Err(e) => {
            // A read-back difference: each range on its own line, and in the report.
            let lines = e
                .downcast_ref::<Mismatch>()
                .map(|m| m.0.clone())
                .unwrap_or_default();
            if !lines.is_empty() {
                report.mismatches = Some(lines.clone());
            }
            return Ok(Outcome::of(&report)?.problems(lines).ending(Err(e)));
        }
    };
    if let Some(m) = &done.bmap {
        g.progress()
            .phase(&format!("image written, block map in {}", m.display()));
    }
    report.bytes_written = Some(done.bytes_written);
    report.bytes_read_back = done.bytes_read_back;
    report.probe = done.probe.clone();
    let mut lines = (b.done)(&done);
    if on_device {
        if let Some(last) = lines.last_mut() {
            last.push_str(&probe_summary(done.probe.as_ref()));
        }
    }
    Ok(Outcome::of(&report)?
        .lines(lines)
        .lines(b.next.clone())
        .field("next", &b.next))
}
