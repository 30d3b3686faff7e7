//! pi-burn's integration tests: one binary, a module per area.

mod cluster;
mod device;
mod disko;
mod download;
mod flash;
mod harness;
mod json;
mod nar;
mod sdcard;
mod server;
mod ssd;
mod uefi;
