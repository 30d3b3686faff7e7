//! Partition tables: a protective MBR + GPT (through the `gpt` crate) or a plain MBR, written
//! from a [`DiskPlan`], and read back from any disk for verification.

use crate::disk::geometry::{DiskPlan, MbrEntry, PartType, PartitionPlan, TableKind};
use crate::disk::gpt::{entries, mbr_entries, Header, HeaderProblem};
use crate::util::le::u32_at;
use anyhow::{bail, Context, Result};
use gpt::disk::LogicalBlockSize;
use gpt::partition_types::{OperatingSystem, Type};
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use uuid::Uuid;

fn lb_size(sector_size: u64) -> Result<LogicalBlockSize> {
    match sector_size {
        512 => Ok(LogicalBlockSize::Lb512),
        4096 => Ok(LogicalBlockSize::Lb4096),
        s => bail!("sector size {s} is not supported (512 or 4096)"),
    }
}

/// Writes the plan's partition table onto `disk` (whose length is the plan's size).
pub fn write_table<D: Read + Write + Seek + std::fmt::Debug>(
    plan: &DiskPlan,
    disk: &mut D,
) -> Result<()> {
    match plan.table {
        TableKind::Gpt => write_gpt(plan, disk),
        TableKind::Mbr => write_mbr(plan, disk),
    }
}

fn write_gpt<D: Read + Write + Seek + std::fmt::Debug>(
    plan: &DiskPlan,
    disk: &mut D,
) -> Result<()> {
    let lb = lb_size(plan.sector_size)?;
    let mut parts = BTreeMap::new();
    for p in &plan.partitions {
        let PartType::Gpt(type_guid) = p.part_type else {
            bail!("partition {} has an MBR type in a GPT plan", p.number);
        };
        parts.insert(
            p.number,
            gpt::partition::Partition {
                part_type_guid: Type {
                    guid: type_guid,
                    os: OperatingSystem::None,
                },
                part_guid: p.guid,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                flags: p.attributes,
                name: p.name.clone(),
            },
        );
    }
    let mut gdisk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .create_from_device(&mut *disk, Some(plan.disk_guid))
        .context("setting up the GPT")?;
    gdisk
        .update_partitions(parts)
        .context("setting the GPT partitions")?;
    gdisk.write().context("writing the GPT")?;
    let protective_len = (plan.total_sectors() - 1).min(u32::MAX as u64) as u32;
    gpt::mbr::ProtectiveMBR::with_lb_size(protective_len)
        .overwrite_lba0(&mut *disk)
        .context("writing the protective MBR")?;
    if let Some(entries) = &plan.hybrid_mbr {
        write_hybrid(entries, disk)?;
    }
    Ok(())
}

/// Replaces the protective MBR's partition entries by a hybrid MBR's, as `sgdisk -h` and
/// `sfdisk --part-type/--activate` leave them (everything else in sector 0 stays).
fn write_hybrid<D: Read + Write + Seek>(entries: &[MbrEntry], disk: &mut D) -> Result<()> {
    if entries.len() > 4 {
        bail!(
            "a hybrid MBR holds at most 4 entries, not {}",
            entries.len()
        );
    }
    let mut sector = read_at(disk, 0, 512).context("reading the protective MBR")?;
    sector[446..510].fill(0);
    for (i, e) in entries.iter().enumerate() {
        let last = e.first_lba as u64 + e.sectors as u64 - 1;
        let b = &mut sector[446 + 16 * i..446 + 16 * (i + 1)];
        b[0] = if e.bootable { 0x80 } else { 0 };
        b[1..4].copy_from_slice(&chs(e.first_lba as u64));
        b[4] = e.mbr_type;
        b[5..8].copy_from_slice(&chs(last));
        b[8..12].copy_from_slice(&e.first_lba.to_le_bytes());
        b[12..16].copy_from_slice(&e.sectors.to_le_bytes());
    }
    disk.seek(SeekFrom::Start(0))?;
    disk.write_all(&sector).context("writing the hybrid MBR")?;
    Ok(())
}

/// CHS address of an LBA for the classic 255-head, 63-sector geometry, capped at 1023/254/63.
fn chs(lba: u64) -> [u8; 3] {
    let (c, h, s) = if lba >= 1024 * 255 * 63 {
        (1023u64, 254u64, 63u64)
    } else {
        (lba / (255 * 63), (lba / 63) % 255, lba % 63 + 1)
    };
    [h as u8, (s as u8) | (((c >> 8) as u8) << 6), c as u8]
}

