//! Chapters from a transcript, without a model (sans-IO): topic segmentation
//! on lexical cohesion (TextTiling, Hearst 1997), with titles from each
//! chapter's key phrases; and the reading of a model's chapter lines.
//!
//! **Segmentation.** The transcript's words are lower-cased, stop words
//! dropped and plurals folded ("starters" → "starter"). Consecutive lines
//! are grouped into blocks of at least [`Segmenter::block_words`] such
//! words. At each gap between two blocks, the cosine similarity of the word
//! counts of the [`Segmenter::window`] blocks before and after it says how
//! much the talk keeps its vocabulary there. A gap's depth is how far the
//! similarity drops below the nearest peaks on both sides; gaps deeper than
//! the mean depth minus half its standard deviation are topic changes. The
//! deepest are kept, at least [`Segmenter::min_ms`] apart and from both
//! ends, at most [`Segmenter::max_chapters`] chapters in all.
//!
//! **Titles.** Within each chapter, words and two-word phrases (adjacent in
//! a line, stop words aside) are scored by their count in the chapter times
//! how rare they are across the chapters (`ln(1 + chapters / chapters
//! using it)`); a phrase counts 1.5 times. The title joins the best two that
//! do not overlap, in their most common spelling, capitalised.
//!
//! Everything is deterministic: ties break on the text, so the same
//! transcript always gives the same chapters.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use app::chapters::Chapter;
use app::transcripts::TranscriptLine;

/// The least depth of a topic change (a drop in similarity, 0–2).
const MIN_DEPTH: f64 = 0.1;

/// Words that say nothing about a topic (sorted, one space apart).
const STOP_WORDS: &str =
    "about above actually after again against all also and any are around because been \
     before being below between both but can cannot could did does doing done down during \
     each even every few for from get gets getting going gonna got had has have having her \
     here hers herself him himself his how into its itself just know let like look lot make \
     makes many may more most much must need now off okay once one only other our ours \
     ourselves out over own really right same say see she should some something such sure \
     take than that the their theirs them themselves then there these they thing things \
     think this those through too two under until use very want was way well were what when \
     where which while who whom why will with would yeah yes you your yours yourself \
     yourselves";

/// [`STOP_WORDS`] as a set.
fn is_stop_word(w: &str) -> bool {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| STOP_WORDS.split(' ').collect())
        .contains(w)
}

/// The built-in method's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmenter {
    /// Content words per block (at least).
    pub block_words: usize,
    /// Blocks on each side of a gap.
    pub window: usize,
    /// The shortest chapter, ms.
    pub min_ms: i64,
    /// The most chapters.
    pub max_chapters: usize,
}

impl Default for Segmenter {
    fn default() -> Self {
        Segmenter {
            block_words: 20,
            window: 3,
            min_ms: 60_000,
            max_chapters: 20,
        }
    }
}

/// A word as compared: lower case, plural folded; and as written.
fn words(text: &str) -> Vec<(String, String)> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .map(|w| w.strip_suffix("'s").map(str::to_string).unwrap_or(w))
        .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !is_stop_word(w))
        .map(|w| (stem(&w), w))
        .collect()
}

/// Folds English plurals: "cities" → "city", "starters" → "starter".
fn stem(w: &str) -> String {
    if w.len() > 4 {
        if let Some(s) = w.strip_suffix("ies") {
            return format!("{s}y");
        }
        if !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
            if let Some(s) = w.strip_suffix('s') {
                return s.to_string();
            }
        }
    }
    w.to_string()
}

/// A block of lines: its first line, its word counts.
struct Block {
    first_line: usize,
    counts: HashMap<String, u32>,
}

