//! Writes the file set into a freshly formatted FAT32 volume directly: clusters allocated in
//! order, FAT chains, and every directory's entries (long names, unique short names, `.` and
//! `..`, the volume label first in the root) built in memory and written once. Linear in the
//! number of entries, where creating files one by one through fatfs scans the whole directory
//! for each new name.

use super::fixups::RawFat;
use super::Timestamp;
use crate::disk::sparse::SparseImage;
use crate::firmware::fileset::{FileSet, Node};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashSet};

/// FAT's limit of slots in one directory (a 16-bit entry index).
pub const MAX_DIR_SLOTS: usize = 65536;

const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_LFN: u8 = 0x0F;

/// Characters a short name may hold besides A-Z and 0-9.
const SFN_EXTRA: &str = "!#$%&'()-@^_`{}~";

fn sfn_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || SFN_EXTRA.contains(c)
}

/// The name as an exact 8.3 short name, when it is one (upper case, no long name needed).
fn exact_sfn(name: &str) -> Option<[u8; 11]> {
    let (base, ext) = match name.rfind('.') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, ""),
    };
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || name.matches('.').count() > 1 {
        return None;
    }
    if !base.chars().chain(ext.chars()).all(sfn_char) {
        return None;
    }
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base.as_bytes());
    out[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    Some(out)
}

/// Short-name base and extension of a long name: upper case, characters a short name cannot
/// hold as `_`, spaces and leading dots dropped.
fn sfn_parts(name: &str) -> (String, String) {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != ' ' && *c != '.')
            .map(|c| {
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(u), None) if sfn_char(u) => u,
                    _ => '_',
                }
            })
            .collect()
    };
    let trimmed = name.trim_start_matches('.');
    let (base, ext) = match trimmed.rfind('.') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (trimmed, ""),
    };
    let mut b = clean(base);
    if b.is_empty() {
        b.push('_');
    }
    (b, clean(ext).chars().take(3).collect())
}

/// The short names a directory has handed out, and per basis the next tail number to try (so
/// that 20,000 names on one basis take linear time, not a search from ~1 each).
#[derive(Default)]
struct ShortNames {
    used: HashSet<[u8; 11]>,
    next: std::collections::HashMap<(String, String), u32>,
}

/// A short name unique in its directory: the exact upper-case name when it is a valid 8.3
/// name, else BASE~N.EXT with the first free N.
fn short_name(name: &str, names: &mut ShortNames) -> Result<[u8; 11]> {
    let used = &mut names.used;
    let upper: String = name
        .chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect();
    if let Some(s) = exact_sfn(&upper) {
        if used.insert(s) {
            return Ok(s);
        }
    }
    let (base, ext) = sfn_parts(name);
    // Names that share their first six characters share the tails (BASE~N keeps at most six).
    let key = (base.chars().take(6).collect::<String>(), ext.clone());
    let start = names.next.get(&key).copied().unwrap_or(1);
    for n in start..1_000_000u32 {
        let tail = format!("~{n}");
        let keep = 8 - tail.len();
        let b: String = base.chars().take(keep).collect::<String>() + &tail;
        let mut s = [b' '; 11];
        s[..b.len()].copy_from_slice(b.as_bytes());
        s[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
        if used.insert(s) {
            names.next.insert(key, n + 1);
            return Ok(s);
        }
    }
    bail!("no short name is left for '{name}'")
}

fn lfn_checksum(sfn: &[u8; 11]) -> u8 {
    sfn.iter()
        .fold(0u8, |sum, b| sum.rotate_right(1).wrapping_add(*b))
}

/// The long-name entries of `name` for short name `sfn`, in the order they are written.
fn lfn_entries(name: &str, sfn: &[u8; 11]) -> Vec<[u8; 32]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let parts = units.len().div_ceil(13);
    let sum = lfn_checksum(sfn);
    let mut out = vec![];
    for seq in (1..=parts).rev() {
        let mut e = [0u8; 32];
        e[0] = seq as u8 | if seq == parts { 0x40 } else { 0 };
        e[11] = ATTR_LFN;
        e[13] = sum;
        let chunk: Vec<u16> = (0..13)
            .map(|i| {
                let k = (seq - 1) * 13 + i;
                match k.cmp(&units.len()) {
                    std::cmp::Ordering::Less => units[k],
                    std::cmp::Ordering::Equal => 0x0000,
                    std::cmp::Ordering::Greater => 0xFFFF,
                }
            })
            .collect();
        for (i, u) in chunk.iter().enumerate() {
            let at = match i {
                0..=4 => 1 + 2 * i,
                5..=10 => 14 + 2 * (i - 5),
                _ => 28 + 2 * (i - 11),
            };
            e[at..at + 2].copy_from_slice(&u.to_le_bytes());
        }
        out.push(e);
    }
    out
}

