//! The demo platform seeded by `serve --demo` on an empty data dir: 3 apps and 36 tenants across
//! regions, tiers and every lifecycle state, pool flips, and the scheduler's own runs, replayed
//! day by day over the last [`DEMO_DAYS`] days through the real services with a simulated clock.
//! Every entry is written the way a live platform would write it, so the ledger verifies.

mod approvals;
mod channels;
mod members;
mod revenue;
mod webhooks;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::pools::model::PoolStatus;
use crate::scheduler::{self, Job, Trigger};
use crate::state::AppState;
use crate::tenants::model::Action;
use crate::tenants::service::{TenantDraft, TransitionInput};
use crate::{apps, pools, tenants};

/// Length of the replayed history.
pub const DEMO_DAYS: i64 = 90;

/// The demo's operators, one per role: `(username, display name, role)`. The first three act in
/// the replayed history.
pub const OPERATORS: [(&str, &str, &str); 5] = [
    ("alice", "Alice Moreau", "super_admin"),
    ("bashir", "Bashir Haddad", "business_admin"),
    ("chen", "Chen Wei", "technical_admin"),
    ("dana", "Dana Okafor", "compliance"),
    ("emil", "Emil Lund", "support"),
];

/// File (in the data dir, owner-only) listing the demo operators' generated passwords, and the
/// sign-in of one tenant's admin.
pub const CREDENTIALS_FILE: &str = "demo-operators.txt";

/// File holding the age identity the demo's backups are encrypted to, when `[backup]` names no
/// recipients (backups are never written in plaintext by the job).
pub const DEMO_BACKUP_IDENTITY_FILE: &str = "demo-backup-identity.txt";

/// The demo's backup recipient: the public half of the identity in
/// [`DEMO_BACKUP_IDENTITY_FILE`], made on first use (mode 0600).
fn backup_recipient(
    data_dir: &std::path::Path,
) -> std::io::Result<crate::backup::crypt::Recipient> {
    use age::secrecy::ExposeSecret;
    let path = data_dir.join(DEMO_BACKUP_IDENTITY_FILE);
    let identity = match std::fs::read_to_string(&path) {
        Ok(t) => t
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .and_then(|l| l.parse::<age::x25519::Identity>().ok())
            .ok_or_else(|| {
                std::io::Error::other(format!("{} is not an age identity", path.display()))
            })?,
        Err(_) => {
            crate::store::ensure_private_dir(data_dir).map_err(std::io::Error::other)?;
            let id = age::x25519::Identity::generate();
            let text = format!(
                "# the demo's backup key: `age -d -i {} <backup>` or `tenantry backup restore --identity`\n{}\n",
                path.display(),
                id.to_string().expose_secret()
            );
            crate::audit::signing::write_private(&path, text.as_bytes())?;
            id
        }
    };
    crate::backup::crypt::Recipient::parse(&identity.to_public().to_string())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Prepares a demo's configuration: when `[backup]` names no recipients, the demo's backups
/// (its replayed `backup_daily` included) are encrypted to a key of its own, kept in
/// [`DEMO_BACKUP_IDENTITY_FILE`].
///
/// Errors: the identity file cannot be read or written.
pub fn prepare_config(config: &mut crate::config::Config) -> std::io::Result<()> {
    if config.demo && config.backup.recipients.is_empty() {
        let r = backup_recipient(&config.data_dir)?;
        tracing::info!(
            "demo backups are encrypted to {r}; the identity is in {}",
            config.data_dir.join(DEMO_BACKUP_IDENTITY_FILE).display()
        );
        config.backup.recipients = vec![r];
    }
    // The demo's webhook endpoints point at made-up hosts: deliveries stay on this machine
    // (refused by the SSRF guard and recorded), never resolved or sent elsewhere.
    if config.demo && config.webhooks.restrict_to.is_empty() {
        config.webhooks.restrict_to = ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
    }
    Ok(())
}

/// How a demo tenant's life goes after it is provisioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Story {
    /// Trial, converts to paid.
    Converts,
    /// Trial that nobody activates: the scheduler expires it.
    TrialLapses,
    /// Paid; suspended for non-payment; reinstated after a week.
    LatePayer,
    /// Paid; suspended for abuse; stays suspended.
    Abuse,
    /// Paid; leaves with a 14-day grace period; shredded by the scheduler.
    LeftAndShredded,
    /// Paid; leaving, grace period still running.
    Leaving,
    /// Paid; started leaving, then renewed (offboarding cancelled).
    Renewed,
    /// Just provisioned.
    Fresh,
    /// In a trial right now.
    Trialing,
}

