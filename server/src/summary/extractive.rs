//! The built-in extractive summary, for when no AI model is configured: the
//! transcript's most central sentences, in their original order. Sans-IO.
//!
//! Centrality is word frequency (Luhn's idea): a word said often is what the
//! stream is about. Each sentence of at least [`MIN_WORDS`] words scores the
//! sum of its content words' counts over the whole transcript, divided by
//! the square root of how many content words it has, so a sentence is not
//! chosen for its length alone. Content words are words of three or more
//! letters that are not `STOPWORDS`. Ties go to the earlier sentence.

use std::collections::HashMap;

/// Sentences shorter than this many words are never picked ("Okay.", "Hi!").
pub const MIN_WORDS: usize = 4;

/// Common English words that say nothing about a topic.
const STOPWORDS: &[&str] = &[
    "about", "after", "again", "all", "also", "and", "any", "are", "because", "been", "before",
    "being", "but", "can", "could", "did", "does", "doing", "don", "down", "each", "even", "few",
    "for", "from", "get", "got", "had", "has", "have", "her", "here", "hers", "him", "his", "how",
    "into", "its", "just", "know", "let", "like", "more", "most", "much", "must", "now", "off",
    "once", "one", "only", "other", "our", "ours", "out", "over", "own", "really", "right", "same",
    "see", "she", "should", "some", "such", "than", "that", "the", "their", "theirs", "them",
    "then", "there", "these", "they", "thing", "things", "this", "those", "through", "too", "two",
    "under", "until", "very", "was", "way", "well", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "yeah", "yes", "you", "your", "yours",
];

/// The sentences of a transcript: split after `.`, `!` or `?` followed by
/// whitespace, and at line breaks (lines without punctuation are sentences).
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut start = 0;
        let mut prev_end = false;
        for (i, c) in line.char_indices() {
            if prev_end && c.is_whitespace() {
                out.push(line[start..i].trim());
                start = i;
            }
            prev_end = matches!(c, '.' | '!' | '?');
        }
        out.push(line[start..].trim());
    }
    out.retain(|s| !s.is_empty());
    out
}

fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn is_content(w: &str) -> bool {
    w.chars().count() >= 3 && STOPWORDS.binary_search(&w).is_err()
}

/// The `max` most central sentences of `text`, in their original order.
pub fn summarize(text: &str, max: usize) -> Vec<&str> {
    let all = sentences(text);
    let mut freq: HashMap<String, u32> = HashMap::new();
    for w in all.iter().flat_map(|s| words(s)).filter(|w| is_content(w)) {
        *freq.entry(w).or_insert(0) += 1;
    }
    let mut scored: Vec<(usize, f64)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| words(s).count() >= MIN_WORDS)
        .filter_map(|(i, s)| {
            let content: Vec<String> = words(s).filter(|w| is_content(w)).collect();
            if content.is_empty() {
                return None;
            }
            let sum: u32 = content
                .iter()
                .map(|w| freq.get(w).copied().unwrap_or(0))
                .sum();
            Some((i, f64::from(sum) / (content.len() as f64).sqrt()))
        })
        .collect();
    // Best first; the sort is stable, so equal scores keep their order.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut picked: Vec<usize> = scored.into_iter().take(max).map(|(i, _)| i).collect();
    picked.sort_unstable();
    picked.into_iter().map(|i| all[i]).collect()
}

/// How many sentences a summary of `n` sentences keeps: a quarter, 1 to 5.
pub fn length_for(n: usize) -> usize {
    n.div_ceil(4).clamp(1, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cooking stream with asides: the pasta sentences are what it is about.
    const COOKING: &str = "Today we are making fresh pasta at home.\n\
        First, a quick word about my cat, who is asleep on the sofa.\n\
        Fresh pasta needs only flour, eggs and a little salt. The weather outside is grey and rainy.\n\
        Knead the pasta dough for ten minutes until it is smooth.\n\
        Then roll the pasta thin and cut it into ribbons.\n\
        My neighbour is painting his fence green.\n\
        Cook the fresh pasta in salted boiling water for two minutes.\n\
        Okay.\n\
        Thanks for watching, see you next week.";

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn sentences_split_at_ends_and_line_breaks() {
        assert_eq!(
            sentences("Hi there. How are you?\nno punctuation here\n\n  Fine!  "),
            vec!["Hi there.", "How are you?", "no punctuation here", "Fine!"]
        );
        assert_eq!(sentences("3.5 kilos. Done"), vec!["3.5 kilos.", "Done"]);
    }

    #[test]
    fn picks_the_central_sentences_in_their_order() {
        let all = sentences(COOKING);
        assert_eq!(all.len(), 10);
        assert_eq!(length_for(all.len()), 3);
        assert_eq!(
            summarize(COOKING, 3),
            vec![
                "Today we are making fresh pasta at home.",
                "Fresh pasta needs only flour, eggs and a little salt.",
                "Cook the fresh pasta in salted boiling water for two minutes.",
            ]
        );
        assert_eq!(
            summarize(COOKING, 1),
            vec!["Cook the fresh pasta in salted boiling water for two minutes."]
        );
        // Asking for more than there is returns every candidate, in order.
        assert_eq!(summarize(COOKING, 50).len(), 9, "all but \"Okay.\"");
    }

    #[test]
    fn nothing_to_pick_gives_nothing() {
        assert!(summarize("", 3).is_empty());
        assert!(summarize("Okay. Yes. Hi!", 3).is_empty());
        assert_eq!(length_for(0), 1);
        assert_eq!(length_for(100), 5);
    }
}
