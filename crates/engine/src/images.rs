//! Image use cases: build the busybox image, import a rootfs, list, remove.

use crate::Engine;
use crate::error::{Context, Result};
use cell_core::CoreError;
use cell_core::ids::{new_id, validate_name};
use cell_core::model::Image;
use std::path::{Path, PathBuf};

/// The name `cell run` builds an image under when it is missing.
pub const BUSYBOX: &str = "busybox";

impl Engine {
    /// Builds a minimal image named `name` from the host's static busybox.
    pub fn create_busybox_image(&self, name: &str) -> Result<Image> {
        validate_name("image", name)?;
        self.ensure_image_name_free(name)?;
        let busybox = self.config.busybox.clone();
        if !busybox.is_file() {
            return Err(CoreError::invalid(format!(
                "no static busybox at {} (install the busybox-static package)",
                busybox.display()
            ))
            .into());
        }
        self.add_image(name, format!("busybox-static ({})", busybox.display()), |dest| {
            cell_runtime::image::build_busybox_rootfs(&busybox, dest)
                .map(|_| ())
                .context(|| format!("failed to build image {name} from {}", busybox.display()))
        })
    }

    /// Imports a rootfs from a directory or a `.tar`, `.tar.gz` or `.tgz`.
    pub fn import_image(&self, name: &str, path: &Path) -> Result<Image> {
        validate_name("image", name)?;
        if !path.is_absolute() {
            return Err(
                CoreError::invalid(format!("image path '{}' is not absolute", path.display())).into(),
            );
        }
        if !path.exists() {
            return Err(CoreError::invalid(format!("image path '{}' does not exist", path.display())).into());
        }
        if path.is_dir() && std::fs::symlink_metadata(path.join("bin/sh")).is_err() {
            return Err(CoreError::invalid(format!(
                "'{}' is not a root filesystem: it has no bin/sh",
                path.display()
            ))
            .into());
        }
        self.ensure_image_name_free(name)?;
        self.add_image(name, path.display().to_string(), |dest| {
            cell_runtime::image::import_rootfs(path, dest).map_err(|e| {
                // The runtime checks tarballs after unpacking: what it refuses
                // there is the user's input, not a system failure.
                CoreError::invalid(format!(
                    "failed to import image {name} from {}: {e}",
                    path.display()
                ))
                .into()
            })
        })
    }

    fn ensure_image_name_free(&self, name: &str) -> Result<()> {
        let taken = self
            .read()?
            .image_by_name_or_id(name)
            .context(|| format!("failed to look up image {name}"))?;
        match taken {
            Some(_) => Err(CoreError::conflict(format!("image name '{name}' is already in use")).into()),
            None => Ok(()),
        }
    }

    /// Makes the rootfs with `build`, then records the image; the rootfs is
    /// removed again if recording fails, so nothing is left half-made.
    fn add_image(
        &self,
        name: &str,
        source: String,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Image> {
        let image = Image {
            id: new_id(),
            name: name.to_string(),
            source,
            cmd: vec!["/bin/sh".into()],
            created: self.now(),
        };
        let dir = self.image_dir(&image.id);
        std::fs::create_dir_all(&dir).context(|| format!("failed to create {}", dir.display()))?;
        let result = build(&self.image_rootfs(&image.id)).and_then(|()| {
            let store = self.store();
            store.insert_image(&image).map_err(|e| {
                if e.is_constraint_violation() {
                    CoreError::conflict(format!("image name '{name}' is already in use")).into()
                } else {
                    crate::EngineError::Store {
                        context: format!("failed to record image {name}"),
                        source: e,
                    }
                }
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result.map(|()| image)
    }

    /// The root filesystem directory of an image.
    pub fn image_rootfs(&self, image_id: &str) -> PathBuf {
        self.image_dir(image_id).join("rootfs")
    }

    /// All images.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.read()?.images().context(|| "failed to list images".into())
    }

    /// Removes an image that no container uses.
    pub fn remove_image(&self, reference: &str) -> Result<Image> {
        let image = self.find_image(reference)?;
        let store = self.store();
        let users = store
            .containers_of_image(&image.id)
            .context(|| format!("failed to remove image {reference}"))?;
        if !users.is_empty() {
            return Err(CoreError::conflict(format!(
                "image '{}' is used by containers: {}",
                image.name,
                users.join(", ")
            ))
            .into());
        }
        store
            .delete_image(&image.id)
            .context(|| format!("failed to remove image {reference}"))?;
        drop(store);
        let dir = self.image_dir(&image.id);
        std::fs::remove_dir_all(&dir).context(|| format!("failed to remove {}", dir.display()))?;
        Ok(image)
    }

    /// The image named `reference`; `busybox` is built when missing, as
    /// `cell run busybox` promises.
    pub(crate) fn image_for_run(&self, reference: &str) -> Result<Image> {
        match self.find_image(reference) {
            Err(crate::EngineError::User(e))
                if e.kind == cell_core::ErrorKind::NotFound
                    && reference.strip_suffix(":latest").unwrap_or(reference) == BUSYBOX =>
            {
                match self.create_busybox_image(BUSYBOX) {
                    // Two concurrent runs may both build it; the loser uses the winner's.
                    Err(crate::EngineError::User(e)) if e.kind == cell_core::ErrorKind::Conflict => {
                        self.find_image(BUSYBOX)
                    }
                    other => other,
                }
            }
            other => other,
        }
    }
}