fn blocks(lines: &[Vec<(String, String)>], size: usize) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut current: Option<(Block, usize)> = None;
    for (i, ws) in lines.iter().enumerate() {
        let (block, n) = current.get_or_insert_with(|| {
            (
                Block {
                    first_line: i,
                    counts: HashMap::new(),
                },
                0,
            )
        });
        for (s, _) in ws {
            *block.counts.entry(s.clone()).or_default() += 1;
        }
        *n += ws.len();
        if *n >= size {
            if let Some((b, _)) = current.take() {
                out.push(b);
            }
        }
    }
    if let Some((b, n)) = current {
        // A short tail joins the block before it.
        match out.last_mut() {
            Some(last) if n < size / 2 => {
                for (w, c) in b.counts {
                    *last.counts.entry(w).or_default() += c;
                }
            }
            _ => out.push(b),
        }
    }
    out
}

fn cosine(a: &HashMap<String, u32>, b: &HashMap<String, u32>) -> f64 {
    let dot: f64 = a
        .iter()
        .filter_map(|(w, x)| b.get(w).map(|y| f64::from(*x) * f64::from(*y)))
        .sum();
    let norm = |m: &HashMap<String, u32>| {
        m.values()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt()
    };
    let d = norm(a) * norm(b);
    if d == 0.0 {
        0.0
    } else {
        dot / d
    }
}

fn sum(blocks: &[Block]) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for b in blocks {
        for (w, c) in &b.counts {
            *out.entry(w.clone()).or_default() += c;
        }
    }
    out
}

/// Chapters of a transcript (lines in media order) by the built-in method;
/// `end_ms` is the recording's end, if known. An empty transcript gives no
/// chapter; a short one, a single chapter at 0.
pub fn segment(lines: &[TranscriptLine], end_ms: Option<i64>, cfg: Segmenter) -> Vec<Chapter> {
    let tokens: Vec<Vec<(String, String)>> = lines.iter().map(|l| words(&l.text)).collect();
    if tokens.iter().all(Vec::is_empty) {
        return Vec::new();
    }
    let starts: Vec<i64> = lines.iter().map(|l| l.start_ms.max(0)).collect();
    let end = end_ms
        .or_else(|| lines.iter().map(|l| l.end_ms).max())
        .unwrap_or(0);
    let blocks = blocks(&tokens, cfg.block_words.max(1));
    let window = cfg.window.max(1);
    let mut cuts: Vec<usize> = Vec::new(); // lines where a chapter starts
    if blocks.len() >= 2 * window && cfg.max_chapters > 1 {
        // Similarity at each gap g (between blocks g-1 and g), g in 1..n.
        let n = blocks.len();
        let sims: Vec<f64> = (1..n)
            .map(|g| {
                let left = sum(&blocks[g.saturating_sub(window)..g]);
                let right = sum(&blocks[g..(g + window).min(n)]);
                cosine(&left, &right)
            })
            .collect();
        // Depth at the valleys (a gap less similar than both neighbours; a
        // flat bottom counts once, at its first gap); 0 elsewhere.
        let valley = |i: usize| {
            let left = i == 0 || sims[i - 1] > sims[i];
            let right = sims.get(i + 1).is_none_or(|r| *r >= sims[i]);
            left && right && i + 1 < sims.len()
        };
        let depth = |i: usize| {
            if !valley(i) {
                return 0.0;
            }
            let mut l = sims[i];
            for s in sims[..i].iter().rev() {
                if *s < l {
                    break;
                }
                l = *s;
            }
            let mut r = sims[i];
            for s in &sims[i + 1..] {
                if *s < r {
                    break;
                }
                r = *s;
            }
            (l - sims[i]) + (r - sims[i])
        };
        let depths: Vec<f64> = (0..sims.len()).map(depth).collect();
        let mean = depths.iter().sum::<f64>() / depths.len() as f64;
        let var = depths.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / depths.len() as f64;
        let cutoff = (mean + var.sqrt() / 2.0).max(MIN_DEPTH);
        let mut candidates: Vec<(usize, f64)> = depths
            .iter()
            .enumerate()
            .filter(|(_, d)| **d > cutoff)
            .map(|(i, d)| (i + 1, *d))
            .collect();
        // Deepest first; the earlier gap on a tie.
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (gap, _) in candidates {
            if cuts.len() + 1 >= cfg.max_chapters {
                break;
            }
            let line = refine(&tokens, &blocks, gap, window);
            let at = starts[line];
            let clear_of_ends = at >= cfg.min_ms && end.saturating_sub(at) >= cfg.min_ms;
            let clear_of_cuts = cuts.iter().all(|c| (starts[*c] - at).abs() >= cfg.min_ms);
            if clear_of_ends && clear_of_cuts {
                cuts.push(line);
            }
        }
        cuts.sort_unstable();
    }
    // Line ranges of the chapters.
    let mut firsts: Vec<usize> = vec![0];
    firsts.extend(cuts.iter().copied());
    let ranges: Vec<(usize, usize)> = firsts
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, firsts.get(i + 1).copied().unwrap_or(lines.len())))
        .collect();
    let titles = titles(&tokens, &ranges);
    ranges
        .iter()
        .zip(titles)
        .enumerate()
        .map(|(i, ((first, _), title))| Chapter {
            start_ms: if i == 0 { 0 } else { starts[*first] },
            title,
        })
        .collect()
}