fn write_mbr<D: Write + Seek>(plan: &DiskPlan, disk: &mut D) -> Result<()> {
    if plan.partitions.len() > 4 {
        bail!(
            "an MBR holds at most 4 partitions, the plan has {}",
            plan.partitions.len()
        );
    }
    let mut sector = [0u8; 512];
    sector[440..444].copy_from_slice(&plan.mbr_id.to_le_bytes());
    for (i, p) in plan.partitions.iter().enumerate() {
        let PartType::Mbr(t) = p.part_type else {
            bail!("partition {} has a GPT type in an MBR plan", p.number);
        };
        let e = &mut sector[446 + 16 * i..446 + 16 * (i + 1)];
        e[0] = 0x00;
        e[1..4].copy_from_slice(&chs(p.first_lba));
        e[4] = t;
        e[5..8].copy_from_slice(&chs(p.last_lba));
        e[8..12].copy_from_slice(&u32::try_from(p.first_lba)?.to_le_bytes());
        e[12..16].copy_from_slice(&u32::try_from(p.sectors())?.to_le_bytes());
    }
    sector[510] = 0x55;
    sector[511] = 0xAA;
    disk.seek(SeekFrom::Start(0))?;
    disk.write_all(&sector).context("writing the MBR")?;
    Ok(())
}

/// A partition table as found on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTable {
    pub table: TableKind,
    pub sector_size: u64,
    pub disk_guid: Uuid,
    pub partitions: Vec<PartitionPlan>,
}

/// Lets the `gpt` and `fatfs` crates read from something opened read-only: any write fails.
#[derive(Debug)]
pub struct ReadOnly<R>(pub R);

impl<R: Read> Read for ReadOnly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl<R> Write for ReadOnly<R> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("opened read-only"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
impl<R: Seek> Seek for ReadOnly<R> {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        self.0.seek(p)
    }
}

fn read_at<R: Read + Seek>(disk: &mut R, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    disk.seek(SeekFrom::Start(offset))?;
    disk.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads the partition table of `disk` (of `size` bytes). A GPT is looked for at 512- and
/// 4096-byte sectors (`sector_size` first when given): its primary header, or the backup at the
/// disk's last sector when the primary is damaged; without one, a plain MBR is read.
pub fn read_table<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    sector_size: Option<u64>,
) -> Result<FoundTable> {
    let mut sizes = vec![512u64, 4096];
    if let Some(s) = sector_size {
        sizes.retain(|x| *x != s);
        sizes.insert(0, s);
    }
    let mbr = read_at(disk, 0, 512).context("reading sector 0")?;
    if mbr[510..512] != [0x55, 0xAA] {
        bail!("no partition table: sector 0 has no MBR signature");
    }
    let entries = mbr_entries(&mbr);
    if entries.iter().any(|e| e.0 == 0xEE) {
        for ss in sizes {
            if let Some(t) = read_gpt(disk, size, ss)? {
                return Ok(t);
            }
        }
        bail!("sector 0 holds a protective MBR but no GPT header was found");
    }
    let ss = sector_size.unwrap_or(512);
    let partitions = (0..4u32)
        .zip(mbr_slots(&mbr))
        .filter_map(|(i, e)| {
            let (t, start, len) = e?;
            Some(PartitionPlan {
                number: i + 1,
                first_lba: start,
                last_lba: start + len - 1,
                part_type: PartType::Mbr(t),
                name: String::new(),
                guid: Uuid::nil(),
                attributes: 0,
            })
        })
        .collect();
    Ok(FoundTable {
        table: TableKind::Mbr,
        sector_size: ss,
        disk_guid: Uuid::nil(),
        partitions,
    })
}

/// The four MBR slots, each (type, first LBA, sectors) when used.
fn mbr_slots(sector: &[u8]) -> [Option<(u8, u64, u64)>; 4] {
    std::array::from_fn(|i| {
        let e = sector.get(446 + 16 * i..462 + 16 * i)?;
        let (start, len) = (u32_at(e, 8)? as u64, u32_at(e, 12)? as u64);
        (e[4] != 0 && len > 0).then_some((e[4], start, len))
    })
}

