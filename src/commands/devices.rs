//! `pi-burn devices`: the whole disks, what each holds, and whether pi-burn would write to it.

use super::Outcome;
use crate::blockdev::sysfs::{self, DiskInfo, SysTree};
use crate::blockdev::{blockers, held_exclusively, in_use, not_writable, Allow};
use crate::media::{identify, Identity};
use crate::util::text::printable;
use crate::util::units::human;
use anyhow::Result;
use serde::{Deserialize, Serialize};
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

#[derive(Serialize, Deserialize)]
struct Card {
    node: Option<String>,
    board: String,
    firmware: String,
}

/// What a disk holds, as read by the child process of [`look`].
#[derive(Serialize, Deserialize)]
struct Found {
    card: Option<Card>,
    holds: String,
}

/// The checks that open the disk, made by the child process of [`look`].
#[derive(Serialize, Deserialize)]
struct Opened {
    not_writable: Option<String>,
    held_exclusively: bool,
}

/// What [`look`] learnt of a disk.
struct Looked {
    /// The checks, or why they could not be made (a refusal reason).
    opened: Result<Opened, String>,
    /// A pi-burn card's node, board and firmware.
    card: Option<Card>,
    /// What it holds (or why that is not known); `None` when it is not read (a fixed disk, or
    /// one that cannot be opened, not root).
    holds: Option<String>,
}

/// Opens `/dev/NAME` (for the writability and exclusive-use checks, `excl` for the latter)
/// and, for a `portable` disk, reads what it holds (its table, partitions, a card's record),
/// read-only, within [`ANSWER_WITHIN`] in all. A child process opens and reads it: a disk
/// that stalls is reported as not answering, and the child is left behind holding nothing
/// of this process's (a stalled read, the disk's last close and any open meanwhile wait in
/// the kernel and would hold this process's exit, and its stdout, until the kernel gives up).
fn look(name: &str, excl: bool, portable: bool) -> Looked {
    let path = std::path::PathBuf::from(format!("/dev/{name}"));
    let a = crate::blockdev::sys::answer_from_child(ANSWER_WITHIN, 1 << 20, |out| {
        let not_writable = not_writable(&path);
        let opened = Opened {
            held_exclusively: excl && not_writable.is_none() && held_exclusively(&path),
            not_writable,
        };
        serde_json::to_writer(&mut *out, &opened)?;
        out.write_all(b"\n")?;
        let found = portable
            .then(|| {
                let mut f = std::fs::File::open(&path).ok()?;
                let size = crate::blockdev::sys::size_bytes(&f).ok()?;
                Some(found(identify(&mut f, size)))
            })
            .flatten();
        serde_json::to_writer(&mut *out, &found)?;
        out.write_all(b"\n")
    });
    let failed = |why: String| Looked {
        opened: Err(format!("{} could not be checked: {why}", path.display())),
        card: None,
        holds: portable.then(|| format!("cannot be read: {why}")),
    };
    let a = match a {
        Ok(a) => a,
        Err(e) => return failed(e.to_string()),
    };
    let mut lines = a.bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let opened = match lines.next().map(serde_json::from_slice::<Opened>) {
        Some(Ok(o)) => Ok(o),
        Some(Err(e)) => return failed(format!("its reading child process answered {e}")),
        None => Err(format!(
            "{} does not answer: opening it stalled for {} s",
            path.display(),
            ANSWER_WITHIN.as_secs()
        )),
    };
    let (card, holds) = match lines.next().map(serde_json::from_slice::<Option<Found>>) {
        Some(Ok(Some(f))) => (f.card, Some(f.holds)),
        Some(Ok(None)) => (None, None),
        Some(Err(e)) => return failed(format!("its reading child process answered {e}")),
        None if !portable => (None, None),
        None => (
            None,
            Some(format!(
                "not answering: {} stalled for {} s",
                if opened.is_ok() {
                    "reads"
                } else {
                    "opening it"
                },
                ANSWER_WITHIN.as_secs()
            )),
        ),
    };
    Looked {
        opened,
        card,
        holds,
    }
}

/// The card fields and the description of what [`identify`] found.
fn found(id: Identity) -> Found {
    let card = match &id {
        Identity::Card(r) => Some(Card {
            node: r.node.as_deref().map(printable),
            board: printable(&r.board),
            firmware: printable(&r.firmware.version),
        }),
        Identity::Eeprom(r) => Some(Card {
            node: r.node.as_deref().map(printable),
            board: printable(&r.board),
            firmware: format!("bootloader {}", printable(&r.release)),
        }),
        _ => None,
    };
    Found {
        card,
        holds: id.describe(),
    }
}

pub fn run() -> Result<Outcome> {
    let t = SysTree::system();
    let mut rows = vec![];
    for dev in sysfs::list_disks(&t) {
        let Ok(disk) = sysfs::inspect(&t, dev) else {
            continue;
        };
        let path = format!("/dev/{}", disk.name);
        let mut reasons = blockers(&t, &disk, Allow::default())?;
        let mut busy = !in_use(&t, &disk)?.is_empty();
        // Fixed disks (the machine's own) are never read: pi-burn writes none by default.
        let portable = disk.removable || matches!(disk.transport.as_str(), "usb" | "mmc" | "loop");
        let looked = look(&disk.name, reasons.is_empty(), portable);
        match looked.opened {
            Ok(Opened {
                not_writable: Some(w),
                ..
            }) => reasons.push(w),
            Ok(Opened {
                held_exclusively: true,
                ..
            }) => {
                reasons.push(format!(
                    "{path} is held open exclusively (a mount, RAID, LVM, LUKS, or another pi-burn writing it)"
                ));
                busy = true;
            }
            Ok(_) => {}
            Err(why) => reasons.push(why),
        }
        rows.push(Row {
            path,
            accepted: reasons.is_empty(),
            in_use: busy,
            card: looked.card,
            holds: looked.holds,
            reasons,
            disk,
        });
    }
    let lines = row_lines(&rows);
    Ok(Outcome::of(&serde_json::json!({ "devices": rows }))?.lines(lines))
}

fn row_lines(rows: &[Row]) -> Vec<String> {
    let mut lines = vec![];
    macro_rules! say {
        ($($t:tt)*) => { lines.push(format!($($t)*)) };
    }
    say!(
        "{:<14} {:>10} {:<9} {:<4} {:<28} {:<20} {:<6} {:<20} pi-burn",
        "device",
        "size",
        "transport",
        "rm",
        "model",
        "serial",
        "in use",
        "card"
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
        say!(
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
            say!("{:<14} {id}", "");
        }
        if let (Some(h), None) = (&r.holds, &r.card) {
            say!("{:<14} holds: {h}", "");
        }
    }
    lines
}
