//! Small helpers with no place in the pipeline: units and seeded identifiers.

pub mod ids;
pub mod units;
