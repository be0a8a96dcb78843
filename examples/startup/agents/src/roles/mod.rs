//! The tools of each role.

pub mod cto;
pub mod devops;
pub mod qa;
