//! Unit tests of `transcode.rs`.

use super::aud_first;

#[test]
fn the_access_unit_delimiter_moves_to_the_front() {
    let sei = [0x06, 0x05, 0x10, 0xaa];
    let aud = [0x09, 0x10];
    let idr = [0x65, 0x88, 0x84, 0x00, 0x21];
    let annex_b = |units: &[&[u8]]| {
        units
            .iter()
            .flat_map(|u| [&[0u8, 0, 0, 1][..], u].concat())
            .collect::<Vec<u8>>()
    };
    assert_eq!(
        aud_first(&annex_b(&[&sei, &aud, &idr])),
        Some(annex_b(&[&aud, &sei, &idr]))
    );
    // 3-byte start codes too; a trailing zero of a unit is not part of it.
    let three: Vec<u8> = [
        &[0u8, 0, 1][..],
        &sei,
        &[0, 0, 0, 1],
        &aud,
        &[0, 0, 1],
        &idr,
    ]
    .concat();
    assert_eq!(aud_first(&three), Some(annex_b(&[&aud, &sei, &idr])));
    // Already first, or no AUD at all: nothing to do.
    assert_eq!(aud_first(&annex_b(&[&aud, &idr])), None);
    assert_eq!(aud_first(&annex_b(&[&sei, &idr])), None);
}
