//! Pricing catalogs (operator guide §3, PRODUCT.md 12): versioned rate tables of SKUs, each
//! version `draft → published → archived`, tenants pinned to a published version, and the one
//! pricing function ([`price`]) that the live meter uses and invoices will reuse.
//!
//! Vocabulary (Stripe Billing and Lago): a rate's `tiers` are **graduated** (each unit is priced
//! by the tier it falls in, Stripe's `tiers_mode=graduated`), each tier with an `up_to` (null:
//! the last, unbounded tier) and a `unit_amount_minor`. Prices below one minor unit per unit
//! (an API call at 0.02 cents) use `per_units`: the tier amounts are for that many units
//! (Stripe's `transform_quantity.divide_by`), and the cost is rounded half up once, at the end.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::from_micros;
use crate::error::{Result, Validator};
use crate::plans::model::{MAX_AMOUNT, parse_code, parse_currency};
use crate::store::Table;
use crate::store::keys::Key;

/// Catalogs: `id -> CatalogRecord`.
pub const CATALOGS: Table = Table::new("catalogs");
/// Versions: `catalog id, version (u32) -> VersionRecord`.
pub const CATALOG_VERSIONS: Table = Table::new("catalog_versions");
/// Pins: `tenant -> PinRecord`.
pub const CATALOG_PINS: Table = Table::new("catalog_pins");
/// The tenants of a version: `catalog, version, tenant -> ()`.
pub const CATALOG_PINNED: Table = Table::new("catalog_pinned");
/// How many tenants a version has: `catalog, version -> u64`, maintained with the pins.
pub const CATALOG_PIN_COUNTS: Table = Table::new("catalog_pin_counts");

/// Most catalogs on a platform.
pub const MAX_CATALOGS: usize = 200;
/// Most versions of a catalog.
pub const MAX_VERSIONS: u32 = 1000;
/// Most SKUs in a version's rate table.
pub const MAX_RATES: usize = 200;
/// Most tiers of a rate.
pub const MAX_TIERS: usize = 16;
/// Most tenants one migration moves.
pub const MAX_MIGRATE: usize = 1000;
/// The largest quantity a rate or cap takes (10^15 units).
pub const MAX_QUANTITY: u64 = 1_000_000_000_000_000;

/// 409: a published or archived version is immutable.
pub const VERSION_IMMUTABLE: &str = "version_immutable";
/// 409: the status flip is not allowed from the version's status.
pub const INVALID_STATUS: &str = "invalid_status";
/// 409: tenants are still pinned to the version.
pub const VERSION_IN_USE: &str = "version_in_use";
/// 409: a tenant can be pinned only to a published version.
pub const VERSION_NOT_PUBLISHED: &str = "version_not_published";

/// A version's status.
///
/// REMEMBER: these numbers are the file format: never renumber; add at the end
/// (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Status {
    /// Editable; prices nothing.
    Draft = 0,
    /// Immutable; tenants may be pinned to it.
    Published = 1,
    /// Retired: no tenant pinned, kept for the invoices it priced.
    Archived = 2,
}

impl Status {
    /// `draft`, `published`, `archived`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Published => "published",
            Status::Archived => "archived",
        }
    }
}

/// One graduated tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Last unit of the tier (inclusive, counted from the period's first unit); None: unbounded.
    pub up_to: Option<u64>,
    /// Minor units per `per_units` units in this tier.
    pub unit_amount_minor: i64,
}

/// A SKU's rate in a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// SKU code, e.g. `api_call`.
    pub sku: String,
    /// Unit, e.g. `api_call`, `mb_processed`, `ai_token`.
    pub unit: String,
    /// Tier amounts are for this many units (1 by default).
    pub per_units: u64,
    /// Graduated tiers, `up_to` increasing, the last one unbounded.
    pub tiers: Vec<Tier>,
    /// Soft cap per billing period (None: none).
    pub soft_cap: Option<u64>,
}

