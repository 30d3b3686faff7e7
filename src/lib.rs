//! pi-burn: boot media for a Raspberry Pi NixOS cluster.
//!
//! The way through the program, one folder a stage: [`cli`] (clap) -> [`commands`] (one per
//! subcommand; the only code that prints) -> [`job`] (the flags converted once, every usage
//! check, the target) -> [`firmware`] (manifest, fetch and cache, verify, unpack, UEFI
//! settings) -> [`disk`] (geometry, the card's FAT and table in a
//! [`disk::sparse::SparseImage`], block maps, reading cards back; no file or device I/O) ->
//! [`write`] (the one ordered-write engine, image files, sources) -> [`blockdev`] (sysfs,
//! safety rules, the device). [`ssd`] turns a node's disko config into a disk plan.
//!
//! `unsafe` lives in one module, [`blockdev::sys`]; the rest of the crate denies it.

#![deny(unsafe_code)]

pub mod blockdev;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod disk;
pub mod doctor;
pub mod eeprom;
pub mod error;
pub mod firmware;
pub mod job;
pub mod keys;
pub mod media;
pub mod progress;
pub mod report;
pub mod ssd;
pub mod util;
pub mod watch;
pub mod write;
