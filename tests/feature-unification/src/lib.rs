//! A workspace member that exists only for its test: keycard built with
//! the aws-lc-rs backend while jsonwebtoken also has `rust_crypto` on
//! (feature unification). jsonwebtoken then cannot choose a crypto provider
//! by itself and panics unless keycard installs one; keycard must.
