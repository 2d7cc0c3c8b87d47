#!/usr/bin/env python3
"""Verify a Tenantry audit export (AUDIT.md, format v1) the way an outside auditor would.

It uses only the Python standard library and `cryptography` (for Ed25519), and none of
Tenantry's code: it is the proof that the export is checkable with tools we did not write.

    usage: verify_export.py EXPORT.ndjson PUBLIC_KEY_BASE64

PUBLIC_KEY_BASE64 is `public_key` from `GET /api/audit/public-key`.
Exit status: 0 when the chain verifies; 1 with "BROKEN at seq N: ..." naming the first bad seq.

Canonical bytes (RFC 8785) are computed as json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False): for the ledger's integer-only data with BMP keys this is exactly JCS.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def broken(seq, why):
    print(f"BROKEN at seq {seq}: {why}")
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    path, public_b64 = sys.argv[1], sys.argv[2]
    public = base64.b64decode(public_b64)
    key = Ed25519PublicKey.from_public_bytes(public)
    key_id = hashlib.sha256(public).hexdigest()

    entries, checkpoints = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            if "entry" in obj:
                entries.append(obj)
            elif "checkpoint" in obj:
                checkpoints.append(obj["checkpoint"])

    chain = entries[0]["entry"]["chain"] if entries else "(empty)"
    prev = "0" * 64
    hashes = {}
    for expected_seq, line in enumerate(entries, start=1):
        env = line["entry"]
        if env.get("v") != 1:
            broken(expected_seq, f"unknown format version {env.get('v')}")
        if env.get("seq") != expected_seq:
            broken(expected_seq, f"expected seq {expected_seq}, found {env.get('seq')}")
        if env.get("chain") != chain:
            broken(expected_seq, f"entry belongs to chain {env.get('chain')}")
        if env.get("prev") != prev:
            broken(expected_seq, "prev does not link to the previous entry's hash")
        digest = hashlib.sha256(canonical(env)).hexdigest()
        if digest != line["hash"]:
            broken(expected_seq, "the envelope does not hash to the exported hash")
        data = line.get("data")
        if data is not None and hashlib.sha256(canonical(data)).hexdigest() != env["data_sha256"]:
            broken(expected_seq, "data does not match data_sha256")
        hashes[expected_seq] = digest
        prev = digest

    for cp in checkpoints:
        if cp["key_id"] != key_id:
            broken(cp["seq"], f"checkpoint signed by unknown key {cp['key_id']}")
        message = canonical({k: cp[k] for k in ("chain", "seq", "hash", "ts")})
        try:
            key.verify(base64.b64decode(cp["sig"]), message)
        except InvalidSignature:
            broken(cp["seq"], "checkpoint signature is invalid")
        if cp["chain"] != chain:
            broken(cp["seq"], "checkpoint names another chain")
        if hashes.get(cp["seq"]) != cp["hash"]:
            broken(min(cp["seq"], len(entries) + 1), f"checkpoint at seq {cp['seq']} does not match the chain")

    print(f"ok {chain}: {len(entries)} entries, {len(checkpoints)} checkpoints verified")


if __name__ == "__main__":
    main()
