//! Cross-service end-to-end tests go in this crate's `tests/` once a second service
//! exists (the gateway issue). Until then the single-service walk-through with
//! foreign clients is `tests/smoke.sh`, run by CI.
