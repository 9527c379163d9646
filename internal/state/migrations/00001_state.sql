-- +goose Up
-- The state store's key space (see internal/state/space.go): every record is a key under one
-- of the store's prefixes, compared bytewise like the embedded Pebble store.
CREATE TABLE weir_state (
    k bytea PRIMARY KEY,
    v bytea NOT NULL
);

-- Leases: the retry scheduler's, each partition's, each instance's membership. token grows
-- each time a lease changes hands; fenced writes check it.
CREATE TABLE weir_leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE weir_leases;
DROP TABLE weir_state;