/// The cost of `quantity` units at `rate`, in minor units: graduated tiers, rounded half up
/// once. Saturates at `i64::MAX` (never reached with the bounds of [`MAX_QUANTITY`] and
/// [`MAX_AMOUNT`]).
pub fn price(rate: &Rate, quantity: u64) -> i64 {
    let mut total: i128 = 0;
    let mut priced: u64 = 0;
    for t in &rate.tiers {
        if priced >= quantity {
            break;
        }
        let end = t.up_to.map_or(quantity, |u| u.min(quantity));
        if end > priced {
            total += i128::from(end - priced) * i128::from(t.unit_amount_minor);
            priced = end;
        }
    }
    let per = i128::from(rate.per_units.max(1));
    let rounded = (total * 2 + per) / (per * 2);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// A catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// UUIDv7.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// ISO 4217: every amount of its versions.
    pub currency: String,
    /// Its newest version number.
    pub latest_version: u32,
    /// Creation.
    pub created_at: DateTime<Utc>,
}

/// The stored catalog. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CatalogRecord {
    /// Version 1.
    V1 {
        /// Name.
        name: String,
        /// ISO 4217.
        currency: String,
        /// Newest version.
        latest_version: u32,
        /// µs.
        created_at: i64,
    },
}

impl Catalog {
    /// From its record.
    pub fn from_record(id: Uuid, r: CatalogRecord) -> Catalog {
        let CatalogRecord::V1 {
            name,
            currency,
            latest_version,
            created_at,
        } = r;
        Catalog {
            id,
            name,
            currency,
            latest_version,
            created_at: from_micros(created_at),
        }
    }

    /// Its record.
    pub fn to_record(&self) -> CatalogRecord {
        CatalogRecord::V1 {
            name: self.name.clone(),
            currency: self.currency.clone(),
            latest_version: self.latest_version,
            created_at: crate::clock::to_micros(self.created_at),
        }
    }
}

/// A catalog version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Its catalog.
    pub catalog_id: Uuid,
    /// 1, 2, ...
    pub version: u32,
    /// Status.
    pub status: Status,
    /// The rate table, by SKU.
    pub rates: Vec<Rate>,
    /// The version it was cloned from.
    pub cloned_from: Option<u32>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last edit or flip.
    pub updated_at: DateTime<Utc>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
}

impl Version {
    /// The rate of `sku`.
    pub fn rate(&self, sku: &str) -> Option<&Rate> {
        self.rates.iter().find(|r| r.sku == sku)
    }
}

/// The stored version. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum VersionRecord {
    /// Version 1.
    V1 {
        /// Status.
        status: Status,
        /// Rates.
        rates: Vec<Rate>,
        /// Source version.
        cloned_from: Option<u32>,
        /// µs.
        created_at: i64,
        /// µs.
        updated_at: i64,
        /// µs.
        published_at: Option<i64>,
    },
}

impl Version {
    /// From its record.
    pub fn from_record(catalog_id: Uuid, version: u32, r: VersionRecord) -> Version {
        let VersionRecord::V1 {
            status,
            rates,
            cloned_from,
            created_at,
            updated_at,
            published_at,
        } = r;
        Version {
            catalog_id,
            version,
            status,
            rates,
            cloned_from,
            created_at: from_micros(created_at),
            updated_at: from_micros(updated_at),
            published_at: published_at.map(from_micros),
        }
    }

    /// Its record.
    pub fn to_record(&self) -> VersionRecord {
        VersionRecord::V1 {
            status: self.status,
            rates: self.rates.clone(),
            cloned_from: self.cloned_from,
            created_at: crate::clock::to_micros(self.created_at),
            updated_at: crate::clock::to_micros(self.updated_at),
            published_at: self.published_at.map(crate::clock::to_micros),
        }
    }
}

/// The key of a version.
pub fn version_key(catalog: &Uuid, version: u32) -> Vec<u8> {
    Key::new()
        .uuid(catalog)
        .u64(u64::from(version))
        .into_bytes()
}

/// A tenant's pin: the version that prices its usage, and its soft-cap overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Catalog.
    pub catalog_id: Uuid,
    /// Version.
    pub version: u32,
    /// Per-tenant soft caps by SKU, replacing the version's.
    pub soft_caps: Vec<(String, u64)>,
    /// Since when.
    pub since: DateTime<Utc>,
}

