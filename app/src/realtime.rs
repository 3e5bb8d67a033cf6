//! The browser's connection to a stream's room (`WS /api/v1/streams/{id}/events`,
//! see [`crate::protocol::events`]): [`use_room`] opens it for as long as the calling
//! component lives and hands back a [`RoomHandle`] whose signals the chat, the
//! viewer count and the stream state read.
//!
//! What the connection does (the browser glue is in `realtime/socket.rs`):
//! - sends `hello` first, with a viewer id kept in localStorage
//!   ([`VIEWER_ID_KEY`]) so several tabs count as one viewer, and the private
//!   link's playback token;
//! - applies every frame to a [`Room`], which drops duplicates and remembers
//!   the last event id;
//! - sends `ping` every [`PING_EVERY_MS`], and reconnects when nothing at all
//!   arrived for [`SILENCE_LIMIT_MS`];
//! - reconnects with exponential backoff and jitter ([`crate::retry`]) after a
//!   drop, resuming from the last event id, so nothing is shown twice;
//! - stops for good on refusals that a retry cannot fix ([`is_final_close`]).
//!
//! The decisions are plain functions here, tested natively; on the server
//! (SSR) [`use_room`] returns an empty room that never connects.

use leptos::prelude::*;

use crate::protocol::close::CloseReason;
use crate::protocol::events::{close, ClientMessage, ClientRole, ModerationAction, Room};
use crate::protocol::StreamState;

/// How often the client sends `ping`, in milliseconds.
pub const PING_EVERY_MS: f64 = 15_000.0;
/// After this long without any frame, the connection is taken for dead and
/// replaced, in milliseconds.
pub const SILENCE_LIMIT_MS: f64 = 40_000.0;
/// How often the heartbeat is checked, in milliseconds.
pub const TICK_MS: i32 = 5_000;
/// Reconnect backoff: first delay and cap, in milliseconds.
pub const BACKOFF_MS: (f64, f64) = (500.0, 15_000.0);
/// The localStorage key of this browser's viewer id.
pub const VIEWER_ID_KEY: &str = "onair-viewer-id";

/// The state of the connection, for the "reconnecting…" line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Opening the first connection.
    Connecting,
    /// Welcomed: events flow.
    Open,
    /// The connection dropped; a new one is on its way.
    Reconnecting,
    /// Refused for good (no such stream, no access): why.
    Closed(String),
}

impl Link {
    /// A short name for `data-state` attributes.
    pub fn name(&self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Open => "open",
            Link::Reconnecting => "reconnecting",
            Link::Closed(_) => "closed",
        }
    }

    /// What to tell the person, if anything.
    pub fn text(&self) -> Option<String> {
        match self {
            Link::Connecting => Some("Connecting…".into()),
            Link::Open => None,
            Link::Reconnecting => Some("Reconnecting…".into()),
            Link::Closed(why) => Some(why.clone()),
        }
    }
}

/// Close codes after which reconnecting cannot help: a bad hello or frame
/// (a client bug), no access, no such stream. Everything else (a dropped
/// network, a server restart, "too slow", "full", "too many connections",
/// a late hello, a missed heartbeat) is retried with backoff.
pub fn is_final_close(code: u16) -> bool {
    matches!(
        code,
        close::BAD_HELLO | close::FORBIDDEN | close::NOT_FOUND | close::PROTOCOL | close::TOO_LARGE
    )
}

/// The text to show for a final close: the `message` of a JSON reason
/// (`{"code":…,"message":…}`), else the reason as it is, else a default for
/// the code.
pub fn close_message(code: u16, reason: &str) -> String {
    let from_json = serde_json::from_str::<CloseReason>(reason).ok();
    if let Some(m) = from_json
        .map(|r| r.message)
        .filter(|m| !m.trim().is_empty())
    {
        return m;
    }
    if !reason.trim().is_empty() && !reason.trim_start().starts_with('{') {
        return reason.trim().to_owned();
    }
    match code {
        close::FORBIDDEN => "This stream is private: open it from its shared link.".into(),
        close::NOT_FOUND => "There is no such stream.".into(),
        _ => format!("The chat connection was refused (code {code})."),
    }
}

