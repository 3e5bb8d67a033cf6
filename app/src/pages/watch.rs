//! The watch page (`/watch/:id`): the live player for one stream.
//!
//! A private stream's link carries `?token=…` (a signed playback token); the
//! page plays `/live/{id}/t/{token}/master.m3u8`, so every relative playlist
//! and media URI below it carries the token too.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::components::player::Player;

/// The master playlist URL for a stream, with its playback token if any.
pub fn master_url(stream: &str, token: Option<&str>) -> String {
    match token.filter(|t| !t.is_empty()) {
        Some(t) => format!("/live/{stream}/t/{t}/master.m3u8"),
        None => format!("/live/{stream}/master.m3u8"),
    }
}

/// Plays one live stream.
#[component]
pub fn WatchPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    view! {
        <Title text="Watch · Onair" />
        <section class="watch" data-testid="watch">
            {move || {
                let id = id();
                let token = query.read().get("token");
                let valid = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if valid {
                    view! { <Player src=master_url(&id, token.as_deref()) /> }.into_any()
                } else {
                    view! { <p class="error" data-testid="watch-invalid">"This is not a valid stream link."</p> }.into_any()
                }
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::master_url;

    #[test]
    fn the_playback_token_is_passed_on() {
        assert_eq!(master_url("abc", None), "/live/abc/master.m3u8");
        assert_eq!(master_url("abc", Some("")), "/live/abc/master.m3u8");
        assert_eq!(
            master_url("abc", Some("9.sig")),
            "/live/abc/master.m3u8?token=9.sig"
        );
    }
}
