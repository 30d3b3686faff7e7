//! The disk in memory, no device I/O: geometry and identifiers, the sparse image, partition
//! tables (written, read, checked as sgdisk -v does, relocated), the FAT32 firmware partition and
//! its fatfs corrections, the card built from them, block maps, and verification.

pub mod bmap;
pub mod card;
pub mod cardcheck;
pub mod cardread;
pub mod fat;
pub mod fatcheck;
pub mod geometry;
pub mod gpt;
pub mod gptcheck;

pub mod record;
pub mod sparse;
pub mod table;
pub mod verify;
