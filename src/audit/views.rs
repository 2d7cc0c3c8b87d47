//! `/platform/audit`: the hash-chain browser (operator guide §7): filter by chain or tenant,
//! actor, action and date range; verify with a green or red result naming the first bad seq;
//! sign a checkpoint; export a chain as NDJSON.

use axum::Form;
use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::audit::queries::{self, AuditFilter};
use crate::audit::{self, ChainId, ChainReport, Mode};
use crate::console::fmt::{self, when};
use crate::console::layout::{Ctx, Tone, badge, empty, header, page, redirect};
use crate::console::{ConsoleError, PageResult, urlencode};
use crate::error::Error;
use crate::rbac::Permission;
use crate::state::AppState;

/// The audit pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/audit", get(view_audit_get))
        .route("/platform/audit/verify", post(view_audit_verify_post))
        .route(
            "/platform/audit/checkpoint",
            post(view_audit_checkpoint_post),
        )
        .route("/tenant/{tenant_id}/audit", get(view_tenant_audit_get))
        .route(
            "/tenant/{tenant_id}/audit/verify",
            post(view_tenant_audit_verify_post),
        )
}

/// The filters as the form sends them (dates may be plain `YYYY-MM-DD`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuditForm {
    chain: String,
    actor_id: String,
    action: String,
    from: String,
    to: String,
    cursor: String,
}

fn day_bound(s: &str, end: bool) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if t.len() == 10 {
        return Some(if end {
            format!("{t}T23:59:59.999999Z")
        } else {
            format!("{t}T00:00:00Z")
        });
    }
    Some(t.to_string())
}

impl AuditForm {
    fn filter(&self) -> AuditFilter {
        let nonempty = |s: &str| Some(s.trim().to_string()).filter(|v| !v.is_empty());
        // A bare tenant id in the chain box means that tenant's chain.
        let chain = nonempty(&self.chain).map(|c| {
            if crate::ids::parse_uuid(&c).is_some() {
                format!("tenant:{c}")
            } else {
                c
            }
        });
        AuditFilter {
            chain,
            tenant_id: None,
            actor_id: nonempty(&self.actor_id),
            action: nonempty(&self.action),
            from: day_bound(&self.from, false),
            to: day_bound(&self.to, true),
            limit: Some(50),
            cursor: nonempty(&self.cursor),
        }
    }
}

fn tools(ctx: &Ctx, chain: &str) -> Markup {
    html! {
        div.grid2 {
            @if ctx.can(Permission::AuditVerify) {
                form.card.form method="post" action="/platform/audit/verify" {
                    h2 { "Verify" }
                    p.small.muted { "Walks each chain from its last good signed checkpoint (or from seq 1 with a full walk), then signs a new checkpoint at each head that verified." }
                    (ctx.csrf())
                    label { "Chain " input name="chain" value=(chain) placeholder="all chains, or platform / tenant:<uuid>"; }
                    label.check { input type="checkbox" name="full" value="yes"; " Full walk from seq 1" }
                    button.primary type="submit" { "Verify" }
                }
                form.card.form method="post" action="/platform/audit/checkpoint" {
                    h2 { "Checkpoint" }
                    p.small.muted { "Signs the current head of one chain with the install key, after verifying it since its last checkpoint." }
                    (ctx.csrf())
                    label { "Chain " input name="chain" required value=(if chain.is_empty() { "platform" } else { chain }); }
                    button type="submit" { "Sign checkpoint" }
                }
            }
        }
    }
}

