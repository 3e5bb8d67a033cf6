//! Chat rules as plain functions and state, without IO: the per-user rate
//! limit, slow mode, banned words and links. Times are Unix milliseconds.

/// A token bucket: `burst` messages at once, then one per `refill_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages allowed at once.
    pub burst: u32,
    /// Milliseconds to earn one more message.
    pub refill_ms: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            burst: 5,
            refill_ms: 1000,
        }
    }
}

/// One user's bucket, in thousandths of a message so refills stay integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    milli_tokens: u64,
    at_ms: i64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(limit: RateLimit, now_ms: i64) -> Self {
        Bucket {
            milli_tokens: u64::from(limit.burst) * 1000,
            at_ms: now_ms,
        }
    }

    /// Takes one message's worth, or says how many milliseconds until one
    /// is there.
    pub fn take(&mut self, limit: RateLimit, now_ms: i64) -> Result<(), u64> {
        let cap = u64::from(limit.burst.max(1)) * 1000;
        let elapsed = u64::try_from(now_ms.saturating_sub(self.at_ms)).unwrap_or(0);
        let earned = elapsed.saturating_mul(1000) / limit.refill_ms.max(1);
        self.milli_tokens = (self.milli_tokens + earned).min(cap);
        self.at_ms = now_ms;
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            Ok(())
        } else {
            let missing = 1000 - self.milli_tokens;
            Err((missing * limit.refill_ms.max(1)).div_ceil(1000))
        }
    }
}

/// The banned word `text` contains, if any: whole words, case-insensitive.
/// A banned entry of several words matches as a phrase.
pub fn banned_word<'a>(text: &str, banned: &'a [String]) -> Option<&'a str> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    banned.iter().map(String::as_str).find(|b| {
        let needle: Vec<String> = b
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        !needle.is_empty() && words.windows(needle.len()).any(|w| w == needle.as_slice())
    })
}

/// Whether `text` contains something that looks like a link: a URL scheme,
/// `www.`, or a `name.tld` word (with a letters-only top-level domain of two
/// to six letters, optionally followed by a path).
pub fn has_link(text: &str) -> bool {
    text.split_whitespace().any(|word| {
        let w = word
            .trim_matches(|c: char| {
                matches!(c, '(' | ')' | '<' | '>' | '"' | '\'' | ',' | '!' | '?')
            })
            .to_lowercase();
        if w.contains("://") || w.starts_with("www.") {
            return true;
        }
        let host = w.split('/').next().unwrap_or("").trim_end_matches('.');
        let mut labels = host.rsplit('.');
        let tld = labels.next().unwrap_or("");
        let name = labels.next().unwrap_or("");
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && (2..=6).contains(&tld.len())
            && tld.chars().all(|c| c.is_ascii_lowercase())
    })
}

/// Cleans an owner's banned-words list: trimmed, lower-case, no empties or
/// duplicates, at most 500 entries of at most 64 characters.
pub fn clean_banned_words(words: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let w = w.trim().to_lowercase();
        if w.is_empty() || out.contains(&w) {
            continue;
        }
        if w.chars().count() > 64 {
            return Err(format!("banned words are at most 64 characters: {w:.20}…"));
        }
        out.push(w);
    }
    if out.len() > 500 {
        return Err("at most 500 banned words".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_of_five_then_one_a_second() {
        let limit = RateLimit::default();
        let mut b = Bucket::full(limit, 0);
        for _ in 0..5 {
            assert_eq!(b.take(limit, 0), Ok(()));
        }
        assert_eq!(b.take(limit, 0), Err(1000));
        assert_eq!(b.take(limit, 400), Err(600));
        assert_eq!(b.take(limit, 1000), Ok(()));
        assert_eq!(b.take(limit, 1000), Err(1000));
        // A long pause refills to the burst, no further.
        for _ in 0..5 {
            assert_eq!(b.take(limit, 60_000), Ok(()));
        }
        assert!(b.take(limit, 60_000).is_err());
    }

    #[test]
    fn banned_words_match_whole_words_and_phrases() {
        let banned = vec!["darn".to_string(), "bad idea".to_string()];
        assert_eq!(banned_word("Well DARN it", &banned), Some("darn"));
        assert_eq!(banned_word("darned socks", &banned), None);
        assert_eq!(banned_word("a bad, idea!", &banned), Some("bad idea"));
        assert_eq!(banned_word("bad ideas", &banned), None);
        assert_eq!(banned_word("nothing here", &[]), None);
    }

    #[test]
    fn links_are_recognised() {
        for yes in [
            "see https://x.y",
            "www.example.com",
            "go to example.com now",
            "(evil.io/path)",
        ] {
            assert!(has_link(yes), "{yes}");
        }
        for no in [
            "hello there",
            "3.14 is pi",
            "end of sentence.",
            "e.g. this",
            "😀.😀",
        ] {
            assert!(!has_link(no), "{no}");
        }
    }

    #[test]
    fn banned_word_lists_are_cleaned() {
        let words = vec![" Darn ".into(), "darn".into(), "".into(), "Heck".into()];
        assert_eq!(clean_banned_words(&words).unwrap(), vec!["darn", "heck"]);
        assert!(clean_banned_words(&["x".repeat(65)]).is_err());
    }
}
