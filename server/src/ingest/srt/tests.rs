//! Unit tests of the SRT listener's sans-IO parts.

use super::*;

#[test]
fn stream_ids_in_the_access_control_form_parse() {
    let r = parse_stream_id("#!::r=abc_def,m=publish").expect("parses");
    assert_eq!(r.resource, "abc_def");
    let r = parse_stream_id("#!::m=publish,u=obs,r=abc,t=stream,x=y").expect("parses");
    assert_eq!(r.resource, "abc");
    assert_eq!(parse_stream_id("abc_def"), Err(StreamIdError::Syntax));
    assert_eq!(parse_stream_id("#!::r=abc"), Err(StreamIdError::Mode));
    assert_eq!(
        parse_stream_id("#!::r=abc,m=request"),
        Err(StreamIdError::Mode)
    );
    assert_eq!(
        parse_stream_id("#!::r=abc,m=publish,t=file"),
        Err(StreamIdError::Type)
    );
    assert_eq!(parse_stream_id("#!::m=publish"), Err(StreamIdError::Syntax));
    assert_eq!(
        parse_stream_id("#!::r=,m=publish"),
        Err(StreamIdError::Syntax)
    );
    assert_eq!(
        parse_stream_id("#!::r=a b,m=publish"),
        Err(StreamIdError::Syntax)
    );
    assert_eq!(
        parse_stream_id("#!::r=abc,m=publish,junk"),
        Err(StreamIdError::Syntax)
    );
    assert_eq!(StreamIdError::Mode.code(), 1405);
}

#[test]
fn only_whole_ts_packets_pass() {
    let mut ts = vec![0u8; 188 * 7];
    for p in ts.chunks_mut(188) {
        p[0] = 0x47;
    }
    assert!(is_mpeg_ts(&ts));
    assert!(!is_mpeg_ts(&ts[..100]));
    assert!(!is_mpeg_ts(&[]));
    ts[188] = 0;
    assert!(!is_mpeg_ts(&ts));
    assert!(!is_mpeg_ts(b"FLV\x01\x05"));
}
