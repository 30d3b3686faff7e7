//! The flags converted once (ripgrep's low-level args -> high-level args): each command's
//! clap structure becomes a job, a plain value with every usage check made in its constructor,
//! before anything is downloaded, read from a device or written. Below this layer no code sees
//! a clap type; `images` and `verify` build the same jobs from a node's config.

pub mod card;
pub mod custom;
pub mod eeprom;
pub mod firmware;
pub mod flash;
pub mod images;
pub mod inspect;
pub mod keys;
pub mod probe;
pub mod ssd;
pub mod target;
pub mod verify;

pub use card::{BuiltCard, CardJob, CardLayout};
pub use custom::{customise, Customised};
pub use firmware::FirmwareJob;
pub use target::{DeviceOpts, TargetSpec};

use crate::disk::fat::Timestamp;
use anyhow::{Context, Result};

/// File timestamps: `SOURCE_DATE_EPOCH` when set, else `date` (a release's), else 1980-01-01.
pub fn timestamp(date: Option<(u16, u8, u8)>) -> Result<Timestamp> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: i64 = v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH='{v}' is not a number of seconds"))?;
        return Ok(Timestamp::from_unix(secs));
    }
    Ok(match date {
        Some((y, m, d)) => Timestamp::date(y, m, d),
        None => Timestamp::date(1980, 1, 1),
    })
}
