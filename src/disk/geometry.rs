//! Pure geometry: sizes, alignment, partition plans and identifiers derived from a seed.

use crate::util::ids::{derive_u32, derive_uuid};
use crate::util::units::{human, MIB};
use anyhow::{bail, Result};
use uuid::Uuid;

/// GPT type GUIDs by their sgdisk short codes.
pub const GPT_TYPES: &[(&str, &str, &str)] = &[
    (
        "EF00",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "EFI system partition",
    ),
    (
        "EF02",
        "21686148-6449-6E6F-744E-656564454649",
        "BIOS boot partition",
    ),
    (
        "0700",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "Microsoft basic data",
    ),
    ("8200", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    (
        "8300",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "Linux filesystem",
    ),
    (
        "8304",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "Linux x86-64 root",
    ),
    (
        "8305",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        "Linux ARM64 root",
    ),
    ("8309", "CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
    ("8E00", "E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
    ("FD00", "A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
    (
        "BF00",
        "6A85CF4D-1DD2-11B2-99A6-080020736631",
        "Solaris root (ZFS)",
    ),
    (
        "BF01",
        "6A898CC3-1DD2-11B2-99A6-080020736631",
        "Solaris /usr (ZFS, Mac ZFS)",
    ),
    (
        "EA00",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172",
        "XBOOTLDR (extended boot)",
    ),
];

pub fn esp_type() -> Uuid {
    gpt_type("EF00").unwrap()
}

/// A GPT partition type from a short code (`EF00`, case-insensitive) or a GUID.
pub fn gpt_type(code: &str) -> Result<Uuid> {
    if let Some((_, g, _)) = GPT_TYPES
        .iter()
        .find(|(c, _, _)| c.eq_ignore_ascii_case(code))
    {
        return Ok(Uuid::parse_str(g).expect("table entries are valid GUIDs"));
    }
    Uuid::parse_str(code).map_err(|_| {
        anyhow::anyhow!(
            "unknown partition type '{code}': give a GUID or one of {}",
            GPT_TYPES.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The short code of a GPT type GUID, if it has one here.
pub fn gpt_type_code(guid: &Uuid) -> Option<&'static str> {
    GPT_TYPES
        .iter()
        .find(|(_, g, _)| Uuid::parse_str(g).ok().as_ref() == Some(guid))
        .map(|t| t.0)
}

/// Which partition table to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Gpt,
    Mbr,
}

impl TableKind {
    pub fn name(&self) -> &'static str {
        match self {
            TableKind::Gpt => "gpt",
            TableKind::Mbr => "mbr",
        }
    }
}

/// What a partition is, in the table's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartType {
    Gpt(Uuid),
    Mbr(u8),
}

impl std::fmt::Display for PartType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartType::Gpt(g) => match gpt_type_code(g) {
                Some(c) => write!(f, "{c} ({})", g.to_string().to_uppercase()),
                None => write!(f, "{}", g.to_string().to_uppercase()),
            },
            PartType::Mbr(t) => write!(f, "0x{t:02x}"),
        }
    }
}

/// One partition of a plan, in logical sectors (`last_lba` inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlan {
    pub number: u32,
    pub first_lba: u64,
    pub last_lba: u64,
    pub part_type: PartType,
    /// GPT partition name (partlabel); empty under MBR.
    pub name: String,
    /// GPT partition GUID (nil under MBR).
    pub guid: Uuid,
    /// GPT attribute bits (0 under MBR).
    pub attributes: u64,
}

/// An entry of a hybrid MBR (sgdisk -h): written over the protective MBR of a GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrEntry {
    pub bootable: bool,
    pub mbr_type: u8,
    pub first_lba: u32,
    pub sectors: u32,
}

impl PartitionPlan {
    pub fn sectors(&self) -> u64 {
        self.last_lba - self.first_lba + 1
    }
}

/// A whole disk: its size, table and partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPlan {
    pub sector_size: u64,
    pub size: u64,
    pub table: TableKind,
    /// GPT disk GUID (nil under MBR).
    pub disk_guid: Uuid,
    /// MBR disk identifier (0 under GPT).
    pub mbr_id: u32,
    pub partitions: Vec<PartitionPlan>,
    /// Under GPT: the hybrid MBR's entries in table order, instead of the protective MBR.
    pub hybrid_mbr: Option<Vec<MbrEntry>>,
}

impl DiskPlan {
    pub fn total_sectors(&self) -> u64 {
        self.size / self.sector_size
    }

