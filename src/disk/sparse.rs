//! An in-memory disk of any size that keeps only the blocks written to it.
//!
//! The partition table and the filesystem are built here first; the blocks it holds are then
//! exactly the extents that must reach the target (an image file, a block device), zeros included.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Granularity of the written-block map. Every extent is a multiple of it and aligned to it, so
/// writes suit both 512- and 4096-byte sectors (and O_DIRECT).
pub const BLOCK: u64 = 4096;

/// A byte range `[offset, offset + len)` of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

#[derive(Debug, Clone)]
pub struct SparseImage {
    size: u64,
    pos: u64,
    blocks: BTreeMap<u64, Box<[u8]>>,
}

impl SparseImage {
    /// An empty disk of `size` bytes (a multiple of 512; the last block may be partial).
    pub fn new(size: u64) -> Self {
        assert!(
            size.is_multiple_of(512),
            "disk size must be a multiple of 512"
        );
        SparseImage {
            size,
            pos: 0,
            blocks: BTreeMap::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Records `len` bytes of zeros at `offset` as written (a wipe).
    pub fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let start = offset / BLOCK * BLOCK;
        let end = (offset + len).div_ceil(BLOCK) * BLOCK;
        if offset + len > self.size {
            return Err(out_of_range(offset, len, self.size));
        }
        // Whole blocks become zero; partial ones keep their other bytes.
        for b in (start / BLOCK)..(end / BLOCK) {
            let bs = b * BLOCK;
            let lo = offset.max(bs) - bs;
            let hi = (offset + len).min(bs + BLOCK) - bs;
            let blk = self.block_mut(b);
            blk[lo as usize..hi as usize].fill(0);
        }
        Ok(())
    }

    fn block_mut(&mut self, b: u64) -> &mut [u8] {
        self.blocks
            .entry(b)
            .or_insert_with(|| vec![0u8; BLOCK as usize].into_boxed_slice())
    }

    /// The written ranges, coalesced, in order.
    pub fn extents(&self) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        for (off, data) in self.blocks() {
            let len = data.len() as u64;
            match out.last_mut() {
                Some(e) if e.end() == off => e.len += len,
                _ => out.push(Extent { offset: off, len }),
            }
        }
        out
    }

    /// Bytes the target must receive.
    pub fn written_bytes(&self) -> u64 {
        self.blocks().map(|(_, d)| d.len() as u64).sum()
    }

    /// The written blocks in order: (offset, bytes), the last one cut at the disk's end.
    pub fn blocks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let size = self.size;
        self.blocks.iter().map(move |(b, d)| {
            let off = b * BLOCK;
            let len = (size - off).min(BLOCK) as usize;
            (off, &d[..len])
        })
    }

    /// Reads `buf.len()` bytes at `offset` (unwritten bytes read as zero).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let b = pos / BLOCK;
            let within = (pos % BLOCK) as usize;
            let n = (BLOCK as usize - within).min(buf.len() - done);
            match self.blocks.get(&b) {
                Some(d) => buf[done..done + n].copy_from_slice(&d[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset + data.len() as u64 > self.size {
            return Err(out_of_range(offset, data.len() as u64, self.size));
        }
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let within = (pos % BLOCK) as usize;
            let n = (BLOCK as usize - within).min(data.len() - done);
            if n == BLOCK as usize {
                // A whole block: take the bytes as they are, no zero-fill first.
                self.blocks
                    .insert(pos / BLOCK, Box::from(&data[done..done + n]));
            } else {
                self.block_mut(pos / BLOCK)[within..within + n]
                    .copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        Ok(())
    }
}

fn out_of_range(offset: u64, len: u64, size: u64) -> io::Error {
    io::Error::other(format!(
        "write of {len} bytes at offset {offset} goes past the end of the {size}-byte disk"
    ))
}

impl Read for SparseImage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.size.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        self.read_at(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SparseImage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.size {
            return Err(out_of_range(self.pos, buf.len() as u64, self.size));
        }
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        self.write_at(self.pos, &buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SparseImage {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(o) => Some(o),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the disk",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritten_bytes_read_as_zero_and_writes_are_kept() {
        let mut d = SparseImage::new(1 << 40);
        d.seek(SeekFrom::Start(5000)).unwrap();
        d.write_all(b"abc").unwrap();
        let mut buf = [9u8; 8];
        d.read_at(4998, &mut buf);
        assert_eq!(&buf, b"\0\0abc\0\0\0");
        assert_eq!(
            d.extents(),
            vec![Extent {
                offset: 4096,
                len: 4096
            }]
        );
    }

    #[test]
    fn odd_sized_writes_across_blocks_coalesce() {
        for len in [0usize, 1, 33, 993, 4096, 4097, 12289] {
            let mut d = SparseImage::new(64 * 1024);
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            d.write_at(4095, &data).unwrap();
            let mut back = vec![0u8; len];
            d.read_at(4095, &mut back);
            assert_eq!(back, data);
            let ext = d.extents();
            if len == 0 {
                assert!(ext.is_empty());
            } else {
                assert_eq!(ext.len(), 1);
                assert_eq!(ext[0].offset, 0);
                assert_eq!(ext[0].end(), (4095 + len as u64).div_ceil(BLOCK) * BLOCK);
            }
        }
    }

    #[test]
    fn a_disk_whose_size_is_not_a_block_multiple_cuts_its_last_extent() {
        let mut d = SparseImage::new(8192 + 512);
        d.write_at(8192, &[1u8; 512]).unwrap();
        assert_eq!(
            d.extents(),
            vec![Extent {
                offset: 8192,
                len: 512
            }]
        );
        assert_eq!(d.written_bytes(), 512);
        assert!(d.write_at(8193, &[1u8; 512]).is_err());
    }

    #[test]
    fn writes_past_the_end_fail() {
        let mut d = SparseImage::new(8192);
        assert!(d.write_at(8000, &[1u8; 500]).is_err());
        d.seek(SeekFrom::Start(8192)).unwrap();
        assert!(d.write(&[1]).is_err());
        assert!(d.zero_range(4096, 8192).is_err());
    }

    #[test]
    fn zero_range_marks_blocks_written_and_keeps_neighbours() {
        let mut d = SparseImage::new(16384);
        d.write_at(0, &[7u8; 8192]).unwrap();
        d.zero_range(100, 200).unwrap();
        d.zero_range(12288, 4096).unwrap();
        let mut b = [0u8; 3];
        d.read_at(99, &mut b);
        assert_eq!(b, [7, 0, 0]);
        d.read_at(299, &mut b);
        assert_eq!(b, [0, 7, 7]);
        assert_eq!(d.written_bytes(), 12288);
    }
}