impl Pin {
    /// The soft cap of `sku` for this tenant: its override, else the rate's.
    pub fn soft_cap(&self, rate: &Rate) -> Option<u64> {
        self.soft_caps
            .iter()
            .find(|(s, _)| *s == rate.sku)
            .map(|(_, c)| *c)
            .or(rate.soft_cap)
    }
}

/// The stored pin. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PinRecord {
    /// Version 1.
    V1 {
        /// Catalog.
        catalog: Uuid,
        /// Version.
        version: u32,
        /// Overrides.
        soft_caps: Vec<(String, u64)>,
        /// µs.
        since: i64,
    },
}

impl Pin {
    /// From its record.
    pub fn from_record(tenant_id: Uuid, r: PinRecord) -> Pin {
        let PinRecord::V1 {
            catalog,
            version,
            soft_caps,
            since,
        } = r;
        Pin {
            tenant_id,
            catalog_id: catalog,
            version,
            soft_caps,
            since: from_micros(since),
        }
    }

    /// Its record.
    pub fn to_record(&self) -> PinRecord {
        PinRecord::V1 {
            catalog: self.catalog_id,
            version: self.version,
            soft_caps: self.soft_caps.clone(),
            since: crate::clock::to_micros(self.since),
        }
    }
}

/// A rate as asked for, unchecked.
#[derive(Clone, Debug, Default)]
pub struct RateDraft {
    /// SKU code.
    pub sku: String,
    /// Unit.
    pub unit: String,
    /// Per units (default 1).
    pub per_units: Option<u64>,
    /// `(up_to, unit_amount_minor)`.
    pub tiers: Vec<(Option<u64>, i64)>,
    /// Soft cap.
    pub soft_cap: Option<u64>,
}

/// Checks a rate table: 1–[`MAX_RATES`] distinct SKUs, each with 1–[`MAX_TIERS`] tiers whose
/// `up_to` increase and whose last one is unbounded, amounts 0–10^12.
///
/// Errors: 422 `validation_failed` on `rates`.
pub fn parse_rates(drafts: Vec<RateDraft>) -> Result<Vec<Rate>> {
    let mut v = Validator::new();
    if drafts.is_empty() || drafts.len() > MAX_RATES {
        v.add("rates", format!("give 1-{MAX_RATES} rates"));
    }
    let mut out: Vec<Rate> = Vec::new();
    for (i, d) in drafts.into_iter().enumerate() {
        let field = format!("rates[{i}]");
        let Some(sku) = v.take(&field, parse_code("sku", &d.sku)) else {
            continue;
        };
        if out.iter().any(|r| r.sku == sku) {
            v.add(&field, format!("sku '{sku}' is listed twice"));
            continue;
        }
        let unit = match parse_code("unit", &d.unit) {
            Ok(u) => u,
            Err(e) => {
                v.add(&field, e);
                continue;
            }
        };
        let per_units = d.per_units.unwrap_or(1);
        if !(1..=1_000_000_000).contains(&per_units) {
            v.add(&field, "per_units must be 1-1000000000");
        }
        if d.tiers.is_empty() || d.tiers.len() > MAX_TIERS {
            v.add(&field, format!("give 1-{MAX_TIERS} tiers"));
            continue;
        }
        let mut last: u64 = 0;
        let n = d.tiers.len();
        let mut tiers = Vec::with_capacity(n);
        for (j, (up_to, amount)) in d.tiers.into_iter().enumerate() {
            if !(0..=MAX_AMOUNT).contains(&amount) {
                v.add(
                    &field,
                    format!("tier {j}: unit_amount_minor must be 0-{MAX_AMOUNT}"),
                );
            }
            match (up_to, j + 1 == n) {
                (None, true) => {}
                (None, false) => v.add(
                    &field,
                    format!("tier {j}: only the last tier is unbounded (up_to null)"),
                ),
                (Some(_), true) => v.add(&field, "the last tier must be unbounded (up_to null)"),
                (Some(u), false) if u <= last || u > MAX_QUANTITY => {
                    v.add(
                        &field,
                        format!("tier {j}: up_to must increase, within 1-{MAX_QUANTITY}"),
                    );
                }
                (Some(u), false) => last = u,
            }
            tiers.push(Tier {
                up_to,
                unit_amount_minor: amount,
            });
        }
        if d.soft_cap.is_some_and(|c| c == 0 || c > MAX_QUANTITY) {
            v.add(&field, format!("soft_cap must be 1-{MAX_QUANTITY}"));
        }
        out.push(Rate {
            sku,
            unit,
            per_units,
            tiers,
            soft_cap: d.soft_cap,
        });
    }
    v.finish()?;
    Ok(out)
}

