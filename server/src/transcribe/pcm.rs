//! Sans-IO audio for transcription: 48 kHz mono to 16 kHz ([`Downsampler`]),
//! cutting it into windows at silence ([`Windower`]), WAV encoding, and
//! removing the words two overlapping windows both heard ([`strip_repeat`]).
//!
//! Positions are integer sample counts at [`ASR_RATE`] on the stream's media
//! timeline (the same timeline as the HLS segments).

/// The sample rate speech recognisers expect (Whisper's).
pub const ASR_RATE: u32 = 16_000;

/// How the audio is cut into windows. Lengths in samples at [`ASR_RATE`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowConfig {
    /// A window is cut at the first silence after this much audio.
    pub min: usize,
    /// Without silence, a window is cut at the quietest moment before this.
    pub max: usize,
    /// A window cut in speech starts the next one this much earlier, so a
    /// word on the edge is heard whole by one of them.
    pub overlap: usize,
    /// Analysis frame for loudness.
    pub frame: usize,
    /// RMS below this is silence (0.01 is about -40 dBFS).
    pub silence_rms: f32,
    /// A final remainder shorter than this is dropped.
    pub min_tail: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        let ms = |n: usize| n * ASR_RATE as usize / 1000;
        WindowConfig {
            min: ms(3000),
            max: ms(5000),
            overlap: ms(300),
            frame: ms(20),
            silence_rms: 0.01,
            min_tail: ms(500),
        }
    }
}

/// A window of audio to transcribe.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its first sample, at [`ASR_RATE`] on the media timeline.
    pub start: u64,
    /// Mono samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Nothing in it is louder than silence: not worth a request.
    pub silent: bool,
}

impl Window {
    /// One past its last sample.
    pub fn end(&self) -> u64 {
        self.start + self.samples.len() as u64
    }
}

fn rms(s: &[f32]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    (s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32).sqrt()
}

/// 48 kHz to 16 kHz: a windowed-sinc low-pass (cut-off 7.2 kHz, 63 taps)
/// and every third sample. Keeps its state between calls; [`reset`](Self::reset)
/// after a gap.
#[derive(Debug, Clone)]
pub struct Downsampler {
    taps: Vec<f32>,
    history: Vec<f32>,
    phase: usize,
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    /// A fresh filter.
    pub fn new() -> Self {
        const N: usize = 63;
        let cutoff = 7_200.0 / 48_000.0;
        let mid = (N - 1) as f32 / 2.0;
        let mut taps: Vec<f32> = (0..N)
            .map(|i| {
                let x = i as f32 - mid;
                let sinc = if x == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f32::consts::PI * cutoff * x).sin() / (std::f32::consts::PI * x)
                };
                let hamming =
                    0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / (N - 1) as f32).cos();
                sinc * hamming
            })
            .collect();
        let sum: f32 = taps.iter().sum();
        for t in &mut taps {
            *t /= sum;
        }
        Downsampler {
            history: vec![0.0; N - 1],
            taps,
            phase: 0,
        }
    }

    /// Forgets the past (after a gap in the audio).
    pub fn reset(&mut self) {
        self.history.iter_mut().for_each(|h| *h = 0.0);
        self.phase = 0;
    }

    /// Filters 48 kHz mono samples; returns the 16 kHz ones now complete
    /// (one for every three in, over time).
    pub fn push(&mut self, input: &[f32]) -> Vec<f32> {
        let n = self.taps.len();
        let mut out = Vec::with_capacity(input.len() / 3 + 1);
        let mut buf = std::mem::take(&mut self.history);
        buf.extend_from_slice(input);
        // buf[i + n - 1] is input sample i; the filter at i reads buf[i..i + n].
        for i in 0..input.len() {
            if self.phase == 0 {
                let acc: f32 = buf[i..i + n]
                    .iter()
                    .zip(self.taps.iter().rev())
                    .map(|(x, t)| x * t)
                    .sum();
                out.push(acc);
            }
            self.phase = (self.phase + 1) % 3;
        }
        let keep = buf.len() - (n - 1);
        self.history = buf.split_off(keep);
        out
    }
}

/// Cuts 16 kHz audio into windows: at the first silent frame after `min`, or
/// at the quietest frame before `max` (then with `overlap`).
#[derive(Debug, Clone)]
pub struct Windower {
    cfg: WindowConfig,
    buf: Vec<f32>,
    /// Media position of `buf[0]`.
    start: u64,
    /// Frames before this index were already looked at for silence.
    scanned: usize,
    started: bool,
}

