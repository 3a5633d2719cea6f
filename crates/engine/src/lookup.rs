//! Finding objects by name, id or unambiguous id prefix.

use crate::Engine;
use crate::error::{Context, Result};
use cell_core::CoreError;
use cell_core::ids::is_id_prefix;
use cell_core::model::{Container, Image, Network};
use cell_store::{Result as StoreResult, Store};

/// Picks the one id among `ids`, or says why there is none.
fn single(what: &str, reference: &str, ids: Vec<String>) -> Result<String> {
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

/// Looks `key` up as a name first, then as an id or unambiguous id
/// prefix; errors name `reference`, what the user typed.
fn find<T>(
    store: &Store,
    what: &str,
    reference: &str,
    key: &str,
    by_name: impl Fn(&Store, &str) -> StoreResult<Option<T>>,
    ids_with_prefix: impl Fn(&Store, &str) -> StoreResult<Vec<String>>,
    by_id: impl Fn(&Store, &str) -> StoreResult<Option<T>>,
) -> Result<T> {
    let context = || format!("failed to look up {what} {reference}");
    if let Some(found) = by_name(store, key).context(context)? {
        return Ok(found);
    }
    let ids = if is_id_prefix(key) {
        ids_with_prefix(store, key).context(context)?
    } else {
        Vec::new()
    };
    let id = single(what, reference, ids)?;
    by_id(store, &id)
        .context(context)?
        .ok_or_else(|| CoreError::not_found(what, reference).into())
}

impl Engine {
    /// The container named `reference`, or whose id is or starts with it.
    pub fn find_container(&self, reference: &str) -> Result<Container> {
        find(
            &*self.read()?,
            "container",
            reference,
            reference,
            Store::container_by_name,
            Store::container_ids_with_prefix,
            Store::container,
        )
    }

    /// The image named `reference`, or whose id is or starts with it.
    pub fn find_image(&self, reference: &str) -> Result<Image> {
        // `busybox:latest` names the image `busybox`: cell has no tags, but
        // users (and the seeds) write them.
        let name = reference.strip_suffix(":latest").unwrap_or(reference);
        find(
            &*self.read()?,
            "image",
            reference,
            name,
            Store::image_by_name_or_id,
            Store::image_ids_with_prefix,
            Store::image_by_name_or_id,
        )
    }

    /// The network named `reference`, or whose id is or starts with it.
    pub fn find_network(&self, reference: &str) -> Result<Network> {
        find(
            &*self.read()?,
            "network",
            reference,
            reference,
            Store::network_by_name,
            Store::network_ids_with_prefix,
            Store::network_by_id,
        )
    }
}
