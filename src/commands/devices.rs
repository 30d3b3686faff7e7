//! `pi-burn devices`: the whole disks, what each holds, and whether pi-burn would write to it.

use super::Global;
use crate::blockdev::sysfs::{self, DiskInfo, SysTree};
use crate::blockdev::{blockers, held_exclusively, in_use, not_writable, Allow};
use crate::disk::identify::{identify, Identity};
use crate::util::text::printable;
use crate::util::units::human;
use anyhow::Result;
use serde::Serialize;
use std::time::Duration;

/// How long one disk may take to answer the reads of its table and record.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Row {
    path: String,
    #[serde(flatten)]
    disk: DiskInfo,
    in_use: bool,
    /// What a pi-burn card says it is (its record): node, board, firmware.
    card: Option<Card>,
    /// What the disk holds, read with pi-burn's own readers (when it could be read).
    holds: Option<String>,
    accepted: bool,
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct Card {
    node: Option<String>,
    board: String,
    firmware: String,
}

/// What `/dev/NAME` holds, read-only (its table, partitions, a card's record), within
/// [`ANSWER_WITHIN`]: a disk whose first read stalls is reported as not answering (that read
/// is made by a child process, left behind); one that stalls later too, its reader thread left
/// behind.
/// Nothing when the disk cannot be opened (not root).
fn holds(name: &str) -> Option<Result<Identity, String>> {
    let path = format!("/dev/{name}");
    let mut f = std::fs::File::open(&path).ok()?;
    let size = crate::blockdev::sys::size_bytes(&f).ok()?;
    let stalled = || {
        format!(
            "not answering: reads stalled for {} s",
            ANSWER_WITHIN.as_secs()
        )
    };
    // A first read in a child process: a stalled one cannot hold this process's exit.
    if !crate::blockdev::sys::answers_within(&f, ANSWER_WITHIN) {
        return Some(Err(stalled()));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(identify(&mut f, size));
    });
    Some(rx.recv_timeout(ANSWER_WITHIN).map_err(|_| stalled()))
}

pub fn run(g: &Global) -> Result<()> {
    let t = SysTree::system();
    let mut rows = vec![];
    for dev in sysfs::list_disks(&t) {
        let Ok(disk) = sysfs::inspect(&t, dev) else {
            continue;
        };
        let path = format!("/dev/{}", disk.name);
        let mut reasons = blockers(&t, &disk, Allow::default())?;
        let mut busy = !in_use(&t, &disk)?.is_empty();
        if let Some(w) = not_writable(std::path::Path::new(&path)) {
            reasons.push(w);
        } else if reasons.is_empty() && held_exclusively(std::path::Path::new(&path)) {
            reasons.push(format!(
                "{path} is held open exclusively (a mount, RAID, LVM, LUKS, or another pi-burn writing it)"
            ));
            busy = true;
        }
        // Fixed disks (the machine's own) are never read: pi-burn writes none by default.
        let portable = disk.removable || matches!(disk.transport.as_str(), "usb" | "mmc" | "loop");
        let found = portable.then(|| holds(&disk.name)).flatten();
        let card = match &found {
            Some(Ok(Identity::Card(r))) => Some(Card {
                node: r.node.as_deref().map(printable),
                board: printable(&r.board),
                firmware: printable(&r.firmware.version),
            }),
            Some(Ok(Identity::Eeprom(r))) => Some(Card {
                node: r.node.as_deref().map(printable),
                board: printable(&r.board),
                firmware: format!("bootloader {}", printable(&r.release)),
            }),
            _ => None,
        };
        let holds = found.map(|f| match f {
            Ok(i) => i.describe(),
            Err(e) => e,
        });
        rows.push(Row {
            path,
            accepted: reasons.is_empty(),
            in_use: busy,
            card,
            holds,
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
    print_rows(&rows);
    Ok(())
}

fn print_rows(rows: &[Row]) {
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
            if model.is_empty() {
                "-".into()
            } else {
                printable(&model)
            },
            printable(r.disk.serial.as_deref().unwrap_or("-")),
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
        if let (Some(h), None) = (&r.holds, &r.card) {
            println!("{:<14} holds: {h}", "");
        }
    }
}
