#!/usr/bin/env bash
# R5: tampering at the byte level. Flips one byte of a redb data file per case, in audit
# entries (envelopes and stored hashes), audit data, another table's values, and anywhere in
# the file; each case must be refused at open (the integrity check), named by verify, or
# change nothing a reader sees. Never a silent pass, never a panic. `cargo test` runs 12 cases
# per kind.
#
# Usage: scripts/tamper.sh [CASES_PER_KIND]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTRY_TAMPER_CASES=${1:-200} \
  cargo test --lib store::tests::flipped_bytes -- --nocapture 2>&1 \
  | grep -E '^tamper:|test result|panicked'