struct Seed {
    name: &'static str,
    region: &'static str,
    tier: &'static str,
    country: &'static str,
    domain: &'static str,
    depth: Option<i64>,
    story: Story,
}

const fn t(
    name: &'static str,
    region: &'static str,
    tier: &'static str,
    country: &'static str,
    domain: &'static str,
    story: Story,
) -> Seed {
    Seed {
        name,
        region,
        tier,
        country,
        domain,
        depth: None,
        story,
    }
}

fn seeds() -> Vec<Seed> {
    use Story::*;
    let mut v = vec![
        t(
            "Acme Logistics",
            "us-east-1",
            "S",
            "US",
            "acmelogistics.com",
            Converts,
        ),
        t(
            "Borealis Energy",
            "eu-west-1",
            "P",
            "NO",
            "borealis-energy.no",
            Converts,
        ),
        t(
            "Norges Fotballforbund",
            "eu-central-1",
            "S",
            "NO",
            "fotball.no",
            Converts,
        ),
        t(
            "Svenska Fotbollförbundet",
            "eu-central-1",
            "S",
            "SE",
            "svenskfotboll.se",
            LatePayer,
        ),
        t(
            "Fédération Française de Rugby",
            "eu-west-1",
            "P",
            "FR",
            "ffr.fr",
            Converts,
        ),
        t(
            "Bundesamt für Statistik",
            "eu-sov-1",
            "G",
            "DE",
            "destatis.example.de",
            Converts,
        ),
        t(
            "Harbor Health Network",
            "us-east-1",
            "P",
            "US",
            "harborhealth.org",
            Renewed,
        ),
        t(
            "Kiwi Outdoor Co",
            "ap-southeast-1",
            "S",
            "NZ",
            "kiwioutdoor.co.nz",
            TrialLapses,
        ),
        t(
            "Lumen Retail Group",
            "us-west-2",
            "S",
            "US",
            "lumenretail.com",
            LeftAndShredded,
        ),
        t(
            "Meridian Bank",
            "eu-sov-1",
            "G",
            "IE",
            "meridianbank.ie",
            Converts,
        ),
        t(
            "Northwind Traders",
            "us-west-2",
            "S",
            "US",
            "northwind.example.com",
            Abuse,
        ),
        t(
            "Orbital Analytics",
            "us-east-1",
            "S",
            "US",
            "orbital-analytics.io",
            Leaving,
        ),
        t(
            "Pacifica Shipping",
            "ap-southeast-1",
            "P",
            "SG",
            "pacificashipping.sg",
            Converts,
        ),
        t(
            "Quantum Dental Clinics",
            "eu-west-1",
            "S",
            "GB",
            "quantumdental.co.uk",
            LatePayer,
        ),
        t(
            "Riverside County Schools",
            "us-gov-1",
            "G",
            "US",
            "rcs.k12.example.us",
            Converts,
        ),
        t(
            "Sahara Solar",
            "me-central-1",
            "S",
            "AE",
            "saharasolar.ae",
            TrialLapses,
        ),
        t(
            "Tallinn Tech Hub",
            "eu-central-1",
            "S",
            "EE",
            "tallinntech.ee",
            Converts,
        ),
        t(
            "Umbra Security",
            "us-east-1",
            "P",
            "US",
            "umbrasec.com",
            Leaving,
        ),
        t(
            "Vega Pharmaceuticals",
            "eu-central-1",
            "P",
            "CH",
            "vegapharma.ch",
            Converts,
        ),
        t(
            "Westwood Dental",
            "us-west-2",
            "S",
            "US",
            "westwooddental.com",
            LeftAndShredded,
        ),
        t(
            "Xylo Music School",
            "eu-west-1",
            "S",
            "IE",
            "xylomusic.ie",
            Converts,
        ),
        t(
            "Yellowstone Outfitters",
            "us-west-2",
            "S",
            "US",
            "yellowstone-outfitters.com",
            Renewed,
        ),
        t(
            "Zenith Aerospace",
            "us-gov-1",
            "G",
            "US",
            "zenith-aero.example.us",
            Converts,
        ),
        t(
            "Alpine Ski Schools",
            "eu-central-1",
            "S",
            "AT",
            "alpineski.at",
            Abuse,
        ),
        t(
            "Baltic Freight",
            "eu-central-1",
            "S",
            "LT",
            "balticfreight.lt",
            Converts,
        ),
        t(
            "Cedar Grove Realty",
            "us-east-1",
            "S",
            "US",
            "cedargrove.realty",
            Leaving,
        ),
        t(
            "Dubai Marina Hotels",
            "me-central-1",
            "P",
            "AE",
            "dubaimarinahotels.ae",
            Converts,
        ),
        t(
            "Emerald Isle Tours",
            "eu-west-1",
            "S",
            "IE",
            "emeraldisletours.ie",
            TrialLapses,
        ),
        t(
            "Fjord Fisheries",
            "eu-west-1",
            "S",
            "NO",
            "fjordfisheries.no",
            Converts,
        ),
        t(
            "Granite Construction Partners",
            "us-east-1",
            "S",
            "US",
            "graniteconstruction.example.com",
            LatePayer,
        ),
        t(
            "Helios Labs",
            "eu-central-1",
            "S",
            "DE",
            "helioslabs.de",
            Trialing,
        ),
        t(
            "Iberia Vineyards",
            "eu-west-1",
            "S",
            "ES",
            "iberiavineyards.es",
            Trialing,
        ),
        t(
            "Jade Garden Restaurants",
            "ap-southeast-1",
            "S",
            "SG",
            "jadegarden.sg",
            Fresh,
        ),
        t(
            "Koala Childcare",
            "ap-southeast-1",
            "S",
            "AU",
            "koalachildcare.com.au",
            Trialing,
        ),
        t(
            "Lagos Fintech Collective",
            "eu-west-1",
            "S",
            "NG",
            "lagosfintech.ng",
            Fresh,
        ),
        t(
            "Mumbai Metro Logistics",
            "ap-southeast-1",
            "S",
            "IN",
            "mumbaimetrologistics.in",
            Fresh,
        ),
    ];
    v[2].depth = Some(1);
    v[3].depth = Some(2);
    v[4].depth = Some(3);
    v
}