impl Windower {
    /// An empty windower.
    pub fn new(cfg: WindowConfig) -> Self {
        Windower {
            cfg,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            started: false,
        }
    }

    /// Where the next pushed sample is expected (None before the first).
    pub fn next_position(&self) -> Option<u64> {
        self.started.then_some(self.start + self.buf.len() as u64)
    }

    /// Adds samples that start at `at`. A gap or jump first closes the
    /// window in progress. Returns the windows now complete.
    pub fn push(&mut self, at: u64, samples: &[f32]) -> Vec<Window> {
        let mut out = Vec::new();
        if self.next_position() != Some(at) {
            out.extend(self.finish());
            self.start = at;
            self.started = true;
        }
        self.buf.extend_from_slice(samples);
        while let Some(w) = self.cut() {
            out.push(w);
        }
        out
    }

    /// Closes the window in progress (end of stream or of a period).
    pub fn finish(&mut self) -> Option<Window> {
        let rest = std::mem::take(&mut self.buf);
        let start = self.start;
        self.start += rest.len() as u64;
        self.scanned = 0;
        (rest.len() >= self.cfg.min_tail).then(|| self.window(start, rest))
    }

    fn window(&self, start: u64, samples: Vec<f32>) -> Window {
        let silent = samples
            .chunks(self.cfg.frame.max(1))
            .all(|f| rms(f) < self.cfg.silence_rms);
        Window {
            start,
            samples,
            silent,
        }
    }

    fn cut(&mut self) -> Option<Window> {
        let c = self.cfg;
        let frame = c.frame.max(1);
        // The first silent frame at or after `min`.
        let mut at = self.scanned.max(c.min);
        let mut cut = None;
        while at + frame <= self.buf.len().min(c.max) {
            if rms(&self.buf[at..at + frame]) < c.silence_rms {
                cut = Some((at + frame / 2, false));
                break;
            }
            at += frame;
        }
        self.scanned = at;
        if cut.is_none() && self.buf.len() >= c.max {
            // No silence: the quietest frame between min and max, with overlap.
            let quietest = (c.min..c.max.saturating_sub(frame).max(c.min) + 1)
                .step_by(frame)
                .min_by(|&a, &b| {
                    rms(&self.buf[a..(a + frame).min(self.buf.len())])
                        .total_cmp(&rms(&self.buf[b..(b + frame).min(self.buf.len())]))
                })
                .unwrap_or(c.max);
            cut = Some(((quietest + frame / 2).min(c.max), true));
        }
        let (cut, overlap) = cut?;
        let rest = self.buf.split_off(cut);
        let head = std::mem::replace(&mut self.buf, rest);
        let start = self.start;
        self.start += cut as u64;
        if overlap {
            let back = c.overlap.min(head.len());
            let mut buf = head[head.len() - back..].to_vec();
            buf.extend_from_slice(&self.buf);
            self.buf = buf;
            self.start -= back as u64;
        }
        self.scanned = 0;
        Some(self.window(start, head))
    }
}

