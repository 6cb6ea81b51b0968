//! Placeholder: filled in by the work on this controller.

use crate::error::Result;
use crate::registry::Registry;

pub async fn reconcile(_registry: &Registry) -> Result<()> {
    Ok(())
}