/// Seeds the demo platform when the store has no app and no tenant. Returns whether it seeded.
pub async fn seed_if_empty(state: &AppState) -> Result<bool> {
    let empty = state
        .read(|r| {
            Ok(apps::queries::list(r, None, 1)?.items.is_empty()
                && tenants::directory::query(r, &Default::default())?
                    .rows
                    .is_empty())
        })
        .await?;
    if !empty {
        return Ok(false);
    }
    let end = state.clock().now();
    // Midnight UTC, so the replay's "working hours" are working hours.
    let start = (end - Duration::days(DEMO_DAYS))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(end - Duration::days(DEMO_DAYS), |t| t.and_utc());
    tracing::info!(from = %start, to = %end, "seeding the demo platform: replaying {DEMO_DAYS} days of history");
    Replay::new(state.clone(), start).run(end).await?;
    tracing::info!("demo platform seeded");
    Ok(true)
}

/// A scheduled step of a tenant's story.
struct Step {
    at: DateTime<Utc>,
    tenant: usize,
    action: Action,
    input: TransitionInput,
    actor: usize,
}

struct Replay {
    state: AppState,
    start: DateTime<Utc>,
}

impl Replay {
    fn new(state: AppState, start: DateTime<Utc>) -> Replay {
        Replay { state, start }
    }

    fn op(&self, i: usize) -> Actor {
        Actor::operator(OPERATORS[i % 3].0)
    }

