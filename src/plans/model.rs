//! Plans (PRODUCT.md 11, HQ PRD §4.2): managed records with a recurring price, a trial length,
//! features and limits, and each tenant's plan history. Vocabulary from Lago and Stripe Billing:
//! a plan has a `code`, an `amount_minor` in a `currency` per `interval`, and included
//! quantities per SKU (Lago's "charges" live in pricing catalogs, see `catalogs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::from_micros;
use crate::error::{Result, Validator};
use crate::store::Table;

/// Plans: `code -> PlanRecord`.
pub const PLANS: Table = Table::new("plans");
/// Plan assignments: `tenant, at (µs, sign-flipped i64), n -> AssignmentRecord` (history kept;
/// `n` orders changes made in the same microsecond).
pub const PLAN_ASSIGNMENTS: Table = Table::new("plan_assignments");

/// Most plans on a platform.
pub const MAX_PLANS: usize = 100;
/// Most features or limits or included SKUs in a plan.
pub const MAX_ITEMS: usize = 64;

/// 409: a plan of this code exists.
pub const PLAN_EXISTS: &str = "plan_exists";

/// How often a plan's price recurs.
///
/// REMEMBER: these numbers are the file format: never renumber; add at the end
/// (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Interval {
    /// Monthly.
    Month = 0,
    /// Yearly.
    Year = 1,
}

impl Interval {
    /// `month` or `year`.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    /// Parses `month` or `year`.
    pub fn parse(s: &str) -> std::result::Result<Interval, String> {
        match s {
            "month" => Ok(Interval::Month),
            "year" => Ok(Interval::Year),
            _ => Err(format!("interval '{s}' is unknown: use month or year")),
        }
    }
}

/// A plan's limits (absent: unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most personas.
    pub max_personas: Option<u64>,
    /// Most API keys.
    pub max_api_keys: Option<u64>,
    /// Quantities included per billing period, by SKU code (billed only beyond them).
    pub included: Vec<(String, u64)>,
}

/// A plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `free`, `pro`, ...: `[a-z][a-z0-9_-]{0,31}`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// The recurring price in minor units (cents), per `interval`.
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// Month or year.
    pub interval: Interval,
    /// Default trial length in days (0: none).
    pub trial_days: u32,
    /// Feature flag keys.
    pub features: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The stored plan. Its variant order is the file format: add new versions at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PlanRecord {
    /// Version 1.
    V1 {
        /// Name.
        name: String,
        /// Minor units.
        amount_minor: i64,
        /// ISO 4217.
        currency: String,
        /// Interval.
        interval: Interval,
        /// Days.
        trial_days: u32,
        /// Flag keys.
        features: Vec<String>,
        /// Limits.
        limits: Limits,
        /// µs.
        created_at: i64,
        /// µs.
        updated_at: i64,
    },
}

impl Plan {
    /// The plan of a stored record.
    pub fn from_record(code: String, r: PlanRecord) -> Plan {
        let PlanRecord::V1 {
            name,
            amount_minor,
            currency,
            interval,
            trial_days,
            features,
            limits,
            created_at,
            updated_at,
        } = r;
        Plan {
            code,
            name,
            amount_minor,
            currency,
            interval,
            trial_days,
            features,
            limits,
            created_at: from_micros(created_at),
            updated_at: from_micros(updated_at),
        }
    }

    /// Its stored record.
    pub fn to_record(&self) -> PlanRecord {
        PlanRecord::V1 {
            name: self.name.clone(),
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            interval: self.interval,
            trial_days: self.trial_days,
            features: self.features.clone(),
            limits: self.limits.clone(),
            created_at: crate::clock::to_micros(self.created_at),
            updated_at: crate::clock::to_micros(self.updated_at),
        }
    }

    /// The quantity of `sku` this plan includes per period (0 when none).
    pub fn included(&self, sku: &str) -> u64 {
        self.limits
            .included
            .iter()
            .find(|(s, _)| s == sku)
            .map_or(0, |(_, q)| *q)
    }
}

/// A tenant's plan assignment, kept as history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AssignmentRecord {
    /// Version 1.
    V1 {
        /// The plan assigned (None: the plan was removed).
        plan: Option<String>,
        /// The plan before.
        from: Option<String>,
        /// Who assigned it (actor id).
        by: String,
    },
}

/// Parses a code: 1–32 characters of `a-z 0-9 _ -`, starting with a letter (plans and SKUs).
pub fn parse_code(what: &str, s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    let ok = (1..=32).contains(&t.len())
        && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "{what} '{t}' is invalid: use 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter"
        ))
    }
}

/// Parses an ISO 4217 currency: three letters, stored upper case.
pub fn parse_currency(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    if t.len() == 3 && t.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(t.to_ascii_uppercase())
    } else {
        Err(format!(
            "currency '{t}' is invalid: use an ISO 4217 code such as USD or EUR"
        ))
    }
}

/// A plan as asked for, unchecked.
#[derive(Clone, Debug, Default)]
pub struct PlanDraft {
    /// Code.
    pub code: String,
    /// Name, 1–80 characters.
    pub name: String,
    /// Minor units, 0 to 10^12.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// `month` or `year`.
    pub interval: String,
    /// 0–365.
    pub trial_days: i64,
    /// Flag keys.
    pub features: Vec<String>,
    /// Most personas.
    pub max_personas: Option<u64>,
    /// Most API keys.
    pub max_api_keys: Option<u64>,
    /// `(sku, quantity)`.
    pub included: Vec<(String, u64)>,
}

