//! Integration tests of baton-workflow's public API, in one binary.

mod common;
mod definition;
mod export;
mod plan;
mod properties;
mod reference;
mod validate;
