//! What the write engine writes to, and how one target of it fails: the shared types below the
//! engine and the probe (both take a [`Sink`] and return a [`TargetError`]).

use crate::util::units::human;
use std::io;

/// A target of a write: a block device, or anything that behaves like one (tests).
pub trait Sink: Send {
    fn name(&self) -> String;
    fn size(&self) -> u64;
    fn sector_size(&self) -> u64;
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
    /// Reads what the medium holds, bypassing any cache.
    fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes whole sectors straight to the medium, bypassing any cache: the device gets
    /// exactly them, each before the next call returns (the probe's writes, whose order matters
    /// on a device whose addresses alias). A plain write by default, for sinks that keep no
    /// cache of their own.
    fn write_direct(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        self.write_at(off, data)
    }
    /// Asks the kernel to reread the partition table (a no-op by default).
    fn reread(&mut self) {}
}

/// Why one target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target cannot take the image (too small, other sectors, no table in the image).
    #[error("{0}")]
    Refused(String),
    /// An I/O error: what was being done ("writing at byte 4096", "flushing") and the error.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("the image goes past the device's end ({size} bytes) at byte {end}")]
    PastEnd { end: u64, size: u64 },
    #[error("read back differs from what was written at {}{}", ranges_text(.ranges, *.more), wrap_text(*.wrap))]
    Differs {
        /// The written ranges (offset, end) that read back otherwise, the first few of them.
        ranges: Vec<(u64, u64)>,
        /// How many more did.
        more: usize,
        /// The device returned the same bytes this many bytes away: it wraps around.
        wrap: Option<u64>,
    },
    #[error("interrupted ({0})")]
    Interrupted(&'static str),
    /// The image could not be read, or did not match its block map.
    #[error("{0}")]
    Source(String),
    /// The medium holds less than it claims (the capacity probe): found before the data, or
    /// after it (a burn's samples read back behind the card).
    #[error("{text}")]
    Counterfeit { text: String, after_data: bool },
}

/// Differing ranges listed in a message.
pub const DIFFERS_SHOWN: usize = 4;

fn ranges_text(ranges: &[(u64, u64)], more: usize) -> String {
    let list = ranges
        .iter()
        .map(|(a, b)| format!("{a}-{b}"))
        .collect::<Vec<_>>()
        .join(", ");
    let s = if ranges.len() + more == 1 { "" } else { "s" };
    match more {
        0 => format!("byte{s} {list}"),
        n => format!(
            "bytes {list} and {n} more range{}",
            if n == 1 { "" } else { "s" }
        ),
    }
}

fn wrap_text(wrap: Option<u64>) -> String {
    match wrap {
        Some(d) => format!(
            ": the device gives back the same bytes {} away, so it wraps around every {} (a counterfeit holding about {})",
            human(d),
            human(d),
            human(d)
        ),
        None => String::new(),
    }
}
