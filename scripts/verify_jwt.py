#!/usr/bin/env python3
"""Verifies a Tenantry tenant token as another platform service would: offline, with PyJWT and
`cryptography`, against the keys published at /.well-known/jwks.json (RFC 7517, RFC 8037).

Usage: verify_jwt.py JWKS_URL TOKEN TENANT_ID
Prints the claims and exits 0 when the token verifies (signature, algorithm, issuer, expiry,
tenant); exits 1 with the reason otherwise.
"""
import json
import sys
import urllib.request

import jwt


def main():
    jwks_url, token, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
    with urllib.request.urlopen(jwks_url, timeout=10) as r:
        jwks = json.load(r)
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for k in jwks["keys"]}
    if header.get("kid") not in keys:
        print(f"unknown kid {header.get('kid')}", file=sys.stderr)
        return 1
    key = jwt.PyJWK.from_dict(keys[header["kid"]])
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=["EdDSA"],
            issuer="tenantry",
            options={"require": ["exp", "iat", "sub", "jti", "iss"]},
        )
    except jwt.PyJWTError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    if claims.get("tenant_id") != tenant:
        print(f"tenant_id {claims.get('tenant_id')} is not {tenant}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
