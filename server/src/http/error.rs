//! Errors at the HTTP edge: [`ApiError`], the one refusal shape, is defined
//! in `service::error` so the server functions' adapter converts into it too.

pub use crate::service::error::{panic_response, ApiError};