/// The browser.
pub async fn view_audit_get(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
    Query(f): Query<AuditForm>,
) -> PageResult {
    let q = f.filter().parse().map_err(ConsoleError)?;
    let chain_text = q.chain.map(|c| c.to_string()).unwrap_or_default();
    let page_rows = queries::browse(&state, q).await.map_err(ConsoleError)?;
    let base = crate::console::without_cursor(raw);
    let body = html! {
        (header("Audit ledger", Some("Every change, hash-chained per tenant and for the platform. Newest first."), html! {
            @if ctx.can(Permission::AuditExport) && !chain_text.is_empty() {
                a.button href={"/api/audit/export?chain=" (urlencode(&chain_text))} { "Export " (chain_text) " (NDJSON)" }
            }
        }))
        form.filters method="get" action="/platform/audit" role="search" {
            div.field.inline { label for="chain" { "Chain or tenant id" } input #chain name="chain" value=(f.chain) placeholder="platform, tenant:<uuid> or <uuid>"; }
            div.field.inline { label for="actor_id" { "Actor" } input #actor_id name="actor_id" value=(f.actor_id) placeholder="username, job:…"; }
            div.field.inline {
                label for="action" { "Action" }
                select #action name="action" {
                    option value="" selected[f.action.is_empty()] { "Any" }
                    @for a in ctx.registry.events() { option value=(a) selected[f.action == *a] { (a) } }
                }
            }
            div.field.inline { label for="from" { "From" } input #from name="from" type="date" value=(f.from); }
            div.field.inline { label for="to" { "To" } input #to name="to" type="date" value=(f.to); }
            div.field.inline.buttons { button type="submit" { "Filter" } a href="/platform/audit" { "Reset" } }
        }
        (tools(&ctx, &chain_text))
        @if page_rows.items.is_empty() {
            (empty("No entry matches these filters.", html! {}))
        } @else {
            (entries_table(&page_rows.items, true))
            nav.pager aria-label="Pages" {
                @if !f.cursor.is_empty() { a href={"/platform/audit?" (base)} { "← Newest" } }
                @if let Some(c) = &page_rows.next_cursor {
                    a href={"/platform/audit?" (base) @if !base.is_empty() { "&" } "cursor=" (c.encode())} { "Older →" }
                }
            }
        }
    };
    Ok(page(&ctx, "Audit", body))
}

/// The entries as a table; `chains` adds the chain column (the platform's browser).
fn entries_table(items: &[crate::audit::EntryView], chains: bool) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr {
                th scope="col" { "Time" }
                @if chains { th scope="col" { "Chain" } }
                th scope="col" { "Seq" } th scope="col" { "Action" }
                th scope="col" { "Actor" } th scope="col" { "Target" } th scope="col" { "Details" }
            } }
            tbody {
                @for e in items {
                    tr {
                        td { (e.ts.get(..19).unwrap_or(&e.ts).replace('T', " ")) }
                        @if chains { td { a href={"/platform/audit?chain=" (urlencode(&e.chain))} { (short_chain(&e.chain)) } } }
                        td { (e.seq) }
                        td { code { (e.action) } }
                        td { (e.actor.id) br; span.small.muted { (e.actor.kind.as_str()) } }
                        td { (e.target.kind) " " (e.target.id.get(..13).unwrap_or(&e.target.id)) }
                        td {
                            details {
                                summary { (fmt::data_summary(e.data.as_ref())) }
                                pre.small { (e.data.as_ref().map_or_else(|| "data shredded".to_string(), |d| serde_json::to_string_pretty(d).unwrap_or_default())) }
                                p.small.muted { "hash " code { (e.hash.get(..16).unwrap_or("")) "…" } " prev " code { (e.prev.get(..16).unwrap_or("")) "…" } }
                            }
                        }
                    }
                }
            }
        } }
    }
}

fn short_chain(c: &str) -> String {
    match c.strip_prefix("tenant:") {
        Some(id) => format!("tenant:{}…", id.get(..8).unwrap_or(id)),
        None => c.to_string(),
    }
}

/// The verify form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VerifyForm {
    chain: String,
    full: String,
}

fn parse_chain(s: &str) -> Result<Option<ChainId>, Error> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let t = if crate::ids::parse_uuid(t).is_some() {
        format!("tenant:{t}")
    } else {
        t.to_string()
    };
    ChainId::parse(&t)
        .map(Some)
        .map_err(|m| Error::invalid("chain", m))
}