/// A checked [`PlanDraft`]: the plan's fields without its times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanInput {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Interval.
    pub interval: Interval,
    /// Days.
    pub trial_days: u32,
    /// Flags.
    pub features: Vec<String>,
    /// Limits.
    pub limits: Limits,
}

/// The most a price may be, in minor units (ten billion in major units).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

impl PlanDraft {
    /// Checks every field at once.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self) -> Result<PlanInput> {
        let mut v = Validator::new();
        let code = v.take("code", parse_code("plan code", &self.code));
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 80 {
            v.add("name", "name must be 1-80 characters");
        }
        if !(0..=MAX_AMOUNT).contains(&self.amount_minor) {
            v.add(
                "amount_minor",
                format!("amount_minor must be 0-{MAX_AMOUNT} (minor units)"),
            );
        }
        let currency = v.take("currency", parse_currency(&self.currency));
        let interval = v.take("interval", Interval::parse(&self.interval));
        if !(0..=365).contains(&self.trial_days) {
            v.add("trial_days", "trial_days must be 0-365");
        }
        let mut features = Vec::new();
        if self.features.len() > MAX_ITEMS {
            v.add("features", format!("at most {MAX_ITEMS} features"));
        }
        for f in &self.features {
            match parse_flag_key(f) {
                Ok(f) if !features.contains(&f) => features.push(f),
                Ok(f) => v.add("features", format!("feature '{f}' is listed twice")),
                Err(e) => v.add("features", e),
            }
        }
        let mut included: Vec<(String, u64)> = Vec::new();
        if self.included.len() > MAX_ITEMS {
            v.add("included", format!("at most {MAX_ITEMS} included SKUs"));
        }
        for (sku, q) in &self.included {
            match parse_code("sku", sku) {
                Ok(s) if included.iter().any(|(x, _)| *x == s) => {
                    v.add("included", format!("sku '{s}' is listed twice"));
                }
                Ok(s) => included.push((s, *q)),
                Err(e) => v.add("included", e),
            }
        }
        v.finish()?;
        Ok(PlanInput {
            code: code.unwrap_or_default(),
            name,
            amount_minor: self.amount_minor,
            currency: currency.unwrap_or_default(),
            interval: interval.unwrap_or(Interval::Month),
            trial_days: u32::try_from(self.trial_days).unwrap_or(0),
            features,
            limits: Limits {
                max_personas: self.max_personas,
                max_api_keys: self.max_api_keys,
                included,
            },
        })
    }
}

/// Parses a feature flag key: 1–64 characters of `a-z 0-9 _ . -`.
pub fn parse_flag_key(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    let ok = (1..=64).contains(&t.len())
        && t.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        });
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "feature '{t}' is invalid: use 1-64 characters of a-z, 0-9, '_', '.' and '-'"
        ))
    }
}

/// The plan a configured name is seeded as on first start: believable defaults for the four
/// plans of the HQ PRD, and a free monthly plan for any other name.
pub fn seed_for(code: &str) -> PlanInput {
    type Seed<'a> = (
        &'a str,
        i64,
        u32,
        &'a [&'a str],
        Option<u64>,
        Option<u64>,
        &'a [(&'a str, u64)],
    );
    let (name, amount, trial, features, personas, keys, included): Seed<'_> = match code {
        "free" => (
            "Free",
            0,
            0,
            &["core"],
            Some(5),
            Some(2),
            &[("api_call", 10_000)],
        ),
        "pro" => (
            "Pro",
            4_900,
            14,
            &["core", "sso", "webhooks"],
            Some(50),
            Some(20),
            &[("api_call", 1_000_000)],
        ),
        "agency" => (
            "Agency",
            19_900,
            14,
            &["core", "sso", "webhooks", "white_label"],
            Some(250),
            Some(100),
            &[("api_call", 5_000_000)],
        ),
        "enterprise" => (
            "Enterprise",
            99_900,
            30,
            &["core", "sso", "webhooks", "white_label", "audit_export"],
            None,
            None,
            &[("api_call", 25_000_000)],
        ),
        _ => (code, 0, 0, &[], None, None, &[]),
    };
    PlanInput {
        code: code.to_string(),
        name: name.to_string(),
        amount_minor: amount,
        currency: "USD".into(),
        interval: Interval::Month,
        trial_days: trial,
        features: features.iter().map(|s| s.to_string()).collect(),
        limits: Limits {
            max_personas: personas,
            max_api_keys: keys,
            included: included.iter().map(|(s, q)| (s.to_string(), *q)).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        assert_eq!(Interval::Month as u8, 0);
        assert_eq!(Interval::Year as u8, 1);
    }

    #[test]
    fn a_plan_with_bad_fields_names_each_field() {
        let err = PlanDraft {
            code: "Pro!".into(),
            name: "".into(),
            amount_minor: -1,
            currency: "dollars".into(),
            interval: "week".into(),
            ..PlanDraft::default()
        }
        .parse()
        .unwrap_err();
        let text = err.to_string();
        for f in ["code", "name", "amount_minor", "currency", "interval"] {
            assert!(text.contains(f), "{f} missing from {text}");
        }
    }

    #[test]
    fn every_seeded_plan_parses_as_a_draft_would() {
        for code in ["free", "pro", "agency", "enterprise", "custom"] {
            let p = seed_for(code);
            assert_eq!(p.currency, "USD");
            assert!(p.amount_minor >= 0);
        }
    }
}
