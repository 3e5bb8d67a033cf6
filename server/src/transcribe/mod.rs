//! Live transcription: the pipeline's decoded audio, resampled to 16 kHz
//! mono and cut into windows ([`pcm`]), goes to an OpenAI-compatible
//! `POST /audio/transcriptions` endpoint (OpenAI, Azure OpenAI or a local
//! server, through `async-openai`). Each result, in media order, becomes
//! 1. a caption event on the stream's events socket,
//! 2. a cue in the live WebVTT rendition (`/live/<id>/subs/`), and
//! 3. a `transcript` row in the database (which the recording's captions,
//!    the transcript page and search read).
//!
//! The pipeline never waits for any of it: its [`AudioTap`] drops audio when
//! the queue is full (counted). Requests run concurrently up to
//! `--asr-concurrency` per stream; each is retried with exponential backoff
//! and then skipped with a logged, counted error.
//!
//! Metrics: `onair_asr_windows_total{result}` (`transcribed`, `silent`,
//! `failed`, `dropped`), `onair_asr_request_seconds`, `onair_asr_tap_dropped_total`.

pub mod pcm;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

pub use crate::openai::{retryable, Endpoint, OpenAiClient, Provider};

use crate::db::transcripts::TranscriptRow;
use crate::db::Database;
use crate::origin::LiveStream;
use crate::packager::webvtt::{SegmentSpan, VttSegmenter};
use app::protocol::events::Caption;
use app::transcripts::TranscriptLine;
use pcm::{Downsampler, Window, WindowConfig, Windower, ASR_RATE};

/// Transcription settings.
#[derive(Debug, Clone)]
pub struct AsrConfig {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The spoken language (ISO 639-1), or `None` to let the model detect it.
    pub language: Option<String>,
    /// Requests in flight per stream.
    pub concurrency: usize,
    /// Each request's time limit.
    pub timeout: Duration,
    /// Retries after a failed request (then the window is skipped).
    pub retries: u32,
    /// The first retry's delay; doubled each time.
    pub backoff: Duration,
    /// How audio is cut into windows.
    pub window: WindowConfig,
    /// Windows waiting for a request slot; beyond this the oldest is skipped.
    pub max_queue: usize,
    /// Subtitle segments waiting for their transcription before they are
    /// published without it.
    pub max_pending_segments: usize,
}

impl AsrConfig {
    /// Defaults around an endpoint.
    pub fn new(endpoint: Endpoint) -> Self {
        AsrConfig {
            endpoint,
            language: None,
            concurrency: 2,
            timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(500),
            window: WindowConfig::default(),
            max_queue: 32,
            max_pending_segments: 6,
        }
    }
}

/// What the pipeline tells the transcriber. Positions at 48 kHz on the media
/// timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum TapEvent {
    /// Mono samples starting at `at`.
    Audio {
        /// Position of the first sample.
        at: u64,
        /// Mono samples in [-1, 1].
        samples: Vec<f32>,
    },
    /// An audio segment closed (the subtitle segments follow them).
    Segment {
        /// Its media sequence number.
        msn: u64,
        /// Its first sample.
        start: u64,
        /// Its duration.
        duration: u64,
        /// `EXT-X-PROGRAM-DATE-TIME`, Unix ms.
        program_date_time_ms: Option<i64>,
        /// It starts a new period.
        discontinuity: bool,
    },
}

/// The pipeline's end of the transcriber: never blocks. Dropping it ends
/// the transcription of the stream.
#[derive(Debug, Clone)]
pub struct AudioTap {
    tx: mpsc::Sender<TapEvent>,
}

/// Tap events queued per stream (about 40 s of audio frames).
pub const TAP_QUEUE: usize = 2048;

impl AudioTap {
    /// A tap and the receiving end (for tests and the transcriber).
    pub fn channel() -> (AudioTap, mpsc::Receiver<TapEvent>) {
        let (tx, rx) = mpsc::channel(TAP_QUEUE);
        (AudioTap { tx }, rx)
    }

    /// Sends an event, or drops it if the transcriber is behind.
    pub fn send(&self, event: TapEvent) {
        if self.tx.try_send(event).is_err() {
            metrics::counter!("onair_asr_tap_dropped_total").increment(1);
        }
    }
}

/// The media-time to wall-clock mapping of the latest segment.
#[derive(Debug, Clone, Copy)]
struct Clock {
    media_ms: i64,
    program_ms: i64,
}

