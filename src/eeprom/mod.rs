//! The EEPROM bootloader update card (what Raspberry Pi Imager's "Bootloader" images are): a
//! pinned rpi-eeprom release's recovery.bin and pieeprom.bin, bootconf.txt inside the latter
//! replaced with the cluster's properties, pieeprom.sig beside it, on an MBR FAT32 card.
//!
//! [`image`] reads and edits pieeprom.bin's section chain, [`bootconf`] checks the properties,
//! [`record`] is the card's record. Where the files come from is the job's (`job/eeprom.rs`).

pub mod bootconf;
pub mod check;
pub mod image;
pub mod record;

pub use image::{EepromImage, Soc};

use crate::firmware::configtxt::{self, Edit, EditApplied};
use crate::firmware::digest::Sha256Digest;
use crate::firmware::fileset::FileSet;
use anyhow::{bail, Result};

/// The card's partition: 256 MiB at 1 MiB (as Imager's recovery images have it).
pub const PARTITION_SIZE: u64 = 256 << 20;

/// The partition for a disk of `sector_size`-byte sectors: [`PARTITION_SIZE`], or at 4096-byte
/// sectors (a cluster is then at least 4 KiB, and FAT32's 65,525 clusters need 257 MiB) 264
/// MiB, the next multiple of 8 MiB. Still far under the 32 GB the boot ROM reads.
pub fn partition_size(sector_size: u64) -> u64 {
    if sector_size <= 512 {
        PARTITION_SIZE
    } else {
        264 << 20
    }
}
/// The MBR type of the card's partition: FAT32 LBA, what the boot ROM's recovery mode reads.
pub const MBR_TYPE: u8 = 0x0c;
/// The card's volume label.
pub const LABEL: &str = "RECOVERY";

/// A release's files, each verified against its pin.
#[derive(Debug, Clone)]
pub struct ReleaseFiles {
    pub board: String,
    pub date: String,
    pub pieeprom: Vec<u8>,
    pub recovery: Vec<u8>,
    pub vl805: Option<Vec<u8>>,
}

/// pieeprom.bin with the edits applied, and what the card carries.
#[derive(Debug, Clone)]
pub struct Edited {
    pub image: EepromImage,
    pub bootconf: String,
    pub applied: Vec<EditApplied>,
    /// `ts:` of pieeprom.sig.
    pub ts: u64,
}

/// Applies `edits` to the release's bootconf.txt inside its pieeprom.bin (checked against
/// `soc`); `ts` is SOURCE_DATE_EPOCH or the build's timestamp.
pub fn edit(files: &ReleaseFiles, soc: Soc, edits: &[Edit], ts: Option<u64>) -> Result<Edited> {
    let origin = format!("pieeprom-{}.bin", files.date);
    let mut image = EepromImage::parse(files.pieeprom.clone(), &origin)?;
    image.check_soc(soc, &origin)?;
    let Some(own) = image.file("bootconf.txt") else {
        bail!("{origin} has no bootconf.txt in its first partition: no bootloader image pi-burn can set");
    };
    let Ok(own) = std::str::from_utf8(own) else {
        bail!("{origin}: its bootconf.txt is not text");
    };
    let (bootconf, applied) = configtxt::apply(own, edits, &format!("{origin}'s bootconf.txt"))?;
    if bootconf.len() > image::MAX_FILE {
        bail!(crate::error::usage(format!(
            "bootconf.txt would be {} bytes with these properties; the bootloader keeps at most {}",
            bootconf.len(),
            image::MAX_FILE
        )));
    }
    image.replace_file("bootconf.txt", bootconf.as_bytes())?;
    let Some(ts) = ts.or(image.build_timestamp()) else {
        bail!("{origin} carries no BUILD_TIMESTAMP for pieeprom.sig's ts: set SOURCE_DATE_EPOCH");
    };
    Ok(Edited {
        image,
        bootconf,
        applied,
        ts,
    })
}

/// pieeprom.sig as rpi-eeprom-digest writes it: the SHA-256, `ts:`, `target-soc:`.
pub fn sig(pieeprom: &[u8], ts: u64, soc: Soc) -> String {
    format!(
        "{}\nts: {ts}\ntarget-soc: {}\n",
        Sha256Digest::of(pieeprom).hex(),
        soc.number()
    )
}

/// The card's files: recovery.bin, pieeprom.bin, pieeprom.sig, and vl805.bin with vl805.sig
/// (its SHA-256 alone, as Imager's images carry it) when the release has one.
pub fn card_files(files: &ReleaseFiles, edited: &Edited, soc: Soc) -> Result<FileSet> {
    let mut set = FileSet::new();
    let pie = edited.image.bytes().to_vec();
    set.add_file("recovery.bin", files.recovery.clone(), false)?;
    set.add_file(
        "pieeprom.sig",
        sig(&pie, edited.ts, soc).into_bytes(),
        false,
    )?;
    set.add_file("pieeprom.bin", pie, false)?;
    if let Some(v) = &files.vl805 {
        set.add_file(
            "vl805.sig",
            format!("{}\n", Sha256Digest::of(v).hex()).into_bytes(),
            false,
        )?;
        set.add_file("vl805.bin", v.clone(), false)?;
    }
    Ok(set)
}

/// The pieeprom.sig fields: (sha256 hex, ts, target-soc), or why it is not one.
pub fn parse_sig(text: &str) -> Result<(String, u64, u32)> {
    let mut lines = text.lines();
    let sha = lines.next().unwrap_or_default().trim().to_string();
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("its first line is not a SHA-256");
    }
    let (mut ts, mut soc) = (None, None);
    for l in lines.take(16) {
        if let Some(v) = l.strip_prefix("ts: ") {
            ts = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("target-soc: ") {
            soc = v.trim().parse().ok();
        }
    }
    match (ts, soc) {
        (Some(t), Some(s)) => Ok((sha, t, s)),
        _ => bail!("it lacks its ts: or target-soc: line"),
    }
}