    /// Sectors taken by one copy of the GPT entry array (128 entries of 128 bytes).
    pub fn gpt_entry_sectors(sector_size: u64) -> u64 {
        (128 * 128u64).div_ceil(sector_size)
    }

    /// First and last LBA a partition may use.
    pub fn usable(&self) -> (u64, u64) {
        let total = self.total_sectors();
        match self.table {
            TableKind::Gpt => {
                let e = Self::gpt_entry_sectors(self.sector_size);
                (2 + e, total.saturating_sub(2 + e))
            }
            TableKind::Mbr => (1, total.saturating_sub(1).min(u32::MAX as u64)),
        }
    }

    /// Checks the plan for overlaps and bounds; `what` names the disk in errors.
    pub fn check(&self, what: &str) -> Result<()> {
        let (lo, hi) = self.usable();
        // Numbers need not follow positions (sgdisk fills the largest free block first).
        let mut by_start: Vec<&PartitionPlan> = self.partitions.iter().collect();
        by_start.sort_by_key(|p| p.first_lba);
        let mut prev_end = 0u64;
        for p in by_start {
            if p.first_lba < lo || p.last_lba > hi || p.first_lba > p.last_lba {
                bail!(
                    "{what}: partition {} (sectors {}-{}) does not fit a {} disk ({} sectors of {} bytes, usable {lo}-{hi})",
                    p.number, p.first_lba, p.last_lba, human(self.size), self.total_sectors(), self.sector_size
                );
            }
            if p.first_lba <= prev_end && prev_end != 0 {
                bail!("{what}: partition {} overlaps another one", p.number);
            }
            prev_end = p.last_lba;
            if p.name.encode_utf16().count() > 36 {
                bail!(
                    "{what}: partition name '{}' is longer than GPT's 36 characters",
                    p.name
                );
            }
        }
        Ok(())
    }
}

/// Options of the SD card's firmware layout.
#[derive(Debug, Clone)]
pub struct SdLayout {
    pub sector_size: u64,
    pub table: TableKind,
    pub mbr_type: u8,
    pub gpt_type: Uuid,
    pub partition_size: u64,
    /// GPT partition name (disko's partlabel).
    pub partition_name: String,
    pub seed: String,
    /// The partition's GUID when the node's config pins it (disko's `uuid`); else derived from
    /// the seed.
    pub partition_guid: Option<Uuid>,
}

/// An image's head: its first MiB, which holds the MBR, the primary GPT and whatever else lies
/// before the first partition. The write engine holds it back and writes it last.
pub const HEAD: u64 = MIB;

/// The seed of a card's GUIDs and FAT volume id when none is given: the board, the release,
/// the partition's name and the node, so that two nodes' cards never share one.
pub fn default_seed(
    board: &str,
    version: &str,
    partition_name: &str,
    node: Option<&str>,
) -> String {
    let base = format!("{board}/{version}/{partition_name}");
    match node {
        Some(n) => format!("{base}/{n}"),
        None => base,
    }
}

/// Where the firmware partition starts: 1 MiB.
pub const PARTITION_START: u64 = MIB;

impl SdLayout {
    /// The image size when none is given: 1 MiB, the partition, 1 MiB.
    pub fn default_image_size(&self) -> u64 {
        PARTITION_START + self.partition_size + MIB
    }

