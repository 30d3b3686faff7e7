//! What the engine writes: the image's byte ranges (a block map's, or a built disk's extents),
//! or the whole input, and whether the data must carry a partition table.

use crate::disk::bmap::Bmap;
use crate::disk::sparse::SparseImage;
use crate::firmware::digest::Sha256Digest;

/// One range of the image to write, with the SHA-256 its block map gives it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub len: u64,
    pub sha256: Option<Sha256Digest>,
}

impl Range {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// Which bytes of the input reach the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Every byte of the input, in order (holes of a raw file as zeros).
    Whole,
    /// Exactly these ranges, in order, not overlapping; nothing else is written.
    Map(Vec<Range>),
}

/// Lays an image's disk out anew on a target larger than the image: an SSD image whose last
/// partition takes "the rest of the disk" (disko's `size = "100%"`) gets it on the device.
pub trait Relayout: Send + Sync {
    /// The table on a target of `size` bytes with `sector_size`-byte sectors, or why the disk
    /// cannot be laid out there (and what to run instead).
    fn relayout(&self, size: u64, sector_size: u64) -> Result<Relaid, String>;
}

/// A disk's table laid out for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relaid {
    /// The table's blocks on the target: within the head they replace the image's bytes;
    /// beyond it they are written after the data.
    pub blocks: Vec<(u64, Vec<u8>)>,
    /// Ranges zeroed after the data: the ends of the partitions that grew, where stale
    /// signatures (ZFS labels, LUKS headers) of the device's old contents would be found.
    pub zero: Vec<(u64, u64)>,
    /// What changed, for the report ("partition 2 disk-usb-ssd-zfs: 1022 MiB -> 465 GiB").
    pub note: String,
}

/// A shared [`Relayout`].
#[derive(Clone)]
pub struct RelayoutRef(pub std::sync::Arc<dyn Relayout>);

impl std::fmt::Debug for RelayoutRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relayout")
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The image's size, when known before reading it (a file, a block map, a built disk).
    pub image_size: Option<u64>,
    pub ranges: Ranges,
    /// Refuse data whose first MiB holds neither an MBR nor a GPT (a bare filesystem, random
    /// bytes): only an explicit flag writes such data.
    pub require_table: bool,
    /// The image's disk laid out anew on a larger target (see [`Relayout`]).
    pub relayout: Option<RelayoutRef>,
}

impl Plan {
    /// Exactly the ranges of a block map, each checked against its SHA-256.
    pub fn from_bmap(b: &Bmap) -> Self {
        Plan {
            require_table: true,
            relayout: None,
            image_size: Some(b.image_size),
            ranges: Ranges::Map(
                b.byte_ranges()
                    .into_iter()
                    .zip(&b.ranges)
                    .map(|((offset, len), r)| Range {
                        offset,
                        len,
                        sha256: r.sha256,
                    })
                    .collect(),
            ),
        }
    }

    /// A disk built in memory: its extents are its map.
    pub fn from_sparse(img: &SparseImage) -> Self {
        Plan {
            require_table: true,
            relayout: None,
            image_size: Some(img.size()),
            ranges: Ranges::Map(
                img.extents()
                    .iter()
                    .map(|e| Range {
                        offset: e.offset,
                        len: e.len,
                        sha256: None,
                    })
                    .collect(),
            ),
        }
    }

    /// A raw file of `size` bytes, written whole.
    pub fn whole_file(size: u64) -> Self {
        Plan {
            require_table: true,
            relayout: None,
            image_size: Some(size),
            ranges: Ranges::Whole,
        }
    }

    /// A stream of unknown length, written whole.
    pub fn whole_stream() -> Self {
        Plan {
            require_table: true,
            relayout: None,
            image_size: None,
            ranges: Ranges::Whole,
        }
    }

    /// Bytes to read: the ranges, or the whole image when its size is known (0 otherwise).
    pub fn bytes(&self) -> u64 {
        match &self.ranges {
            Ranges::Map(r) => r.iter().map(|x| x.len).sum(),
            Ranges::Whole => self.image_size.unwrap_or(0),
        }
    }
}
