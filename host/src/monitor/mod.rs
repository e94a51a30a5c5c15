//! The target's processes: `target` finds and samples them, `leaks` judges the samples. The
//! samples and the analysis are data of the result (`perfhost_core::result::memory`).

pub mod leaks;
pub mod target;

pub use target::Sampler;