    /// The plan on a disk of `disk_size` bytes.
    pub fn plan(&self, disk_size: u64) -> Result<DiskPlan> {
        let ss = self.sector_size;
        if ss != 512 && ss != 4096 {
            bail!("sector size {ss} is not supported (512 or 4096)");
        }
        if !disk_size.is_multiple_of(ss) {
            bail!("disk size {disk_size} is not a multiple of the {ss}-byte sector size");
        }
        if self.partition_size == 0 || !self.partition_size.is_multiple_of(ss) {
            bail!(
                "partition size {} is not a positive multiple of the {ss}-byte sector size",
                self.partition_size
            );
        }
        if self.table == TableKind::Mbr && disk_size / ss > u32::MAX as u64 {
            bail!(
                "an MBR cannot address a disk of {} with {ss}-byte sectors; use --table gpt",
                human(disk_size)
            );
        }
        let first = PARTITION_START / ss;
        let part = PartitionPlan {
            number: 1,
            first_lba: first,
            last_lba: first + self.partition_size / ss - 1,
            part_type: match self.table {
                TableKind::Gpt => PartType::Gpt(self.gpt_type),
                TableKind::Mbr => PartType::Mbr(self.mbr_type),
            },
            name: match self.table {
                TableKind::Gpt => self.partition_name.clone(),
                TableKind::Mbr => String::new(),
            },
            guid: match self.table {
                TableKind::Gpt => self
                    .partition_guid
                    .unwrap_or_else(|| derive_uuid(&self.seed, "partition-1")),
                TableKind::Mbr => Uuid::nil(),
            },
            attributes: 0,
        };
        let plan = DiskPlan {
            sector_size: ss,
            size: disk_size,
            table: self.table,
            disk_guid: match self.table {
                TableKind::Gpt => derive_uuid(&self.seed, "disk"),
                TableKind::Mbr => Uuid::nil(),
            },
            mbr_id: match self.table {
                TableKind::Gpt => 0,
                TableKind::Mbr => derive_u32(&self.seed, "mbr-id"),
            },
            partitions: vec![part],
            hybrid_mbr: None,
        };
        let needed = self.default_image_size();
        if disk_size < needed {
            bail!(
                "{} is too small for a {} firmware partition: at least {} is needed",
                human(disk_size),
                human(self.partition_size),
                human(needed)
            );
        }
        plan.check("the SD card")?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::units::{parse_size, GIB};

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!(parse_size("512M").unwrap(), 512 * MIB);
        assert_eq!(parse_size("1G").unwrap(), GIB);
        assert_eq!(parse_size("500GiB").unwrap(), 500 * GIB);
        // Regression (issue 23): a "500 GB" SSD is 500 * 10^9 bytes, not 500 GiB.
        assert_eq!(parse_size("500GB").unwrap(), 500_000_000_000);
        assert_eq!(parse_size("2TB").unwrap(), 2_000_000_000_000);
        assert_eq!(parse_size("2t").unwrap(), 2048 * GIB);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["", "M", "12Q", "-1G", "1.5G", "99999999999999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(human(514 * MIB), "514 MiB");
        assert_eq!(human(1536 * MIB), "1.50 GiB");
    }

    #[test]
    fn types_resolve_from_codes_and_guids() {
        assert_eq!(
            esp_type().to_string().to_uppercase(),
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        );
        assert_eq!(
            gpt_type("8300").unwrap(),
            gpt_type("0FC63DAF-8483-4772-8E79-3D69D8477DE4").unwrap()
        );
        assert_eq!(gpt_type("ef00").unwrap(), esp_type());
        assert!(gpt_type("ZZZZ").is_err());
        assert_eq!(gpt_type_code(&esp_type()), Some("EF00"));
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derive_uuid("rpi4 v1.50 disk-sdcard-FIRMWARE", "disk");
        assert_eq!(a, derive_uuid("rpi4 v1.50 disk-sdcard-FIRMWARE", "disk"));
        assert_ne!(
            a,
            derive_uuid("rpi4 v1.50 disk-sdcard-FIRMWARE", "partition-1")
        );
        assert_eq!(a.get_version_num(), 4);
    }

    fn sd(table: TableKind, ss: u64) -> SdLayout {
        SdLayout {
            sector_size: ss,
            table,
            mbr_type: 0xef,
            gpt_type: esp_type(),
            partition_size: 512 * MIB,
            partition_name: "disk-sdcard-FIRMWARE".into(),
            seed: "s".into(),
            partition_guid: None,
        }
    }

    #[test]
    fn the_sd_plan_matches_disko_on_a_32g_card() {
        // disko's sgdisk on a 32 GB card of 62333952 sectors puts FIRMWARE at 2048-1050623.
        let p = sd(TableKind::Gpt, 512).plan(62333952 * 512).unwrap();
        assert_eq!(
            (p.partitions[0].first_lba, p.partitions[0].last_lba),
            (2048, 1050623)
        );
        let p = sd(TableKind::Gpt, 4096).plan(514 * MIB).unwrap();
        assert_eq!(
            (p.partitions[0].first_lba, p.partitions[0].last_lba),
            (256, 256 + 131072 - 1)
        );
        assert_eq!(p.usable().1, 514 * 256 - 6);
    }

    #[test]
    fn too_small_disks_are_refused() {
        let e = sd(TableKind::Gpt, 512)
            .plan(513 * MIB)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too small"), "{e}");
        assert!(sd(TableKind::Mbr, 512).plan(514 * MIB).is_ok());
        assert!(sd(TableKind::Gpt, 4096).plan(514 * MIB + 512).is_err());
    }
}