/// What the heartbeat should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Nothing.
    Wait,
    /// Send `ping`.
    Ping,
    /// Nothing arrived for too long: drop the connection and reconnect.
    Dead,
}

/// The heartbeat's decision at `now`, given when the last frame arrived (or
/// the connection was opened) and when the last ping was sent (all in the
/// same milliseconds clock).
pub fn heartbeat(now: f64, last_heard: f64, last_ping: f64) -> Beat {
    if now - last_heard >= SILENCE_LIMIT_MS {
        Beat::Dead
    } else if now - last_ping >= PING_EVERY_MS {
        Beat::Ping
    } else {
        Beat::Wait
    }
}

/// The events socket URL for `stream` on this page's host.
pub fn events_url(https: bool, host: &str, stream: &str) -> String {
    let scheme = if https { "wss" } else { "ws" };
    format!("{scheme}://{host}/api/v1/streams/{stream}/events")
}

/// A new random viewer id: 24 characters of `[A-Za-z0-9]`, from a source of
/// numbers in `[0, 1)` (`Math.random()` is enough: the id only tells this
/// browser's tabs apart from other browsers', it guards nothing).
pub fn new_viewer_id(mut random: impl FnMut() -> f64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..24)
        .map(|_| {
            let i = (random().clamp(0.0, 1.0) * ALPHABET.len() as f64) as usize;
            ALPHABET[i.min(ALPHABET.len() - 1)] as char
        })
        .collect()
}

/// A viewer count for people: "1 watching", "3 watching".
pub fn watching(count: u32) -> String {
    format!("{count} watching")
}

/// One stream's room as the page sees it. Cheap to copy.
#[derive(Clone, Copy)]
pub struct RoomHandle {
    /// The room: messages, viewers, state, permissions, notices.
    pub room: RwSignal<Room>,
    /// The connection.
    pub link: RwSignal<Link>,
    /// The latest moderation action and whom it was about, so moderators can
    /// undo a ban or timeout from the notice.
    pub moderation: RwSignal<Option<(ModerationAction, String)>>,
    send: Callback<ClientMessage, bool>,
}

impl RoomHandle {
    /// A room that is not connected (yet), sending through `send`.
    fn new(send: Callback<ClientMessage, bool>) -> Self {
        RoomHandle {
            room: RwSignal::new(Room::default()),
            link: RwSignal::new(Link::Connecting),
            moderation: RwSignal::new(None),
            send,
        }
    }

    /// Sends a message; false when the connection is not open.
    pub fn send(&self, message: ClientMessage) -> bool {
        self.send.run(message)
    }

    /// The stream's state, once the server said it (reactive).
    pub fn state(&self) -> Option<StreamState> {
        self.room.with(|r| r.state)
    }

    /// Whether the welcome arrived (reactive).
    pub fn welcomed(&self) -> bool {
        self.state().is_some()
    }

    /// Distinct viewers (reactive).
    pub fn viewers(&self) -> u32 {
        self.room.with(|r| r.viewers)
    }
}

/// Joins the room of `stream` for as long as the calling component lives:
/// a watch page as `ClientRole::Viewer` (with the private link's `token`),
/// the studio as `ClientRole::Studio`, which is not counted as a viewer.
/// The socket is closed and every timer cleared when the component goes away.
pub fn use_room(stream: String, role: ClientRole, token: Option<String>) -> RoomHandle {
    #[cfg(feature = "hydrate")]
    {
        // The socket is made once the handle exists (it reports into its
        // signals), so sending goes through a slot filled right after.
        let slot = std::rc::Rc::new(std::cell::RefCell::new(None::<socket::Conn>));
        let sender = send_wrapper::SendWrapper::new(slot.clone());
        let handle = RoomHandle::new(Callback::new(move |m: ClientMessage| {
            sender.borrow().as_ref().is_some_and(|c| c.send(&m))
        }));
        let token = token.filter(|t| !t.is_empty());
        let conn = socket::Conn::start(stream, role, token, handle);
        *slot.borrow_mut() = Some(conn.clone());
        let stopped = send_wrapper::SendWrapper::new(conn);
        on_cleanup(move || stopped.stop());
        handle
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (stream, role, token);
        RoomHandle::new(Callback::new(|_| false))
    }
}

