//! The watch page's heartbeat: every [`HEARTBEAT_SECS`] (and at once when
//! the first frame shows) a `beacon` with the playback quality so far, over
//! the events socket, or `POST /api/v1/beacons` with `navigator.sendBeacon`
//! while the socket is down. Leaving the page sends a `leave` the same way.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::Meter;
use crate::browser::now_ms;
use crate::protocol::beacon::{Beacon, HEARTBEAT_SECS};
use crate::protocol::events::ClientMessage;
use crate::realtime::RoomHandle;

/// The URL of the HTTP fallback.
const BEACONS_URL: &str = "/api/v1/beacons";

/// POSTs a beacon as JSON with `navigator.sendBeacon` (which outlives the page).
fn post(beacon: &Beacon) -> bool {
    let Ok(json) = serde_json::to_string(beacon) else {
        return false;
    };
    let parts = js_sys::Array::of1(&JsValue::from_str(&json));
    let bag = web_sys::BlobPropertyBag::new();
    bag.set_type("application/json");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &bag) else {
        return false;
    };
    web_sys::window()
        .and_then(|w| {
            w.navigator()
                .send_beacon_with_opt_blob(BEACONS_URL, Some(&blob))
                .ok()
        })
        .unwrap_or(false)
}

struct Sender {
    stream: String,
    room: RoomHandle,
    meter: Meter,
    last_sent: Cell<i64>,
    left: Cell<bool>,
}

impl Sender {
    fn send(&self, leave: bool) {
        if self.left.get() {
            return;
        }
        let now = now_ms();
        let quality = self
            .meter
            .0
            .try_with_value(|m| m.snapshot(now))
            .unwrap_or_default();
        self.last_sent.set(now);
        // A leave goes over HTTP: the socket closes with the page.
        if !leave
            && self.room.send(ClientMessage::Beacon {
                leave,
                quality: Some(quality.clone()),
            })
        {
            return;
        }
        self.left.set(leave);
        post(&Beacon {
            stream_id: self.stream.clone(),
            viewer_id: crate::realtime::browser_viewer_id(),
            leave,
            quality: Some(quality),
        });
    }

    fn tick(&self) {
        let fresh = self
            .meter
            .0
            .try_update_value(|m| m.take_fresh())
            .unwrap_or(false);
        if fresh || now_ms() - self.last_sent.get() >= i64::from(HEARTBEAT_SECS) * 1000 {
            self.send(false);
        }
    }
}

/// Sends beacons for `stream` while the calling component lives.
pub fn start(stream: String, room: RoomHandle, meter: Meter) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let sender = Rc::new(Sender {
        stream,
        room,
        meter,
        last_sent: Cell::new(now_ms()),
        left: Cell::new(false),
    });
    let s = sender.clone();
    let tick = Closure::<dyn FnMut()>::new(move || s.tick());
    let s = sender.clone();
    let hide = Closure::<dyn FnMut()>::new(move || s.send(true));
    let timer = window
        .set_interval_with_callback_and_timeout_and_arguments_0(tick.as_ref().unchecked_ref(), 1000)
        .ok();
    let _ = window.add_event_listener_with_callback("pagehide", hide.as_ref().unchecked_ref());
    let parts = send_wrapper::SendWrapper::new((sender, tick, hide, timer));
    on_cleanup(move || {
        let (sender, tick, hide, timer) = parts.take();
        sender.send(true);
        if let Some(w) = web_sys::window() {
            if let Some(id) = timer {
                w.clear_interval_with_handle(id);
            }
            let _ =
                w.remove_event_listener_with_callback("pagehide", hide.as_ref().unchecked_ref());
        }
        // Dropped later, never from inside one of the callbacks.
        let later = Closure::once_into_js(move || drop((tick, hide)));
        if let Some(w) = web_sys::window() {
            let _ =
                w.set_timeout_with_callback_and_timeout_and_arguments_0(later.unchecked_ref(), 0);
        }
    });
}
