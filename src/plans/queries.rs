//! The read model of plans: the list, one plan, the codes, a tenant's history.

use chrono::{DateTime, Utc};
use std::ops::ControlFlow;
use uuid::Uuid;

use super::model::{AssignmentRecord, MAX_PLANS, PLAN_ASSIGNMENTS, PLANS, Plan, PlanRecord};
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::store::keys::{Key, KeyReader};
use crate::store::{Dir, Range, Reader, codec};

/// Every plan, by code (at most [`MAX_PLANS`]).
pub fn list(r: &impl Reader) -> Result<Vec<Plan>> {
    let mut out = Vec::new();
    r.scan(PLANS, &Range::all(), Dir::Asc, &mut |k, v| {
        let code = String::from_utf8_lossy(k).into_owned();
        out.push(Plan::from_record(code, codec::decode(PLANS.name(), v)?));
        Ok(if out.len() >= MAX_PLANS {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(out)
}

/// One plan.
///
/// Errors: 404.
pub fn get(r: &impl Reader, code: &str) -> Result<Plan> {
    r.get_record::<PlanRecord>(PLANS, code.as_bytes())?
        .map(|rec| Plan::from_record(code.to_string(), rec))
        .ok_or_else(|| Error::not_found("plan", code))
}

/// The codes of every plan.
pub fn codes(r: &impl Reader) -> Result<Vec<String>> {
    Ok(list(r)?.into_iter().map(|p| p.code).collect())
}

/// One change of a tenant's plan.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// When.
    pub at: DateTime<Utc>,
    /// The plan from then on.
    pub plan: Option<String>,
    /// The plan before.
    pub from: Option<String>,
    /// Who.
    pub by: String,
}

/// A tenant's plan history, newest first (the last `limit`).
pub fn history(r: &impl Reader, tenant: &Uuid, limit: usize) -> Result<Vec<Assignment>> {
    let prefix = Key::new().uuid(tenant).into_bytes();
    let mut out = Vec::new();
    r.scan(
        PLAN_ASSIGNMENTS,
        &Range::prefix(&prefix),
        Dir::Desc,
        &mut |k, v| {
            let mut kr = KeyReader::new(k);
            let _ = kr.uuid();
            let at = kr.i64().unwrap_or_default();
            let AssignmentRecord::V1 { plan, from, by } =
                codec::decode(PLAN_ASSIGNMENTS.name(), v)?;
            out.push(Assignment {
                at: from_micros(at),
                plan,
                from,
                by,
            });
            Ok(if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    Ok(out)
}
