//! sdcard and ssd onto a block device: the built disk through the one write engine.

use crate::blockdev::device::{open_exclusive, DeviceSink};
use crate::blockdev::sysfs::{DiskInfo, SysTree};
use crate::blockdev::Resolved;
use crate::disk::sparse::SparseImage;
use crate::progress::{Event, Progress};
use crate::write::{flash, Input, Plan};
use anyhow::{bail, Result};

/// The bytes a burn writes: the image's extents and the table areas wiped first.
pub fn planned_bytes(img: &SparseImage) -> u64 {
    img.written_bytes()
        + crate::write::table_areas(img.size())
            .iter()
            .map(|(_, l)| l)
            .sum::<u64>()
}

/// The engine's byte-counted step, shown as the burn's one number.
struct Relabel<'a> {
    inner: &'a dyn Progress,
    label: String,
    total: u64,
}

impl Progress for Relabel<'_> {
    fn event(&self, e: Event) {
        match e {
            Event::Start { .. } => self.inner.event(Event::Start {
                label: self.label.clone(),
                total: self.total,
            }),
            e => self.inner.event(e),
        }
    }
}

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
    // One number for the whole run: the plan, this line and the result all say planned_bytes.
    let progress = Relabel {
        inner: progress,
        label: format!("writing {}", dev.path.display()),
        total: planned_bytes(img),
    };
    let progress = &progress;
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