#[cfg(feature = "hydrate")]
mod socket;

/// This browser's anonymous viewer id (kept in localStorage).
#[cfg(feature = "hydrate")]
pub fn browser_viewer_id() -> String {
    socket::viewer_id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::events::valid_viewer_id;

    #[test]
    fn the_heartbeat_pings_every_15_s_and_gives_up_after_40_s_of_silence() {
        // Just heard, just pinged.
        assert_eq!(heartbeat(1_000.0, 1_000.0, 1_000.0), Beat::Wait);
        assert_eq!(heartbeat(16_000.0, 10_000.0, 1_000.0), Beat::Ping);
        assert_eq!(heartbeat(15_999.0, 10_000.0, 1_000.0), Beat::Wait);
        assert_eq!(heartbeat(15_000.0, 14_000.0, 1_000.0), Beat::Wait);
        // Pongs keep it alive; silence kills it even right after a ping.
        assert_eq!(heartbeat(41_000.0, 1_000.0, 40_000.0), Beat::Dead);
        assert_eq!(heartbeat(40_999.0, 1_000.0, 31_000.0), Beat::Wait);
    }

    #[test]
    fn only_refusals_a_retry_cannot_fix_are_final() {
        for code in [4000, 4002, 4003, 4004, 4013] {
            assert!(is_final_close(code), "{code}");
        }
        // Dropped, going away, dead peer, no hello in time, too slow, too
        // many sockets from this address, full, internal.
        for code in [1000, 1001, 1006, 1011, 4008, 4408, 4029, 4429, 4503, 4500] {
            assert!(!is_final_close(code), "{code}");
        }
    }

    #[test]
    fn close_reasons_become_readable_text() {
        assert_eq!(
            close_message(4003, r#"{"code":"forbidden","message":"Private stream."}"#),
            "Private stream."
        );
        assert_eq!(close_message(4004, "gone"), "gone");
        assert_eq!(close_message(4004, ""), "There is no such stream.");
        assert_eq!(
            close_message(4003, r#"{"code":"forbidden"}"#),
            "This stream is private: open it from its shared link."
        );
        assert!(close_message(4000, "").contains("4000"));
    }

    #[test]
    fn urls_ids_and_counts() {
        assert_eq!(
            events_url(false, "127.0.0.1:3000", "abc"),
            "ws://127.0.0.1:3000/api/v1/streams/abc/events"
        );
        assert_eq!(
            events_url(true, "live.example.com", "abc"),
            "wss://live.example.com/api/v1/streams/abc/events"
        );
        let mut x = 0.0;
        let id = new_viewer_id(|| {
            x = (x + 0.137) % 1.0;
            x
        });
        assert_eq!(id.len(), 24);
        assert!(valid_viewer_id(&id));
        // Even a source that returns 1.0 stays inside the alphabet.
        assert!(valid_viewer_id(&new_viewer_id(|| 1.0)));
        assert_eq!(watching(1), "1 watching");
        assert_eq!(watching(3), "3 watching");
    }

    #[test]
    fn links_say_what_is_happening() {
        assert_eq!(Link::Open.text(), None);
        assert_eq!(Link::Reconnecting.text().as_deref(), Some("Reconnecting…"));
        assert_eq!(Link::Closed("no".into()).name(), "closed");
    }
}
