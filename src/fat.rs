//! FAT32 from a file set into a byte range of a disk, through `fatfs`, followed by the fixes that
//! make fatfs 0.3.6's output pass `fsck.fat -n` without a single complaint:
//!
//! * the `..` entry of a directory directly under the root must point at cluster 0, not at the
//!   root's cluster;
//! * the FSInfo free-cluster count and next-free hint must be filled in;
//! * hidden sectors in the boot sector (and its backup) must be the partition's start;
//! * the volume label must also stand in the root directory, as mkfs.fat writes it.

use crate::fileset::{FileSet, Node};
use crate::sparse::SparseImage;
use anyhow::{bail, Context, Result};
use std::io::Write;

/// A DOS timestamp (local time has no meaning on the card; pi-burn writes UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub min: u8,
    pub sec: u8,
}

impl Timestamp {
    pub fn date(year: u16, month: u8, day: u8) -> Self {
        Timestamp {
            year,
            month,
            day,
            hour: 0,
            min: 0,
            sec: 0,
        }
        .clamped()
    }

    /// From seconds since 1970-01-01 UTC (e.g. `SOURCE_DATE_EPOCH`).
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400);
        // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
        let z = days + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        Timestamp {
            year: y.clamp(0, 9999) as u16,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            min: (rem / 60 % 60) as u8,
            sec: (rem % 60) as u8,
        }
        .clamped()
    }

    /// FAT can store 1980-01-01 to 2107-12-31.
    fn clamped(self) -> Self {
        if self.year < 1980 {
            Timestamp {
                year: 1980,
                month: 1,
                day: 1,
                hour: 0,
                min: 0,
                sec: 0,
            }
        } else if self.year > 2107 {
            Timestamp {
                year: 2107,
                month: 12,
                day: 31,
                hour: 23,
                min: 59,
                sec: 58,
            }
        } else {
            self
        }
    }

    fn to_fatfs(self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: fatfs::Date {
                year: self.year,
                month: self.month as u16,
                day: self.day as u16,
            },
            // DOS time has two-second resolution; keep it even so no hi-res byte is needed.
            time: fatfs::Time {
                hour: self.hour as u16,
                min: self.min as u16,
                sec: (self.sec & !1) as u16,
                millis: 0,
            },
        }
    }
}

#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct FatSpec {
    /// Up to 11 characters of printable ASCII, stored upper-case; `None` is mkfs.fat's default
    /// without `-n` (`NO NAME` in the boot sector, no label entry).
    pub label: Option<String>,
    pub volume_id: u32,
    pub timestamp: Timestamp,
    pub sector_size: u64,
    /// The partition's first sector on the disk (BPB hidden sectors).
    pub hidden_sectors: u64,
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FatInfo {
    #[serde(rename = "type")]
    pub fat_type: &'static str,
    pub label: String,
    pub volume_id: String,
    pub bytes_per_sector: u64,
    pub cluster_size: u64,
    pub clusters: u32,
    pub free_clusters: u32,
}

/// FAT32's smallest legal cluster count, plus a margin for rounding in the FAT size.
const MIN_FAT32_CLUSTERS: u64 = 65525 + 16;

/// The label as the 11 bytes FAT stores.
pub fn label_bytes(label: &str) -> Result<[u8; 11]> {
    if label.is_empty() || label.len() > 11 {
        bail!("volume label '{label}' must be 1 to 11 characters");
    }
    if let Some(c) = label
        .chars()
        .find(|c| !c.is_ascii_graphic() && *c != ' ' || "\"*+,./:;<=>?[\\]|".contains(*c))
    {
        bail!("volume label '{label}' contains {c:?}, which FAT labels cannot hold");
    }
    let mut b = [b' '; 11];
    for (i, c) in label.bytes().enumerate() {
        b[i] = c.to_ascii_uppercase();
    }
    Ok(b)
}

