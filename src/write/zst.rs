//! A built disk as a zstd stream (`images --compress zstd`), from its extents: each stretch of
//! written blocks (at most [`DATA_FRAME`] bytes) one frame compressed by ruzstd, each gap of
//! zeros one frame of RLE blocks written here. Concatenated frames are one zstd stream for
//! `zstd -d`, `bmaptool` and `pi-burn flash`; no thread, clock or random choice goes in, so the
//! same disk gives the same bytes.

use crate::disk::sparse::SparseImage;
use std::io::{self, Write};

/// The most bytes of data one compressed frame holds (the compressor keeps a frame in memory).
pub const DATA_FRAME: u64 = 8 << 20;
/// A zero frame's block: zstd's largest (Block_Maximum_Size, 128 KiB).
const RLE_BLOCK: u64 = 128 << 10;
/// zstd's frame magic number, little-endian.
const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Writes one frame holding `len` zero bytes: a header with a 128 KiB window (so that no
/// decoder is asked for more memory than a block) and the content size, then RLE blocks.
fn zero_frame(len: u64, out: &mut impl Write) -> io::Result<u64> {
    let mut head = Vec::with_capacity(14);
    head.extend_from_slice(&MAGIC);
    // Frame_Header_Descriptor: an 8-byte Frame_Content_Size, not single-segment, no checksum,
    // no dictionary. Window_Descriptor: exponent 7, mantissa 0: 2^(10+7) = 128 KiB.
    head.push(0b1100_0000);
    head.push(7 << 3);
    head.extend_from_slice(&len.to_le_bytes());
    out.write_all(&head)?;
    let mut written = head.len() as u64;
    let mut left = len;
    loop {
        let n = left.min(RLE_BLOCK);
        left -= n;
        // Block_Header (3 bytes, little-endian): Last_Block, Block_Type 1 (RLE), Block_Size
        // (for RLE, the bytes it stands for); then the one byte repeated.
        let header = u32::from(left == 0) | (1 << 1) | ((n as u32) << 3);
        out.write_all(&[header as u8, (header >> 8) as u8, (header >> 16) as u8, 0])?;
        written += 4;
        if left == 0 {
            return Ok(written);
        }
    }
}

/// Writes `img` (all of it: its size, holes as zeros) to `out` as zstd frames; the bytes
/// written.
pub fn write_image(img: &SparseImage, out: &mut impl Write) -> io::Result<u64> {
    let mut at = 0u64;
    let mut written = 0u64;
    let mut data = Vec::new();
    let flush = |data: &mut Vec<u8>, out: &mut dyn Write| -> io::Result<u64> {
        if data.is_empty() {
            return Ok(0);
        }
        let frame = ruzstd::encoding::compress_to_vec(
            data.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        data.clear();
        out.write_all(&frame)?;
        Ok(frame.len() as u64)
    };
    for e in img.extents() {
        if e.offset > at {
            written += flush(&mut data, out)?;
            written += zero_frame(e.offset - at, out)?;
        }
        let mut off = e.offset;
        while off < e.end() {
            let n = (e.end() - off).min(DATA_FRAME - data.len() as u64);
            let start = data.len();
            data.resize(start + n as usize, 0);
            img.read_at(off, &mut data[start..]);
            off += n;
            if data.len() as u64 == DATA_FRAME {
                written += flush(&mut data, out)?;
            }
        }
        at = e.end();
    }
    written += flush(&mut data, out)?;
    if img.size() > at {
        written += zero_frame(img.size() - at, out)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame decoded in turn, as `pi-burn flash` and `zstd -d` read a stream.
    fn decode_all(mut z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !z.is_empty() {
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut z).unwrap();
            io::copy(&mut dec, &mut out).unwrap();
        }
        out
    }

    fn disk() -> SparseImage {
        let mut img = SparseImage::new(40 << 20);
        img.write_at(0, &[0xeb; 512]).unwrap();
        // Data that compresses, data that does not, written zeros, and a run past a frame.
        let text: Vec<u8> = b"pi-burn ".iter().cycle().take(3 << 20).copied().collect();
        img.write_at(1 << 20, &text).unwrap();
        let mut x = 1u64;
        let noise: Vec<u8> = (0..(DATA_FRAME + 12288))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        img.write_at(9 << 20, &noise).unwrap();
        img.zero_range(30 << 20, 8192).unwrap();
        img.write_at((40 << 20) - 512, &[7; 512]).unwrap();
        img
    }

    #[test]
    fn the_stream_decodes_to_the_whole_disk_and_is_the_same_every_time() {
        let img = disk();
        let mut z = Vec::new();
        let n = write_image(&img, &mut z).unwrap();
        assert_eq!(n, z.len() as u64);
        let mut want = vec![0u8; img.size() as usize];
        img.read_at(0, &mut want);
        assert!(decode_all(&z) == want);
        let mut again = Vec::new();
        write_image(&img.clone(), &mut again).unwrap();
        assert!(again == z);
        // The zeros cost 4 bytes per 128 KiB; the text compresses.
        assert!(
            z.len() < (DATA_FRAME as usize + 12288) + (1 << 20),
            "{}",
            z.len()
        );
    }

    #[test]
    fn an_empty_disk_is_zero_frames_only() {
        let img = SparseImage::new(300 << 10);
        let mut z = Vec::new();
        write_image(&img, &mut z).unwrap();
        // One frame: 14 header bytes, three RLE blocks (128 + 128 + 44 KiB).
        assert_eq!(z.len(), 14 + 3 * 4);
        assert_eq!(decode_all(&z), vec![0u8; 300 << 10]);
    }
}
