#!/usr/bin/env python3
"""Verify a Tenantry license file offline, the way a tool outside Tenantry would (HEARTBEATS.md
"License"; anchor: Keygen's offline Ed25519 license files).

It uses only the Python standard library and `cryptography`, and none of Tenantry's code.

    usage: verify_license.py LICENSE.json PUBLIC_KEY_BASE64

PUBLIC_KEY_BASE64 is `public_key` from the control plane's `GET /api/license/public-key`.
Exit status: 0 when the signature verifies (the license may still be expired: it says so);
1 with "REFUSED: ..." when it does not.

A license must name what it binds to: `install_key_id` (the appliance's install key) or, before
the install has a key, `enrollment_key_id` (the verifier of the one-time enrollment secret the
vendor hands over with the license). One naming neither would bind to any appliance, so it is
refused here as Tenantry refuses it.

The signature is Ed25519 over the canonical bytes (RFC 8785) of the "license" object, computed
as json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False): for the license's
integer-only, BMP-keyed members this is exactly JCS.
"""
import base64
import datetime
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def refuse(why):
    print(f"REFUSED: {why}")
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    path, public_b64 = sys.argv[1], sys.argv[2]
    public = base64.b64decode(public_b64)
    key = Ed25519PublicKey.from_public_bytes(public)
    key_id = hashlib.sha256(public).hexdigest()
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if set(doc) != {"license", "key_id", "sig"}:
        refuse('not a signed license: expected exactly "license", "key_id" and "sig"')
    if doc["key_id"] != key_id:
        refuse(f"signed by key {doc['key_id']}, but the given public key is {key_id}")
    try:
        key.verify(base64.b64decode(doc["sig"]), canonical(doc["license"]))
    except InvalidSignature:
        refuse("the signature does not verify: the license was altered or forged")
    lic = doc["license"]
    if lic.get("install_key_id"):
        binding = f"bound to install key {lic['install_key_id']}"
    elif lic.get("enrollment_key_id"):
        binding = f"bound to enrollment {lic['enrollment_key_id']} (its tenroll_ secret enrolls the install key)"
    else:
        refuse("the license names no install key and no enrollment: any appliance could use it")
    expires = datetime.datetime.fromisoformat(lic["expires_at"].replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.timezone.utc)
    state = "EXPIRED" if now >= expires else "valid"
    print(
        f"ok: license {lic['license_id']} for install {lic['install_id']} ({lic['customer']}), "
        f"{state} until {lic['expires_at']}, max_tenants {lic['limits']['max_tenants']}, "
        f"air_gapped {lic['air_gapped']}, {binding}"
    )


if __name__ == "__main__":
    main()
