-- Drained regions (SPEC §2 `drain REGION`, §4.3): every pool value in a drained
-- region counts as down, shared by every server of the installation.
CREATE TABLE drained_regions (
    region      text PRIMARY KEY,
    drained_at  timestamptz NOT NULL DEFAULT now(),
    author      text NOT NULL
);