/// The GPT at `ss`-byte sectors: the primary header, else the backup; `None` when neither
/// has a signature.
fn read_gpt<R: Read + Seek>(disk: &mut R, size: u64, ss: u64) -> Result<Option<FoundTable>> {
    let last = (size / ss).saturating_sub(1);
    let mut damage = None;
    for lba in [1, last] {
        let Ok(sector) = read_at(disk, lba * ss, ss as usize) else {
            continue;
        };
        let h = match Header::parse(&sector, ss, lba) {
            Ok(h) => h,
            Err(HeaderProblem::Missing) => continue,
            Err(HeaderProblem::Damaged(why)) => {
                damage.get_or_insert(format!("the GPT header at LBA {lba}: {why}"));
                continue;
            }
        };
        let Some(off) = h.entries_offset() else {
            damage.get_or_insert(format!(
                "the GPT header at LBA {lba}: its entries at LBA {} are past any disk",
                h.entries_lba
            ));
            continue;
        };
        let array = read_at(disk, off, h.entry_bytes() as usize)
            .with_context(|| format!("reading the GPT entries at LBA {}", h.entries_lba))?;
        if !h.entries_crc_ok(&array) {
            damage.get_or_insert(format!(
                "the GPT entries at LBA {} fail their CRC",
                h.entries_lba
            ));
            continue;
        }
        let partitions = entries(&array, &h, size / ss)
            .with_context(|| format!("the GPT at LBA {lba}"))?
            .into_iter()
            .map(|e| PartitionPlan {
                number: e.number,
                first_lba: e.first_lba,
                last_lba: e.last_lba,
                part_type: PartType::Gpt(e.type_guid),
                name: e.name,
                guid: e.part_guid,
                attributes: e.attributes,
            })
            .collect();
        return Ok(Some(FoundTable {
            table: TableKind::Gpt,
            sector_size: ss,
            disk_guid: h.disk_guid,
            partitions,
        }));
    }
    match damage {
        Some(d) => bail!("{d}"),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::geometry::{esp_type, SdLayout};
    use crate::disk::sparse::SparseImage;
    use crate::util::units::MIB;

    fn layout(table: TableKind, ss: u64) -> SdLayout {
        SdLayout {
            sector_size: ss,
            table,
            mbr_type: 0x0c,
            gpt_type: esp_type(),
            partition_size: 512 * MIB,
            partition_name: "disk-sdcard-FIRMWARE".into(),
            seed: "t".into(),
            partition_guid: None,
        }
    }

    #[test]
    fn gpt_round_trips_at_both_sector_sizes() {
        for ss in [512, 4096] {
            let plan = layout(TableKind::Gpt, ss).plan(514 * MIB).unwrap();
            let mut img = SparseImage::new(plan.size);
            write_table(&plan, &mut img).unwrap();
            let found = read_table(&mut img, plan.size, None).unwrap();
            assert_eq!(found.sector_size, ss);
            assert_eq!(found.table, TableKind::Gpt);
            assert_eq!(found.disk_guid, plan.disk_guid);
            assert_eq!(found.partitions, plan.partitions);
            // Entries at LBA 2 (rpi-eeprom #585).
            let mut hdr = [0u8; 8];
            img.read_at(ss + 72, &mut hdr);
            assert_eq!(u64::from_le_bytes(hdr), 2);
        }
    }

    #[test]
    fn mbr_round_trips() {
        let plan = layout(TableKind::Mbr, 512).plan(514 * MIB).unwrap();
        let mut img = SparseImage::new(plan.size);
        write_table(&plan, &mut img).unwrap();
        let found = read_table(&mut img, plan.size, None).unwrap();
        assert_eq!(found.table, TableKind::Mbr);
        assert_eq!(found.partitions, plan.partitions);
        assert_eq!(found.partitions[0].part_type, PartType::Mbr(0x0c));
    }

    #[test]
    fn a_blank_disk_has_no_table() {
        let mut img = SparseImage::new(MIB);
        assert!(read_table(&mut img, MIB, None)
            .unwrap_err()
            .to_string()
            .contains("no partition table"));
    }

    #[test]
    fn chs_is_capped() {
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(u32::MAX as u64), [254, 0xff, 0xff]);
    }
}