/// The line where the topic changes around block gap `gap`: of the lines
/// of the two blocks beside it, the one where the words of the lines
/// before (as many lines as the `window` blocks before the gap hold) and
/// after (likewise) are least alike; the earliest on a tie.
fn refine(tokens: &[Vec<(String, String)>], blocks: &[Block], gap: usize, window: usize) -> usize {
    let line_of = |b: usize| blocks.get(b).map_or(tokens.len(), |b| b.first_line);
    let before = line_of(gap) - line_of(gap.saturating_sub(window));
    let after = line_of((gap + window).min(blocks.len())) - line_of(gap);
    let counts = |lines: &[Vec<(String, String)>]| {
        let mut m: HashMap<String, u32> = HashMap::new();
        for (s, _) in lines.iter().flatten() {
            *m.entry(s.clone()).or_default() += 1;
        }
        m
    };
    let mut best = (f64::INFINITY, line_of(gap));
    for j in line_of(gap - 1) + 1..line_of(gap + 1) {
        let left = counts(&tokens[j.saturating_sub(before)..j]);
        let right = counts(&tokens[j..(j + after).min(tokens.len())]);
        let sim = cosine(&left, &right);
        if sim < best.0 {
            best = (sim, j);
        }
    }
    best.1
}

/// A term of a title: one word or two adjacent ones, by stem.
type Term = Vec<String>;

