//! End-to-end tests of the lineage collector: the real `acelogic-collector`
//! and `acelogicctl` binaries, real node journals and the real shipper, real
//! gRPC on loopback.

mod access;
mod anchors;
mod ingest;
mod pki;
mod queries;
mod support;
mod transport;
mod web;
