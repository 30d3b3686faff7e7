//! `pi-burn verify`: read a card or image back and compare it with the firmware, or, when no
//! firmware, setting or node is named and the card carries a pi-burn record, with that record.
//! An SSD's firmware ESP is always checked against its record (and its files against the
//! firmware named).

use super::{Global, Outcome};
use crate::cli::VerifyArgs;
use crate::disk::cardcheck::check;
use crate::disk::verify::verify_card;
use crate::error::Mismatch;
use crate::job::target::ReadTarget;
use crate::job::verify::VerifyJob;
use crate::media::{identify, Identity};
use crate::report::Report;
use anyhow::Result;

pub fn run(args: &VerifyArgs, g: &Global) -> Result<Outcome> {
    let job = VerifyJob::from_args(args)?;
    let mut t = ReadTarget::open(job.device.as_deref(), job.image.as_deref())?;
    let (size, path) = (t.size(), t.path().to_string());
    let identity = identify(&mut t.file, size);
    // An SSD's firmware ESP (`ssd --with-firmware`) is no layout of verify's: it is checked
    // against its record, with a firmware named as the release its files must come from.
    let ssd_esp = match &identity {
        Identity::Card(rec) => rec.table.ssd.as_ref().map(|s| s.disk.clone()),
        _ => None,
    };
    if let (Some(disk), None) = (&ssd_esp, &job.by_record) {
        let image = if job.image.is_some() { "--image " } else { "" };
        return Err(crate::error::usage(format!(
            "{path} is the firmware ESP of an SSD (disk {}): verify checks it against its record (--firmware, --firmware-zip or --sha256 name the release its files must come from); --set, --node and --config-txt are not compared there (`pi-burn inspect {image}{path}` shows its settings)",
            crate::util::text::printable(disk)
        )));
    }
    if let Some(checks) = &job.by_record {
        match identity {
            // A card whose FAT cannot be read is a difference, not a reason to fetch a firmware
            // (one named compares the card file by file below).
            Identity::Damaged(e) if !job.firmware_named => {
                let line = format!("{path}: {}", crate::util::text::printable(&e));
                return Ok(Outcome::of(
                    &serde_json::json!({ "target": t.report, "mismatches": [&e] }),
                )?
                .problems([line])
                .ending(Err(Mismatch(vec![e]).into())));
            }
            // A card with a record and no firmware named, or an SSD's ESP (whose files must be
            // the named firmware's): against its record. A card of verify's layouts with a
            // firmware named is compared below with what that firmware and the options give.
            Identity::Card(rec) if !job.firmware_named || ssd_esp.is_some() => {
                let named = match job.firmware_named {
                    true => Some(job.firmware.obtain(g.progress())?),
                    false => None,
                };
                g.progress().phase(&format!(
                    "{path}: checking against the card's record{}",
                    match &named {
                        Some(fw) => format!(", its files against {} {}'s", fw.board, fw.version),
                        None => " (no firmware named)".to_string(),
                    }
                ));
                let mut c = check(&mut t.file, size, *rec, &path)?;
                let manifest = &job.firmware.manifest;
                match named {
                    Some(fw) => crate::job::inspect::check_named_firmware(
                        &mut c,
                        manifest,
                        fw,
                        g.progress(),
                    ),
                    None => crate::job::inspect::check_firmware(&mut c, manifest, g.progress()),
                }
                // Every layout option given still says what is expected: none is ignored.
                let more = checks.against(&c.record, size);
                c.problems.extend(more);
                return super::record::outcome(&t.report, &c);
            }
            _ => {}
        }
    }
    let ss = job.sector_size(t.disk.as_ref(), size)?;
    let mut fw = job.firmware.obtain(g.progress())?;
    let done = crate::job::customise(&mut fw, &job.custom, g.progress())?;
    let node = job.node.as_ref().map(|n| n.name.as_str());
    let plan = job.layout.sd_layout(&fw, ss, node).plan(size)?;
    g.progress().phase(&format!("verifying {path}"));
    // The settings asked for (--set, the node's pi-burn.toml) must be on the card as asked.
    let asked = job
        .custom
        .settings
        .iter()
        .map(|s| {
            Ok(crate::disk::verify::Asked {
                def: s.def,
                bytes: s.def.encode(&s.value)?,
                shown: format!("{} (from {})", s.value, s.from),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let v = verify_card(&mut t.file, &plan, 1, &fw.files, &job.layout.label, &asked)?;
    let mut report = Report::new(t.report, &plan).with_firmware(&fw);
    report.mismatches = Some(v.mismatches.clone());
    report.changes = v.changes.clone();
    report.uefi_settings = done.uefi;
    report.config_txt = done.config_txt;
    let mut o = Outcome::of(&report)?
        .problems(v.mismatches.iter().map(|m| format!("{path}: {m}")))
        .lines(
            v.changes
                .iter()
                .map(|c| format!("{path}: since burning: {c}")),
        );
    if v.mismatches.is_empty() {
        o = o.line(format!(
            "{path}: OK: {} table and {} files match firmware {} {}",
            plan.table.name(),
            fw.files.file_count(),
            fw.board,
            fw.version
        ));
        Ok(o)
    } else {
        Ok(o.ending(Err(Mismatch(v.mismatches).into())))
    }
}
