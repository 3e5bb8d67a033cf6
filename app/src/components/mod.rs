//! Components shared by several pages.

pub mod layout;
pub mod player;
pub mod theme;
