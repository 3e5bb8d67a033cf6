//! The output seam on its own: a fake [`Publish`] records what the pipeline
//! hands out, with no origin, store or captions behind it.

use super::tests::feed;
use super::{run, LiveConfig, Publish, RunOptions, AUDIO_RENDITION};
use crate::media::demux_tests::mkv_h264_opus;
use crate::packager::playlist::MediaSnapshot;
use crate::packager::segmenter::{Output, Segmenter};

/// One thing the pipeline handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Init {
        rendition: String,
        uri: String,
    },
    Step {
        rendition: String,
        parts: usize,
        segments: Vec<u64>,
    },
    Snapshot {
        rendition: String,
    },
    Master(String),
    Audio {
        at: u64,
        samples: usize,
    },
}

#[derive(Debug, Default)]
struct Recorded {
    audio: bool,
    events: Vec<Event>,
}

impl Publish for Recorded {
    fn wants_audio(&self) -> bool {
        self.audio
    }

    fn init(&mut self, rendition: &str, _fps: Option<(u32, u32)>, seg: &Segmenter) {
        self.events.push(Event::Init {
            rendition: rendition.to_string(),
            uri: seg.init_uri().to_string(),
        });
    }

    fn step(&mut self, rendition: &str, outputs: Vec<Output>, seg: &Segmenter) {
        assert!(!outputs.is_empty(), "{rendition}: an empty step");
        let segments: Vec<u64> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Segment { msn, .. } => Some(*msn),
                Output::Part { .. } => None,
            })
            .collect();
        for msn in &segments {
            assert!(
                seg.completed(*msn).is_some(),
                "{rendition}: segment {msn} is in the window the step comes with"
            );
        }
        self.events.push(Event::Step {
            rendition: rendition.to_string(),
            parts: outputs.len() - segments.len(),
            segments,
        });
    }

    fn snapshot(&mut self, rendition: &str, _snapshot: MediaSnapshot) {
        self.events.push(Event::Snapshot {
            rendition: rendition.to_string(),
        });
    }

    fn master(&mut self, text: String) {
        self.events.push(Event::Master(text));
    }

    fn audio(&mut self, at: u64, samples: Vec<f32>) {
        self.events.push(Event::Audio {
            at,
            samples: samples.len(),
        });
    }
}

#[test]
fn every_output_leaves_through_the_sink_in_order() {
    ffmpeg_next::init().expect("init");
    let cfg = LiveConfig {
        passthrough_only: true,
        ..LiveConfig::default()
    };
    let opts = RunOptions {
        first_msn: 5,
        ..RunOptions::default()
    };
    let mut sink = Recorded {
        audio: true,
        ..Recorded::default()
    };
    let report = run(feed(mkv_h264_opus(4)), cfg, opts, &mut sink).expect("pipeline");
    assert_eq!(report.video_frames, 120);
    let events = sink.events;

    // Each rendition: its init segment first, then segments numbered on from
    // `first_msn`, and a final playlist-only update (the end of the stream).
    let renditions: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Init { rendition, .. } => Some(rendition.clone()),
            _ => None,
        })
        .collect();
    assert!(
        renditions.contains(&AUDIO_RENDITION.to_string()),
        "{renditions:?}"
    );
    assert_eq!(
        renditions.len(),
        2,
        "passthrough video and audio: {renditions:?}"
    );
    for name in &renditions {
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| match e {
                Event::Init { rendition, .. }
                | Event::Step { rendition, .. }
                | Event::Snapshot { rendition } => rendition == name,
                _ => false,
            })
            .collect();
        assert!(
            matches!(mine.first(), Some(Event::Init { uri, .. }) if uri.ends_with(".mp4")),
            "{name}: {mine:?}"
        );
        let msns: Vec<u64> = mine
            .iter()
            .flat_map(|e| match e {
                Event::Step { segments, .. } => segments.clone(),
                _ => Vec::new(),
            })
            .collect();
        // Keyframes every 2 s: two segments in 4 s.
        assert!(msns.len() >= 2, "{name}: {msns:?}");
        let expected: Vec<u64> = (5..5 + msns.len() as u64).collect();
        assert_eq!(msns, expected, "{name}");
        assert!(
            mine.iter()
                .any(|e| matches!(e, Event::Step { parts, .. } if *parts > 0)),
            "{name}: parts"
        );
        assert!(
            matches!(mine.last(), Some(Event::Snapshot { .. })),
            "{name}: {:?}",
            mine.last()
        );
    }

    // The master comes once every rendition has a complete segment, and
    // lists them all.
    let first_master = events
        .iter()
        .position(|e| matches!(e, Event::Master(_)))
        .expect("a master playlist");
    for name in &renditions {
        assert!(
            events[..first_master].iter().any(|e| matches!(e,
                Event::Step { rendition, segments, .. } if rendition == name && !segments.is_empty())),
            "{name} had a segment before the master"
        );
        let Event::Master(text) = &events[first_master] else {
            unreachable!()
        };
        assert!(text.contains(&format!("{name}/index.m3u8")), "{text}");
    }
    let last_master = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Master(text) => Some(text),
            _ => None,
        })
        .expect("a master playlist");
    assert!(last_master.contains("SUBTITLES"), "{last_master}");

    // Decoded audio for captions: contiguous on the 48 kHz timeline.
    let audio: Vec<(u64, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Audio { at, samples } => Some((*at, *samples)),
            _ => None,
        })
        .collect();
    assert!(!audio.is_empty(), "the sink asked for the decoded audio");
    let total: usize = audio.iter().map(|&(_, n)| n).sum();
    assert!(total >= 3 * 48_000, "about 4 s at 48 kHz: {total}");
    for pair in audio.windows(2) {
        assert!(pair[1].0 >= pair[0].0, "{pair:?}");
    }
}

#[test]
fn a_sink_that_does_not_ask_for_audio_gets_none_and_no_captions() {
    ffmpeg_next::init().expect("init");
    let cfg = LiveConfig {
        passthrough_only: true,
        ..LiveConfig::default()
    };
    let mut sink = Recorded::default();
    run(
        feed(mkv_h264_opus(3)),
        cfg,
        RunOptions::default(),
        &mut sink,
    )
    .expect("pipeline");
    assert!(!sink.events.iter().any(|e| matches!(e, Event::Audio { .. })));
    let master = sink
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Master(text) => Some(text.clone()),
            _ => None,
        })
        .expect("a master playlist");
    assert!(!master.contains("SUBTITLES"), "{master}");
}
