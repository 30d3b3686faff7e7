//! The cluster chains of a FAT32 volume, followed with a bound before anything trusts them: a
//! chain that loops, runs off the volume, ends on a free cluster, or shares clusters with another
//! file or directory is reported as fsck.fat would, instead of being walked forever or
//! silently. Every directory and file is reached from the root.
//!
//! Linear in the volume: every cluster is claimed at most once, a chain stops at the first
//! cluster another one claimed, a directory whose cluster is claimed already is reported and
//! not entered (a subdirectory pointing back at the root cannot make the walk grow), and the
//! problems are summarised after [`MAX_PROBLEMS`].

use crate::disk::fat::bpb::Bpb;
use crate::util::le::{u16_at, u32_at};
use std::io::{Read, Seek, SeekFrom};

/// Problems listed one by one; the rest are counted.
pub const MAX_PROBLEMS: usize = 5;

struct Volume {
    offset: u64,
    bpb: Bpb,
    clusters: u32,
    fat: Vec<u8>,
}

fn read_at<R: Read + Seek>(disk: &mut R, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    disk.seek(SeekFrom::Start(off))?;
    disk.read_exact(&mut b)?;
    Ok(b)
}

impl Volume {
    fn open<R: Read + Seek>(disk: &mut R, offset: u64, len: u64) -> Result<Self, String> {
        let bs =
            read_at(disk, offset, 512).map_err(|e| format!("cannot read the boot sector: {e}"))?;
        let bpb = Bpb::parse(&bs, len)?;
        // At most the partition's own length (Bpb::parse checked the FAT lies within it).
        let fat = read_at(
            disk,
            offset + bpb.fat_start(),
            bpb.fat_entries_bytes() as usize,
        )
        .map_err(|e| format!("cannot read the FAT: {e}"))?;
        Ok(Volume {
            offset,
            clusters: bpb.clusters(),
            bpb,
            fat,
        })
    }

    fn valid(&self, c: u32) -> bool {
        c >= 2 && c < self.clusters + 2
    }

    fn next(&self, c: u32) -> u32 {
        u32_at(&self.fat, 4 * c as usize).unwrap_or(0) & 0x0FFF_FFFF
    }
}

/// Who holds each cluster: an index into `names` (0: nobody).
struct Owners {
    of: Vec<u32>,
    names: Vec<String>,
}

/// Problems, the first [`MAX_PROBLEMS`] in full, the others counted.
#[derive(Default)]
struct Problems {
    lines: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, s: String) {
        if self.lines.len() < MAX_PROBLEMS {
            self.lines.push(s);
        } else {
            self.more += 1;
        }
    }
    fn done(mut self) -> Vec<String> {
        if self.more > 0 {
            self.lines
                .push(format!("FAT: and {} more problems", self.more));
        }
        self.lines
    }
}

/// Why a chain is broken, or its clusters, claimed for `who`. A cluster another chain already
/// claimed ends the walk (cross-linked): no cluster is followed twice.
fn claim(
    vol: &Volume,
    owners: &mut Owners,
    first: u32,
    who: &str,
    out: &mut Problems,
) -> Option<Vec<u32>> {
    owners.names.push(who.to_string());
    let me = owners.names.len() as u32;
    let mut chain = vec![];
    let mut c = first;
    loop {
        if !vol.valid(c) {
            out.push(format!(
                "FAT: the chain of {who} points at cluster {c}, outside the volume"
            ));
            return None;
        }
        match owners.of[c as usize] {
            0 => owners.of[c as usize] = me,
            o if o == me => {
                out.push(format!("FAT: the chain of {who} loops back to cluster {c}"));
                return None;
            }
            o => {
                out.push(format!(
                    "FAT: {who} and {} share cluster {c} (cross-linked)",
                    owners.names[o as usize - 1]
                ));
                return None;
            }
        }
        chain.push(c);
        let n = vol.next(c);
        if n >= 0x0FFF_FFF8 {
            return Some(chain);
        }
        if n == 0 {
            out.push(format!(
                "FAT: the chain of {who} is unterminated: cluster {c} points at a free cluster"
            ));
            return None;
        }
        if n == 0x0FFF_FFF7 {
            out.push(format!(
                "FAT: the chain of {who} runs into bad cluster after {c}"
            ));
            return None;
        }
        c = n;
    }
}

