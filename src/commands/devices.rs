//! `pi-burn devices`: the whole disks, and whether pi-burn would write to each.

use super::Global;
use crate::blockdev::sysfs::{self, DiskInfo, SysTree};
use crate::blockdev::{blockers, Allow};
use crate::util::units::human;
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    path: String,
    #[serde(flatten)]
    disk: DiskInfo,
    in_use: bool,
    /// What a pi-burn card says it is (its record): node, board, firmware.
    card: Option<Card>,
    accepted: bool,
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct Card {
    node: Option<String>,
    board: String,
    firmware: String,
}

/// The record of a pi-burn card on `/dev/NAME`, read-only; nothing for any other disk, or when
/// the disk cannot be read (not root).
fn card_of(name: &str) -> Option<Card> {
    use crate::disk::record::{CardRecord, MAX_BYTES, PATH};
    let path = format!("/dev/{name}");
    let mut f = std::fs::File::open(&path).ok()?;
    let size = crate::blockdev::sys::size_bytes(&f).ok()?;
    let bytes = crate::disk::cardread::read_one(&mut f, size, PATH, MAX_BYTES, &path).ok()??;
    let r = CardRecord::parse(&bytes, &path).ok()?;
    Some(Card {
        node: r.node,
        board: r.board,
        firmware: r.firmware.version,
    })
}

pub fn run(g: &Global) -> Result<()> {
    let t = SysTree::system();
    let mut rows = vec![];
    for dev in sysfs::list_disks(&t) {
        let Ok(disk) = sysfs::inspect(&t, dev) else {
            continue;
        };
        let reasons = blockers(&t, &disk, Allow::default())?;
        let in_use = reasons.iter().any(|r| !r.contains("--allow-fixed-disk"));
        rows.push(Row {
            path: format!("/dev/{}", disk.name),
            accepted: reasons.is_empty(),
            in_use,
            card: card_of(&disk.name),
            reasons,
            disk,
        });
    }
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "devices": rows }))?
        );
        return Ok(());
    }
    println!(
        "{:<14} {:>10} {:<9} {:<4} {:<28} {:<20} {:<6} {:<20} pi-burn",
        "device", "size", "transport", "rm", "model", "serial", "in use", "card"
    );
    for r in rows {
        // The model names the disk; the vendor field is often a bare id (0x1b1c, ATA).
        let model = r
            .disk
            .model
            .clone()
            .or_else(|| r.disk.vendor.clone())
            .unwrap_or_default();
        let card = r.card.as_ref().map_or("-".to_string(), |c| {
            format!(
                "{}{} {}",
                c.node
                    .as_ref()
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default(),
                c.board,
                c.firmware
            )
        });
        println!(
            "{:<14} {:>10} {:<9} {:<4} {:<28} {:<20} {:<6} {card:<20} {}",
            r.path,
            human(r.disk.size),
            r.disk.transport,
            if r.disk.removable { "yes" } else { "no" },
            if model.is_empty() { "-".into() } else { model },
            r.disk.serial.as_deref().unwrap_or("-"),
            if r.in_use { "yes" } else { "no" },
            if r.accepted {
                "ok".to_string()
            } else {
                format!("refused: {}", r.reasons.join("; "))
            }
        );
        for id in &r.disk.by_id {
            println!("{:<14} {id}", "");
        }
    }
    Ok(())
}