/// 16-bit PCM mono WAV at [`ASR_RATE`].
pub fn wav(samples: &[f32]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&ASR_RATE.to_le_bytes());
    out.extend_from_slice(&(ASR_RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn norm(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// `next` without the words at its start that end `prev` too (what two
/// overlapping windows both heard), up to five words.
pub fn strip_repeat(prev: &str, next: &str) -> String {
    let p: Vec<String> = prev.split_whitespace().map(norm).collect();
    let n: Vec<&str> = next.split_whitespace().collect();
    let nn: Vec<String> = n.iter().map(|w| norm(w)).collect();
    let most = p.len().min(nn.len()).min(5);
    let k = (1..=most)
        .rev()
        .find(|&k| p[p.len() - k..] == nn[..k] && nn[..k].iter().all(|w| !w.is_empty()))
        .unwrap_or(0);
    n[k..].join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: f32, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate).sin())
            .collect()
    }

    #[test]
    fn downsampling_keeps_speech_drops_what_16k_cannot_hold_and_is_chunk_independent() {
        let speech = tone(440.0, 48_000.0, 48_000, 0.5);
        let mut d = Downsampler::new();
        let out = d.push(&speech);
        assert_eq!(out.len(), 16_000);
        let level = rms(&out[1000..]);
        assert!(
            (level - 0.5 / 2f32.sqrt()).abs() < 0.01,
            "440 Hz kept: {level}"
        );
        // 12 kHz would alias at 16 kHz: the filter removes it.
        let high = tone(12_000.0, 48_000.0, 48_000, 0.5);
        let out = Downsampler::new().push(&high);
        assert!(
            rms(&out[1000..]) < 0.01,
            "12 kHz removed: {}",
            rms(&out[1000..])
        );
        // Fed in odd-sized chunks, the output is the same.
        let mut d = Downsampler::new();
        let mut chunked = Vec::new();
        for c in speech.chunks(1001) {
            chunked.extend(d.push(c));
        }
        let whole = Downsampler::new().push(&speech);
        assert_eq!(chunked.len(), whole.len());
        assert!(chunked
            .iter()
            .zip(&whole)
            .all(|(a, b)| (a - b).abs() < 1e-6));
    }

    fn secs(s: f32) -> usize {
        (s * ASR_RATE as f32) as usize
    }

    #[test]
    fn windows_cut_at_the_first_silence_after_three_seconds() {
        let mut audio = tone(300.0, 16_000.0, secs(3.5), 0.3);
        audio.extend(vec![0.0; secs(0.4)]);
        audio.extend(tone(300.0, 16_000.0, secs(2.0), 0.3));
        let mut w = Windower::new(WindowConfig::default());
        let mut out = Vec::new();
        for c in audio.chunks(1024) {
            let at = w.next_position().unwrap_or(160_000);
            out.extend(w.push(at, c));
        }
        assert_eq!(out.len(), 1);
        let first = &out[0];
        assert_eq!(first.start, 160_000);
        // Cut inside the silence, no overlap: the next window starts there.
        let cut = first.samples.len();
        assert!(cut > secs(3.5) && cut < secs(3.9), "cut at {cut}");
        assert!(!first.silent);
        let tail = w.finish().expect("the rest");
        assert_eq!(tail.start, first.end());
        assert_eq!(tail.end(), 160_000 + audio.len() as u64);
    }

    #[test]
    fn without_silence_windows_stop_at_five_seconds_and_overlap() {
        let audio = tone(300.0, 16_000.0, secs(12.0), 0.3);
        let mut w = Windower::new(WindowConfig::default());
        let out = w.push(0, &audio);
        assert_eq!(
            out.len(),
            2,
            "{:?}",
            out.iter()
                .map(|w| (w.start, w.samples.len()))
                .collect::<Vec<_>>()
        );
        for win in &out {
            assert!(win.samples.len() >= secs(3.0) && win.samples.len() <= secs(5.0));
        }
        // The second starts 300 ms before the first ended.
        assert_eq!(out[1].start, out[0].end() - secs(0.3) as u64);
    }

    #[test]
    fn silence_is_marked_a_gap_closes_the_window_and_short_tails_are_dropped() {
        let mut w = Windower::new(WindowConfig::default());
        let out = w.push(0, &vec![0.0; secs(6.0)]);
        assert_eq!(out.len(), 1);
        assert!(out[0].silent);
        // 1 s more, then a jump: the 1 s closes as a window of its own.
        let speech = tone(300.0, 16_000.0, secs(1.0), 0.3);
        let at = w.next_position().expect("started");
        assert!(w.push(at, &speech).is_empty());
        let out = w.push(at + secs(10.0) as u64, &speech[..100]);
        assert_eq!(
            out.len(),
            1,
            "the rest of the silence and the 1 s of speech"
        );
        assert!(!out[0].silent);
        assert_eq!(out[0].end(), at + secs(1.0) as u64);
        assert!(w.finish().is_none(), "100 samples are too short to send");
    }

    #[test]
    fn wav_header_and_samples() {
        let b = wav(&[0.0, 1.0, -1.0, 2.0]);
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([b[4], b[5], b[6], b[7]]), 36 + 8);
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 16_000);
        assert_eq!(&b[44..], &[0, 0, 0xff, 0x7f, 0x01, 0x80, 0xff, 0x7f]);
    }

    #[test]
    fn repeated_words_from_the_overlap_are_removed() {
        assert_eq!(
            strip_repeat("the quick brown fox", "Brown fox jumps over"),
            "jumps over"
        );
        assert_eq!(
            strip_repeat("hello there", "general Kenobi"),
            "general Kenobi"
        );
        assert_eq!(strip_repeat("", "hi"), "hi");
        assert_eq!(strip_repeat("a b", "a b"), "");
    }
}