/// The outcome of one window.
struct Done {
    window_start: u64,
    window_end: u64,
    text: Option<String>,
    silent: bool,
}

/// Where a stream's captions go as they are made (the server gives its
/// realtime rooms, which send each to the stream's viewers).
pub trait CaptionSink: Send + Sync {
    /// Hands `caption` of stream `stream_id` on; never blocks.
    fn caption(&self, stream_id: &str, caption: Caption);
}

/// Transcribes live streams; one task per stream.
pub struct Transcriber {
    client: OpenAiClient,
    cfg: AsrConfig,
    db: Database,
    captions: Arc<dyn CaptionSink>,
    window_segments: usize,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn ms16(samples: u64) -> i64 {
    (samples * 1000 / u64::from(ASR_RATE)) as i64
}

fn ms48(ticks: u64) -> u64 {
    ticks * 1000 / 48_000
}

impl Transcriber {
    /// A transcriber that hands captions to `captions` and stores lines in
    /// `db`; the subtitle playlist keeps `window_segments` segments.
    pub fn new(
        cfg: AsrConfig,
        db: Database,
        captions: Arc<dyn CaptionSink>,
        window_segments: usize,
    ) -> Arc<Self> {
        Arc::new(Transcriber {
            client: OpenAiClient::new(&cfg.endpoint),
            cfg,
            db,
            captions,
            window_segments,
        })
    }

    /// The settings.
    pub fn config(&self) -> &AsrConfig {
        &self.cfg
    }

    /// Starts transcribing a stream whose window is `live`; the pipeline
    /// feeds the returned tap. The task ends after the tap is dropped and
    /// the last window is done.
    pub fn start(self: &Arc<Self>, stream_id: &str, live: Arc<LiveStream>) -> AudioTap {
        let (tap, rx) = AudioTap::channel();
        let vtt = VttSegmenter::new(self.window_segments, self.cfg.max_pending_segments);
        live.publish_subtitles(vtt.playlist(), Vec::new(), 0);
        tokio::spawn(self.clone().run(stream_id.to_string(), live, vtt, rx));
        tap
    }

    async fn request(self: Arc<Self>, w: Window) -> Done {
        let done = |text| Done {
            window_start: w.start,
            window_end: w.end(),
            text,
            silent: w.silent,
        };
        if w.silent {
            return done(Some(String::new()));
        }
        let wav = pcm::wav(&w.samples);
        let ep = &self.cfg.endpoint;
        let mut delay = self.cfg.backoff;
        let mut last = String::new();
        for attempt in 0..=self.cfg.retries {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            let started = Instant::now();
            let call = self
                .client
                .transcribe(wav.clone(), &ep.model, self.cfg.language.as_deref());
            match tokio::time::timeout(self.cfg.timeout, call).await {
                Ok(Ok(text)) => {
                    metrics::histogram!("onair_asr_request_seconds")
                        .record(started.elapsed().as_secs_f64());
                    return done(Some(text.trim().to_string()));
                }
                Ok(Err(e)) => {
                    last = e.to_string();
                    tracing::debug!(attempt, error = %last, "transcription request failed");
                    if !retryable(&e) {
                        break;
                    }
                }
                Err(_) => {
                    last = format!("no answer within {:?}", self.cfg.timeout);
                }
            }
        }
        tracing::warn!(url = %ep.url, start_ms = ms16(w.start), error = %last, "skipped a transcription window");
        done(None)
    }