/// The cluster size for a FAT32 volume of `bytes`: mkfs.fat's choice (4 KiB up to 8 GiB, then
/// larger), made smaller when that would leave too few clusters, never below a sector.
pub fn cluster_size_for(bytes: u64, sector_size: u64) -> Result<u64> {
    const GIB: u64 = 1 << 30;
    let mut c: u64 = match bytes {
        b if b <= 8 * GIB => 4096,
        b if b <= 16 * GIB => 8192,
        b if b <= 32 * GIB => 16384,
        _ => 32768,
    };
    c = c.max(sector_size);
    loop {
        let approx = bytes.saturating_sub(32 * sector_size) / (c + 8);
        if approx >= MIN_FAT32_CLUSTERS {
            return Ok(c);
        }
        if c / 2 < sector_size {
            let need =
                (MIN_FAT32_CLUSTERS * (sector_size + 8) + 32 * sector_size).div_ceil(1 << 20);
            bail!(
                "a partition of {} cannot hold FAT32 with {sector_size}-byte sectors: it needs at least {need} MiB",
                crate::layout::human(bytes)
            );
        }
        c /= 2;
    }
}

/// Formats `[offset, offset + len)` of `disk` as FAT32 holding `files`.
pub fn build_fat32(
    disk: &mut SparseImage,
    offset: u64,
    len: u64,
    files: &FileSet,
    spec: &FatSpec,
) -> Result<FatInfo> {
    let label = match &spec.label {
        Some(l) => label_bytes(l)?,
        None => *b"NO NAME    ",
    };
    let cluster = cluster_size_for(len, spec.sector_size)?;
    let needed = estimate_bytes(files, cluster);
    if needed > len {
        bail!(
            "the firmware needs about {} on FAT32 but the partition holds {}; give a larger --partition-size",
            crate::layout::human(needed),
            crate::layout::human(len)
        );
    }
    {
        let slice = fscommon::StreamSlice::new(&mut *disk, offset, offset + len)?;
        let opts = fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_sector(spec.sector_size as u16)
            .bytes_per_cluster(cluster as u32)
            .volume_id(spec.volume_id)
            .volume_label(label);
        fatfs::format_volume(slice, opts).context("formatting FAT32")?;
    }
    align_data_area(disk, offset)?;
    {
        let slice = fscommon::StreamSlice::new(&mut *disk, offset, offset + len)?;
        let time: &'static FixedTime = Box::leak(Box::new(FixedTime(spec.timestamp.to_fatfs())));
        let fs = fatfs::FileSystem::new(
            slice,
            fatfs::FsOptions::new()
                .time_provider(time)
                .update_accessed_date(false),
        )
        .context("opening the new FAT32")?;
        {
            let root = fs.root_dir();
            for (path, node) in files.iter() {
                match node {
                    Node::Dir => {
                        root.create_dir(path)
                            .with_context(|| format!("creating directory {path} on FAT"))?;
                    }
                    Node::File { data, .. } => {
                        let mut f = root
                            .create_file(path)
                            .with_context(|| format!("creating {path} on FAT"))?;
                        f.write_all(data)
                            .with_context(|| format!("writing {path} on FAT"))?;
                        f.flush()?;
                    }
                }
            }
        }
        fs.unmount().context("closing the new FAT32")?;
    }
    let mut vol = RawFat::open(disk, offset)?;
    vol.fix_directories(disk)?;
    if spec.label.is_some() {
        vol.add_root_label(disk, &label, spec.timestamp)?;
    }
    let free = vol.fix_fsinfo(disk)?;
    vol.set_hidden_sectors(disk, spec.hidden_sectors)?;
    Ok(FatInfo {
        fat_type: "FAT32",
        label: spec
            .label
            .as_deref()
            .unwrap_or("NO NAME")
            .to_ascii_uppercase(),
        volume_id: format!(
            "{:04X}-{:04X}",
            spec.volume_id >> 16,
            spec.volume_id & 0xffff
        ),
        bytes_per_sector: spec.sector_size,
        cluster_size: cluster,
        clusters: vol.clusters,
        free_clusters: free,
    })
}

