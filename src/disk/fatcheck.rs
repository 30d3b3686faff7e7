//! The cluster chains of a FAT32 volume, followed with a bound before anything trusts them: a
//! chain that loops, runs off the volume, ends on a free cluster, or shares clusters with another
//! file or directory is reported as fsck.fat would, instead of being walked forever or
//! silently. Every directory and file is reached from the root.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

struct Volume {
    offset: u64,
    cluster_size: u64,
    data_start: u64,
    root_cluster: u32,
    clusters: u32,
    fat: Vec<u8>,
}

fn le16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
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
        let bps = le16(&bs, 11);
        let spc = bs[13] as u64;
        let reserved = le16(&bs, 14);
        let nfats = bs[16] as u64;
        let total = le32(&bs, 32) as u64;
        let fat_sectors = le32(&bs, 36) as u64;
        if !matches!(bps, 512 | 1024 | 2048 | 4096) || spc == 0 || !spc.is_power_of_two() {
            return Err("the boot sector's geometry is not FAT32's".into());
        }
        let fat_start = reserved * bps;
        let data_start = fat_start + nfats * fat_sectors * bps;
        if total * bps > len || data_start >= total * bps {
            return Err("the boot sector describes more than the partition holds".into());
        }
        let clusters = ((total * bps - data_start) / (spc * bps)).min(0x0FFF_FFF5) as u32;
        let fat_len = (clusters as u64 + 2) * 4;
        if fat_len > fat_sectors * bps {
            return Err("the FAT is smaller than the volume's clusters need".into());
        }
        let fat = read_at(disk, offset + fat_start, fat_len as usize)
            .map_err(|e| format!("cannot read the FAT: {e}"))?;
        Ok(Volume {
            offset,
            cluster_size: spc * bps,
            data_start,
            root_cluster: le32(&bs, 44),
            clusters,
            fat,
        })
    }

    fn valid(&self, c: u32) -> bool {
        c >= 2 && c < self.clusters + 2
    }

    fn next(&self, c: u32) -> u32 {
        le32(&self.fat, 4 * c as usize) & 0x0FFF_FFFF
    }

    /// The chain from `first`, or why it is broken; at most `clusters` steps.
    fn chain(&self, first: u32) -> Result<Vec<u32>, String> {
        let mut out = vec![];
        let mut seen = std::collections::HashSet::new();
        let mut c = first;
        loop {
            if !self.valid(c) {
                return Err(format!("points at cluster {c}, outside the volume"));
            }
            if !seen.insert(c) {
                return Err(format!("loops back to cluster {c}"));
            }
            out.push(c);
            let n = self.next(c);
            if n >= 0x0FFF_FFF8 {
                return Ok(out);
            }
            if n == 0 {
                return Err(format!(
                    "is unterminated: cluster {c} points at a free cluster"
                ));
            }
            if n == 0x0FFF_FFF7 {
                return Err(format!("runs into bad cluster after {c}"));
            }
            c = n;
        }
    }
}

/// Checks every chain reachable from the root of the FAT32 volume at `offset` (`len` bytes).
/// Returns one line per problem (empty: sound).
pub fn check<R: Read + Seek>(disk: &mut R, offset: u64, len: u64) -> Vec<String> {
    let vol = match Volume::open(disk, offset, len) {
        Ok(v) => v,
        Err(e) => return vec![format!("FAT: {e}")],
    };
    let mut out = vec![];
    let mut owner: HashMap<u32, String> = HashMap::new();
    let mut claim = |chain: &[u32], who: &str, out: &mut Vec<String>| {
        for c in chain {
            if let Some(prev) = owner.insert(*c, who.to_string()) {
                out.push(format!(
                    "FAT: {who} and {prev} share cluster {c} (cross-linked)"
                ));
                return;
            }
        }
    };
    let mut dirs = vec![(vol.root_cluster, "/".to_string())];
    let mut visited_dirs = 0u64;
    while let Some((first, path)) = dirs.pop() {
        visited_dirs += 1;
        if visited_dirs > vol.clusters as u64 {
            out.push("FAT: the directory tree loops".into());
            break;
        }
        let chain = match vol.chain(first) {
            Ok(c) => c,
            Err(e) => {
                out.push(format!("FAT: the chain of directory {path} {e}"));
                continue;
            }
        };
        claim(&chain, &format!("directory {path}"), &mut out);
        'clusters: for c in chain {
            let at = vol.offset + vol.data_start + (c as u64 - 2) * vol.cluster_size;
            let Ok(data) = read_at(disk, at, vol.cluster_size as usize) else {
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
                let start = ((le16(e, 20) as u32) << 16) | le16(e, 26) as u32;
                let child = format!("{}{}", path, name);
                if e[11] & 0x10 != 0 {
                    dirs.push((start, format!("{child}/")));
                } else if start != 0 {
                    let size = le32(e, 28) as u64;
                    match vol.chain(start) {
                        Ok(chain) => {
                            let need = size.div_ceil(vol.cluster_size).max(1);
                            if (chain.len() as u64) < need {
                                out.push(format!(
                                    "FAT: file {child} is {size} bytes but its chain has {} clusters",
                                    chain.len()
                                ));
                            }
                            claim(&chain, &format!("file {child}"), &mut out);
                        }
                        Err(e) => out.push(format!("FAT: the chain of file {child} {e}")),
                    }
                }
            }
        }
    }
    out
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

    fn fat_entry_offset(disk: &SparseImage, cluster: u32) -> u64 {
        let mut bs = [0u8; 512];
        disk.read_at(0, &mut bs);
        le16(&bs, 14) * le16(&bs, 11) + 4 * cluster as u64
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
        // Point a.txt's first cluster's successor into the root's chain.
        let mut bs = [0u8; 512];
        disk.read_at(0, &mut bs);
        let p0 = check(&mut disk, 0, 40 << 20);
        assert!(p0.is_empty());
        // Find a.txt's start cluster through the root directory's raw entries.
        let v = Volume::open(&mut disk, 0, 40 << 20).unwrap();
        let mut root = vec![0u8; v.cluster_size as usize];
        disk.read_at(v.data_start, &mut root);
        let e = root
            .chunks_exact(32)
            .find(|e| &e[..11] == b"A       TXT")
            .unwrap();
        let start = ((le16(e, 20) as u32) << 16) | le16(e, 26) as u32;
        let off = fat_entry_offset(&disk, start);
        disk.write_at(off, &2u32.to_le_bytes()).unwrap();
        let p = check(&mut disk, 0, 40 << 20);
        assert!(p.iter().any(|l| l.contains("cross-linked")), "{p:?}");
    }
}
