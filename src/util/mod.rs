//! Small helpers with no place in the pipeline: units, seeded identifiers, checked
//! little-endian fields.

pub mod ids;
pub mod le;
pub mod text;
pub mod units;

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// `SOURCE_DATE_EPOCH` (seconds since 1970, the reproducible-builds convention), when set: a
/// value that is not a whole number of seconds from 0 on is a usage error naming it, for every
/// command that reads it.
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= MAX_EPOCH => Ok(Some(n)),
            _ => Err(crate::error::usage(format!(
                "SOURCE_DATE_EPOCH='{}' is not a number of seconds since 1970 (0 to {MAX_EPOCH})",
                text::printable(&v)
            ))),
        },
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(crate::error::usage(
            "SOURCE_DATE_EPOCH is not a number of seconds since 1970",
        )),
    }
}

/// The last second a FAT date can hold (2107-12-31 23:59:59 UTC).
const MAX_EPOCH: u64 = 4_354_819_199;

/// `p` made absolute without following what does not exist yet: its longest existing
/// ancestor canonicalised, the rest appended.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut rest = vec![];
    let mut at = p.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(at) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (at.file_name(), at.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_os_string());
                at = parent;
            }
            _ => return Ok(p),
        }
    }
}

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
