//! One file per hook. LSM gates decide; tracepoints record lifecycle.

mod exec;
mod proc_exec;
