//! Components shared by several pages.

pub mod chapters;
pub mod charts;
pub mod chat;
pub mod clipboard;
pub mod encoder;
pub mod head;
pub mod health;
pub mod layout;
pub mod player;
pub mod recording;
pub mod stream_meta;
pub mod summary;
pub mod theme;