fn short_entry(sfn: &[u8; 11], attr: u8, cluster: u32, size: u32, ts: Timestamp) -> [u8; 32] {
    let (date, time) = ts.dos();
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(sfn);
    e[11] = attr;
    e[14..16].copy_from_slice(&time.to_le_bytes());
    e[16..18].copy_from_slice(&date.to_le_bytes());
    e[18..20].copy_from_slice(&date.to_le_bytes());
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[22..24].copy_from_slice(&time.to_le_bytes());
    e[24..26].copy_from_slice(&date.to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// Clusters handed out in order, and the chains they form.
struct Alloc {
    next: u32,
    end: u32,
    fat: Vec<u32>,
}

impl Alloc {
    /// A chain of `n` clusters (none for `n == 0`); its first cluster.
    fn chain(&mut self, n: u64, what: &str) -> Result<u32> {
        if n == 0 {
            return Ok(0);
        }
        let first = self.next;
        let last = u64::from(first) + n - 1;
        if last >= u64::from(self.end) {
            bail!("{what} does not fit: the partition has no more free clusters");
        }
        for c in first..last as u32 {
            self.fat[c as usize] = c + 1;
        }
        self.fat[last as usize] = 0x0FFF_FFFF;
        self.next = last as u32 + 1;
        Ok(first)
    }
}

/// One entry of a directory being written, its short name chosen.
struct Pending<'a> {
    name: &'a str,
    sfn: [u8; 11],
    lfn: Vec<[u8; 32]>,
    path: &'a str,
    node: &'a Node,
}

/// Entry slots of a directory: its entries with their long names, and the label (the root)
/// or `.` and `..` (any other).
fn slots(dir: &str, pend: &[Pending], label: bool) -> usize {
    pend.iter().map(|p| 1 + p.lfn.len()).sum::<usize>()
        + if dir.is_empty() {
            usize::from(label)
        } else {
            2
        }
}

/// Every directory's entries (the root is ""), with short names, counted before any cluster
/// is handed out; a directory over FAT's slots is refused by name.
fn listings<'a>(files: &'a FileSet, label: bool) -> Result<BTreeMap<&'a str, Vec<Pending<'a>>>> {
    let mut children: BTreeMap<&str, Vec<(&str, &str, &Node)>> = BTreeMap::new();
    children.entry("").or_default();
    for (path, node) in files.iter() {
        let (parent, name) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        children.entry(parent).or_default().push((path, name, node));
        if matches!(node, Node::Dir) {
            children.entry(path).or_default();
        }
    }
    let mut listing = BTreeMap::new();
    for (dir, kids) in children {
        let mut used = ShortNames::default();
        let mut pend = vec![];
        for (path, name, node) in kids {
            let sfn = short_name(name, &mut used)?;
            let lfn = if exact_sfn(name) == Some(sfn) {
                vec![]
            } else {
                lfn_entries(name, &sfn)
            };
            pend.push(Pending {
                name,
                sfn,
                lfn,
                path,
                node,
            });
        }
        let n = slots(dir, &pend, label);
        if n > MAX_DIR_SLOTS {
            bail!(
                "directory '/{dir}' needs {n} entry slots; FAT allows {MAX_DIR_SLOTS} in one directory"
            );
        }
        listing.insert(dir, pend);
    }
    Ok(listing)
}

/// A directory's entries as written: the label or `.`/`..` first, then each entry.
fn dir_entries(
    dir: &str,
    pend: &[Pending],
    label: Option<&[u8; 11]>,
    first: &BTreeMap<&str, u32>,
    ts: Timestamp,
) -> Result<Vec<u8>> {
    let mut bytes: Vec<u8> = vec![];
    if dir.is_empty() {
        if let Some(l) = label {
            bytes.extend_from_slice(&short_entry(l, ATTR_VOLUME, 0, 0, ts));
        }
    } else {
        let parent = dir.rfind('/').map_or("", |i| &dir[..i]);
        // `..` of a top-level directory points at cluster 0, not the root's cluster.
        let up = if parent.is_empty() { 0 } else { first[parent] };
        bytes.extend_from_slice(&short_entry(b".          ", ATTR_DIR, first[dir], 0, ts));
        bytes.extend_from_slice(&short_entry(b"..         ", ATTR_DIR, up, 0, ts));
    }
    for p in pend {
        for e in &p.lfn {
            bytes.extend_from_slice(e);
        }
        let (attr, size) = match p.node {
            Node::Dir => (ATTR_DIR, 0u32),
            Node::File { data, .. } => (
                ATTR_ARCHIVE,
                u32::try_from(data.len()).map_err(|_| {
                    anyhow::anyhow!(
                        "/{}: {} is larger than FAT's 4 GiB file limit",
                        p.path,
                        p.name
                    )
                })?,
            ),
        };
        bytes.extend_from_slice(&short_entry(&p.sfn, attr, first[p.path], size, ts));
    }
    Ok(bytes)
}

