//! The scale-out commands: `perfhost merge`, `local`, `k8s` and `slurm`.

pub mod k8s;
pub mod local;
pub mod merge;
pub mod slurm;
