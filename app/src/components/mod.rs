//! Components shared by several pages.

pub mod chat;
pub mod layout;
pub mod player;
pub mod theme;
