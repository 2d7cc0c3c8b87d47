//! Apps, the parent product surface of tenants (PRODUCT.md A1, operator guide §1.1): the
//! domain type, its stored record, and the parsing of a new app.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::from_micros;
use crate::error::{Result, Validator};
use crate::store::Table;
use crate::tenants::model::{parse_display_name, parse_slug};

/// Apps: `id -> AppRecord`.
pub const APPS: Table = Table::new("apps");
/// App slug reservations: `slug -> id`.
pub const APP_SLUGS: Table = Table::new("app_slugs");

/// 409: an explicit slug is already an app's.
pub const SLUG_TAKEN: &str = "slug_taken";

/// An app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// UUIDv7.
    pub id: Uuid,
    /// Product name, e.g. `Projex Work`.
    pub name: String,
    /// Unique slug.
    pub slug: String,
    /// What the app is.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The stored app. Its variant order is the file format: add new versions at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AppRecord {
    /// Version 1.
    V1 {
        /// Name.
        name: String,
        /// Slug.
        slug: String,
        /// Description.
        description: Option<String>,
        /// Microseconds.
        created_at: i64,
    },
}

impl App {
    /// The app of a stored record.
    pub fn from_record(id: Uuid, r: AppRecord) -> App {
        let AppRecord::V1 {
            name,
            slug,
            description,
            created_at,
        } = r;
        App {
            id,
            name,
            slug,
            description,
            created_at: from_micros(created_at),
        }
    }
}

/// A new app as asked for, unchecked (from the API, the console form or the demo).
#[derive(Clone, Debug, Default)]
pub struct AppDraft {
    /// Product name, 1–120 characters.
    pub name: String,
    /// Slug; derived from the name when absent.
    pub slug: Option<String>,
    /// Up to 1000 characters.
    pub description: Option<String>,
}

/// A checked [`AppDraft`].
#[derive(Clone, Debug)]
pub struct AppInput {
    pub(super) name: String,
    pub(super) slug: Option<String>,
    pub(super) description: Option<String>,
}

impl AppDraft {
    /// Checks every field at once.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self) -> Result<AppInput> {
        let mut v = Validator::new();
        let name = v.take(
            "name",
            parse_display_name(&self.name).map_err(|m| m.replace("display_name", "name")),
        );
        let slug = match self
            .slug
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => v.take("slug", parse_slug(s)).map(Some),
            None => Some(None),
        };
        let description = self
            .description
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            v.add("description", "description is longer than 1000 characters");
        }
        v.finish()?;
        Ok(AppInput {
            name: name.unwrap_or_default(),
            slug: slug.flatten(),
            description,
        })
    }
}