/// Runs verification and shows a green or red result per chain.
pub async fn view_audit_verify_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<VerifyForm>,
) -> PageResult {
    let chain = match parse_chain(&f.chain) {
        Ok(c) => c,
        Err(e) => return Ok(redirect("/platform/audit", Tone::Critical, &e.to_string())),
    };
    let mode = if f.full == "yes" {
        Mode::Full
    } else {
        Mode::FromCheckpoint
    };
    let reports = match audit::verify_and_checkpoint(
        state.store(),
        state.clock().now(),
        state.install_key(),
        chain,
        mode,
    )
    .await
    {
        Ok(r) => r,
        Err(e @ Error::NotFound { .. }) => {
            return Ok(redirect("/platform/audit", Tone::Critical, &e.to_string()));
        }
        Err(e) => return Err(ConsoleError(e)),
    };
    let broken: Vec<&ChainReport> = reports.iter().filter(|r| !r.ok).collect();
    let entries: u64 = reports.iter().map(|r| r.entries_checked).sum();
    let body = html! {
        (header("Verification result", Some(&format!("{} chain(s), {} entries re-hashed, {}.", reports.len(), entries, if mode == Mode::Full { "full walk" } else { "from the last good checkpoint" })), html! {
            a.button href="/platform/audit" { "Back to the ledger" }
        }))
        @if broken.is_empty() {
            div.verdict.ok role="status" {
                (badge(Tone::Ok, "VERIFIED"))
                p { "Every chain verifies: hashes, links, data digests and signed checkpoints all match. New checkpoints were signed at the heads." }
            }
        } @else {
            div.verdict.critical role="alert" {
                (badge(Tone::Critical, "BROKEN"))
                p { (broken.len()) " chain(s) do not verify. They were not signed. Never repair a chain by re-hashing: investigate." }
                ul {
                    @for r in &broken {
                        li { strong { (r.chain) } ": first bad seq " strong { (r.first_bad_seq.unwrap_or(0)) } " — " (r.problem.clone().unwrap_or_default()) }
                    }
                }
            }
        }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Chain" } th scope="col" { "Result" } th scope="col" { "From seq" } th scope="col" { "Head" } th scope="col" { "First bad seq" } } }
            tbody {
                @for r in reports.iter().filter(|r| !r.ok).chain(reports.iter().filter(|r| r.ok).take(200)) {
                    tr {
                        td { a href={"/platform/audit?chain=" (urlencode(&r.chain))} { (r.chain) } }
                        td { @if r.ok { (badge(Tone::Ok, "ok")) } @else { (badge(Tone::Critical, "broken")) } }
                        td { (r.verified_from_seq) }
                        td { (r.head_seq) " " code.small { (r.head_hash.get(..12).unwrap_or("")) "…" } }
                        td { @if let Some(s) = r.first_bad_seq { strong { (s) } } @else { "—" } }
                    }
                }
            }
        } }
        @if reports.len() > 200 + broken.len() { p.muted { "Showing the broken chains and the first 200 that verified." } }
        p.muted.small { "Verified at " (when(state.clock().now())) "." }
    };
    Ok(page(&ctx, "Verification result", body))
}

/// The checkpoint form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CheckpointForm {
    chain: String,
}

/// Signs a checkpoint.
pub async fn view_audit_checkpoint_post(
    State(state): State<AppState>,
    _ctx: Ctx,
    Form(f): Form<CheckpointForm>,
) -> PageResult {
    let chain = match parse_chain(&f.chain) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Ok(redirect(
                "/platform/audit",
                Tone::Critical,
                "Name the chain to sign.",
            ));
        }
        Err(e) => return Ok(redirect("/platform/audit", Tone::Critical, &e.to_string())),
    };
    let back = format!("/platform/audit?chain={}", urlencode(&chain.to_string()));
    match audit::checkpoint(
        state.store(),
        state.clock().now(),
        state.install_key(),
        chain,
    )
    .await
    {
        Ok(cp) => Ok(redirect(
            &back,
            Tone::Ok,
            &format!(
                "Signed {} at seq {} (hash {}…).",
                cp.chain,
                cp.seq,
                cp.hash.get(..12).unwrap_or("")
            ),
        )),
        Err(e @ (Error::Conflict { .. } | Error::NotFound { .. })) => {
            Ok(redirect(&back, Tone::Critical, &e.to_string()))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// A short feed of ledger entries, newest first (a tenant's recent activity).
pub fn feed(entries: &[crate::audit::EntryView], now: chrono::DateTime<chrono::Utc>) -> Markup {
    html! {
        @if entries.is_empty() {
            p.muted { "No activity." }
        } @else {
            ol.feed {
                @for e in entries {
                    li {
                        span.seq { "#" (e.seq) }
                        code { (e.action) }
                        " by " strong { (e.actor.id) }
                        " · " (fmt::relative(chrono::DateTime::parse_from_rfc3339(&e.ts).map(|t| t.to_utc()).unwrap_or(now), now))
                        @let s = fmt::data_summary(e.data.as_ref());
                        @if !s.is_empty() { div.small.muted { (s) } }
                    }
                }
            }
        }
    }
}

fn tenant_shell(ctx: &Ctx) -> Result<crate::console::layout::TenantShell, ConsoleError> {
    ctx.tenant
        .clone()
        .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))
}

