//! sdcard and ssd onto a block device: the built disk through the one write engine.

use crate::blockdev::device::{open_exclusive, DeviceSink};
use crate::blockdev::sysfs::{DiskInfo, SysTree};
use crate::blockdev::Resolved;
use crate::disk::geometry::human;
use crate::disk::sparse::SparseImage;
use crate::progress::Progress;
use crate::write::{flash, Input, Plan};
use anyhow::{bail, Result};

/// What a burn did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BurnStats {
    pub bytes_written: u64,
    pub bytes_read_back: u64,
    pub mismatches: Vec<String>,
}

/// Writes `img` to the device through the one write engine ([`crate::write::flash`]: table
/// areas wiped, data, flush, table last, flush, reread, O_DIRECT read-back; on any failure the
/// table areas are wiped again). The image's extents are its block map. A read-back difference
/// comes back as `mismatches`; any other failure is an error.
pub fn burn(
    t: &SysTree,
    r: &Resolved,
    shown: &DiskInfo,
    img: &SparseImage,
    verify: bool,
    progress: &dyn Progress,
) -> Result<BurnStats> {
    let dev = open_exclusive(t, r, shown)?;
    if img.size() != dev.size {
        bail!(
            "internal: the plan is for {} bytes, {} has {}",
            img.size(),
            dev.path.display(),
            dev.size
        );
    }
    progress.phase(&format!(
        "writing {} ({} of extents)",
        dev.path.display(),
        human(img.written_bytes())
    ));
    let plan = Plan {
        image_size: Some(img.size()),
        ranges: Some(
            img.extents()
                .iter()
                .map(|e| (e.offset, e.len, None))
                .collect(),
        ),
        require_table: true,
    };
    let sink = DeviceSink::new(dev)?;
    let outcome = flash(
        Input::Sparse(img),
        &plan,
        vec![Box::new(sink)],
        verify,
        progress,
        vec![],
    )?
    .pop()
    .expect("one outcome per sink");
    let stats = BurnStats {
        bytes_written: outcome.bytes_written,
        bytes_read_back: outcome.bytes_read_back,
        mismatches: vec![],
    };
    match outcome.error {
        None => Ok(stats),
        Some(e) if outcome.read_back_differs => Ok(BurnStats {
            mismatches: vec![e],
            ..stats
        }),
        Some(e) => bail!("{}: {e}", outcome.target),
    }
}
