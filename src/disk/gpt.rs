//! The one reader of GPT headers and entry arrays, on raw bytes with checked arithmetic: a
//! crafted header is an error naming its field, never a panic or an allocation it dictates.
//! Used by flash (an image's head), verify and inspect (a card's table, sgdisk -v's checks).
//! Writing goes through the `gpt` crate ([`crate::disk::table`]).

use crate::disk::geometry::HEAD;
use crate::util::le::{guid_at, u32_at, u64_at, utf16z};
use anyhow::{bail, Result};
use uuid::Uuid;

/// The largest entry array pi-burn reads: 1024 entries of up to 4096 bytes would be 4 MiB; real
/// tables have 128 entries of 128 bytes (16 KiB).
const MAX_ENTRIES: u32 = 1024;
const MAX_ENTRY_SIZE: u32 = 4096;

/// A GPT header, checked: signature, size, CRC, its own LBA and a sane entry geometry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub sector_size: u64,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Uuid,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
    /// The header's own bytes (its size), for comparing primary and backup.
    pub bytes: Vec<u8>,
}

/// Why a sector does not hold a usable header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// No "EFI PART" signature: no header, or a wiped one.
    Missing,
    /// A signature, but a field that cannot be (the message names it).
    Damaged(String),
}

impl Header {
    /// Parses the header in `sector` (one `ss`-byte sector read at `lba`).
    pub fn parse(sector: &[u8], ss: u64, lba: u64) -> std::result::Result<Header, HeaderProblem> {
        let bad = |s: String| Err(HeaderProblem::Damaged(s));
        if sector.get(..8) != Some(b"EFI PART".as_slice()) {
            return Err(HeaderProblem::Missing);
        }
        let field32 = |o| u32_at(sector, o).unwrap_or(0);
        let field64 = |o| u64_at(sector, o).unwrap_or(0);
        let size = field32(12) as usize;
        if !(92..=sector.len().min(ss as usize)).contains(&size) {
            return bad(format!("header size {size} is not between 92 and {ss}"));
        }
        let mut copy = sector[..size].to_vec();
        copy[16..20].fill(0);
        let crc = crc32fast::hash(&copy);
        if crc != field32(16) {
            return bad(format!(
                "CRC {:#010x} does not match its contents ({crc:#010x})",
                field32(16)
            ));
        }
        let my_lba = field64(24);
        if my_lba != lba {
            return bad(format!("says it lies at LBA {my_lba}, found at {lba}"));
        }
        let (entry_count, entry_size) = (field32(80), field32(84));
        if !(128..=MAX_ENTRY_SIZE.min(ss as u32)).contains(&entry_size)
            || !entry_size.is_multiple_of(8)
            || entry_count == 0
            || entry_count > MAX_ENTRIES
        {
            return bad(format!(
                "{entry_count} entries of {entry_size} bytes is not a valid entry array"
            ));
        }
        Ok(Header {
            sector_size: ss,
            my_lba,
            alternate_lba: field64(32),
            first_usable: field64(40),
            last_usable: field64(48),
            disk_guid: guid_at(sector, 56).unwrap_or_default(),
            entries_lba: field64(72),
            entry_count,
            entry_size,
            entries_crc: field32(88),
            bytes: sector[..size].to_vec(),
        })
    }

    /// Bytes of the entry array (at most 4 MiB, by the checks above).
    pub fn entry_bytes(&self) -> u64 {
        self.entry_count as u64 * self.entry_size as u64
    }

    /// Sectors the entry array takes.
    pub fn entry_sectors(&self) -> u64 {
        self.entry_bytes().div_ceil(self.sector_size)
    }

    /// The entry array's byte offset, when it is a place on a disk.
    pub fn entries_offset(&self) -> Option<u64> {
        self.entries_lba
            .checked_mul(self.sector_size)
            .filter(|o| o.checked_add(self.entry_bytes()).is_some())
    }

    /// Whether `array` (the entry array's bytes) matches the header's CRC.
    pub fn entries_crc_ok(&self, array: &[u8]) -> bool {
        crc32fast::hash(array) == self.entries_crc
    }
}

/// One used entry of an entry array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based, as partitions are numbered.
    pub number: u32,
    pub type_guid: Uuid,
    pub part_guid: Uuid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