/// Moves the FATs down (more reserved sectors, as mkfs.fat does) until the data area starts
/// on a cluster boundary, so every cluster is aligned on the card (flash pages, 4 KiB blocks).
/// Runs right after formatting, when the FATs and the root directory are still empty.
fn align_data_area(disk: &mut SparseImage, offset: u64) -> Result<()> {
    let mut bs = vec![0u8; 512];
    disk.read_at(offset, &mut bs);
    let ss = le16(&bs, 11);
    let spc = bs[13] as u64;
    let reserved = le16(&bs, 14);
    let nfats = bs[16] as u64;
    let total = le32(&bs, 32) as u64;
    let fat_sectors = le32(&bs, 36) as u64;
    let mut new_reserved = reserved.max(32);
    while !(new_reserved + nfats * fat_sectors).is_multiple_of(spc) {
        new_reserved += 1;
    }
    if new_reserved == reserved {
        return Ok(());
    }
    let fat_bytes = (nfats * fat_sectors * ss) as usize;
    let cluster = spc * ss;
    // The FATs as fatfs initialised them, and the root directory's (zeroed) first cluster.
    let mut fats = vec![0u8; fat_bytes];
    disk.read_at(offset + reserved * ss, &mut fats);
    let old_data = offset + (reserved + nfats * fat_sectors) * ss;
    let new_data = offset + (new_reserved + nfats * fat_sectors) * ss;
    disk.zero_range(
        offset + reserved * ss,
        new_data + cluster - offset - reserved * ss,
    )?;
    disk.write_at(offset + new_reserved * ss, &fats)?;
    debug_assert!(old_data < new_data);
    let clusters = (total - new_reserved - nfats * fat_sectors) / spc;
    if clusters < 65525 {
        bail!("aligning the FAT32 data area leaves too few clusters ({clusters})");
    }
    let r = u16::try_from(new_reserved).context("reserved sectors")?;
    disk.write_at(offset + 14, &r.to_le_bytes())?;
    let backup = le16(&bs, 50);
    disk.write_at(offset + backup * ss + 14, &r.to_le_bytes())?;
    Ok(())
}

/// Space the files take in clusters, with one cluster per directory and a margin for the
/// long-name entries.
fn estimate_bytes(files: &FileSet, cluster: u64) -> u64 {
    let data: u64 = files
        .iter()
        .map(|(_, n)| match n {
            Node::Dir => cluster,
            Node::File { data, .. } => (data.len() as u64).div_ceil(cluster) * cluster,
        })
        .sum();
    // Reserved sectors, two FATs of 4 bytes a cluster, the root directory.
    let clusters = data / cluster + 1;
    data + cluster + 2 * clusters * 4 + 64 * 1024
}

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