/// Writes `files` (and the volume label) into the empty volume `vol` of `disk`.
pub(super) fn write_tree(
    disk: &mut SparseImage,
    vol: &RawFat,
    files: &FileSet,
    label: Option<&[u8; 11]>,
    ts: Timestamp,
) -> Result<()> {
    let cs = vol.cluster_size;
    let listing = listings(files, label.is_some())?;
    let slots_of = |dir: &str| -> u64 {
        ((slots(dir, &listing[dir], label.is_some()) as u64 * 32).div_ceil(cs)).max(1)
    };
    // Clusters in path order: the root first (at the formatted root cluster), then each
    // directory followed by its files.
    let mut fat_bytes = vec![0u8; 8];
    disk.read_at(vol.offset + vol.fat_start, &mut fat_bytes);
    let mut alloc = Alloc {
        next: vol.root_cluster,
        end: vol.clusters + 2,
        fat: vec![0u32; vol.clusters as usize + 2],
    };
    alloc.fat[0] = crate::util::le::u32_at(&fat_bytes, 0).unwrap_or(0);
    alloc.fat[1] = crate::util::le::u32_at(&fat_bytes, 4).unwrap_or(0);
    let mut first: BTreeMap<&str, u32> = BTreeMap::new();
    first.insert("", alloc.chain(slots_of(""), "the root directory")?);
    for (path, node) in files.iter() {
        let c = match node {
            Node::Dir => alloc.chain(slots_of(path), &format!("directory /{path}"))?,
            Node::File { data, .. } => {
                alloc.chain((data.len() as u64).div_ceil(cs), &format!("/{path}"))?
            }
        };
        first.insert(path, c);
    }
    // File data, contiguous in each chain.
    let cluster_at = |c: u32| vol.offset + vol.data_start + (u64::from(c) - 2) * cs;
    for (path, node) in files.iter() {
        if let Node::File { data, .. } = node {
            if !data.is_empty() {
                disk.write_at(cluster_at(first[path]), data)?;
            }
        }
    }
    // Directories: their entries, written once, zeros after the last.
    for (dir, pend) in &listing {
        let mut bytes = dir_entries(dir, pend, label, &first, ts)?;
        bytes.resize(slots_of(dir) as usize * cs as usize, 0);
        let mut c = first[dir];
        for piece in bytes.chunks(cs as usize) {
            disk.write_at(cluster_at(c), piece)?;
            c = alloc.fat[c as usize];
        }
    }
    // Every copy of the FAT.
    let mut fat = Vec::with_capacity(alloc.fat.len() * 4);
    for v in &alloc.fat {
        fat.extend_from_slice(&v.to_le_bytes());
    }
    for copy in 0..vol.nfats {
        disk.write_at(vol.offset + vol.fat_start + copy * vol.fat_bytes, &fat)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_exact_when_they_can_be_and_unique_otherwise() {
        let mut used = ShortNames::default();
        assert_eq!(
            &short_name("CONFIG.TXT", &mut used).unwrap(),
            b"CONFIG  TXT"
        );
        assert_eq!(
            &short_name("start4.elf", &mut used).unwrap(),
            b"START4  ELF"
        );
        assert_eq!(
            &short_name("brcmfmac43455-sdio.bin", &mut used).unwrap(),
            b"BRCMFM~1BIN"
        );
        assert_eq!(
            &short_name("brcmfmac43455-sdio.txt", &mut used).unwrap(),
            b"BRCMFM~1TXT"
        );
        assert_eq!(
            &short_name("brcmfmac43455-sdio.bin2", &mut used).unwrap(),
            b"BRCMFM~2BIN"
        );
        // The same basis again takes the next number.
        let mut u2 = ShortNames::default();
        short_name("long name one.txt", &mut u2).unwrap();
        assert_eq!(
            &short_name("long name two.txt", &mut u2).unwrap(),
            b"LONGNA~2TXT"
        );
    }

    #[test]
    fn long_name_entries_carry_the_checksum_and_padding() {
        let sfn = *b"README  MD ";
        let e = lfn_entries("Readme.md", &sfn);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0][0], 0x41);
        assert_eq!(e[0][11], ATTR_LFN);
        assert_eq!(e[0][13], lfn_checksum(&sfn));
        assert_eq!(&e[0][1..3], &u16::from(b'R').to_le_bytes());
        // 9 units, then a 0x0000 terminator, then 0xFFFF padding.
        assert_eq!(&e[0][28..30], &[0xFF, 0xFF]);
    }

    #[test]
    fn a_directory_over_fat_s_slot_limit_is_refused_by_name() {
        use crate::disk::fat::{build_fat32, FatSpec};
        let mut files = FileSet::new();
        // Two slots each (a long name and its short entry): 32,800 names need 65,600 slots.
        for k in 0..32_800 {
            files
                .add_file(&format!("many/file-{k:05}.txt"), vec![], false)
                .unwrap();
        }
        let mut disk = SparseImage::new(514 << 20);
        let spec = FatSpec {
            label: Some("FIRMWARE".into()),
            volume_id: 1,
            timestamp: Timestamp::date(2025, 11, 21),
            sector_size: 512,
            hidden_sectors: 2048,
        };
        let e = build_fat32(&mut disk, 1 << 20, 512 << 20, &files, &spec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/many") && e.contains("65536"), "{e}");
    }
}
