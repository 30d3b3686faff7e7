//! The corrections fatfs 0.3.6's output needs, made in place on the raw volume: each says
//! what `fsck.fat -n` would otherwise report.

use super::Timestamp;
use crate::disk::sparse::SparseImage;
use anyhow::{bail, Context, Result};

/// Just enough of a FAT32 volume's geometry to walk and patch it in place.
pub struct RawFat {
    offset: u64,
    bytes_per_sector: u64,
    cluster_size: u64,
    fat_start: u64,
    fat_bytes: u64,
    nfats: u64,
    data_start: u64,
    root_cluster: u32,
    fsinfo_sector: u64,
    backup_boot_sector: u64,
    pub clusters: u32,
}

pub(super) fn le16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
pub(super) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl RawFat {
    pub fn open(disk: &SparseImage, offset: u64) -> Result<Self> {
        let mut bs = [0u8; 512];
        disk.read_at(offset, &mut bs);
        if bs[510..512] != [0x55, 0xAA] || &bs[82..90] != b"FAT32   " {
            bail!("no FAT32 boot sector at offset {offset}");
        }
        let bytes_per_sector = le16(&bs, 11);
        let spc = bs[13] as u64;
        let reserved = le16(&bs, 14);
        let nfats = bs[16] as u64;
        let total = le32(&bs, 32) as u64;
        let fat_sectors = le32(&bs, 36) as u64;
        let data_sector = reserved + nfats * fat_sectors;
        Ok(RawFat {
            offset,
            bytes_per_sector,
            cluster_size: spc * bytes_per_sector,
            fat_start: reserved * bytes_per_sector,
            fat_bytes: fat_sectors * bytes_per_sector,
            nfats,
            data_start: data_sector * bytes_per_sector,
            root_cluster: le32(&bs, 44),
            fsinfo_sector: le16(&bs, 48),
            backup_boot_sector: le16(&bs, 50),
            clusters: ((total - data_sector) / spc) as u32,
        })
    }

    fn entry(&self, disk: &SparseImage, cluster: u32) -> u32 {
        let mut b = [0u8; 4];
        disk.read_at(self.offset + self.fat_start + 4 * cluster as u64, &mut b);
        u32::from_le_bytes(b) & 0x0FFF_FFFF
    }

    fn chain(&self, disk: &SparseImage, first: u32) -> Result<Vec<u32>> {
        let mut out = vec![];
        let mut c = first;
        while (2..0x0FFF_FFF8).contains(&c) {
            if out.len() > self.clusters as usize {
                bail!("cluster chain from {first} loops");
            }
            out.push(c);
            c = self.entry(disk, c);
        }
        Ok(out)
    }

    fn cluster_offset(&self, c: u32) -> u64 {
        self.offset + self.data_start + (c as u64 - 2) * self.cluster_size
    }

    /// Byte offsets of every 32-byte entry slot of the directory starting at `first`.
    fn dir_slots(&self, disk: &SparseImage, first: u32) -> Result<Vec<u64>> {
        let mut out = vec![];
        for c in self.chain(disk, first)? {
            let base = self.cluster_offset(c);
            out.extend((0..self.cluster_size / 32).map(|i| base + 32 * i));
        }
        Ok(out)
    }

    /// Reads a directory's entries up to the end marker, with the slot of each.
    fn read_dir(&self, disk: &SparseImage, first: u32) -> Result<(Vec<u64>, Vec<[u8; 32]>)> {
        let slots = self.dir_slots(disk, first)?;
        let mut entries = vec![];
        for &s in &slots {
            let mut e = [0u8; 32];
            disk.read_at(s, &mut e);
            if e[0] == 0 {
                break;
            }
            entries.push(e);
        }
        Ok((slots, entries))
    }

    /// Walks every directory below the root and repairs what fatfs 0.3.6 gets wrong: it gives
    /// `.` and `..` long-name entries (so they are not the first two slots), and points `..` of
    /// the root's children at the root cluster instead of 0.
    pub(super) fn fix_directories(&self, disk: &mut SparseImage) -> Result<()> {
        let mut todo: Vec<(u32, bool)> = self
            .subdirs(disk, self.root_cluster)?
            .into_iter()
            .map(|c| (c, true))
            .collect();
        let mut seen = 0usize;
        while let Some((dir, parent_is_root)) = todo.pop() {
            seen += 1;
            if seen > self.clusters as usize {
                bail!("directory tree loops");
            }
            let (slots, entries) = self.read_dir(disk, dir)?;
            let mut kept: Vec<[u8; 32]> = Vec::with_capacity(entries.len());
            let mut pending_lfn: Vec<[u8; 32]> = vec![];
            for e in entries.iter() {
                if e[11] == 0x0F && e[0] != 0xE5 {
                    pending_lfn.push(*e);
                    continue;
                }
                let is_dot = &e[..11] == b".          " || &e[..11] == b"..         ";
                if !is_dot {
                    kept.append(&mut pending_lfn);
                }
                pending_lfn.clear();
                let mut e = *e;
                if &e[..11] == b"..         " && parent_is_root {
                    e[20..22].fill(0);
                    e[26..28].fill(0);
                }
                kept.push(e);
            }
            if kept.len() < 2
                || &kept[0][..11] != b".          "
                || &kept[1][..11] != b"..         "
            {
                bail!("directory at cluster {dir} does not start with '.' and '..'");
            }
            for (i, &slot) in slots.iter().enumerate().take(entries.len()) {
                let e = kept.get(i).copied().unwrap_or([0u8; 32]);
                disk.write_at(slot, &e)?;
            }
            todo.extend(self.subdirs(disk, dir)?.into_iter().map(|c| (c, false)));
        }
        Ok(())
    }

    /// First clusters of the subdirectories of a directory (without `.` and `..`).
    fn subdirs(&self, disk: &SparseImage, dir: u32) -> Result<Vec<u32>> {
        let (_, entries) = self.read_dir(disk, dir)?;
        Ok(entries
            .iter()
            .filter(|e| e[0] != 0xE5 && e[11] != 0x0F && e[11] & 0x10 != 0 && e[0] != b'.')
            .map(|e| (le16(e, 20) << 16 | le16(e, 26)) as u32)
            .collect())
    }

    /// Turns the placeholder fatfs wrote into the root's first slot into the volume label
    /// entry (mkfs.fat's layout: the label first).
    pub(super) fn add_root_label(
        &mut self,
        disk: &mut SparseImage,
        label: &[u8; 11],
        ts: Timestamp,
    ) -> Result<()> {
        let (slots, entries) = self.read_dir(disk, self.root_cluster)?;
        // fatfs wrote the placeholder's long-name entries, then its short entry.
        let at = entries
            .iter()
            .position(|e| e[11] != 0x0F)
            .context("the root directory is empty")?;
        let e = &entries[at];
        if &e[..11] != b"PIBURNLBTMP" {
            bail!("the root directory's first entry is not the label's placeholder");
        }
        if le16(e, 20) != 0 || le16(e, 26) != 0 || le32(e, 28) != 0 {
            bail!("the label's placeholder holds data");
        }
        let mut lab = [0u8; 32];
        lab[..11].copy_from_slice(label);
        lab[11] = 0x08;
        let date = ((ts.year - 1980) << 9) | ((ts.month as u16) << 5) | ts.day as u16;
        let time = ((ts.hour as u16) << 11) | ((ts.min as u16) << 5) | (ts.sec as u16 / 2);
        lab[22..24].copy_from_slice(&time.to_le_bytes());
        lab[24..26].copy_from_slice(&date.to_le_bytes());
        // The label in slot 0, everything after the placeholder moved up behind it.
        let rest = &entries[at + 1..];
        disk.write_at(slots[0], &lab)?;
        for (k, e) in rest.iter().enumerate() {
            disk.write_at(slots[k + 1], e)?;
        }
        for &slot in &slots[rest.len() + 1..entries.len()] {
            disk.write_at(slot, &[0u8; 32])?;
        }
        Ok(())
    }

    /// Fills in the FSInfo free count and next-free hint; returns the free count.
    pub(super) fn fix_fsinfo(&mut self, disk: &mut SparseImage) -> Result<u32> {
        let mut fat = vec![0u8; self.fat_bytes as usize];
        disk.read_at(self.offset + self.fat_start, &mut fat);
        let max = self.clusters + 2;
        let mut free = 0u32;
        let mut first_free = None;
        for c in 2..max {
            if le32(&fat, 4 * c as usize) & 0x0FFF_FFFF == 0 {
                free += 1;
                first_free.get_or_insert(c);
            }
        }
        // Both FAT copies must agree (fatfs mirrors every update).
        for n in 1..self.nfats {
            let mut other = vec![0u8; self.fat_bytes as usize];
            disk.read_at(
                self.offset + self.fat_start + n * self.fat_bytes,
                &mut other,
            );
            if other != fat {
                bail!("FAT copy {n} differs from the first one");
            }
        }
        let fsinfo = self.offset + self.fsinfo_sector * self.bytes_per_sector;
        let mut sig = [0u8; 4];
        disk.read_at(fsinfo, &mut sig);
        if &sig != b"RRaA" {
            bail!("FSInfo sector has no signature");
        }
        disk.write_at(fsinfo + 488, &free.to_le_bytes())?;
        disk.write_at(
            fsinfo + 492,
            &first_free.unwrap_or(0xFFFF_FFFF).to_le_bytes(),
        )?;
        Ok(free)
    }

    pub(super) fn set_hidden_sectors(&mut self, disk: &mut SparseImage, hidden: u64) -> Result<()> {
        let h = u32::try_from(hidden)
            .context("partition start does not fit the FAT hidden-sectors field")?;
        for sector in [0, self.backup_boot_sector] {
            disk.write_at(
                self.offset + sector * self.bytes_per_sector + 28,
                &h.to_le_bytes(),
            )?;
        }
        Ok(())
    }
}