fn le16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
fn le32(b: &[u8], o: usize) -> u32 {
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
    fn fix_directories(&self, disk: &mut SparseImage) -> Result<()> {
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

    /// Puts the volume label entry first in the root directory (mkfs.fat's layout), moving
    /// the entries fatfs wrote down one slot.
    fn add_root_label(
        &mut self,
        disk: &mut SparseImage,
        label: &[u8; 11],
        ts: Timestamp,
    ) -> Result<()> {
        let (slots, entries) = self.read_dir(disk, self.root_cluster)?;
        if entries.len() + 1 >= slots.len() {
            bail!("the root directory has no room for the volume label");
        }
        let mut lab = [0u8; 32];
        lab[..11].copy_from_slice(label);
        lab[11] = 0x08;
        let date = ((ts.year - 1980) << 9) | ((ts.month as u16) << 5) | ts.day as u16;
        let time = ((ts.hour as u16) << 11) | ((ts.min as u16) << 5) | (ts.sec as u16 / 2);
        lab[22..24].copy_from_slice(&time.to_le_bytes());
        lab[24..26].copy_from_slice(&date.to_le_bytes());
        disk.write_at(slots[0], &lab)?;
        for (i, e) in entries.iter().enumerate() {
            disk.write_at(slots[i + 1], e)?;
        }
        Ok(())
    }

    /// Fills in the FSInfo free count and next-free hint; returns the free count.
    fn fix_fsinfo(&mut self, disk: &mut SparseImage) -> Result<u32> {
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

    fn set_hidden_sectors(&mut self, disk: &mut SparseImage, hidden: u64) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_converts_to_utc_civil_time() {
        assert_eq!(
            Timestamp::from_unix(0),
            Timestamp::date(1980, 1, 1),
            "before 1980 clamps"
        );
        let t = Timestamp::from_unix(1763683200); // 2025-11-21T00:00:00Z
        assert_eq!((t.year, t.month, t.day, t.hour), (2025, 11, 21, 0));
        let t = Timestamp::from_unix(951782400 + 3661); // 2000-02-29T01:01:01Z
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.min, t.sec),
            (2000, 2, 29, 1, 1, 1)
        );
    }

    #[test]
    fn cluster_size_follows_mkfs_and_shrinks_for_small_partitions() {
        assert_eq!(cluster_size_for(512 << 20, 512).unwrap(), 4096);
        assert_eq!(cluster_size_for(1 << 30, 512).unwrap(), 4096);
        assert_eq!(cluster_size_for(100 << 20, 512).unwrap(), 1024);
        assert_eq!(cluster_size_for(300 << 20, 4096).unwrap(), 4096);
        let e = cluster_size_for(100 << 20, 4096).unwrap_err().to_string();
        assert!(
            e.contains("cannot hold FAT32") && e.contains("4096-byte"),
            "{e}"
        );
        assert!(cluster_size_for(16 << 20, 512).is_err());
    }

    #[test]
    fn labels_are_checked_and_upper_cased() {
        assert_eq!(&label_bytes("firmware").unwrap(), b"FIRMWARE   ");
        assert!(label_bytes("").is_err());
        assert!(label_bytes("TWELVE_CHARS").is_err());
        assert!(label_bytes("A/B").is_err());
    }

    #[test]
    fn firmware_larger_than_the_partition_is_refused_before_formatting() {
        let mut files = FileSet::new();
        files
            .add_file("big.bin", vec![1u8; 40 << 20], false)
            .unwrap();
        let mut disk = SparseImage::new(64 << 20);
        let spec = FatSpec {
            label: Some("FIRMWARE".into()),
            volume_id: 1,
            timestamp: Timestamp::date(2025, 1, 1),
            sector_size: 512,
            hidden_sectors: 2048,
        };
        let e = build_fat32(&mut disk, 1 << 20, 34 << 20, &files, &spec)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("firmware needs about") && e.contains("--partition-size"),
            "{e}"
        );
        assert_eq!(disk.written_bytes(), 0, "nothing is written");
    }

    #[test]
    fn builds_a_volume_fatfs_can_read_back() {
        let mut files = FileSet::new();
        files
            .add_file("Readme.md", b"hello".to_vec(), false)
            .unwrap();
        files
            .add_file("overlays/upstream-pi4.dtbo", vec![7u8; 10000], false)
            .unwrap();
        files
            .add_file(
                "firmware/brcm/brcmfmac43455-sdio.Raspberry",
                vec![1u8; 3],
                false,
            )
            .unwrap();
        let mut disk = SparseImage::new(300 << 20);
        let spec = FatSpec {
            label: Some("FIRMWARE".into()),
            volume_id: 0x1234_5678,
            timestamp: Timestamp::date(2025, 11, 21),
            sector_size: 512,
            hidden_sectors: 2048,
        };
        let info = build_fat32(&mut disk, 1 << 20, 256 << 20, &files, &spec).unwrap();
        assert_eq!(info.volume_id, "1234-5678");
        let slice = fscommon::StreamSlice::new(&mut disk, 1 << 20, 257 << 20).unwrap();
        let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).unwrap();
        let mut s = String::new();
        use std::io::Read;
        fs.root_dir()
            .open_file("Readme.md")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        let names: Vec<String> = fs
            .root_dir()
            .iter()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.contains(&"Readme.md".to_string()), "{names:?}");
        assert_eq!(fs.stats().unwrap().free_clusters(), info.free_clusters);
    }
}
