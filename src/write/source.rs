//! An image to flash: a raw file (seekable, its data extents known), or a gzip, xz or zstd
//! stream (detected by content, not name), or standard input.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Raw,
    Gzip,
    Xz,
    Zstd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Gzip => "gzip",
            Kind::Xz => "xz",
            Kind::Zstd => "zstd",
        }
    }
}

pub struct ImageSource {
    pub name: String,
    pub kind: Kind,
    /// The raw file, when the image is one (seekable: ranges are read where they are).
    pub file: Option<File>,
    /// The file's size, for a raw file.
    pub size: Option<u64>,
    /// The decompressed stream otherwise.
    pub stream: Option<Box<dyn Read + Send>>,
}

fn detect(head: &[u8]) -> Kind {
    if head.starts_with(&[0x1f, 0x8b]) {
        Kind::Gzip
    } else if head.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        Kind::Xz
    } else if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Kind::Zstd
    } else {
        Kind::Raw
    }
}

/// Reads what a decoder thread writes.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => self.done = true,
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct ChannelWriter(std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>);

impl io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .send(Ok(b.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `decode` on a thread, reading `input`, and returns its output as a reader.
fn decoder_thread<R: BufRead + Send + 'static>(
    input: R,
    decode: impl FnOnce(R, &mut ChannelWriter) -> io::Result<()> + Send + 'static,
) -> Box<dyn Read + Send> {
    let (tx, rx) = sync_channel(16);
    std::thread::spawn(move || {
        let mut w = ChannelWriter(tx.clone());
        let r = io::BufWriter::with_capacity(256 * 1024, &mut w);
        let mut r = r;
        let result = decode(input, r.get_mut()).and_then(|_| io::Write::flush(&mut r));
        drop(r);
        if let Err(e) = result {
            let _ = tx.send(Err(e));
        }
    });
    Box::new(ChannelReader {
        rx,
        buf: vec![],
        pos: 0,
        done: false,
    })
}

/// Names xz's errors as xz's.
struct XzErrors<R>(R);

impl<R: Read> Read for XzErrors<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))
    }
}

fn decompress<R: BufRead + Send + 'static>(kind: Kind, input: R) -> Box<dyn Read + Send> {
    match kind {
        Kind::Raw => Box::new(input),
        Kind::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        // A streaming decoder: memory is the dictionary (at most 64 MiB for xz -9), whatever
        // the image's size; block CRCs/SHA-256 checked; concatenated streams (pixz, xz -T0).
        Kind::Xz => Box::new(XzErrors(lzma_rust2::XzReader::new(input, true))),
        Kind::Zstd => decoder_thread(input, |mut i, w| {
            // One frame after another until the input ends (zstd -T0 and pzstd write several).
            while !i.fill_buf()?.is_empty() {
                let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut i).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                })?;
                io::copy(&mut dec, w)?;
                // The frame's content checksum (zstd writes one by default), as `zstd -t`.
                let frame = dec.into_frame_decoder();
                if let (Some(want), Some(got)) = (
                    frame.get_checksum_from_data(),
                    frame.get_calculated_checksum(),
                ) {
                    if want != got {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("zstd: frame checksum {want:#010x}, computed {got:#010x}: the image is corrupt"),
                        ));
                    }
                }
            }
            Ok(())
        }),
    }
}

/// Inputs that are not a disk image pi-burn can write, recognised by their first bytes: the
/// reason and what to do instead.
fn refuse(head: &[u8], name: &str) -> Result<()> {
    let formats: &[(&[u8], usize, &str, &str)] = &[
        (b"BZh", 0, "bzip2", "bunzip2 -k"),
        (&[0x04, 0x22, 0x4D, 0x18], 0, "lz4", "lz4 -d"),
        (b"PK\x03\x04", 0, "zip", "unzip"),
        (&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C], 0, "7z", "7z x"),
        (b"ustar", 257, "tar", "tar -xf"),
    ];
    if head.is_empty() {
        anyhow::bail!("{name} is empty: there is no image to write");
    }
    for (magic, at, what, how) in formats {
        if head.len() >= at + magic.len() && &head[*at..at + magic.len()] == *magic {
            anyhow::bail!(
                "{name} is a {what} file, which pi-burn does not decode: unpack it first ({how}) or recompress it with zstd, xz or gzip"
            );
        }
    }
    let text = head.trim_ascii_start();
    if text.starts_with(b"<?xml") || text.starts_with(b"<bmap") {
        anyhow::bail!("{name} is an XML file (a block map?), not a disk image: give the image, and the map with --bmap");
    }
    Ok(())
}

/// Opens `path` (`-` for standard input).
pub fn open(path: &Path) -> Result<ImageSource> {
    if path.as_os_str() == "-" {
        let mut input = BufReader::with_capacity(1 << 20, io::stdin());
        let head = input.fill_buf().context("reading standard input")?;
        refuse(head, "standard input")?;
        let kind = detect(head);
        return Ok(ImageSource {
            name: "(stdin)".into(),
            kind,
            file: None,
            size: None,
            stream: Some(decompress(kind, input)),
        });
    }
    let name = path.display().to_string();
    let mut f = File::open(path).with_context(|| format!("opening {name}"))?;
    let meta = f.metadata().with_context(|| format!("reading {name}"))?;
    if !meta.is_file() {
        anyhow::bail!("{name} is not an image file");
    }
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f
            .read(&mut head[n..])
            .with_context(|| format!("reading {name}"))?
        {
            0 => break,
            k => n += k,
        }
    }
    refuse(&head[..n], &name)?;
    let kind = detect(&head[..n]);
    if kind == Kind::Raw {
        return Ok(ImageSource {
            name,
            kind,
            file: Some(f),
            size: Some(meta.len()),
            stream: None,
        });
    }
    let f = File::open(path).with_context(|| format!("opening {name}"))?;
    let stream = decompress(kind, BufReader::with_capacity(1 << 20, f));
    Ok(ImageSource {
        name,
        kind,
        file: None,
        size: None,
        stream: Some(stream),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_disk_image_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("x.img.bz2", b"BZh91AY&SY".to_vec(), "bzip2"),
            ("x.img.lz4", vec![0x04, 0x22, 0x4D, 0x18, 0, 0], "lz4"),
            ("x.zip", b"PK\x03\x04rest".to_vec(), "zip"),
            ("x.tar", tar, "tar"),
            (
                "x.img.bmap",
                b"<?xml version=\"1.0\"?>\n<bmap version=\"2.0\">".to_vec(),
                "block map",
            ),
            ("empty.img", vec![], "is empty"),
        ];
        for (name, bytes, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = match open(&p) {
                Ok(_) => panic!("{name} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(want) && e.contains(name), "{name}: {e}");
        }
        let p = dir.path().join("disk.img");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        assert!(open(&p).is_ok());
    }
}
