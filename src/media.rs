//! What a disk holds, read with pi-burn's own readers (the kernel may not have scanned its
//! table): a pi-burn card and its record (a firmware card's or an EEPROM card's, each parsed
//! by its own module below this one), another table with its partitions' names, types, sizes
//! and filesystems, an ISO 9660 image, or nothing. For the plan before a device is written,
//! `devices`, `inspect` and `verify`. Every read is small and bounded.

use crate::disk::cardread::{self, OneFile};
use crate::disk::geometry::{gpt_type_code, PartType, TableKind};
use crate::disk::record::{self, CardRecord};
use crate::disk::table::read_table;
use crate::eeprom::record::EepromRecord;
use crate::util::text::printable;
use crate::util::units::human;
use anyhow::{bail, Result};
use std::io::{Read, Seek, SeekFrom};

/// One partition as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub number: u32,
    pub name: String,
    pub part_type: PartType,
    pub bytes: u64,
    /// The filesystem or signature at its start, when one is recognised.
    pub content: Option<&'static str>,
}

/// What a disk holds.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A firmware card pi-burn made: its record.
    Card(Box<CardRecord>),
    /// An EEPROM bootloader card pi-burn made: its record.
    Eeprom(Box<EepromRecord>),
    /// A partition table, not a pi-burn card.
    Table {
        kind: TableKind,
        partitions: Vec<Found>,
        /// A partition 1 holds a /pi-burn.json that is no readable record.
        bad_record: Option<String>,
    },
    /// A FAT partition 1 that cannot be read (its chains are broken, ...).
    Damaged(String),
    /// An ISO 9660 image (an installer, most likely).
    Iso,
    /// No partition table, and a filesystem on the whole disk (as blkid would name it).
    Filesystem(&'static str),
    /// No partition table: zeros where it would be.
    Blank,
    /// Bytes pi-burn reads no table in.
    Unknown(String),
}

fn read_at<R: Read + Seek>(disk: &mut R, off: u64, len: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; len];
    disk.seek(SeekFrom::Start(off)).ok()?;
    disk.read_exact(&mut b).ok()?;
    Some(b)
}

/// The filesystem or signature at `off`, by its magic bytes.
fn content_at<R: Read + Seek>(disk: &mut R, off: u64) -> Option<&'static str> {
    let b = read_at(disk, off, 4096)?;
    let at = |o: usize, m: &[u8]| b.get(o..o + m.len()) == Some(m);
    if at(0, b"LUKS\xba\xbe") {
        Some("LUKS")
    } else if at(0, b"XFSB") {
        Some("XFS")
    } else if at(510, &[0x55, 0xAA]) && at(82, b"FAT32   ") {
        Some("FAT32")
    } else if at(510, &[0x55, 0xAA]) && (at(54, b"FAT16   ") || at(54, b"FAT12   ")) {
        Some("FAT16")
    } else if at(4086, b"SWAPSPACE2") {
        Some("swap")
    } else if at(1080, &[0x53, 0xEF]) {
        Some("ext2/3/4")
    } else if b.iter().all(|x| *x == 0) {
        Some("empty")
    } else {
        None
    }
}

/// Reads what `disk` (of `size` bytes) holds.
pub fn identify<R: Read + Seek>(disk: &mut R, size: u64) -> Identity {
    let Some(head) = read_at(disk, 0, 64 << 10) else {
        return Identity::Unknown("cannot read its first 64 KiB".into());
    };
    if head.get(0x8001..0x8006) == Some(b"CD001".as_slice()) {
        return Identity::Iso;
    }
    let table = match read_table(disk, size, None) {
        Ok(t) => t,
        Err(e) => {
            // No table: a filesystem on the whole disk (an ext4 superblock leaves the first
            // KiB zero), or nothing.
            return match content_at(disk, 0) {
                Some("empty") | None if head[..1024].iter().all(|b| *b == 0) => {
                    match read_at(disk, 0x10040, 8) {
                        Some(m) if m == b"_BHRfS_M" => Identity::Filesystem("btrfs"),
                        _ => Identity::Blank,
                    }
                }
                Some("empty") | None => Identity::Unknown(format!("{e:#}")),
                Some(fs) => Identity::Filesystem(fs),
            };
        }
    };
    if table.table == TableKind::Mbr && table.partitions.is_empty() {
        // A boot sector's signature without partitions: a filesystem on the whole disk?
        if let Some(fs @ ("FAT32" | "FAT16")) = content_at(disk, 0) {
            return Identity::Filesystem(fs);
        }
    }
    let ss = table.sector_size;
    let mut partitions = vec![];
    for p in &table.partitions {
        let start = p.first_lba.saturating_mul(ss);
        partitions.push(Found {
            number: p.number,
            name: p.name.clone(),
            part_type: p.part_type,
            bytes: p.sectors().saturating_mul(ss),
            content: content_at(disk, start),
        });
    }
    let mut bad_record = None;
    if partitions
        .iter()
        .any(|p| p.number == 1 && p.content == Some("FAT32"))
    {
        match cardread::read_one(disk, size, record::PATH, record::MAX_BYTES, "partition 1") {
            Ok(OneFile::File(bytes)) if EepromRecord::is_one(&bytes) => {
                match EepromRecord::parse(&bytes, "its partition 1") {
                    Ok(r) => return Identity::Eeprom(Box::new(r)),
                    Err(e) => bad_record = Some(format!("{e:#}")),
                }
            }
            Ok(OneFile::File(bytes)) => match CardRecord::parse(&bytes, "its partition 1") {
                Ok(r) => return Identity::Card(Box::new(r)),
                Err(e) => bad_record = Some(format!("{e:#}")),
            },
            Ok(OneFile::Missing) => {}
            Ok(OneFile::TooLarge) => {
                bad_record = Some(format!(
                    "/{} is larger than {} bytes",
                    record::PATH,
                    record::MAX_BYTES
                ))
            }
            Err(e) => return Identity::Damaged(format!("{e:#}")),
        }
    }
    Identity::Table {
        kind: table.table,
        partitions,
        bad_record,
    }
}