/// Checks a catalog's name (1–80 characters) and currency.
///
/// Errors: 422 `validation_failed`.
pub fn parse_catalog(name: &str, currency: &str) -> Result<(String, String)> {
    let mut v = Validator::new();
    let n = name.trim().to_string();
    if n.is_empty() || n.chars().count() > 80 {
        v.add("name", "name must be 1-80 characters");
    }
    let c = v.take("currency", parse_currency(currency));
    v.finish()?;
    Ok((n, c.unwrap_or_default()))
}

/// Checks soft-cap overrides: distinct SKUs, caps 1–10^15, at most [`MAX_RATES`].
///
/// Errors: 422 `validation_failed` on `soft_caps`.
pub fn parse_soft_caps(caps: Vec<(String, u64)>) -> Result<Vec<(String, u64)>> {
    let mut v = Validator::new();
    let mut out: Vec<(String, u64)> = Vec::new();
    if caps.len() > MAX_RATES {
        v.add("soft_caps", format!("at most {MAX_RATES} overrides"));
    }
    for (sku, cap) in caps {
        match parse_code("sku", &sku) {
            Ok(s) if out.iter().any(|(x, _)| *x == s) => {
                v.add("soft_caps", format!("sku '{s}' is listed twice"));
            }
            Ok(_) if cap == 0 || cap > MAX_QUANTITY => {
                v.add(
                    "soft_caps",
                    format!("cap of '{sku}' must be 1-{MAX_QUANTITY}"),
                );
            }
            Ok(s) => out.push((s, cap)),
            Err(e) => v.add("soft_caps", e),
        }
    }
    v.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(tiers: &[(Option<u64>, i64)], per: u64) -> Rate {
        Rate {
            sku: "api_call".into(),
            unit: "api_call".into(),
            per_units: per,
            tiers: tiers
                .iter()
                .map(|(u, a)| Tier {
                    up_to: *u,
                    unit_amount_minor: *a,
                })
                .collect(),
            soft_cap: None,
        }
    }

    #[test]
    fn disk_format_codes_are_pinned() {
        assert_eq!(Status::Draft as u8, 0);
        assert_eq!(Status::Published as u8, 1);
        assert_eq!(Status::Archived as u8, 2);
    }

    #[test]
    fn graduated_tiers_price_each_unit_in_its_tier() {
        let r = rate(&[(Some(100), 10), (Some(1000), 5), (None, 1)], 1);
        assert_eq!(price(&r, 0), 0);
        assert_eq!(price(&r, 50), 500);
        assert_eq!(price(&r, 100), 1000);
        assert_eq!(price(&r, 101), 1005);
        assert_eq!(price(&r, 2000), 1000 + 900 * 5 + 1000);
    }

    #[test]
    fn per_units_rounds_half_up_once_at_the_end() {
        // 2 cents per 1000 calls.
        let r = rate(&[(None, 2)], 1000);
        assert_eq!(price(&r, 249), 0);
        assert_eq!(price(&r, 250), 1);
        assert_eq!(price(&r, 1_000_000), 2000);
    }

    #[test]
    fn a_rate_table_with_bad_tiers_is_refused() {
        let bad = |tiers: Vec<(Option<u64>, i64)>| {
            parse_rates(vec![RateDraft {
                sku: "api_call".into(),
                unit: "api_call".into(),
                tiers,
                ..RateDraft::default()
            }])
            .is_err()
        };
        assert!(bad(vec![]));
        assert!(bad(vec![(Some(10), 1)]));
        assert!(bad(vec![(Some(10), 1), (Some(5), 1), (None, 1)]));
        assert!(bad(vec![(None, 1), (None, 1)]));
        assert!(bad(vec![(None, -1)]));
        assert!(!bad(vec![(Some(10), 2), (None, 1)]));
    }
}
