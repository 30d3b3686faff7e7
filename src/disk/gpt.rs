//! An image's partition table, read from its first MiB with checked arithmetic: every header
//! field that does not fit the image or the device is an error naming it, never a panic.

use anyhow::{bail, Result};

use crate::write::HEAD;

/// The image's partition table, from its first MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    Gpt(GptInfo),
    /// An MBR: the last sector any partition uses.
    Mbr {
        end_lba: u64,
    },
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptInfo {
    pub sector_size: u64,
    pub alternate_lba: u64,
    pub entries_lba: u64,
    pub entry_sectors: u64,
    /// The last sector any partition uses.
    pub max_end_lba: u64,
}

impl GptInfo {
    /// The image's backup GPT (entries then header): (offset, len).
    pub fn backup_region(&self) -> (u64, u64) {
        // read_table guarantees alternate_lba > entry_sectors and no overflow.
        let start = (self.alternate_lba - self.entry_sectors) * self.sector_size;
        (start, (self.entry_sectors + 1) * self.sector_size)
    }
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

/// A GPT header at `ss`-byte sectors, checked: signature, size, CRC, my LBA, the entry array
/// (size, count, place within the first MiB, CRC) and the alternate LBA.
fn gpt_at(head: &[u8], ss: u64) -> Result<Option<GptInfo>> {
    let h = ss as usize;
    if head.len() < h + 92 || &head[h..h + 8] != b"EFI PART" {
        return Ok(None);
    }
    let what = format!("the image's GPT header ({ss}-byte sectors)");
    let hdr = &head[h..];
    let hsize = le32(hdr, 12) as usize;
    if !(92..=h).contains(&hsize) {
        bail!("{what}: header size {hsize} is not between 92 and {ss}");
    }
    let mut copy = hdr[..hsize].to_vec();
    copy[16..20].fill(0);
    let crc = crc32fast::hash(&copy);
    if crc != le32(hdr, 16) {
        bail!(
            "{what}: header CRC is {:#010x}, computed {crc:#010x}: the table is damaged",
            le32(hdr, 16)
        );
    }
    if le64(hdr, 24) != 1 {
        bail!("{what}: it says it lies at LBA {}, not 1", le64(hdr, 24));
    }
    let entries_lba = le64(hdr, 72);
    let n = le32(hdr, 80) as u64;
    let esize = le32(hdr, 84) as u64;
    if esize < 128 || !esize.is_multiple_of(8) || esize > ss {
        bail!("{what}: entry size {esize} is not a multiple of 8 from 128 to {ss}");
    }
    if n == 0 || n > 1024 {
        bail!("{what}: {n} partition entries (pi-burn takes 1 to 1024)");
    }
    let entry_bytes = n * esize;
    let entry_sectors = entry_bytes.div_ceil(ss);
    let start = entries_lba
        .checked_mul(ss)
        .filter(|s| entries_lba >= 2 && s + entry_bytes <= HEAD.min(head.len() as u64))
        .ok_or_else(|| {
            anyhow::anyhow!("{what}: the entry array at LBA {entries_lba} ({n} entries of {esize} bytes) does not lie within the image's first MiB")
        })? as usize;
    let array = &head[start..start + entry_bytes as usize];
    let crc = crc32fast::hash(array);
    if crc != le32(hdr, 88) {
        bail!(
            "{what}: entry array CRC is {:#010x}, computed {crc:#010x}: the table is damaged",
            le32(hdr, 88)
        );
    }
    let alternate_lba = le64(hdr, 32);
    if alternate_lba <= entry_sectors + 1
        || alternate_lba
            .checked_add(1)
            .and_then(|a| a.checked_mul(ss))
            .is_none()
    {
        bail!("{what}: alternate header LBA {alternate_lba} is impossible");
    }
    let mut max_end = 0;
    for e in array.chunks_exact(esize as usize) {
        if e[..16].iter().any(|b| *b != 0) {
            let (first, last) = (le64(e, 32), le64(e, 40));
            if first > last || last >= alternate_lba {
                bail!("{what}: a partition entry spans sectors {first}-{last}, outside the disk the header describes");
            }
            max_end = max_end.max(last);
        }
    }
    Ok(Some(GptInfo {
        sector_size: ss,
        alternate_lba,
        entries_lba,
        entry_sectors,
        max_end_lba: max_end,
    }))
}

/// Reads the table from the image's first MiB. A GPT signature with a damaged header is an
/// error, not a fallback to the MBR.
pub fn read_table(head: &[u8]) -> Result<Table> {
    for ss in [512u64, 4096] {
        if let Some(g) = gpt_at(head, ss)? {
            return Ok(Table::Gpt(g));
        }
    }
    if head.len() >= 512 && head[510..512] == [0x55, 0xAA] {
        let mut end = 0u64;
        for i in 0..4 {
            let e = &head[446 + 16 * i..462 + 16 * i];
            let (start, len) = (le32(e, 8) as u64, le32(e, 12) as u64);
            if e[4] != 0 && len > 0 {
                end = end.max(start + len - 1);
            }
        }
        if end > 0 {
            return Ok(Table::Mbr { end_lba: end });
        }
    }
    Ok(Table::None)
}

/// Why an image cannot go onto a target of `size` bytes with `ss`-byte sectors, if it cannot.
pub fn misfit(table: &Table, image_size: Option<u64>, size: u64, ss: u64) -> Option<String> {
    if let Some(s) = image_size {
        if s > size {
            return Some(format!(
                "the image ({s} bytes) is larger than the device ({size} bytes)"
            ));
        }
    }
    match table {
        Table::Gpt(g) => {
            if g.sector_size != ss {
                return Some(format!(
                    "the image's GPT uses {}-byte sectors, the device {ss}-byte ones",
                    g.sector_size
                ));
            }
            let last_usable = (size / ss).saturating_sub(2 + g.entry_sectors);
            if g.max_end_lba > last_usable {
                return Some(format!("its partitions end at sector {}, past the device's last usable sector {last_usable}", g.max_end_lba));
            }
        }
        Table::Mbr { end_lba } => {
            if end_lba.saturating_add(1).saturating_mul(ss) > size {
                return Some(format!(
                    "its partitions end at sector {end_lba}, past the device's end"
                ));
            }
        }
        Table::None => {}
    }
    None
}

/// The GPT moved to the end of a `total`-sector device: the patched head (primary header and
/// protective MBR) and the backup (entries then header) to write at the device's end. The
/// caller has checked with [`misfit`] that the partitions fit.
pub fn relocate_gpt(head: &[u8], g: &GptInfo, total: u64) -> (Vec<u8>, (u64, Vec<u8>)) {
    let ss = g.sector_size as usize;
    let mut head = head.to_vec();
    let alt = total - 1;
    let last_usable = total - 2 - g.entry_sectors;
    let hsize = le32(&head[ss..], 12) as usize;
    let patch_crc = |h: &mut [u8]| {
        h[16..20].fill(0);
        let c = crc32fast::hash(&h[..hsize]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
    };
    {
        let h = &mut head[ss..2 * ss];
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        patch_crc(h);
    }
    // The protective MBR covers the whole device.
    for i in 0..4 {
        let e = 446 + 16 * i;
        if head[e + 4] == 0xEE {
            let len = (total - 1).min(u32::MAX as u64) as u32;
            head[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        }
    }
    let entries_start = (g.entries_lba as usize) * ss;
    let entries = head[entries_start..entries_start + (g.entry_sectors as usize) * ss].to_vec();
    let mut backup_hdr = head[ss..2 * ss].to_vec();
    let backup_entries_lba = alt - g.entry_sectors;
    backup_hdr[24..32].copy_from_slice(&alt.to_le_bytes());
    backup_hdr[32..40].copy_from_slice(&1u64.to_le_bytes());
    backup_hdr[72..80].copy_from_slice(&backup_entries_lba.to_le_bytes());
    patch_crc(&mut backup_hdr);
    let mut backup = entries;
    backup.extend_from_slice(&backup_hdr);
    (head, (backup_entries_lba * g.sector_size, backup))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid GPT head at 512-byte sectors, with `patch` applied to the header, CRC refreshed.
    fn head_with(patch: impl Fn(&mut [u8])) -> Vec<u8> {
        let mut head = vec![0u8; HEAD as usize];
        head[510] = 0x55;
        head[511] = 0xAA;
        head[446 + 4] = 0xEE;
        let h = &mut head[512..1024];
        h[..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&40959u64.to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        patch(h);
        let n = le32(h, 80) as usize;
        let es = le32(h, 84) as usize;
        let lba = le64(h, 72) as usize;
        let crc = (lba.checked_mul(512))
            .and_then(|s| head.get(s..s.checked_add(n.checked_mul(es)?)?))
            .map(crc32fast::hash)
            .unwrap_or(0);
        let h = &mut head[512..1024];
        h[88..92].copy_from_slice(&crc.to_le_bytes());
        h[16..20].fill(0);
        let c = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        head
    }

    #[test]
    fn crafted_headers_are_errors_not_panics() {
        assert!(matches!(read_table(&head_with(|_| {})), Ok(Table::Gpt(_))));
        type Patch = Box<dyn Fn(&mut [u8])>;
        let cases: Vec<(Patch, &str)> = vec![
            (
                Box::new(|h| h[80..84].copy_from_slice(&100000u32.to_le_bytes())),
                "entries",
            ),
            (
                Box::new(|h| h[84..88].copy_from_slice(&0u32.to_le_bytes())),
                "entry size 0",
            ),
            (
                Box::new(|h| h[72..80].copy_from_slice(&(1u64 << 62).to_le_bytes())),
                "does not lie within",
            ),
            (
                Box::new(|h| h[72..80].copy_from_slice(&5000u64.to_le_bytes())),
                "does not lie within",
            ),
            (
                Box::new(|h| h[32..40].copy_from_slice(&0u64.to_le_bytes())),
                "alternate header LBA 0",
            ),
            (
                Box::new(|h| h[32..40].copy_from_slice(&u64::MAX.to_le_bytes())),
                "alternate header LBA",
            ),
            (
                Box::new(|h| h[12..16].copy_from_slice(&600u32.to_le_bytes())),
                "header size 600",
            ),
            (
                Box::new(|h| h[24..32].copy_from_slice(&7u64.to_le_bytes())),
                "LBA 7",
            ),
        ];
        for (patch, want) in cases {
            let e = read_table(&head_with(patch)).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        // A wrong header CRC is an error, not a fallback to the MBR.
        let mut head = head_with(|_| {});
        head[512 + 16] ^= 1;
        let e = read_table(&head).unwrap_err().to_string();
        assert!(e.contains("header CRC"), "{e}");
        // A damaged entry array too.
        let mut head = head_with(|_| {});
        head[1024 + 3] ^= 1;
        let e = read_table(&head).unwrap_err().to_string();
        assert!(e.contains("entry array CRC"), "{e}");
    }
}
