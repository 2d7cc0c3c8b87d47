//! What the contexts declare, merged (`app::ALL`): the permission table as one reviewed list, and
//! the catalogue of event names.

use std::collections::BTreeSet;
use std::path::Path;

use tenantry::app::{ALL, registry, routes};
use tenantry::rbac::{Access, Permission, Role, allows};

const SNAPSHOT: &str = "tests/snapshots/routes.txt";

/// The merged permission table, one route per line, grouped by context.
fn rendered() -> String {
    let mut out = String::from(
        "# Every route's permission entry, by context (app::ALL order). Deny by default: a route\n\
         # missing here answers 403. Regenerate with UPDATE_SNAPSHOTS=1 cargo test --test it registry\n\
         # and review the diff: it is the security review of a route change.\n\n\
         # Who holds each permission (rbac::allows):\n",
    );
    for p in Permission::ALL {
        let roles: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| allows(*r, p))
            .map(Role::as_str)
            .collect();
        out.push_str(&format!(
            "#   {:<18} {}\n",
            format!("{p:?}"),
            roles.join(", ")
        ));
    }
    for c in ALL {
        if c.routes.is_empty() {
            continue;
        }
        out.push_str(&format!("\n[{}]\n", c.name));
        for (method, path, access) in c.routes {
            let access = match access {
                Access::Public => "public".to_string(),
                Access::Authenticated => "any principal".to_string(),
                Access::Requires(p) => format!("{p:?}"),
                Access::Tenant(s, p) => format!("scope {} | {p:?}", s.as_str()),
                Access::Member(p) => format!("any member | {p:?}"),
                Access::TenantInBody(s, p) => {
                    format!("scope {} (own tenant, in the body) | {p:?}", s.as_str())
                }
            };
            out.push_str(&format!("{method:<6} {path:<55} {access}\n"));
        }
    }
    out
}

#[test]
fn the_route_table_matches_its_reviewed_snapshot() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    let now = rendered();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &now).unwrap();
    }
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        before == now,
        "the merged route table differs from {SNAPSHOT}: review the change, then run \
         UPDATE_SNAPSHOTS=1 cargo test --test it registry\n--- now ---\n{now}"
    );
}

#[test]
fn no_route_is_declared_twice_and_every_context_has_a_name() {
    let mut seen = BTreeSet::new();
    for (method, path, _) in routes() {
        assert!(
            seen.insert((method, path)),
            "{method} {path} is declared twice"
        );
    }
    let names: BTreeSet<&str> = ALL.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), ALL.len(), "context names are unique");
    assert!(!names.contains(""), "every context is named");
}

/// Every `"noun.verb.vN"` literal in `src/`.
fn event_literals() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for lit in text.split('"').skip(1).step_by(2) {
                    if tenantry::audit::ledger::is_event_name(lit) {
                        out.insert(lit.to_string());
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[test]
fn the_event_catalogue_names_every_event_the_code_writes() {
    let catalogue: BTreeSet<String> = registry().events().iter().map(|e| e.to_string()).collect();
    // Webhook event types that are not ledger actions (billing's, the test delivery's) are named
    // in one list, and are not written to the ledger.
    let mut written = event_literals();
    for (name, _, _) in tenantry::webhooks::model::EXTRA_EVENTS {
        assert!(
            !catalogue.contains(*name),
            "{name} is both a ledger event and an extra webhook event type"
        );
        written.remove(*name);
    }
    let missing: Vec<_> = written.difference(&catalogue).collect();
    assert!(
        missing.is_empty(),
        "events written but in no context's `events`: {missing:?}"
    );
    let unused: Vec<_> = catalogue.difference(&written).collect();
    assert!(
        unused.is_empty(),
        "events in a context's `events` that nothing writes: {unused:?}"
    );
    assert_eq!(
        catalogue.len(),
        registry().events().len(),
        "an event is listed by two contexts"
    );
}
