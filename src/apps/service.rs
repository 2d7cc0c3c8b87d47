//! The rules of apps: creating one (operator guide §1.1).

use serde_json::json;

use super::model::{APP_SLUGS, APPS, App, AppInput, AppRecord, SLUG_TAKEN};
use crate::audit::ledger::{Audit, Subject};
use crate::clock::to_micros;
use crate::error::{Error, Result};
use crate::store::{Reader, WriteCtx};
use crate::tenants::model::{free_slug, slug_from_name};

/// Creates an app, writing `app.created.v1` on the platform chain.
///
/// Errors: 409 `slug_taken` when an explicit slug is in use.
pub fn create(ctx: &mut WriteCtx<'_>, input: &AppInput) -> Result<App> {
    let slug = match &input.slug {
        Some(s) => {
            if ctx.contains(APP_SLUGS, s.as_bytes())? {
                return Err(Error::conflict(
                    SLUG_TAKEN,
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
    let record = AppRecord::V2 {
        name: input.name.clone(),
        slug: slug.clone(),
        description: input.description.clone(),
        role_templates: input.role_templates.clone(),
        created_at: to_micros(ctx.now),
    };
    ctx.put_record(APPS, id.as_bytes(), &record)?;
    ctx.put(APP_SLUGS, slug.as_bytes(), id.as_bytes())?;
    ctx.audit(
        "app.created.v1",
        &Subject::platform("app", id),
        json!({
            "name": input.name,
            "slug": slug,
            "description": input.description,
            "role_templates": input
                .role_templates
                .iter()
                .map(|t| json!({"name": t.name, "scopes": t.scopes().iter().map(|s| s.as_str()).collect::<Vec<_>>()}))
                .collect::<Vec<_>>(),
        }),
    )?;
    Ok(App::from_record(id, record))
}
