//! Pure analysis of what a run measured: stall windows (and, as they land, leaks and gates).

pub mod gates;
pub mod leak;
pub mod memory;
pub mod stall;