/// Checks every chain reachable from the root of the FAT32 volume at `offset` (`len` bytes).
/// Returns one line per problem (empty: sound), at most [`MAX_PROBLEMS`] and a count.
pub fn check<R: Read + Seek>(disk: &mut R, offset: u64, len: u64) -> Vec<String> {
    let vol = match Volume::open(disk, offset, len) {
        Ok(v) => v,
        Err(e) => return vec![format!("FAT: {e}")],
    };
    let mut out = Problems::default();
    let mut owners = Owners {
        of: vec![0u32; vol.clusters as usize + 2],
        names: vec![],
    };
    let cs = vol.bpb.cluster_size();
    let mut dirs = vec![(vol.bpb.root_cluster, "/".to_string())];
    while let Some((first, path)) = dirs.pop() {
        let Some(chain) = claim(
            &vol,
            &mut owners,
            first,
            &format!("directory {path}"),
            &mut out,
        ) else {
            continue;
        };
        'clusters: for c in chain {
            let at = vol.offset + vol.bpb.cluster_offset(c);
            let Ok(data) = read_at(disk, at, cs as usize) else {
                out.push(format!("FAT: cannot read cluster {c} of directory {path}"));
                break;
            };
            for e in data.chunks_exact(32) {
                if e[0] == 0 {
                    break 'clusters;
                }
                if e[0] == 0xE5 || e[11] == 0x0F || e[11] & 0x08 != 0 || e[0] == b'.' {
                    continue;
                }
                let name = String::from_utf8_lossy(&e[..11]).trim_end().to_string();
                let hi = u16_at(e, 20).unwrap_or(0) as u32;
                let start = (hi << 16) | u16_at(e, 26).unwrap_or(0) as u32;
                let child = format!("{path}{name}");
                if e[11] & 0x10 != 0 {
                    dirs.push((start, format!("{child}/")));
                } else if start != 0 {
                    let size = u32_at(e, 28).unwrap_or(0) as u64;
                    if let Some(chain) =
                        claim(&vol, &mut owners, start, &format!("file {child}"), &mut out)
                    {
                        let need = size.div_ceil(cs).max(1);
                        if (chain.len() as u64) < need {
                            out.push(format!(
                                "FAT: file {child} is {size} bytes but its chain has {} clusters",
                                chain.len()
                            ));
                        }
                    }
                }
            }
        }
    }
    out.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fat::{build_fat32, FatSpec, Timestamp};
    use crate::disk::sparse::SparseImage;
    use crate::firmware::fileset::FileSet;

    fn volume() -> SparseImage {
        let mut files = FileSet::new();
        files.add_file("a.txt", vec![1u8; 10000], false).unwrap();
        files.add_file("d/b.txt", vec![2u8; 5000], false).unwrap();
        let mut disk = SparseImage::new(40 << 20);
        let spec = FatSpec {
            label: Some("FIRMWARE".into()),
            volume_id: 1,
            timestamp: Timestamp::date(2025, 11, 21),
            sector_size: 512,
            hidden_sectors: 0,
        };
        build_fat32(&mut disk, 0, 40 << 20, &files, &spec).unwrap();
        disk
    }

    fn bpb(disk: &SparseImage) -> Bpb {
        let mut bs = [0u8; 512];
        disk.read_at(0, &mut bs);
        Bpb::parse(&bs, 40 << 20).unwrap()
    }

    fn fat_entry_offset(disk: &SparseImage, cluster: u32) -> u64 {
        bpb(disk).fat_start() + 4 * cluster as u64
    }

    /// The root directory's raw entry named `sfn` (11 bytes) and where it lies.
    fn root_entry(disk: &SparseImage, sfn: &[u8; 11]) -> (u64, Vec<u8>) {
        let b = bpb(disk);
        let mut root = vec![0u8; b.cluster_size() as usize];
        disk.read_at(b.data_start(), &mut root);
        let i = root.chunks_exact(32).position(|e| &e[..11] == sfn).unwrap();
        (
            b.data_start() + 32 * i as u64,
            root[32 * i..32 * i + 32].to_vec(),
        )
    }

    #[test]
    fn a_sound_volume_passes_and_a_looping_root_is_named() {
        let mut disk = volume();
        assert_eq!(check(&mut disk, 0, 40 << 20), Vec::<String>::new());
        // Regression (issue 14): the root's chain pointing back at itself passed verify.
        let off = fat_entry_offset(&disk, 2);
        disk.write_at(off, &2u32.to_le_bytes()).unwrap();
        let p = check(&mut disk, 0, 40 << 20);
        assert!(
            p.iter()
                .any(|l| l.contains("directory / loops back to cluster 2")),
            "{p:?}"
        );
    }

    #[test]
    fn cross_links_are_named() {
        let mut disk = volume();
        let (_, e) = root_entry(&disk, b"A       TXT");
        let start = ((u16_at(&e, 20).unwrap() as u32) << 16) | u16_at(&e, 26).unwrap() as u32;
        // Point a.txt's first cluster's successor into the root's chain.
        let off = fat_entry_offset(&disk, start);
        disk.write_at(off, &2u32.to_le_bytes()).unwrap();
        let p = check(&mut disk, 0, 40 << 20);
        assert!(p.iter().any(|l| l.contains("cross-linked")), "{p:?}");
    }

    #[test]
    fn a_directory_pointing_back_at_the_root_is_named_once_and_not_entered() {
        // Regression (issue 24): such an entry made inspect grow to gigabytes and abort.
        let mut disk = volume();
        let (at, mut e) = root_entry(&disk, b"D          ");
        e[20..22].copy_from_slice(&0u16.to_le_bytes());
        e[26..28].copy_from_slice(&2u16.to_le_bytes());
        disk.write_at(at, &e).unwrap();
        let p = check(&mut disk, 0, 40 << 20);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("directory /D/ and directory / share cluster 2"),
            "{p:?}"
        );
    }

    #[test]
    fn many_problems_are_summarised() {
        // Thousands of entries sharing one chain: each walked once, the list cut short.
        let mut disk = volume();
        let (_, a) = root_entry(&disk, b"A       TXT");
        let b = bpb(&disk);
        let mut entries = vec![];
        for i in 0..4000u32 {
            let mut e = a.clone();
            e[..11].copy_from_slice(format!("X{i:07}TXT").as_bytes());
            entries.extend_from_slice(&e);
        }
        // A new directory cluster full of them, linked from the root's last free cluster.
        let need = entries.len().div_ceil(b.cluster_size() as usize) as u32;
        let dir_cluster = b.clusters() - need - 10;
        for k in 0..need {
            let c = dir_cluster + k;
            let next = if k + 1 == need { 0x0FFF_FFFF } else { c + 1 };
            disk.write_at(fat_entry_offset(&disk, c), &next.to_le_bytes())
                .unwrap();
        }
        disk.write_at(b.cluster_offset(dir_cluster), &entries)
            .unwrap();
        let (at, mut d) = root_entry(&disk, b"D          ");
        d[20..22].copy_from_slice(&((dir_cluster >> 16) as u16).to_le_bytes());
        d[26..28].copy_from_slice(&(dir_cluster as u16).to_le_bytes());
        disk.write_at(at, &d).unwrap();
        let t = std::time::Instant::now();
        let p = check(&mut disk, 0, 40 << 20);
        assert!(t.elapsed().as_secs() < 5);
        assert_eq!(p.len(), MAX_PROBLEMS + 1, "{p:?}");
        assert!(p.last().unwrap().contains("more problems"), "{p:?}");
    }
}
