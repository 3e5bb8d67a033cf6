//! The player's captions: on or off (remembered per browser), and the lines
//! on screen, from the live socket (timed against the picture) or from a
//! recording's WebVTT against the playback position.

use leptos::prelude::*;

use crate::protocol::events::Caption;
use crate::transcripts::{active_line, caption_lines, TranscriptLine};

/// Characters per caption line (two lines at most on screen).
const CAPTION_WIDTH: usize = 42;
/// `localStorage` key of the CC choice.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const CC_KEY: &str = "onair-cc";

/// How long a live caption stays after its own duration (which counts up
/// to 6 s), ms.
const CAPTION_HOLD_MS: i64 = 2000;
/// Live captions kept for a viewer who is behind the newest one.
#[cfg(feature = "hydrate")]
const CAPTION_QUEUE: usize = 32;

/// A live caption and when it is on screen, in program time (the stream's
/// `EXT-X-PROGRAM-DATE-TIME` clock, Unix ms): from its start, or from when it
/// arrived if the picture was already past its start (transcription takes a
/// few seconds, so a viewer at the live edge gets it late), for its duration
/// (at most 6 s) plus `CAPTION_HOLD_MS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedCaption {
    /// The caption.
    pub caption: Caption,
    /// On screen from here (program ms).
    pub from_ms: i64,
    /// Until here (program ms).
    pub until_ms: i64,
}

impl TimedCaption {
    /// Times `caption`, which arrived while the picture showed `arrived_ms`.
    pub fn new(caption: Caption, arrived_ms: i64) -> Self {
        let from_ms = caption.start_ms.max(arrived_ms);
        let length = caption
            .end_ms
            .saturating_sub(caption.start_ms)
            .clamp(0, 6000);
        let until_ms = from_ms.saturating_add(length + CAPTION_HOLD_MS);
        TimedCaption {
            caption,
            from_ms,
            until_ms,
        }
    }
}

/// The caption for the picture at program time `now_ms`: the newest one
/// on screen at that moment. A caption the picture has not reached yet waits.
pub fn live_caption(
    queue: &std::collections::VecDeque<TimedCaption>,
    now_ms: i64,
) -> Option<&Caption> {
    queue
        .iter()
        .rev()
        .find(|c| c.from_ms <= now_ms && now_ms <= c.until_ms)
        .map(|c| &c.caption)
}

/// The captions: on or off (remembered per browser), and the two lines on
/// screen, from the live socket or from a recording's WebVTT against the
/// playback position.
#[derive(Clone, Copy)]
pub(super) struct CaptionState {
    pub(super) on: RwSignal<bool>,
    pub(super) available: Signal<bool>,
    pub(super) lines: Memo<Vec<String>>,
    /// The live caption's start (program ms) while one is timed on screen.
    pub(super) live_start: Memo<Option<i64>>,
}

