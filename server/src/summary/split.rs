//! Splitting a long transcript into parts that fit a model's context. Sans-IO.
//!
//! The parts are consecutive slices of the text: put back together they are
//! the text, to the byte. Each is at most the budget in characters, and is cut
//! at the last line break in its second half if there is one, else after the
//! last sentence end there, else at the last whitespace, else (one enormous
//! word) at the budget itself.

/// Splits `text` into consecutive slices of at most `budget` characters (a
/// budget of 0 is taken as 1).
pub fn split(text: &str, budget: usize) -> Vec<&str> {
    let budget = budget.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // The byte index just past `budget` characters, if there are more.
        let Some((limit, _)) = rest.char_indices().nth(budget) else {
            parts.push(rest);
            break;
        };
        let window = &rest[..limit];
        let half = window.char_indices().nth(budget / 2).map_or(0, |(i, _)| i);
        // Whether the budget ends right before whitespace: a word boundary.
        let at_boundary = rest[limit..].starts_with(char::is_whitespace);
        let sentence = if at_boundary && window.ends_with(['.', '!', '?']) {
            Some(limit)
        } else {
            sentence_end(window)
        };
        let word = if at_boundary {
            Some(limit)
        } else {
            window
                .char_indices()
                .rev()
                .find(|(_, c)| c.is_whitespace())
                .map(|(i, c)| i + c.len_utf8())
        };
        let cut = window
            .rfind('\n')
            .map(|i| i + 1)
            .filter(|&i| i > half)
            .or(sentence.filter(|&i| i > half))
            .or(word)
            .unwrap_or(limit);
        let (part, tail) = rest.split_at(cut);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// The byte index just after the last `.`, `!` or `?` followed by whitespace
/// (after that whitespace character).
fn sentence_end(window: &str) -> Option<usize> {
    let mut best = None;
    let mut prev_end = false;
    for (i, c) in window.char_indices() {
        if prev_end && c.is_whitespace() {
            best = Some(i + c.len_utf8());
        }
        prev_end = matches!(c, '.' | '!' | '?');
    }
    best
}

#[cfg(test)]
mod tests {
    use super::split;

    fn check(text: &str, budget: usize) -> Vec<&str> {
        let parts = split(text, budget);
        assert_eq!(parts.concat(), text, "nothing is lost or reordered");
        for p in &parts {
            assert!(!p.is_empty());
            assert!(p.chars().count() <= budget.max(1), "{p:?} is over {budget}");
        }
        parts
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(check("Hello there.", 100), vec!["Hello there."]);
        assert!(check("", 10).is_empty());
    }

    #[test]
    fn cuts_at_line_breaks_then_sentences_then_words() {
        let text = "First line here.\nSecond line is longer.\nThird.";
        assert_eq!(
            check(text, 30),
            vec!["First line here.\n", "Second line is longer.\nThird."]
        );
        let prose = "One two three. Four five six seven. Eight nine.";
        assert_eq!(
            check(prose, 20),
            vec!["One two three. ", "Four five six seven.", " Eight nine."]
        );
        assert_eq!(
            check("aaaa bbbb cccc dddd", 10),
            vec!["aaaa bbbb ", "cccc dddd"]
        );
        // One word longer than the budget is cut hard, on a character boundary.
        assert_eq!(check("ééééééé", 3), vec!["ééé", "ééé", "é"]);
    }

    #[test]
    fn a_long_transcript_fits_the_budget_whatever_its_shape() {
        let mut text = String::new();
        for i in 0..500 {
            text.push_str(&format!(
                "Line {i} says something about pasta, water and salt.\n"
            ));
            if i % 7 == 0 {
                text.push_str(&"x".repeat(i % 300));
                text.push(' ');
            }
        }
        for budget in [1, 2, 17, 80, 1000, 5000] {
            let parts = check(&text, budget);
            if budget >= 1000 {
                // Mostly whole lines: every part but the last ends a line.
                let whole = parts[..parts.len() - 1]
                    .iter()
                    .filter(|p| p.ends_with('\n'))
                    .count();
                assert!(
                    whole + 1 >= parts.len(),
                    "{budget}: {whole} of {}",
                    parts.len()
                );
            }
        }
    }
}
