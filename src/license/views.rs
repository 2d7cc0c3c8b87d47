//! `/platform/license` (appliance): the license's state, limits and use, and what is wrong when
//! provisioning is refused. On a control plane it answers 404, like `GET /api/license`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::html;

use crate::console::fmt::{self, when};
use crate::console::layout::{Ctx, Tone, badge, header, page};
use crate::console::{ConsoleError, PageResult};
use crate::license::LicenseState;
use crate::state::AppState;

/// The license page.
pub fn router() -> Router<AppState> {
    Router::new().route("/platform/license", get(view_license_get))
}

/// The license page.
pub async fn view_license_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    state
        .onprem()
        .require_appliance("GET /platform/license")
        .map_err(ConsoleError)?;
    let r = crate::license::queries::report(&state)
        .await
        .map_err(ConsoleError)?;
    let now = state.clock().now();
    let tone = match r.status.state {
        LicenseState::Valid => Tone::Ok,
        LicenseState::Expired => Tone::Critical,
        _ => Tone::Critical,
    };
    let body = html! {
        (header("License", Some("Checked offline against the control plane's public key, at start and hourly."), html! {}))
        @if r.status.state != LicenseState::Valid {
            div.verdict.critical role="alert" {
                (badge(tone, r.status.state.as_str()))
                p { (r.status.problem.as_deref().unwrap_or("The license does not allow provisioning.")) " Reads keep working; new tenants are refused until a valid license is installed." }
            }
        }
        section.tiles {
            div.tile { span.tile-label { "State" } span.tile-value { (badge(tone, r.status.state.as_str())) } span.tile-note { "checked " (fmt::relative(r.status.checked_at, now)) } }
            div.tile { span.tile-label { "Tenants" } span.tile-value { (r.tenants_in_use) } span.tile-note { (r.max_tenants.map_or("no limit".to_string(), |m| format!("of {m} allowed"))) } }
            div.tile {
                span.tile-label { "Provisioning" }
                span.tile-value { @if r.provisioning == "allowed" { (badge(Tone::Ok, "allowed")) } @else { (badge(Tone::Critical, "refused")) } }
                span.tile-note { @if let Some(d) = r.days_left { (d) " days left" } }
            }
        }
        @if let Some(l) = &r.status.license {
            div.card {
                h2 { "License " code { (l.license_id) } }
                dl {
                    dt { "Customer" } dd { (l.customer) }
                    dt { "Install" } dd { code { (l.install_id) } }
                    dt { "Issued" } dd { (when(l.issued_at)) }
                    dt { "Expires" } dd { (when(l.expires_at)) " (" (fmt::relative(l.expires_at, now)) ")" }
                    dt { "Features" } dd { @if l.features.is_empty() { "—" } @else { (l.features.join(", ")) } }
                    dt { "Air-gapped" } dd { (if l.air_gapped { "yes" } else { "no" }) }
                    dt { "File" } dd { code { (r.status.file) } }
                }
            }
        }
    };
    Ok(page(&ctx, "License", body))
}
