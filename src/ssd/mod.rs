//! The SSD side: a node's disko config (loaded from the flake, a file or JSON), disko's rules
//! for its GPT disks, and sgdisk's placement of their partitions.
//!
//! config (where `disko.devices` comes from) -> model (disko's options and defaults, refusals)
//! -> sgdisk (the table disko's commands make) -> [`crate::disk::geometry::DiskPlan`].

pub mod config;
pub mod install;
pub mod model;
pub mod nixeval;
pub mod options;
pub mod sgdisk;

pub use config::{load, ConfigSource, EvalMode, NodeConfig};
pub use model::{choose_disk, DiskoDisk, DiskoPart};
pub use sgdisk::plan;
