//! Where a built disk goes: an image file, or a claimed device. One `deliver` for both: the
//! image file written sparse with its block map and renamed into place, or the device
//! written through the engine (table areas wiped, data, table last, read back).

use crate::blockdev::Claimed;
use crate::disk::sparse::SparseImage;
use crate::error::{Found, Mismatch, Refused};
use crate::progress::Progress;
use crate::write::engine::Failed;
use crate::write::fanout::{flash, Input, Options};
use crate::write::plan::Plan;
use crate::write::sink::TargetError;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// A target that passed every check made before anything is built or written.
#[derive(Debug, Clone)]
pub enum Target {
    /// An image file to create, or to replace on success.
    Image(PathBuf),
    Device(Box<Claimed>),
}

impl Target {
    /// For messages: the image's path, or the device's canonical path.
    pub fn path(&self) -> &Path {
        match self {
            Target::Image(p) => p,
            Target::Device(c) => c.disk().path(),
        }
    }

    /// The device's size and sector size; an image has neither before it is laid out.
    pub fn device_geometry(&self) -> Option<(u64, u64)> {
        match self {
            Target::Image(_) => None,
            Target::Device(c) => Some((c.disk().info.size, c.disk().info.logical_sector_size)),
        }
    }
}

/// What a delivery did.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    pub bytes_written: u64,
    /// Read back and compared (devices, unless verification was off).
    pub bytes_read_back: Option<u64>,
    /// The block map beside an image.
    pub bmap: Option<PathBuf>,
    /// The capacity probe of a device, when it ran.
    pub probe: Option<crate::write::probe::Probed>,
}

/// The bytes a device burn writes: the image's extents and the table areas wiped first.
pub fn planned_bytes(img: &SparseImage) -> u64 {
    img.written_bytes() + crate::write::engine::table_area_bytes(img.size())
}

/// A failed target as an error of the kind that picks the exit code: a read-back difference
/// is a verification failure and a counterfeit a finding (3), a target that cannot take the
/// image a refusal (4), the rest a failure (1).
pub fn failure(name: &str, f: Failed) -> anyhow::Error {
    match &f.error {
        TargetError::Differs { .. } => Mismatch(vec![format!("{name}: {f}")]).into(),
        TargetError::Counterfeit { .. } => Found(format!("{name}: {f}")).into(),
        TargetError::Refused(_) => Refused(format!("{name}: {f}")).into(),
        _ => anyhow::Error::new(f).context(name.to_string()),
    }
}

/// Writes `img` to `target`.
pub fn deliver(
    img: &SparseImage,
    target: &Target,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Delivered> {
    match target {
        Target::Image(path) => {
            let (stats, bmap) = crate::write::image::write_image_and_map(
                path,
                img,
                options.bmap_disk.as_deref(),
                progress,
            )?;
            Ok(Delivered {
                bytes_written: stats.bytes_written,
                bytes_read_back: None,
                bmap: Some(bmap),
                probe: None,
            })
        }
        Target::Device(claimed) => {
            let dev = claimed.open_for_writing()?;
            if img.size() != dev.size {
                bail!(
                    "internal: the plan is for {} bytes, {} has {}",
                    img.size(),
                    dev.path.display(),
                    dev.size
                );
            }
            let sink = crate::write::device::DeviceSink::new(dev)?;
            let outcome = flash(
                Input::Sparse(img),
                &Plan::from_sparse(img),
                vec![Box::new(sink)],
                options,
                progress,
            )
            .pop()
            .expect("one outcome per target");
            match outcome.result {
                Ok(s) => Ok(Delivered {
                    bytes_written: s.bytes_written,
                    bytes_read_back: options.verify.then_some(s.bytes_read_back),
                    bmap: None,
                    probe: s.probe,
                }),
                Err(f) => Err(failure(&outcome.name, f)),
            }
        }
    }
}
