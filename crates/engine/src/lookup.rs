//! Finding objects by name, id or unambiguous id prefix.

use crate::Engine;
use crate::error::{Context, Result};
use cell_core::CoreError;
use cell_core::ids::is_id_prefix;
use cell_core::model::{Container, Image};

/// Picks the one id among `ids`, or says why there is none.
pub(crate) fn single(what: &str, reference: &str, ids: Vec<String>) -> Result<String> {
    match ids.len() {
        0 => Err(CoreError::not_found(what, reference).into()),
        1 => Ok(ids.into_iter().next().unwrap()),
        n => {
            let mut ids = ids;
            ids.sort();
            Err(CoreError::invalid(format!(
                "ambiguous {what} id prefix '{reference}': it matches {n} {what}s ({})",
                ids.join(", ")
            ))
            .into())
        }
    }
}

impl Engine {
    /// The container named `reference`, or whose id is or starts with it.
    pub fn find_container(&self, reference: &str) -> Result<Container> {
        let store = self.store();
        let context = || format!("failed to look up container {reference}");
        if let Some(c) = store.container_by_name(reference).context(context)? {
            return Ok(c);
        }
        let ids = if is_id_prefix(reference) {
            store.container_ids_with_prefix(reference).context(context)?
        } else {
            Vec::new()
        };
        let id = single("container", reference, ids)?;
        store
            .container(&id)
            .context(context)?
            .ok_or_else(|| CoreError::not_found("container", reference).into())
    }

    /// The image named `reference`, or whose id is or starts with it.
    pub fn find_image(&self, reference: &str) -> Result<Image> {
        let store = self.store();
        let context = || format!("failed to look up image {reference}");
        // `busybox:latest` names the image `busybox`: cell has no tags, but
        // users (and the seeds) write them.
        let name = reference.strip_suffix(":latest").unwrap_or(reference);
        if let Some(image) = store.image_by_name_or_id(name).context(context)? {
            return Ok(image);
        }
        let ids = if is_id_prefix(name) {
            store.image_ids_with_prefix(name).context(context)?
        } else {
            Vec::new()
        };
        let id = single("image", reference, ids)?;
        store
            .image_by_name_or_id(&id)
            .context(context)?
            .ok_or_else(|| CoreError::not_found("image", reference).into())
    }
}
