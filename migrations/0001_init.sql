-- GeoStream DNS: the initial schema (production mode, SPEC §8).
-- Applied by `geostream-dns migrate` in one transaction; see docs/storage.md.

-- The configuration head: one row holding the generation the database is at.
-- Every change locks this row (SELECT ... FOR UPDATE), so writers queue up and
-- generations are gapless; servers poll it (a one-row read) besides LISTENing.
CREATE TABLE config_head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation  bigint NOT NULL DEFAULT 0 CHECK (generation >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO config_head (singleton, generation) VALUES (true, 0);

-- The change history: one row per applied change (apply, rollback, API).
CREATE TABLE generations (
    generation  bigint PRIMARY KEY CHECK (generation > 0),
    applied_at  timestamptz NOT NULL DEFAULT now(),
    author      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('apply', 'rollback', 'api')),
    summary     text NOT NULL,
    diff        jsonb NOT NULL              -- the plan's changes: [{op, zone, name, type, old, new}]
);

-- The zones being served. `settings` holds ttl, soa, nameservers, regions and
-- healthchecks in the SPEC §3 YAML shape (canonical form, config/document.py).
CREATE TABLE zones (
    name        text PRIMARY KEY,           -- absolute, lower-case: 'example.com.'
    serial      bigint NOT NULL CHECK (serial BETWEEN 0 AND 4294967295),
    settings    jsonb NOT NULL,
    generation  bigint NOT NULL REFERENCES generations,   -- last changed by
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX zones_generation ON zones (generation);

-- One row per record set (owner name and type). `data` is the record's entry
-- as a zone file writes it under its label: {type, ttl, value(s), routing}.
CREATE TABLE record_sets (
    zone        text NOT NULL REFERENCES zones (name) ON DELETE CASCADE,
    name        text NOT NULL,              -- absolute owner name: 'www.example.com.'
    type        text NOT NULL,
    data        jsonb NOT NULL,
    PRIMARY KEY (zone, name, type)
);

-- Every version of every zone, as a whole document, by the generation that
-- wrote it (NULL: the generation removed the zone). A zone as it was at
-- generation G is its latest row at or before G: `rollback` reads these.
CREATE TABLE zone_versions (
    generation  bigint NOT NULL REFERENCES generations,
    zone        text NOT NULL,
    serial      bigint,
    document    jsonb,
    PRIMARY KEY (zone, generation)
);
CREATE INDEX zone_versions_generation ON zone_versions (generation);
