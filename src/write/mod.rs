//! The one ordered-write engine, and the targets it writes.
//!
//! A write reads its source once and feeds every target, each in its own thread
//! ([`fanout`]); each target ([`engine::Writer`]) wipes its table areas first, writes the data,
//! the partition table last (a GPT's backup moved to the end of a larger target), and reads
//! back everything it wrote. A failing target stops only itself and has its table areas wiped
//! again. [`target::deliver`] puts a disk built in memory onto an image file ([`image`]) or a
//! claimed device ([`device`]); `flash` feeds the engine from an image file or stream
//! ([`source`]).

pub mod device;
pub mod engine;
pub mod fanout;
pub mod image;
pub mod plan;
pub mod probe;
pub mod sink;
pub mod source;
pub mod target;
pub mod zst;

pub use engine::{table_areas, Failed, Stats, TargetOutcome, Wipe};
pub use fanout::{flash, read_head, target_problems, Input, Options};
pub use plan::{Plan, Range, Ranges};
pub use sink::{Sink, TargetError};
pub use target::{deliver, Delivered, Target};

#[cfg(test)]
mod tests;
