//! pi-burn's integration tests: one binary, a module per area.

mod download;
mod harness;
mod nar;
mod sdcard;
mod server;