/// The used entries of `array` (the header's entry array): an entry whose range is reversed or
/// reaches `limit_lba` or beyond is an error.
pub fn entries(array: &[u8], h: &Header, limit_lba: u64) -> Result<Vec<Entry>> {
    let mut out = vec![];
    for (i, e) in array.chunks_exact(h.entry_size as usize).enumerate() {
        let type_guid = guid_at(e, 0).unwrap_or_default();
        if type_guid.is_nil() {
            continue;
        }
        let (first, last) = (
            u64_at(e, 32).unwrap_or(0),
            u64_at(e, 40).unwrap_or(u64::MAX),
        );
        if first > last || last >= limit_lba {
            bail!("partition entry {} spans sectors {first}-{last}, outside the disk the header describes", i + 1);
        }
        out.push(Entry {
            number: i as u32 + 1,
            type_guid,
            part_guid: guid_at(e, 16).unwrap_or_default(),
            first_lba: first,
            last_lba: last,
            attributes: u64_at(e, 48).unwrap_or(0),
            name: utf16z(e.get(56..128).unwrap_or(&[])),
        });
    }
    Ok(out)
}

/// The table at the start of an image, read from its first MiB before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadTable {
    Gpt(HeadGpt),
    /// An MBR: the last sector any partition uses.
    Mbr {
        end_lba: u64,
    },
    None,
}

/// What flash needs of an image's GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadGpt {
    pub sector_size: u64,
    pub alternate_lba: u64,
    pub entries_lba: u64,
    pub entry_sectors: u64,
    /// The header's size, for rewriting its CRC.
    pub header_size: usize,
    /// The last sector any partition uses.
    pub max_end_lba: u64,
}

impl HeadGpt {
    /// The image's backup GPT (entries then header): (offset, len).
    pub fn backup_region(&self) -> (u64, u64) {
        // from_head guarantees alternate_lba > entry_sectors + 1 and no overflow.
        let start = (self.alternate_lba - self.entry_sectors) * self.sector_size;
        (start, (self.entry_sectors + 1) * self.sector_size)
    }

    /// Bytes the image spans by its GPT: up to and including its backup header.
    pub fn image_size(&self) -> u64 {
        (self.alternate_lba + 1) * self.sector_size
    }
}

/// The GPT in `head` at `ss`-byte sectors, when there is a signature there.
fn head_gpt(head: &[u8], ss: u64) -> Result<Option<HeadGpt>> {
    let what = format!("the image's GPT header ({ss}-byte sectors)");
    let Some(sector) = head.get(ss as usize..2 * ss as usize) else {
        return Ok(None);
    };
    let h = match Header::parse(sector, ss, 1) {
        Ok(h) => h,
        Err(HeaderProblem::Missing) => return Ok(None),
        Err(HeaderProblem::Damaged(why)) => bail!("{what}: {why}: the table is damaged"),
    };
    let within = HEAD.min(head.len() as u64);
    let Some(start) = h
        .entries_offset()
        .filter(|s| h.entries_lba >= 2 && s + h.entry_bytes() <= within)
    else {
        bail!(
            "{what}: the entry array at LBA {} ({} entries of {} bytes) does not lie within the image's first MiB",
            h.entries_lba,
            h.entry_count,
            h.entry_size
        );
    };
    let array = &head[start as usize..(start + h.entry_bytes()) as usize];
    if !h.entries_crc_ok(array) {
        bail!(
            "{what}: entry array CRC is {:#010x}, computed {:#010x}: the table is damaged",
            h.entries_crc,
            crc32fast::hash(array)
        );
    }
    let alt = h.alternate_lba;
    if alt <= h.entry_sectors() + 1 || alt.checked_add(1).and_then(|a| a.checked_mul(ss)).is_none()
    {
        bail!("{what}: alternate header LBA {alt} is impossible");
    }
    let parts = entries(array, &h, alt).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    // What sgdisk -v calls damaged: partitions that overlap, or lie outside the usable sectors.
    let mut sorted: Vec<&Entry> = parts.iter().collect();
    sorted.sort_by_key(|p| p.first_lba);
    for w in sorted.windows(2) {
        if w[1].first_lba <= w[0].last_lba {
            bail!(
                "{what}: partitions {} ({}-{}) and {} ({}-{}) overlap: the table is damaged",
                w[0].number,
                w[0].first_lba,
                w[0].last_lba,
                w[1].number,
                w[1].first_lba,
                w[1].last_lba
            );
        }
    }
    if let Some(p) = parts
        .iter()
        .find(|p| p.first_lba < h.first_usable || p.last_lba > h.last_usable)
    {
        bail!(
            "{what}: partition {} ({}-{}) lies outside the usable sectors {}-{}: the table is damaged",
            p.number,
            p.first_lba,
            p.last_lba,
            h.first_usable,
            h.last_usable
        );
    }
    Ok(Some(HeadGpt {
        sector_size: ss,
        alternate_lba: alt,
        entries_lba: h.entries_lba,
        entry_sectors: h.entry_sectors(),
        header_size: h.bytes.len(),
        max_end_lba: parts.iter().map(|p| p.last_lba).max().unwrap_or(0),
    }))
}

