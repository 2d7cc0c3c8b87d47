#!/usr/bin/env bash
# Issue 13: full audit verify against the machine's SHA-256 speed, both measured in this run.
# The verify figure is `cargo bench --bench core -- audit_verify` (a full walk of every chain from
# seq 1 over a 100,001-chain ledger, in bytes of envelopes and data hashed per second); the
# reference is `openssl speed -evp sha256` on 8 KiB blocks, one thread. The goal is >= 50%.
# The same bench then signs a checkpoint at every chain's head, as the nightly verify job leaves
# a ledger, and measures the full verify again (`audit_verify_checkpointed`): each checkpoint's
# Ed25519 signature is checked too, so that figure is printed beside `openssl speed ed25519`.
#
# Usage: scripts/verify_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo bench --bench core -- audit_verify 2>&1 | tee "$out" | grep -E 'ledger:|checkpoints:|thrpt' || true
# criterion: "thrpt:  [155.2 MiB/s 157.0 MiB/s 158.9 MiB/s]": the middle figure is the estimate.
mib_of() {
  grep -A2 "^$1/full_all_chains" "$out" | grep -oE 'thrpt: +\[[^]]+\]' \
    | awk '{ v=$4; u=$5; if (u ~ /GiB/) v*=1024; if (u ~ /KiB/) v/=1024; print v }' | tail -1
}
verify_mib=$(mib_of audit_verify)
signed_mib=$(mib_of audit_verify_checkpointed)
# openssl: "sha256 ... <16 bytes> ... <8192 bytes>" in thousands of bytes per second.
sha_kbs=$(openssl speed -evp sha256 -bytes 8192 -seconds 3 2>/dev/null | awk '/^sha256/ { print $NF }' | tr -d 'k')
# openssl: "253 bits EdDSA (Ed25519)   0.0000s   0.0001s  42121.0  15888.0": verifies per second.
ed_vps=$(openssl speed -seconds 2 ed25519 2>/dev/null | awk '/Ed25519/ { print $NF }')
python3 - "$verify_mib" "$sha_kbs" "$signed_mib" "$ed_vps" <<'PY'
import sys
verify_mib, sha_kbs = float(sys.argv[1]), float(sys.argv[2])
verify_mb = verify_mib * 1024 * 1024 / 1e6
sha_mb = sha_kbs * 1000 / 1e6
print(f"verify: {verify_mb:.0f} MB/s; openssl sha256 (8 KiB blocks): {sha_mb:.0f} MB/s; "
      f"ratio {verify_mb / sha_mb:.0%} (goal >= 50%)")
if sys.argv[3]:
    signed_mb = float(sys.argv[3]) * 1024 * 1024 / 1e6
    print(f"verify with a checkpoint per chain: {signed_mb:.0f} MB/s ({signed_mb / sha_mb:.0%} of "
          f"sha256); openssl ed25519: {float(sys.argv[4]):.0f} verifies/s on one thread")
PY