    async fn run(
        self: Arc<Self>,
        id: String,
        live: Arc<LiveStream>,
        mut vtt: VttSegmenter,
        mut rx: mpsc::Receiver<TapEvent>,
    ) {
        let mut down = Downsampler::new();
        let mut windows = Windower::new(self.cfg.window);
        let mut next16: Option<u64> = None;
        let mut queue: VecDeque<Window> = VecDeque::new();
        let mut flight = FuturesOrdered::new();
        let mut clock: Option<Clock> = None;
        let mut prev: Option<(u64, String)> = None;
        let mut open = true;
        tracing::info!(stream = %id, url = %self.cfg.endpoint.url, "live transcription started");
        loop {
            while flight.len() < self.cfg.concurrency.max(1) {
                let Some(w) = queue.pop_front() else { break };
                flight.push_back(self.clone().request(w));
            }
            if !open && flight.is_empty() && queue.is_empty() {
                break;
            }
            tokio::select! {
                event = rx.recv(), if open => {
                    let mut ready = Vec::new();
                    match event {
                        Some(TapEvent::Audio { at, samples }) => {
                            let pos = at / 3;
                            let start = match next16 {
                                Some(n) if n.abs_diff(pos) <= 1 => n,
                                _ => {
                                    down.reset();
                                    pos
                                }
                            };
                            let out = down.push(&samples);
                            next16 = Some(start + out.len() as u64);
                            ready.extend(windows.push(start, &out));
                        }
                        Some(TapEvent::Segment { msn, start, duration, program_date_time_ms, discontinuity }) => {
                            let span = SegmentSpan {
                                msn,
                                start_ms: ms48(start),
                                duration_ms: ms48(start + duration) - ms48(start),
                                program_date_time_ms,
                                discontinuity,
                            };
                            if let Some(p) = program_date_time_ms {
                                clock = Some(Clock { media_ms: span.start_ms as i64, program_ms: p });
                            }
                            let new = vtt.segment(span);
                            publish(&live, &vtt, new);
                        }
                        None => {
                            open = false;
                            ready.extend(windows.finish());
                        }
                    }
                    for w in ready {
                        queue.push_back(w);
                        if queue.len() > self.cfg.max_queue {
                            if let Some(old) = queue.pop_front() {
                                metrics::counter!("onair_asr_windows_total", "result" => "dropped").increment(1);
                                tracing::warn!(stream = %id, start_ms = ms16(old.start), "the transcription endpoint is too slow: skipped a window");
                            }
                        }
                    }
                }
                Some(done) = flight.next(), if !flight.is_empty() => {
                    self.finish_window(&id, &live, &mut vtt, clock, &mut prev, done);
                }
            }
        }
        let last = vtt.finish();
        publish(&live, &vtt, last);
        tracing::info!(stream = %id, "live transcription finished");
    }

    fn finish_window(
        &self,
        id: &str,
        live: &LiveStream,
        vtt: &mut VttSegmenter,
        clock: Option<Clock>,
        prev: &mut Option<(u64, String)>,
        done: Done,
    ) {
        let result = match (&done.text, done.silent) {
            (_, true) => "silent",
            (Some(_), false) => "transcribed",
            (None, false) => "failed",
        };
        metrics::counter!("onair_asr_windows_total", "result" => result).increment(1);
        let raw = done.text.unwrap_or_default();
        // An overlapping window repeats the previous one's last words.
        let text = match prev.as_ref() {
            Some((end, before)) if done.window_start < *end => pcm::strip_repeat(before, &raw),
            _ => raw.clone(),
        };
        *prev = Some((done.window_end, raw));
        let start_ms = ms16(done.window_start);
        let end_ms = ms16(done.window_end);
        if !text.is_empty() {
            let program = |media: i64| match clock {
                Some(c) => c.program_ms + (media - c.media_ms),
                None => crate::clock::now_ms() - (end_ms - media),
            };
            self.captions.caption(
                id,
                Caption {
                    start_ms: program(start_ms),
                    end_ms: program(end_ms),
                    text: text.clone(),
                },
            );
            vtt.cue(TranscriptLine {
                start_ms,
                end_ms,
                text: text.clone(),
            });
            let row = TranscriptRow {
                stream: id.to_string(),
                start_ms,
                end_ms,
                program_ms: clock.map(|_| program(start_ms)),
                text,
            };
            let db = self.db.clone();
            tokio::spawn(async move {
                for attempt in 0..5u32 {
                    match db.insert_transcript(std::slice::from_ref(&row)).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(stream = %row.stream, attempt, error = %e, "could not store a transcript line; retrying");
                            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                        }
                    }
                }
                metrics::counter!("onair_asr_rows_lost_total").increment(1);
                tracing::error!(stream = %row.stream, start_ms = row.start_ms, "gave up storing a transcript line");
            });
        }
        let cut = vtt.transcribed_through(end_ms);
        publish(live, vtt, cut);
    }
}

/// Publishes new subtitle segments and the playlist that lists them.
fn publish(live: &LiveStream, vtt: &VttSegmenter, new: Vec<crate::packager::webvtt::VttSegment>) {
    if new.is_empty() {
        return;
    }
    let oldest = vtt.segments().next().map(|s| s.span.msn).unwrap_or(0);
    let files = new
        .into_iter()
        .map(|s| (s.span.msn, Bytes::from(s.text)))
        .collect();
    live.publish_subtitles(vtt.playlist(), files, oldest);
}
