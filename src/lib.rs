//! pi-burn: boot media for a Raspberry Pi NixOS cluster.
//!
//! The way through the program: manifest -> firmware (verify, unpack) -> layout plan ->
//! [`sparse::SparseImage`] (partition table + filesystem, in memory) -> target -> verify.
//!
//! `unsafe` lives in one module, [`target::ioctl`]; the rest of the crate denies it.

#![deny(unsafe_code)]

pub mod bmap;
pub mod burn;
pub mod cache;
pub mod card;
pub mod cli;
pub mod commands;
pub mod digest;
pub mod error;
pub mod fat;
pub mod fetch;
pub mod fileset;
pub mod firmware;
pub mod flash;
pub mod gptcheck;
pub mod layout;
pub mod manifest;
pub mod nar;
pub mod partition;
pub mod progress;
pub mod report;
pub mod source;
pub mod sparse;
pub mod ssd;
pub mod target;
pub mod uefivars;
pub mod unpack;
pub mod verify;
pub mod writer;
