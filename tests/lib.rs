//! Cross-service end-to-end tests live in `tests/`: the services as real
//! servers on loopback, reached through their gRPC clients. The walk-through
//! with clients nobody on the team wrote is `tests/smoke.sh`, run by CI.
