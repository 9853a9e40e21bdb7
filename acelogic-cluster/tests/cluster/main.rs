//! The cluster store against a real etcd server (started per test on
//! loopback; `cargo xtask setup` installs Debian's etcd-server).

mod chaos;
mod claims;
mod common;
