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

/// What to write.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The image's size, when known before reading it (a file, a block map, a built disk).
    pub image_size: Option<u64>,
    pub ranges: Ranges,
    /// Refuse data whose first MiB holds neither an MBR nor a GPT (a bare filesystem, random
    /// bytes): only an explicit flag writes such data.
    pub require_table: bool,
}

impl Plan {
    /// Exactly the ranges of a block map, each checked against its SHA-256.
    pub fn from_bmap(b: &Bmap) -> Self {
        Plan {
            require_table: true,
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
            image_size: Some(size),
            ranges: Ranges::Whole,
        }
    }

    /// A stream of unknown length, written whole.
    pub fn whole_stream() -> Self {
        Plan {
            require_table: true,
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