    /// A working-hours instant on `day` of the replay.
    fn at(&self, day: i64, hour: i64, minute: i64) -> DateTime<Utc> {
        self.start + Duration::days(day) + Duration::hours(hour) + Duration::minutes(minute)
    }

    async fn write<T: Send + 'static>(
        &self,
        at: DateTime<Utc>,
        actor: Actor,
        f: impl FnMut(&mut crate::store::WriteCtx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.state.store().write(at, actor, f).await
    }

    /// Creates the demo operators with generated passwords, saved owner-only in the data dir;
    /// returns `(id, username, role)` of each and the file's lines.
    async fn operators(
        &self,
    ) -> Result<(Vec<(Uuid, &'static str, crate::rbac::Role)>, Vec<String>)> {
        let mut lines = vec![
            "# Demo operator accounts of this Tenantry data dir (sign in at /signin).".to_string(),
            "# username  role  password".to_string(),
        ];
        let mut made = Vec::new();
        for (i, (username, name, role)) in OPERATORS.iter().enumerate() {
            let password = format!("demo-{}", &crate::http::credentials::random_token()?[..16]);
            let input = crate::operators::service::NewOperator {
                username: (*username).to_string(),
                display_name: (*name).to_string(),
                role: crate::rbac::Role::parse(role).map_err(Error::Internal)?,
                password_hash: crate::operators::hash(password.clone()).await?,
            };
            let op = self
                .write(self.at(0, 8, i as i64), Actor::system("demo"), move |ctx| {
                    crate::operators::service::create(ctx, &input)
                })
                .await?;
            made.push((op.id, *username, op.role));
            tracing::info!("demo operator {username} ({role}) password: {password}");
            lines.push(format!("{username}  {role}  {password}"));
        }
        self.save_credentials(&lines)?;
        Ok((made, lines))
    }

    fn save_credentials(&self, lines: &[String]) -> Result<()> {
        let path = self.state.config().data_dir.join(CREDENTIALS_FILE);
        let _ = std::fs::remove_file(&path);
        crate::audit::signing::write_private(&path, format!("{}\n", lines.join("\n")).as_bytes())
            .map_err(|e| Error::Internal(format!("writing {}: {e}", path.display())))
    }

    async fn run(&self, end: DateTime<Utc>) -> Result<()> {
        let config = self.state.config().clone();
        let (ops, mut credentials) = self.operators().await?;
        // The demo's tenant members share one password nobody knows (one Argon2id hash, not
        // hundreds); the admin printed at the end gets a password of their own.
        let phc = crate::operators::hash(crate::http::credentials::random_token()?).await?;
        let mut admins: Vec<Option<String>> = Vec::new();
        let mut keys: Vec<(Uuid, Uuid)> = Vec::new();
        // Day 0: the three apps.
        let app_specs = [
            ("Projex Work", "Projects, tasks and time tracking for teams"),
            (
                "Projex Field",
                "Field service: dispatch, work orders and mobile crews",
            ),
            (
                "Projex Insights",
                "Analytics and reporting across Projex products",
            ),
        ];
        let mut app_ids: Vec<Uuid> = Vec::new();
        for (i, (name, desc)) in app_specs.iter().enumerate() {
            let input = apps::model::AppDraft {
                name: (*name).to_string(),
                slug: None,
                description: Some((*desc).to_string()),
                role_templates: None,
            }
            .parse()?;
            let app = self
                .write(self.at(0, 9, 10 + i as i64 * 7), self.op(0), move |ctx| {
                    apps::service::create(ctx, &input)
                })
                .await?;
            app_ids.push(app.id);
        }

        // Provisioning, spread over the replay; the last few are recent.
        let seeds = seeds();
        let n = seeds.len() as i64;
        let mut tenant_ids: Vec<Uuid> = Vec::new();
        let mut steps: Vec<Step> = Vec::new();
        let mut provisions: Vec<(DateTime<Utc>, usize)> = Vec::new();
        for (i, s) in seeds.iter().enumerate() {
            let day = match s.story {
                Story::Fresh => DEMO_DAYS - 2 + (i as i64 % 2),
                Story::Trialing => DEMO_DAYS - 9 + (i as i64 % 5),
                _ => 1 + (i as i64 * 55) / n,
            };
            provisions.push((self.at(day, 9 + (i as i64 % 8), (i as i64 * 13) % 60), i));
        }
        provisions.sort_by_key(|(t, _)| *t);
        let mut order: Vec<usize> = vec![0; seeds.len()];
        let mut created_at: Vec<DateTime<Utc>> = vec![self.start; seeds.len()];
        for (pos, (at, i)) in provisions.iter().enumerate() {
            order[*i] = pos;
            created_at[*i] = *at;
        }
        tenant_ids.resize(seeds.len(), Uuid::nil());
        admins.resize(seeds.len(), None);

        // Interleave provisioning, story steps, pool flips and the scheduler day by day.
        let mut day_events: Vec<(DateTime<Utc>, Event)> = Vec::new();
        for (at, i) in &provisions {
            day_events.push((*at, Event::Provision(*i)));
        }
        for (i, s) in seeds.iter().enumerate() {
            let c = created_at[i];
            let a = i + 1;
            let d = |days: i64, h: i64| c + Duration::days(days) + Duration::hours(h);
            let reason = |r: &str| TransitionInput {
                reason: Some(r.to_string()),
                ..TransitionInput::default()
            };
            let mut push = |at: DateTime<Utc>, action: Action, input: TransitionInput| {
                if at < end {
                    steps.push(Step {
                        at,
                        tenant: i,
                        action,
                        input,
                        actor: a,
                    });
                }
            };
            match s.story {
                Story::Fresh => {}
                Story::Trialing => push(d(0, 1), Action::StartTrial, TransitionInput::default()),
                Story::TrialLapses => push(
                    d(0, 2),
                    Action::StartTrial,
                    TransitionInput {
                        trial_days: Some(14),
                        ..TransitionInput::default()
                    },
                ),
                Story::Converts => {
                    if s.tier == "S" {
                        push(d(0, 2), Action::StartTrial, TransitionInput::default());
                        push(
                            d(10, 3),
                            Action::Activate,
                            reason("signed the annual contract"),
                        );
                    } else {
                        push(
                            d(1, 2),
                            Action::Activate,
                            reason("enterprise contract signed"),
                        );
                    }
                }
                Story::LatePayer => {
                    push(d(1, 1), Action::Activate, reason("contract signed"));
                    push(
                        d(34, 2),
                        Action::Suspend,
                        reason(&format!(
                            "non-payment: invoice INV-2026-{:04} overdue 45 days",
                            1200 + i
                        )),
                    );
                    push(d(41, 5), Action::Reinstate, reason("payment received"));
                }
                Story::Abuse => {
                    push(d(1, 1), Action::Activate, TransitionInput::default());
                    push(
                        d(25, 4),
                        Action::Suspend,
                        reason(&format!(
                            "abuse report #{}: outbound spam from tenant webhooks",
                            4400 + i
                        )),
                    );
                }
                Story::LeftAndShredded => {
                    push(d(1, 1), Action::Activate, TransitionInput::default());
                    push(
                        d(20, 3),
                        Action::Offboard,
                        TransitionInput {
                            reason: Some("customer terminated the contract".into()),
                            grace_days: Some(14),
                            ..TransitionInput::default()
                        },
                    );
                }
                Story::Leaving => {
                    push(d(1, 1), Action::Activate, TransitionInput::default());
                    let leave_day = ((end - c).num_days() - 12).max(3);
                    push(
                        d(leave_day, 2),
                        Action::Offboard,
                        reason("customer is moving to another vendor"),
                    );
                }
                Story::Renewed => {
                    push(d(1, 1), Action::Activate, TransitionInput::default());
                    push(
                        d(30, 2),
                        Action::Offboard,
                        reason("non-renewal notice received"),
                    );
                    push(
                        d(33, 6),
                        Action::CancelOffboarding,
                        reason("customer renewed for 12 months"),
                    );
                }
            }
        }
        for s in steps {
            day_events.push((s.at, Event::Step(s)));
        }
        let flips = [
            (
                20,
                "app-3",
                PoolStatus::Degraded,
                "billing replica lag 12 s; rerouting new traffic",
            ),
            (
                21,
                "app-3",
                PoolStatus::Active,
                "replica caught up; lag under 200 ms",
            ),
            (
                45,
                "admin-4",
                PoolStatus::Drain,
                "recycling hosts for the kernel update",
            ),
            (47, "admin-4", PoolStatus::Active, "hosts recycled"),
            (
                DEMO_DAYS - 1,
                "app-5",
                PoolStatus::Degraded,
                "disk pressure on reports replica (88%)",
            ),
        ];
        for (day, pool, status, reason) in flips {
            day_events.push((self.at(day, 14, 30), Event::Flip(pool, status, reason)));
        }
        // The scheduler, as it would have run: trials and deadlines daily, checkpoints weekly.
        for day in 1..DEMO_DAYS {
            day_events.push((self.at(day, 0, 15), Event::Job(Job::ExpireTrials)));
            day_events.push((self.at(day, 0, 30), Event::Job(Job::ShredDueTenants)));
            if day % 7 == 0 {
                day_events.push((self.at(day, 1, 0), Event::Job(Job::CheckpointChains)));
            }
            day_events.push((self.at(day, 1, 20), Event::Job(Job::PruneSessions)));
            if self
                .state
                .scheduler()
                .job(Job::SilentInstalls.name())
                .is_some()
            {
                day_events.push((self.at(day, 2, 0), Event::Job(Job::SilentInstalls)));
            }
        }
        for day in 1..DEMO_DAYS {
            day_events.push((self.at(day, 3, 0), Event::Job(Job::EndExpiredVisits)));
            day_events.push((self.at(day, 4, 10), Event::Job(Job::PruneWebhooks)));
            day_events.push((self.at(day, 3, 40), Event::Job(Job::PruneUsageEvents)));
            // Daily: the first run of each month writes its MRR snapshot (the revenue trend).
            day_events.push((self.at(day, 0, 5), Event::Job(Job::SnapshotMrr)));
            day_events.push((self.at(day, 5, 50), Event::Job(Job::PlanEnforcer)));
        }
        // Operators visited the first tenant three days ago (Visit tenant).
        day_events.push((self.at(DEMO_DAYS - 3, 10, 5), Event::Visits(0)));
        // One nightly backup, so that the demo's data dir holds one (written for real).
        day_events.push((self.at(DEMO_DAYS - 2, 2, 30), Event::Job(Job::BackupDaily)));
        day_events.push((self.at(DEMO_DAYS - 2, 3, 45), Event::Job(Job::VerifyLedger)));
        day_events.sort_by_key(|(t, _)| *t);

        for (at, event) in day_events {
            if at > end {
                continue;
            }
            match event {
                Event::Provision(i) => {
                    let s = &seeds[i];
                    let plan = match (s.tier, i % 3) {
                        ("G", _) | ("P", 0) => "enterprise",
                        ("P", _) => "agency",
                        (_, 0) => "pro",
                        (_, 1) => "free",
                        _ => "agency",
                    };
                    let body = TenantDraft {
                        app_id: app_ids[i % app_ids.len()].to_string(),
                        display_name: s.name.to_string(),
                        slug: None,
                        region: s.region.to_string(),
                        isolation_tier: Some(s.tier.to_string()),
                        brand_domain: Some(format!("app.{}", s.domain)),
                        country: Some(s.country.to_string()),
                        contact_email: Some(format!("it-admin@{}", s.domain)),
                        plan: Some(plan.to_string()),
                        trial_days: Some(if i % 4 == 0 { 30 } else { 14 }),
                        hierarchy_depth: s.depth,
                    };
                    let plans = self.state.read(crate::plans::queries::codes).await?;
                    let input = body.parse(&config, &plans)?;
                    let cfg = config.clone();
                    let hooks = self.state.tenant_hooks().clone();
                    let tenant = self
                        .write(at, self.op(order[i]), move |ctx| {
                            tenants::service::provision(ctx, &cfg, &input, &hooks)
                        })
                        .await?;
                    tenant_ids[i] = tenant.id;
                    // A just-provisioned tenant has nobody yet: its console shows the day-1
                    // checklist untouched.
                    if s.story != Story::Fresh {
                        let seeded = members::seed(
                            &self.state,
                            at,
                            self.op(1),
                            tenant.id,
                            s.domain,
                            i,
                            phc.clone(),
                        )
                        .await?;
                        admins[i] = Some(seeded.admin_email);
                        keys.extend(seeded.keys.into_iter().map(|k| (tenant.id, k)));
                    }
                }
                Event::Visits(i) => {
                    let by = |role: &str| {
                        ops.iter()
                            .find(|o| o.2.as_str() == role)
                            .copied()
                            .ok_or_else(|| Error::Internal(format!("no demo {role}")))
                    };
                    members::visits(
                        &self.state,
                        at,
                        tenant_ids[i],
                        by("business_admin")?,
                        by("support")?,
                    )
                    .await?;
                }
                Event::Step(step) => {
                    let id = tenant_ids[step.tenant];
                    let (action, input) = (step.action, step.input);
                    let r = self
                        .write(step.at, self.op(step.actor), move |ctx| {
                            tenants::service::transition(ctx, id, action, &input)
                        })
                        .await;
                    match r {
                        Ok(_) => {}
                        // A story step that the scheduler overtook (a lapsed trial) is skipped.
                        Err(Error::InvalidTransition { .. } | Error::TenantReadOnly { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Event::Flip(pool, status, reason) => {
                    let actor = self.op(1);
                    self.write(at, actor, move |ctx| {
                        pools::service::flip(ctx, pool, status, reason)
                    })
                    .await?;
                }
                Event::Job(job) => {
                    scheduler::record_run(&self.state, job, Trigger::Schedule, at).await?;
                }
            }
        }
        members::key_usage(&self.state, end - Duration::hours(3), &keys).await?;
        for (i, s) in seeds.iter().enumerate().take(2) {
            if s.story != Story::Fresh {
                webhooks::seed(&self.state, end, tenant_ids[i], s.domain, i).await?;
            }
        }
        if let Some(s) = seeds.first() {
            channels::seed(&self.state, end, tenant_ids[0], s.domain).await?;
        }
        // One tenant admin can sign in to the Tenant console with a known password.
        if let Some(email) = admins[0].clone() {
            let password = format!("demo-{}", &crate::http::credentials::random_token()?[..16]);
            let own = crate::operators::hash(password.clone()).await?;
            let tenant = tenant_ids[0];
            members::set_admin_password(&self.state, end - Duration::hours(3), tenant, &email, own)
                .await?;
            tracing::info!(
                "demo tenant admin of {}: sign in at /tenant/{tenant}/signin as {email} with password {password}",
                seeds[0].name
            );
            credentials.push(String::new());
            credentials.push(format!(
                "# Tenant console of {}: sign in at /tenant/{tenant}/signin",
                seeds[0].name
            ));
            credentials.push("# tenant-admin  email  password".to_string());
            credentials.push(format!("tenant-admin  {email}  {password}"));
            self.save_credentials(&credentials)?;
        }
        revenue::seed(
            &self.state,
            end - Duration::minutes(170),
            &tenant_ids,
            &keys,
        )
        .await?;
        revenue::enforcement(&self.state, end - Duration::minutes(150), &tenant_ids).await?;
        approvals::seed(&self.state, end, &ops, &tenant_ids).await?;
        // An operator verified the whole ledger this morning (the dashboard's badge).
        let verify_at = end - Duration::hours(2);
        crate::audit::verify_and_checkpoint(
            self.state.store(),
            verify_at,
            self.state.install_key(),
            None,
            crate::audit::Mode::Full,
        )
        .await?;
        Ok(())
    }
}

enum Event {
    Provision(usize),
    Step(Step),
    Flip(&'static str, PoolStatus, &'static str),
    Job(Job),
    Visits(usize),
}
