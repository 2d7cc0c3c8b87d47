//! Apps: the parent product surface of tenants (PRODUCT.md A1, operator guide §1.1: a tenant
//! cannot exist without an existing `app_id`).

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::audit::ledger::{Audit, Subject};
use crate::clock::{from_micros, to_micros};
use crate::error::{Error, Result, Validator};
use crate::store::{Dir, Range, Reader, Table, WriteCtx, codec};
use crate::tenants::model::{free_slug, parse_display_name, parse_slug, slug_from_name};

/// Apps: `id -> AppRecord`.
pub const APPS: Table = Table::new("apps");
/// App slug reservations: `slug -> id`.
pub const APP_SLUGS: Table = Table::new("app_slugs");

/// An app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// The stored app.
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

fn from_record(id: Uuid, r: AppRecord) -> App {
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

/// `POST /api/apps` body.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Product name, 1–120 characters.
    pub name: String,
    /// Slug; derived from the name when absent.
    pub slug: Option<String>,
    /// Up to 1000 characters.
    pub description: Option<String>,
}

/// Validated [`NewApp`].
#[derive(Clone, Debug)]
pub struct AppInput {
    name: String,
    slug: Option<String>,
    description: Option<String>,
}

impl NewApp {
    /// Checks every field at once.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self) -> Result<AppInput> {
        let mut v = Validator::new();
        let name = v.take(
            "name",
            parse_display_name(&self.name).map_err(|m| m.replace("display_name", "name")),
        );
        let slug = match self.slug.as_deref() {
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

/// Creates an app, writing `app.created.v1` on the platform chain.
///
/// Errors: 409 `slug_taken` when an explicit slug is in use.
pub fn create(ctx: &mut WriteCtx<'_>, input: &AppInput) -> Result<App> {
    let slug = match &input.slug {
        Some(s) => {
            if ctx.contains(APP_SLUGS, s.as_bytes())? {
                return Err(Error::conflict(
                    "slug_taken",
                    format!("app slug '{s}' is already in use: choose another"),
                ));
            }
            s.clone()
        }
        None => free_slug(&slug_from_name(&input.name), |c| {
            Ok(ctx.contains(APP_SLUGS, c.as_bytes())?)
        })?,
    };
    let id = crate::ids::new_id(ctx.now);
    let record = AppRecord::V1 {
        name: input.name.clone(),
        slug: slug.clone(),
        description: input.description.clone(),
        created_at: to_micros(ctx.now),
    };
    ctx.put_record(APPS, id.as_bytes(), &record)?;
    ctx.put(APP_SLUGS, slug.as_bytes(), id.as_bytes())?;
    ctx.audit(
        "app.created.v1",
        &Subject::platform("app", id),
        json!({"name": input.name, "slug": slug, "description": input.description}),
    )?;
    Ok(from_record(id, record))
}

/// One app.
///
/// Errors: 404 when unknown.
pub fn get(r: &impl Reader, id: &Uuid) -> Result<App> {
    r.get_record::<AppRecord>(APPS, id.as_bytes())?
        .map(|rec| from_record(*id, rec))
        .ok_or_else(|| Error::not_found("app", id.to_string()))
}

/// Does the app exist?
pub fn exists(r: &impl Reader, id: &Uuid) -> Result<bool> {
    Ok(r.contains(APPS, id.as_bytes())?)
}

/// A page of apps in creation order after `cursor` (an app id).
pub fn list(
    r: &impl Reader,
    after: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<App>, Option<Uuid>)> {
    let mut range = Range::all();
    if let Some(a) = after {
        range = range.after(a.as_bytes());
    }
    let mut out = Vec::new();
    let mut more = false;
    r.scan(APPS, &range, Dir::Asc, &mut |k, v| {
        if out.len() == limit {
            more = true;
            return Ok(ControlFlow::Break(()));
        }
        if let Ok(id) = Uuid::from_slice(k) {
            out.push(from_record(id, codec::decode(APPS.name(), v)?));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let next = if more { out.last().map(|a| a.id) } else { None };
    Ok((out, next))
}