impl HeadTable {
    /// Reads the table from an image's first MiB. A GPT signature with a damaged header is an
    /// error, not a fallback to the MBR.
    pub fn from_head(head: &[u8]) -> Result<HeadTable> {
        for ss in [512u64, 4096] {
            if let Some(g) = head_gpt(head, ss)? {
                return Ok(HeadTable::Gpt(g));
            }
        }
        if head.get(510..512) == Some(&[0x55, 0xAA]) {
            let end = mbr_entries(head)
                .iter()
                .map(|&(_, start, len)| start + len - 1)
                .max();
            if let Some(end) = end {
                return Ok(HeadTable::Mbr { end_lba: end });
            }
        }
        Ok(HeadTable::None)
    }

    /// Bytes the image spans by its table: the backup GPT's end, or the last MBR partition's.
    pub fn spans(&self, ss: u64) -> Option<u64> {
        match self {
            HeadTable::Gpt(g) => Some(g.image_size()),
            HeadTable::Mbr { end_lba } => end_lba.checked_add(1)?.checked_mul(ss),
            HeadTable::None => None,
        }
    }
}

/// The used primary entries of an MBR sector: (type, first LBA, sectors), sectors > 0.
pub fn mbr_entries(sector: &[u8]) -> Vec<(u8, u64, u64)> {
    (0..4)
        .filter_map(|i| {
            let e = sector.get(446 + 16 * i..462 + 16 * i)?;
            let (start, len) = (u32_at(e, 8)? as u64, u32_at(e, 12)? as u64);
            (e[4] != 0 && len > 0).then_some((e[4], start, len))
        })
        .collect()
}

/// Why an image cannot go onto a target of `size` bytes with `ss`-byte sectors, if it cannot.
pub fn misfit(table: &HeadTable, image_size: Option<u64>, size: u64, ss: u64) -> Option<String> {
    if let Some(s) = image_size {
        if s > size {
            return Some(format!(
                "the image ({s} bytes) is larger than the device ({size} bytes)"
            ));
        }
    }
    match table {
        HeadTable::Gpt(g) => {
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
        HeadTable::Mbr { end_lba } => {
            if end_lba.saturating_add(1).saturating_mul(ss) > size {
                return Some(format!(
                    "its partitions end at sector {end_lba}, past the device's end"
                ));
            }
        }
        HeadTable::None => {}
    }
    None
}

/// The GPT moved to the end of a `total`-sector device: the patched head (primary header and
/// protective MBR) and the backup (entries then header) to write at the device's end. The
/// caller has checked with [`misfit`] that the partitions fit; `head` holds the whole first
/// MiB the table was read from.
pub fn relocate_gpt(head: &[u8], g: &HeadGpt, total: u64) -> (Vec<u8>, (u64, Vec<u8>)) {
    let ss = g.sector_size as usize;
    let mut head = head.to_vec();
    let alt = total - 1;
    let last_usable = total - 2 - g.entry_sectors;
    let hsize = g.header_size;
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
        let n = u32_at(h, 80).unwrap() as usize;
        let es = u32_at(h, 84).unwrap() as usize;
        let lba = u64_at(h, 72).unwrap() as usize;
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
        assert!(matches!(
            HeadTable::from_head(&head_with(|_| {})),
            Ok(HeadTable::Gpt(_))
        ));
        type Patch = Box<dyn Fn(&mut [u8])>;
        let cases: Vec<(Patch, &str)> = vec![
            (
                Box::new(|h| h[80..84].copy_from_slice(&100000u32.to_le_bytes())),
                "not a valid entry array",
            ),
            (
                Box::new(|h| h[84..88].copy_from_slice(&0u32.to_le_bytes())),
                "entries of 0 bytes",
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
            let e = HeadTable::from_head(&head_with(patch))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        // A wrong header CRC is an error, not a fallback to the MBR.
        let mut head = head_with(|_| {});
        head[512 + 16] ^= 1;
        let e = HeadTable::from_head(&head).unwrap_err().to_string();
        assert!(e.contains("CRC"), "{e}");
        // A damaged entry array too.
        let mut head = head_with(|_| {});
        head[1024 + 3] ^= 1;
        let e = HeadTable::from_head(&head).unwrap_err().to_string();
        assert!(e.contains("entry array CRC"), "{e}");
        // A head cut anywhere is an answer, never a panic.
        let head = head_with(|_| {});
        for cut in [0, 1, 511, 512, 600, 1023, 1024, 5000] {
            let _ = HeadTable::from_head(&head[..cut]);
        }
    }
}
