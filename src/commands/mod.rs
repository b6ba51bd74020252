//! What each command does, as library functions the CLI calls. Remote commands are ordered
//! lists of phases (src/phase/); the local ones here are a few lines each.

pub mod apply;
pub mod check;
pub mod man;
pub mod profile_update;
pub mod render;
pub mod reset;
pub mod schema;
pub mod switch;
pub mod unlock;
pub mod verify;
pub mod wizard;