/// The Tenant console's Audit page: the tenant's own chain, with filters and Verify (the guide's
/// opening promise: "your own auditors can verify").
pub async fn view_tenant_audit_get(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
    Query(f): Query<AuditForm>,
) -> PageResult {
    let t = tenant_shell(&ctx)?;
    let mut filter = AuditForm {
        chain: String::new(),
        ..f.clone()
    }
    .filter();
    filter.tenant_id = Some(t.id.to_string());
    let q = filter.parse().map_err(ConsoleError)?;
    let page_rows = queries::browse(&state, q).await.map_err(ConsoleError)?;
    let base = crate::console::without_cursor(raw);
    let here = t.at("/audit");
    let body = html! {
        (header("Audit", Some("Everything done in this tenant, by your members and by platform staff, on your tenant's own hash chain. Newest first."), html! {}))
        form.filters method="get" action=(here) role="search" {
            div.field.inline { label for="actor_id" { "Actor" } input #actor_id name="actor_id" value=(f.actor_id) placeholder="persona or key id, operator username"; }
            div.field.inline {
                label for="action" { "Action" }
                select #action name="action" {
                    option value="" selected[f.action.is_empty()] { "Any" }
                    @for a in ctx.registry.events() { option value=(a) selected[f.action == *a] { (a) } }
                }
            }
            div.field.inline { label for="from" { "From" } input #from name="from" type="date" value=(f.from); }
            div.field.inline { label for="to" { "To" } input #to name="to" type="date" value=(f.to); }
            div.field.inline.buttons { button type="submit" { "Filter" } a href=(here) { "Reset" } }
        }
        form.card.form method="post" action=(t.at("/audit/verify")) {
            h2 { "Verify" }
            p.small.muted { "Re-hashes your chain from its last signed checkpoint and checks every link, then signs a new checkpoint at its head." }
            (ctx.csrf())
            label.check { input type="checkbox" name="full" value="yes"; " Full walk from seq 1" }
            button.primary type="submit" disabled[ctx.read_only()] { "Verify" }
        }
        @if page_rows.items.is_empty() {
            (empty("No entry matches these filters.", html! {}))
        } @else {
            (entries_table(&page_rows.items, false))
            nav.pager aria-label="Pages" {
                @if !f.cursor.is_empty() { a href={(here) "?" (base)} { "← Newest" } }
                @if let Some(c) = &page_rows.next_cursor {
                    a href={(here) "?" (base) @if !base.is_empty() { "&" } "cursor=" (c.encode())} { "Older →" }
                }
            }
        }
    };
    Ok(page(&ctx, "Audit", body))
}

/// Verifies the tenant's chain and shows the verdict.
pub async fn view_tenant_audit_verify_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<VerifyForm>,
) -> PageResult {
    let t = tenant_shell(&ctx)?;
    let mode = if f.full == "yes" {
        Mode::Full
    } else {
        Mode::FromCheckpoint
    };
    let reports = audit::verify_and_checkpoint(
        state.store(),
        state.clock().now(),
        state.install_key(),
        Some(ChainId::Tenant(t.id)),
        mode,
    )
    .await
    .map_err(ConsoleError)?;
    let Some(r) = reports.first() else {
        return Ok(redirect(
            &t.at("/audit"),
            Tone::Critical,
            "Your chain has no entries yet.",
        ));
    };
    if r.ok {
        Ok(redirect(
            &t.at("/audit"),
            Tone::Ok,
            &format!(
                "VERIFIED: {} entries re-hashed from seq {}; the head is seq {} and a new checkpoint was signed.",
                r.entries_checked, r.verified_from_seq, r.head_seq
            ),
        ))
    } else {
        Ok(redirect(
            &t.at("/audit"),
            Tone::Critical,
            &format!(
                "BROKEN at seq {}: {}. Tell your platform contact; the chain was not signed.",
                r.first_bad_seq.unwrap_or(0),
                r.problem.clone().unwrap_or_default()
            ),
        ))
    }
}
