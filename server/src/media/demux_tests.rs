//! Demuxing real browser-like recordings from memory.

use bytes::Bytes;
use ffmpeg_next::media::Type;

use super::demux::{ChunkReader, DemuxError, MemoryInput, ProbeLimits};

pub(crate) fn webm_vp8_opus(seconds: u32) -> Vec<u8> {
    super::testsrc::webm_vp8_opus(seconds).expect("test media")
}

pub(crate) fn mkv_h264_opus(seconds: u32) -> Vec<u8> {
    super::testsrc::mkv_h264_opus(seconds).expect("test media")
}

/// Feeds `data` in small chunks from another thread, as the ingest socket would.
fn chunked(data: Vec<u8>, chunk: usize) -> ChunkReader {
    let (tx, reader) = ChunkReader::channel(4);
    std::thread::spawn(move || {
        for piece in data.chunks(chunk) {
            if tx
                .blocking_send(Bytes::copy_from_slice(piece).into())
                .is_err()
            {
                return;
            }
        }
    });
    reader
}

struct Summary {
    format: String,
    codecs: Vec<(Type, String)>,
    packets: Vec<usize>,
}

fn demux_all(data: Vec<u8>) -> Result<Summary, DemuxError> {
    ffmpeg_next::init().expect("init");
    let mut input = MemoryInput::open(chunked(data, 4096), ProbeLimits::default())?;
    let format = input.format_name();
    let codecs: Vec<(Type, String)> = input
        .input()
        .streams()
        .map(|s| {
            (
                s.parameters().medium(),
                format!("{:?}", s.parameters().id()),
            )
        })
        .collect();
    let mut packets = vec![0; codecs.len()];
    for (stream, _packet) in input.input().packets() {
        packets[stream.index()] += 1;
    }
    Ok(Summary {
        format,
        codecs,
        packets,
    })
}

fn codec_of(s: &Summary, kind: Type) -> (String, usize) {
    let i = s
        .codecs
        .iter()
        .position(|(t, _)| *t == kind)
        .expect("stream of that kind");
    (s.codecs[i].1.clone(), s.packets[i])
}

#[test]
fn webm_vp8_opus_demuxes_from_chunks() {
    let s = demux_all(webm_vp8_opus(3)).expect("demux");
    assert!(s.format.contains("webm"), "{}", s.format);
    let (video, frames) = codec_of(&s, Type::Video);
    assert_eq!(video, "VP8");
    assert_eq!(frames, 90);
    let (audio, packets) = codec_of(&s, Type::Audio);
    assert_eq!(audio, "OPUS");
    assert!(packets >= 140, "3 s of 20 ms Opus packets: {packets}");
}

#[test]
fn matroska_h264_without_codec_private_demuxes_from_chunks() {
    let s = demux_all(mkv_h264_opus(3)).expect("demux");
    assert!(s.format.contains("matroska"), "{}", s.format);
    let (video, frames) = codec_of(&s, Type::Video);
    assert_eq!(video, "H264");
    assert_eq!(frames, 90);
    assert_eq!(codec_of(&s, Type::Audio).0, "OPUS");
}

#[test]
fn garbage_is_refused_with_a_clear_error() {
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    match demux_all(garbage) {
        Err(e @ DemuxError::Open(_)) => {
            assert!(e.to_string().starts_with("not a supported media container"))
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(s) => panic!("garbage opened as {}", s.format),
    }
}

#[test]
fn a_truncated_recording_yields_what_it_has_and_then_ends() {
    let full = webm_vp8_opus(2);
    let cut = full[..full.len() / 2].to_vec();
    let s = demux_all(cut).expect("the header is intact");
    let (_, frames) = codec_of(&s, Type::Video);
    assert!(frames > 5 && frames < 60, "{frames}");
}
