//! One module per page.

pub mod account;
pub mod dashboard;
pub mod home;
pub mod my_streams;
pub mod not_found;
pub mod profile;
pub mod search;
pub mod studio;
pub mod transcript;
pub mod watch;