impl CaptionState {
    pub(super) fn new(
        live: Option<Signal<Option<Caption>>>,
        url: Option<String>,
        position_ms: RwSignal<i64>,
        program_ms: RwSignal<Option<i64>>,
    ) -> Self {
        let on = RwSignal::new(false);
        // Live captions timed against the picture (when it has a program time).
        let queue = RwSignal::new(std::collections::VecDeque::<TimedCaption>::new());
        let cues = RwSignal::new(Vec::<TranscriptLine>::new());
        // The live caption on screen, cleared a moment after it ends.
        let live_text = RwSignal::new(None::<String>);
        #[cfg(feature = "hydrate")]
        {
            let stored = window()
                .local_storage()
                .ok()
                .flatten()
                .and_then(|s| s.get_item(CC_KEY).ok().flatten());
            on.set(stored.as_deref() == Some("on"));
            if let Some(url) = url.clone().filter(|u| !u.is_empty()) {
                leptos::task::spawn_local(async move {
                    if let Some(text) = fetch_text(&url).await {
                        cues.set(crate::transcripts::parse_vtt(&text));
                    }
                });
            }
            if let Some(live) = live {
                let shown = RwSignal::new(0u64);
                Effect::new(move |_| {
                    let Some(c) = live.get() else { return };
                    if let Some(now) = program_ms.get_untracked() {
                        queue.update(|q| {
                            q.push_back(TimedCaption::new(c.clone(), now));
                            while q.len() > CAPTION_QUEUE {
                                q.pop_front();
                            }
                        });
                    }
                    live_text.set(Some(c.text.clone()));
                    let n = shown.get_untracked() + 1;
                    shown.set(n);
                    let ms = (c.end_ms - c.start_ms).clamp(0, 6000) as u64 + 2000;
                    leptos::prelude::set_timeout(
                        move || {
                            if shown.get_untracked() == n {
                                live_text.set(None);
                            }
                        },
                        std::time::Duration::from_millis(ms),
                    );
                });
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&url, position_ms, queue);
        let has_live = live.is_some();
        let available = Signal::derive(move || has_live || cues.with(|c| !c.is_empty()));
        let lines = Memo::new(move |_| {
            if !on.get() {
                return Vec::new();
            }
            let text = if has_live {
                // At the picture's time when the player knows it; as it
                // arrives otherwise.
                match program_ms.get() {
                    Some(now) => queue.with(|q| live_caption(q, now).map(|c| c.text.clone())),
                    None => live_text.get(),
                }
            } else {
                let at = position_ms.get();
                cues.with(|c| active_line(c, at).map(|l| l.text.clone()))
            };
            text.map(|t| caption_lines(&t, CAPTION_WIDTH))
                .unwrap_or_default()
        });
        let live_start = Memo::new(move |_| {
            let now = program_ms.get()?;
            queue.with(|q| live_caption(q, now).map(|c| c.start_ms))
        });
        CaptionState {
            live_start,
            on,
            available,
            lines,
        }
    }

    pub(super) fn toggle(&self) {
        let on = !self.on.get_untracked();
        self.on.set(on);
        #[cfg(feature = "hydrate")]
        if let Ok(Some(storage)) = window().local_storage() {
            let _ = storage.set_item(CC_KEY, if on { "on" } else { "off" });
        }
    }
}

/// GETs a text file (same origin); `None` unless it answers 200.
#[cfg(feature = "hydrate")]
async fn fetch_text(url: &str) -> Option<String> {
    use wasm_bindgen::JsCast;
    let res = wasm_bindgen_futures::JsFuture::from(window().fetch_with_str(url))
        .await
        .ok()?
        .dyn_into::<web_sys::Response>()
        .ok()?;
    if !res.ok() {
        return None;
    }
    wasm_bindgen_futures::JsFuture::from(res.text().ok()?)
        .await
        .ok()?
        .as_string()
}

#[cfg(test)]
mod tests {
    use super::{live_caption, TimedCaption};
    use crate::protocol::events::Caption;
    use std::collections::VecDeque;

    fn cue(start_ms: i64, end_ms: i64, text: &str) -> Caption {
        Caption {
            start_ms,
            end_ms,
            text: text.into(),
        }
    }

    #[test]
    fn live_captions_wait_for_the_picture() {
        // A viewer 8 s behind: the caption for 100.0–103.0 s arrives at 92 s of
        // their picture and shows only from 100 s, until 105 s.
        let mut q = VecDeque::new();
        q.push_back(TimedCaption::new(cue(100_000, 103_000, "hello"), 92_000));
        assert_eq!(live_caption(&q, 92_000), None);
        assert_eq!(live_caption(&q, 99_999), None);
        assert_eq!(
            live_caption(&q, 100_000).map(|c| c.text.as_str()),
            Some("hello")
        );
        assert_eq!(
            live_caption(&q, 105_000).map(|c| c.text.as_str()),
            Some("hello")
        );
        assert_eq!(live_caption(&q, 105_001), None);
        // The next one takes over when the picture reaches it.
        q.push_back(TimedCaption::new(cue(103_000, 106_000, "world"), 95_000));
        assert_eq!(
            live_caption(&q, 102_000).map(|c| c.text.as_str()),
            Some("hello")
        );
        assert_eq!(
            live_caption(&q, 103_000).map(|c| c.text.as_str()),
            Some("world")
        );
    }

    #[test]
    fn late_captions_show_as_they_arrive() {
        // At the live edge transcription lags: the caption for 100–103 s
        // arrives when the picture is at 104 s and shows for its 3 s + 2 s.
        let mut q = VecDeque::new();
        q.push_back(TimedCaption::new(cue(100_000, 103_000, "late"), 104_000));
        assert_eq!(
            live_caption(&q, 104_000).map(|c| c.text.as_str()),
            Some("late")
        );
        assert_eq!(
            live_caption(&q, 109_000).map(|c| c.text.as_str()),
            Some("late")
        );
        assert_eq!(live_caption(&q, 109_001), None);
        // A long window shows at most 6 s + 2 s; hostile times do not overflow.
        let long = TimedCaption::new(cue(0, 60_000, "long"), 0);
        assert_eq!(long.until_ms, 8_000);
        let odd = TimedCaption::new(cue(i64::MAX - 1, i64::MIN, "odd"), i64::MAX);
        assert_eq!(odd.until_ms, i64::MAX);
    }
}
