//! Onair's web app: pages, components, server functions, and the types shared by
//! the browser (`hydrate`) and the server (`ssr`).
//!
//! # Layout
//! - [`shell`] and [`App`]: the HTML document and the router; [`assets`]:
//!   where the bundle's content-hashed stylesheet and hls.js are.
//! - `components/`: the layout shell (header, navigation, theme toggle,
//!   footer), the live player, and the chat with the viewer count.
//! - `pages/`: one file per page.
//! - [`analytics`]: the watch page's quality meter and beacon loop, the
//!   analytics API answer and the dashboard's number formatting.
//! - [`accounts`]: users, roles, credentials and the username/password rules.
//! - [`recordings`]: recordings (VOD, MP4, thumbnail) and their server functions.
//! - [`streams`]: stream types, their field rules, and the server functions that read them.
//! - [`transcripts`]: transcript lines, their WebVTT/SRT/text forms and the
//!   transcript page's server function; [`search`]: search results with
//!   safe highlights; [`summaries`]: on-demand summaries of a transcript.
//! - [`format`](mod@format): numbers for people (the `m:ss` clock, counts, durations,
//!   sizes, bitrates).
//! - [`error`]: [`error::AppError`], the error type that crosses the wire.
//! - [`protocol`]: the wire types, a leaf below every area: the events
//!   WebSocket (viewer count, stream state, chat, moderation, captions) and
//!   the client's room reducer, the ingest WebSocket, close-frame reasons,
//!   beacons, and [`protocol::StreamState`].
//! - [`health`]: a live stream's measured input (stream health) and its
//!   warnings.
//! - [`chat`]: chat rules, moderators and the moderation log (JSON API types).
//! - [`realtime`]: the browser's events socket (heartbeat, reconnect and
//!   resume) feeding a room into signals; [`retry`]: reconnect backoff.
//! - [`publisher`]: the studio's side of the ingest protocol as a sans-IO state
//!   machine (numbering, acks, resend after a drop, recorder restarts).
//! - `browser` (browser only): the wall and monotonic clocks.
//! - `serverfn` (server only): what the server functions share. Each area
//!   states what its server functions need as a trait of its own
//!   (`accounts::AccountsBackend`, `streams::StreamsBackend`, …), which
//!   the server implements, so this crate has no database code and no area
//!   depends on another's contract.

#![recursion_limit = "256"]

pub mod accounts;
pub mod analytics;
pub mod assets;
pub mod chapters;
pub mod chat;
pub mod components;
pub mod error;
pub mod format;
pub mod health;
pub mod html;
pub mod ids;
pub mod pages;
pub mod protocol;
pub mod publisher;
pub mod realtime;
pub mod recordings;
pub mod retry;
pub mod return_to;
pub mod search;
pub mod streams;
pub mod summaries;
pub mod transcripts;

#[cfg(feature = "hydrate")]
pub mod browser;
#[cfg(feature = "ssr")]
pub mod serverfn;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags};

use crate::components::head::PageTitle;
use leptos_router::{
    components::{Route, Router, Routes},
    ParamSegment, SsrMode, StaticSegment,
};

use crate::components::layout::Layout;
use crate::pages::{
    account::{LoginPage, RegisterPage},
    dashboard::{DashboardPage, StreamAnalyticsPage},
    home::HomePage,
    my_streams::MyStreamsPage,
    not_found::NotFound,
    profile::ProfilePage,
    search::SearchPage,
    studio::StudioPage,
    transcript::TranscriptPage,
    watch::{EmbedPage, WatchPage},
};

/// Sets the saved colour theme before first paint, so the page does not flash.
const THEME_BOOTSTRAP: &str = "try{var t=localStorage.getItem('onair-theme');if(t==='light'||t==='dark'){document.documentElement.dataset.theme=t}}catch(e){}";

/// The HTML document every page is rendered into.
///
/// The stylesheet and hls.js come from the [`assets::Assets`] the server
/// provides as context (their content-hashed names); the wasm and its JS from
/// `options.output_name`. A page that plays video preloads hls.js, so it
/// downloads next to the wasm instead of after hydration.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let assets = use_context::<assets::Assets>().unwrap_or_default();
    #[cfg(feature = "ssr")]
    let preload_hls = use_context::<http::request::Parts>()
        .is_some_and(|req| assets::plays_video(req.uri.path()));
    #[cfg(not(feature = "ssr"))]
    let preload_hls = false;
    let hls_preload =
        preload_hls.then(|| view! { <link rel="preload" href=assets.hls.clone() r#as="script" /> });
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme="dark">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <script nonce=leptos::nonce::use_nonce()>{THEME_BOOTSTRAP}</script>
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <link rel="stylesheet" href=assets.css />
                <meta name=assets::HLS_META content=assets.hls.clone() />
                {hls_preload}
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The root component: meta context, stylesheet, layout and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    // Runs only in the browser, once hydration has attached the app. Browser
    // tests wait for this marker before they interact with the page.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <PageTitle text="Onair" />
        <Router>
            <Layout>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage />
                    <Route path=StaticSegment("login") view=LoginPage />
                    <Route path=StaticSegment("register") view=RegisterPage />
                    <Route path=StaticSegment("streams") view=MyStreamsPage />
                    <Route path=StaticSegment("dashboard") view=DashboardPage />
                    <Route path=(StaticSegment("dashboard"), ParamSegment("id")) view=StreamAnalyticsPage />
                    // Async SSR: the stream's title and Open Graph tags are in the first
                    // response, so shared links preview.
                    <Route path=(StaticSegment("watch"), ParamSegment("id")) view=WatchPage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("watch"), ParamSegment("id"), StaticSegment("transcript")) view=TranscriptPage />
                    <Route path=StaticSegment("search") view=SearchPage />
                    <Route path=(StaticSegment("studio"), ParamSegment("id")) view=StudioPage />
                    <Route path=(StaticSegment("u"), ParamSegment("name")) view=ProfilePage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("embed"), ParamSegment("id")) view=EmbedPage ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}
