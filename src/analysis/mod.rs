//! Pure analysis of what a run measured: stall windows, leaks, gates and early ends.

pub mod abort;
pub mod attribution;
pub mod gates;
pub mod leak;
pub mod memory;
pub mod stall;
pub mod totals;
