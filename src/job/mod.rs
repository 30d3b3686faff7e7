//! The flags converted once (ripgrep's low-level args -> high-level args): each command's
//! clap structure becomes a job, a plain value with every usage check made in its constructor,
//! before anything is downloaded, read from a device or written. Below this layer no code sees
//! a clap type; `images` and `verify` build the same jobs from a node's config.

pub mod card;
pub mod custom;
pub mod doctor;
pub mod eeprom;
pub mod firmware;
pub mod flash;
pub mod images;
pub mod inspect;
pub mod keys;
pub mod nodes;
pub mod probe;
pub mod ssd;
pub mod target;
pub mod verify;

pub use card::{BuiltCard, CardJob, CardLayout};
pub use custom::{customise, Customised};
pub use firmware::FirmwareJob;
pub use target::{DeviceOpts, TargetSpec};

use crate::disk::fat::Timestamp;
use anyhow::Result;

/// File timestamps: `SOURCE_DATE_EPOCH` when set, else `date` (a release's), else 1980-01-01.
pub fn timestamp(date: Option<(u16, u8, u8)>) -> Result<Timestamp> {
    if let Some(secs) = crate::util::source_date_epoch()? {
        return Ok(Timestamp::from_unix(secs as i64));
    }
    Ok(match date {
        Some((y, m, d)) => Timestamp::date(y, m, d),
        None => Timestamp::date(1980, 1, 1),
    })
}

/// The lines that say what a burn wrote, from what its delivery did.
pub type DoneLines = Box<dyn Fn(&crate::write::Delivered) -> Vec<String>>;

/// What a burning job built for its target (sdcard, ssd, eeprom): the disk in memory, the
/// plan's lines, the report, the write options, what to say once it is written and what to do
/// next. The one burn driver (`commands::burn`) shows, confirms, delivers and summarises it.
pub struct Burn {
    pub image: crate::disk::sparse::SparseImage,
    /// The plan's lines after the device's description ("will write: ...").
    pub plan: Vec<String>,
    pub report: crate::report::Report,
    pub options: crate::write::Options,
    /// The lines that say what was written, from what the delivery did.
    pub done: DoneLines,
    /// What to do next (printed after the result; `next` in the JSON body).
    pub next: Vec<String>,
}
