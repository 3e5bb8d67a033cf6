use super::*;

/// A fixed transcript of a 4-minute stream on three topics: bread (0–80 s),
/// the Rust compiler (80–160 s), tomatoes (160–240 s); a line every 5 s.
fn three_topics() -> Vec<TranscriptLine> {
    let bread = [
        "Welcome everyone, today we start with sourdough bread.",
        "The sourdough starter needs flour and water every day.",
        "Feed the starter with rye flour for a stronger rise.",
        "Mix the flour, the water and the starter into a dough.",
        "Knead the dough until the gluten feels smooth and elastic.",
        "Let the dough rest, the yeast in the starter does the work.",
        "Shape the dough into a round loaf on a floured board.",
        "Proof the loaf overnight in a cool kitchen.",
        "Bake the loaf in a hot oven with steam for a crisp crust.",
        "The oven should be very hot before the bread goes in.",
        "Score the loaf so the crust opens where you want.",
        "A good crust sings when the bread cools on a rack.",
        "Let the bread cool before slicing the loaf.",
        "Sourdough bread keeps for days wrapped in a towel.",
        "Questions about the starter or the flour go in the chat.",
        "That is the bread, the loaf looks great today.",
    ];
    let rust = [
        "Now the Rust compiler and the borrow checker.",
        "The borrow checker tracks every reference to a value.",
        "A mutable reference excludes every other reference.",
        "Lifetimes tell the compiler how long a reference lives.",
        "The compiler rejects a reference that outlives its value.",
        "Ownership moves the value, the old variable is gone.",
        "Clone the value when two owners need their own copy.",
        "Traits describe behaviour the compiler checks at compile time.",
        "Generic functions use trait bounds for the compiler.",
        "Compile errors from the borrow checker explain the lifetime.",
        "Cargo builds the crate and runs the compiler for you.",
        "Cargo test runs the unit tests of every crate.",
        "Clippy lints the crate beyond what the compiler checks.",
        "Unsafe code tells the compiler you checked the reference.",
        "The compiler gets faster with every Rust release.",
        "That is enough Rust compiler talk for one stream.",
    ];
    let garden = [
        "Finally the garden and the tomatoes.",
        "Tomato seedlings need sun and warm soil in the garden.",
        "Plant the tomatoes deep, the stem grows new roots.",
        "Water the tomato plants at the soil, never the leaves.",
        "Mulch keeps the soil moist and the weeds away.",
        "Tie the tomato stems to stakes as the plants grow.",
        "Pinch the side shoots so the plants put energy in fruit.",
        "Compost feeds the soil for the next garden season.",
        "Blight spots on tomato leaves mean cut the leaves off.",
        "Harvest the tomatoes when the fruit turns deep red.",
        "Green tomatoes ripen on a sunny windowsill indoors.",
        "Save seeds from the best tomato fruit for next season.",
        "Rotate the garden beds so the soil stays healthy.",
        "Basil grows well beside tomato plants in the garden.",
        "Send photos of your garden tomatoes in the chat.",
        "Thanks for watching the garden segment today.",
    ];
    bread
        .iter()
        .chain(rust.iter())
        .chain(garden.iter())
        .enumerate()
        .map(|(i, t)| TranscriptLine {
            start_ms: i as i64 * 5000,
            end_ms: i as i64 * 5000 + 4800,
            text: t.to_string(),
        })
        .collect()
}

fn ch(start_ms: i64, title: &str) -> Chapter {
    Chapter {
        start_ms,
        title: title.into(),
    }
}

#[test]
fn the_stop_words_are_sorted_and_one_space_apart() {
    let words: Vec<&str> = STOP_WORDS.split(' ').collect();
    assert!(
        words.windows(2).all(|w| w[0] < w[1]),
        "sorted, one space apart"
    );
    assert!(words.len() > 100 && words.iter().all(|w| !w.is_empty()));
    assert!(is_stop_word("the") && !is_stop_word("sourdough"));
}

#[test]
fn a_fixed_transcript_of_three_topics_gets_its_three_chapters_exactly() {
    let cfg = Segmenter {
        block_words: 20,
        window: 3,
        min_ms: 30_000,
        max_chapters: 10,
    };
    let got = segment(&three_topics(), Some(240_000), cfg);
    assert_eq!(
        got,
        vec![
            ch(0, "Bread and loaf"),
            ch(80_000, "Compiler and reference"),
            ch(160_000, "Garden and tomato"),
        ]
    );
    assert_eq!(app::chapters::check(&got, Some(240_000)), Ok(()));
}

#[test]
fn short_and_empty_transcripts() {
    assert_eq!(segment(&[], None, Segmenter::default()), vec![]);
    let one = [TranscriptLine {
        start_ms: 2000,
        end_ms: 4000,
        text: "Hello sourdough friends, sourdough today".into(),
    }];
    assert_eq!(
        segment(&one, None, Segmenter::default()),
        vec![ch(0, "Sourdough and friends")]
    );
    let silent = [TranscriptLine {
        start_ms: 0,
        end_ms: 1000,
        text: "the and of".into(),
    }];
    assert_eq!(segment(&silent, None, Segmenter::default()), vec![]);
}

#[test]
fn the_defaults_keep_chapters_a_minute_apart() {
    let got = segment(&three_topics(), Some(240_000), Segmenter::default());
    assert!(!got.is_empty());
    assert_eq!(got[0].start_ms, 0);
    assert!(got
        .windows(2)
        .all(|w| w[1].start_ms - w[0].start_ms >= 60_000));
    assert_eq!(app::chapters::check(&got, Some(240_000)), Ok(()));
}

#[test]
fn model_lines_are_read_in_their_usual_shapes() {
    let text = "Here are the chapters:\n\
                00:00 Introduction\n\
                - 01:20 - The borrow checker\n\
                2. [02:40] Tomatoes in the garden\n\
                * 1:02:03: \"Late part\"\n\
                99:99 Not a time\n\
                03:00\n\
                no time here";
    assert_eq!(
        parse_model_lines(text),
        vec![
            ch(0, "Introduction"),
            ch(80_000, "The borrow checker"),
            ch(160_000, "Tomatoes in the garden"),
            ch(3_723_000, "Late part"),
        ]
    );
    // Huge numbers are not times.
    assert_eq!(parse_model_lines("99999999999999999999:00 Big"), vec![]);
}

#[test]
fn tidy_makes_any_list_keep_the_rules() {
    let got = tidy(
        vec![
            ch(90_000, "B"),
            ch(5_000, "A"),
            ch(95_000, "too close to B"),
            ch(500_000, "past the end"),
            ch(200_000, "  "),
            ch(150_000, "C"),
        ],
        Some(300_000),
        30_000,
    );
    assert_eq!(got, vec![ch(0, "A"), ch(90_000, "B"), ch(150_000, "C")]);
    assert_eq!(app::chapters::check(&got, Some(300_000)), Ok(()));
    assert_eq!(tidy(vec![], None, 1), vec![]);
}
