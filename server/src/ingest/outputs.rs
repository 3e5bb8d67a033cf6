//! Where a live stream's outputs fan out: the session's side of the
//! pipeline's output seam ([`Publish`]). Every init segment, part, segment
//! and playlist goes to the origin's live window; init segments and completed
//! segments also go to the recording's [`Archive`] (upload queue and
//! catalog); the audio rendition's segments and the decoded audio go to the
//! captions' [`AudioTap`]; while the stream has WHEP viewers, the
//! pipeline's WebRTC frames go to its [`RtcFeed`]. A new destination for a stream's media plugs in
//! here.

use std::sync::Arc;

use crate::media::live::{tap_scale, Publish, RtcFrame, AUDIO_RENDITION};
use crate::origin::LiveStream;
use crate::packager::playlist::MediaSnapshot;
use crate::packager::segmenter::{Output, Segmenter};
use crate::packager::time::rescale;
use crate::recording::Archive;

use super::rtc::RtcFeed;
use crate::transcribe::{AudioTap, TapEvent};

/// One live stream's destinations.
#[derive(Debug)]
pub struct LiveOutputs {
    live: Arc<LiveStream>,
    archive: Option<Archive>,
    tap: Option<AudioTap>,
    rtc: Option<Arc<RtcFeed>>,
}

impl LiveOutputs {
    /// Outputs into `live`, and into `archive` and `tap` when given.
    pub fn new(live: Arc<LiveStream>, archive: Option<Archive>, tap: Option<AudioTap>) -> Self {
        LiveOutputs {
            live,
            archive,
            tap,
            rtc: None,
        }
    }

    /// Also into `feed`, while WHEP viewers hold it.
    pub fn with_rtc(mut self, feed: Arc<RtcFeed>) -> Self {
        self.rtc = Some(feed);
        self
    }
}

impl Drop for LiveOutputs {
    /// The pipeline stopped: its WHEP viewers' queue ends.
    fn drop(&mut self) {
        if let Some(feed) = &self.rtc {
            feed.detach();
        }
    }
}

impl Publish for LiveOutputs {
    fn wants_audio(&self) -> bool {
        self.tap.is_some()
    }

    fn init(&mut self, rendition: &str, fps: Option<(u32, u32)>, seg: &Segmenter) {
        let init = seg.init_segment();
        if let Some(a) = &self.archive {
            a.put(rendition, seg.init_uri(), init.clone());
            a.record_rendition(rendition, seg.track(), fps);
        }
        self.live.set_init(rendition, seg.init_uri(), init.clone());
    }

    /// Into the origin first, in one call (one lock), then the tap and the
    /// archive, segment by segment.
    fn step(&mut self, rendition: &str, outputs: Vec<Output>, seg: &Segmenter) {
        self.live.publish(rendition, &outputs, seg.snapshot());
        for o in outputs {
            let Output::Segment {
                msn,
                bytes,
                duration,
                start,
                program_date_time_ms,
                discontinuity,
            } = o
            else {
                continue;
            };
            if let (Some(tap), AUDIO_RENDITION) = (&self.tap, rendition) {
                // The tap counts at 48 kHz; copied audio may be at another rate.
                let scale = seg.track().timescale;
                let start_48k = rescale(start, scale, tap_scale());
                let end_48k = rescale(start.saturating_add(duration), scale, tap_scale());
                tap.send(TapEvent::Segment {
                    msn,
                    start: start_48k,
                    duration: end_48k.saturating_sub(start_48k),
                    program_date_time_ms,
                    discontinuity,
                });
            }
            if let Some(a) = &self.archive {
                a.put(rendition, &format!("{msn}.m4s"), bytes);
                a.record_segment(rendition, seg, msn);
            }
        }
    }

    fn snapshot(&mut self, rendition: &str, snapshot: MediaSnapshot) {
        self.live.set_snapshot(rendition, snapshot);
    }

    fn master(&mut self, text: String) {
        self.live.set_master(text);
    }

    fn audio(&mut self, at: u64, samples: Vec<f32>) {
        if let Some(tap) = &self.tap {
            tap.send(TapEvent::Audio { at, samples });
        }
    }

    fn wants_rtc(&self) -> bool {
        self.rtc.as_ref().is_some_and(|f| f.attached())
    }

    fn rtc(&mut self, frame: RtcFrame) {
        if let Some(feed) = &self.rtc {
            feed.send(frame);
        }
    }
}