impl Found {
    /// "disk-usb-ssd-BOOT (EF00, 1 GiB, FAT32)".
    pub fn describe(&self) -> String {
        let t = match self.part_type {
            PartType::Gpt(g) => gpt_type_code(&g)
                .map(str::to_string)
                .unwrap_or_else(|| g.to_string().to_uppercase()),
            PartType::Mbr(b) => format!("0x{b:02x}"),
        };
        let name = if self.name.is_empty() {
            format!("partition {}", self.number)
        } else {
            printable(&self.name)
        };
        match self.content {
            Some(c) => format!("{name} ({t}, {}, {c})", human(self.bytes)),
            None => format!("{name} ({t}, {})", human(self.bytes)),
        }
    }
}

impl Identity {
    /// One line, for a person: what the disk is now.
    pub fn describe(&self) -> String {
        match self {
            Identity::Card(r) => format!("a pi-burn card: {}", r.summary()),
            Identity::Eeprom(r) => format!("a pi-burn EEPROM card: {}", r.summary()),
            Identity::Damaged(why) => format!("a FAT partition that cannot be read ({why})"),
            Identity::Iso => "an ISO 9660 image (an installer?), not a card".into(),
            Identity::Filesystem(fs) => {
                format!("{fs} on the whole disk (a filesystem, no partition table)")
            }
            Identity::Blank => "no partition table (blank where one would be)".into(),
            Identity::Unknown(why) => format!("no partition table pi-burn reads ({why})"),
            Identity::Table {
                kind,
                partitions,
                bad_record,
            } => {
                let list = partitions
                    .iter()
                    .map(Found::describe)
                    .collect::<Vec<_>>()
                    .join(", ");
                let disko = *kind == TableKind::Gpt
                    && !partitions.is_empty()
                    && partitions.iter().all(|p| p.name.starts_with("disk-"));
                format!(
                    "{} table{}{}",
                    kind.name(),
                    if list.is_empty() {
                        ", no partitions".to_string()
                    } else {
                        format!(": {list}")
                    },
                    if disko {
                        " (disko's partition names: a node's disk)"
                    } else {
                        ""
                    }
                ) + &bad_record
                    .as_ref()
                    .map(|e| format!("; its /{} is no record pi-burn reads ({e})", record::PATH))
                    .unwrap_or_default()
            }
        }
    }
}

/// The firmware card record `id` holds, or an error saying what `origin` is instead.
pub fn card_record(id: Identity, origin: &str) -> Result<CardRecord> {
    match id {
        Identity::Card(r) => Ok(*r),
        Identity::Table {
            bad_record: Some(e),
            ..
        } => bail!("{origin}: {e}: not a pi-burn card record"),
        Identity::Damaged(e) => Err(crate::error::Found(format!("{origin}: {e}")).into()),
        Identity::Eeprom(r) => bail!(
            "{origin} is a pi-burn EEPROM card ({}), not a firmware card: `pi-burn inspect` checks it",
            r.summary()
        ),
        Identity::Table {
            kind: TableKind::Gpt,
            ref partitions,
            bad_record: None,
        } if !partitions.is_empty()
            && partitions.iter().all(|p| p.name.starts_with("disk-"))
            && !partitions.first().is_some_and(|p| p.content == Some("FAT32") && partitions.len() == 1) =>
        {
            bail!(
                "{origin} is a node's disk as disko names its partitions, not a card: {}; inspect reads firmware and EEPROM cards (an SSD's table is checked with `sgdisk -v`, and `pi-burn ssd --node NODE --dry-run` shows the one pi-burn writes)",
                id_describe(partitions)
            )
        }
        other => {
            let hint = match &other {
                Identity::Table { partitions, .. }
                    if partitions.first().is_some_and(|p| p.content == Some("FAT32")) =>
                {
                    " (a firmware card made elsewhere: check it against the firmware with `pi-burn verify --firmware VERSION`)"
                }
                _ => "",
            };
            let no_record = match &other {
                Identity::Table { .. } => format!(" (its partition 1 has no /{})", record::PATH),
                _ => String::new(),
            };
            bail!(
                "{origin} is not a card pi-burn made{no_record}: it holds {}{hint}",
                other.describe()
            )
        }
    }
}

/// The partitions, for a message.
fn id_describe(partitions: &[Found]) -> String {
    partitions
        .iter()
        .map(Found::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the disk at `path` (`size` bytes) holds, in one line; "(could not be read)" when it
/// cannot be opened. For the plan shown before a device is written.
pub fn describe_path(path: &std::path::Path, size: u64) -> String {
    std::fs::File::open(path)
        .ok()
        .map(|mut f| identify(&mut f, size).describe())
        .unwrap_or_else(|| "(could not be read)".into())
}
