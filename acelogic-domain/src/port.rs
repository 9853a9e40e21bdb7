//! The one error type at the ports between a service and its adapters
//! (the engine's grant table and record sink, the pump's ring): the
//! adapter's own typed error, kept as the source so nothing is flattened
//! to text on the way.

/// A port's failure, with the adapter's own error as its source.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PortError(#[from] pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl PortError {
    /// Wraps an adapter's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}
