-- DNSSEC keys of signed zones, shared by every server of the installation.
-- `private` is the PKCS#8 PEM, or "aesgcm:..." when GEOSTREAM_KEY_SECRET encrypts
-- it at rest; it never leaves through export or the API.
CREATE TABLE dnssec_keys (
    id         text PRIMARY KEY,
    zone       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('ksk', 'zsk', 'csk')),
    algorithm  text NOT NULL,
    private    text NOT NULL,
    state      text NOT NULL,
    created    bigint NOT NULL,
    next_at    bigint NOT NULL DEFAULT 0,
    wait       bigint NOT NULL DEFAULT 0,
    public     text NOT NULL DEFAULT ''  -- the DNSKEY rdata, as text
);
CREATE INDEX dnssec_keys_zone ON dnssec_keys (zone);