/// Titles of the chapters (line ranges) from their key phrases.
fn titles(tokens: &[Vec<(String, String)>], ranges: &[(usize, usize)]) -> Vec<String> {
    // Per chapter: term counts, and each term's spellings.
    let mut per: Vec<BTreeMap<Term, u32>> = Vec::with_capacity(ranges.len());
    let mut spelled: HashMap<Term, BTreeMap<String, u32>> = HashMap::new();
    for (first, last) in ranges {
        let mut counts: BTreeMap<Term, u32> = BTreeMap::new();
        for line in &tokens[*first..*last] {
            for (i, (s, w)) in line.iter().enumerate() {
                let one = vec![s.clone()];
                *counts.entry(one.clone()).or_default() += 1;
                *spelled
                    .entry(one)
                    .or_default()
                    .entry(w.clone())
                    .or_default() += 1;
                if let Some((s2, w2)) = line.get(i + 1) {
                    if s2 != s {
                        let two = vec![s.clone(), s2.clone()];
                        *counts.entry(two.clone()).or_default() += 1;
                        *spelled
                            .entry(two)
                            .or_default()
                            .entry(format!("{w} {w2}"))
                            .or_default() += 1;
                    }
                }
            }
        }
        per.push(counts);
    }
    let chapters = per.len() as f64;
    let mut df: HashMap<&Term, u32> = HashMap::new();
    for counts in &per {
        for t in counts.keys() {
            *df.entry(t).or_default() += 1;
        }
    }
    per.iter()
        .map(|counts| {
            let mut scored: Vec<(f64, &Term)> = counts
                .iter()
                // A phrase said once is not a key phrase.
                .filter(|(t, c)| t.len() == 1 || **c >= 2)
                .map(|(t, c)| {
                    let idf = (1.0 + chapters / f64::from(df[t])).ln();
                    let weight = if t.len() == 2 { 1.5 } else { 1.0 };
                    (f64::from(*c) * idf * weight, t)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
            let mut picked: Vec<&Term> = Vec::new();
            let mut used: BTreeSet<&String> = BTreeSet::new();
            for (_, t) in scored {
                if t.iter().any(|w| used.contains(w)) {
                    continue;
                }
                used.extend(t.iter());
                picked.push(t);
                if picked.len() == 2 {
                    break;
                }
            }
            let phrases: Vec<String> = picked
                .iter()
                .map(|t| {
                    spelled
                        .get(*t)
                        .and_then(|s| {
                            // The most common spelling; the first in order on a tie.
                            s.iter()
                                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                                .map(|(w, _)| w.clone())
                        })
                        .unwrap_or_else(|| t.join(" "))
                })
                .collect();
            capitalise(&phrases.join(" and "))
        })
        .map(|t| {
            if t.is_empty() {
                "Untitled".to_string()
            } else {
                t
            }
        })
        .collect()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Reads a model's chapter lines, `mm:ss Title` or `hh:mm:ss Title` (a
/// leading `-`, `*` or number, and a `-` or `:` after the time, are
/// allowed); other lines are skipped. Times are as written (ms).
pub fn parse_model_lines(text: &str) -> Vec<Chapter> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches(['-', '*', '•']).trim_start();
            // "1. 00:00 Intro" → "00:00 Intro"
            let line = match line.split_once(". ") {
                Some((n, rest)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                    rest.trim_start()
                }
                _ => line,
            };
            let line = line.trim_start_matches('[');
            let end = line.find(|c: char| !(c.is_ascii_digit() || c == ':'))?;
            let ms = parse_clock(line[..end].trim_end_matches(':'))?;
            let title = line[end..]
                .trim_start_matches(']')
                .trim()
                .trim_start_matches(['-', ':', '–', '—'])
                .trim()
                .trim_matches(['"', '*'])
                .trim();
            if title.is_empty() {
                return None;
            }
            Some(Chapter {
                start_ms: ms,
                title: title.chars().take(app::chapters::MAX_TITLE_CHARS).collect(),
            })
        })
        .collect()
}

/// `mm:ss` or `hh:mm:ss` → ms (bounded: hours ≤ 999).
fn parse_clock(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split(':').collect();
    let nums: Vec<i64> = parts
        .iter()
        .map(|p| {
            (!p.is_empty() && p.len() <= 3)
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let (h, m, sec) = match nums[..] {
        [m, s] => (0, m, s),
        [h, m, s] => (h, m, s),
        _ => return None,
    };
    if sec >= 60 || (parts.len() == 3 && m >= 60) {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000)
}

/// Makes a model's (or anyone's) chapters keep the rules
/// ([`app::chapters::check`]): sorted, the first moved to 0, starts past
/// the end (when known) or closer than `min_gap_ms` to the one before
/// dropped, at most [`app::chapters::MAX_CHAPTERS`].
pub fn tidy(mut chapters: Vec<Chapter>, end_ms: Option<i64>, min_gap_ms: i64) -> Vec<Chapter> {
    chapters.sort_by_key(|c| c.start_ms);
    let mut out: Vec<Chapter> = Vec::with_capacity(chapters.len());
    for c in chapters {
        let title = c.title.trim().to_string();
        if title.is_empty() || end_ms.is_some_and(|e| !out.is_empty() && c.start_ms >= e) {
            continue;
        }
        match out.last() {
            None => out.push(Chapter { start_ms: 0, title }),
            Some(last) if c.start_ms.saturating_sub(last.start_ms) >= min_gap_ms.max(1) => out
                .push(Chapter {
                    start_ms: c.start_ms,
                    title,
                }),
            Some(_) => {}
        }
        if out.len() == app::chapters::MAX_CHAPTERS {
            break;
        }
    }
    out
}

#[cfg(test)]
#[path = "chapters_tests.rs"]
mod tests;
