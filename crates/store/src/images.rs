//! Image rows.

use crate::{Result, Store, format_time, from_json, parse_time, to_json};
use cell_core::model::Image;
use rusqlite::{OptionalExtension, Row, params};

const COLUMNS: &str = "id, name, source, cmd, created";

fn image_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn image_from_columns(
    (id, name, source, cmd, created): (String, String, String, String, String),
) -> Result<Image> {
    Ok(Image {
        id,
        name,
        source,
        cmd: from_json("cmd", &cmd)?,
        created: parse_time(&created)?,
    })
}

impl Store {
    /// Records a new image.
    pub fn insert_image(&self, image: &Image) -> Result<()> {
        self.conn.execute(
            "INSERT INTO images (id, name, source, cmd, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                image.id,
                image.name,
                image.source,
                to_json(&image.cmd),
                format_time(&image.created)
            ],
        )?;
        Ok(())
    }

    /// All images, oldest first.
    pub fn images(&self) -> Result<Vec<Image>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM images ORDER BY created"))?;
        let rows = stmt
            .query_map([], image_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(image_from_columns).collect()
    }

    /// The image with this exact name or id.
    pub fn image_by_name_or_id(&self, name_or_id: &str) -> Result<Option<Image>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM images WHERE name = ?1 OR id = ?1 ORDER BY name = ?1 DESC"),
                [name_or_id],
                image_from_row,
            )
            .optional()?;
        row.map(image_from_columns).transpose()
    }

    /// Ids of the images whose id starts with `prefix`.
    pub fn image_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM images WHERE substr(id, 1, length(?1)) = ?1")?;
        Ok(stmt
            .query_map([prefix], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Names of the containers made from the image.
    pub fn containers_of_image(&self, image_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM containers WHERE image_id = ?1 ORDER BY name")?;
        Ok(stmt
            .query_map([image_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets an image. Fails if containers still use it (foreign key).
    pub fn delete_image(&self, id: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM images WHERE id = ?1", [id])? > 0)
    }
}
