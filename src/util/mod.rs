//! Small helpers with no place in the pipeline: units, seeded identifiers, checked
//! little-endian fields.

pub mod ids;
pub mod le;
pub mod text;
pub mod units;

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// Where `needle` first occurs in `hay` (memchr's SIMD search: firmware files are MiBs).
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// [`read_limited`] of a text file (UTF-8).
pub fn read_text_limited(path: &Path, max: u64, what: &str) -> Result<String> {
    String::from_utf8(read_limited(path, max, what)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Reads the file at `path` whole, refusing one larger than `max` bytes (checked while
/// reading, so a device, a pipe or a growing file cannot make it allocate more). `what` names
/// the kind of file in the error ("a block map").
pub fn read_limited(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = vec![];
    f.take(max + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {}", path.display()))?;
    if out.len() as u64 > max {
        bail!(
            "{} is larger than {} bytes: too large for {what}",
            path.display(),
            max
        );
    }
    Ok(out)
}
