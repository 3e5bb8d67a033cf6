//! Just enough H.264 for packaging: split Annex B byte streams into NAL units,
//! convert to the length-prefixed form MP4 uses, and read the SPS for the
//! picture size and the `avc1.PPCCLL` codec string. Input from outside is never
//! trusted: malformed data yields `None`/errors, never a panic.

/// NAL unit types the packager cares about.
pub mod nal {
    /// Coded slice of an IDR picture (a keyframe).
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The type of a NAL unit (low five bits of its first byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Splits an Annex B byte stream (`00 00 01` / `00 00 00 01` start codes) into
/// NAL units, without their start codes. Bytes before the first start code are
/// ignored.
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts
            .get(n + 1)
            .map(|&next| next - 3)
            .unwrap_or(data.len());
        // A 4-byte start code leaves a trailing zero on the previous unit.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

/// Whether `data` looks like Annex B (starts with a start code).
pub fn is_annex_b(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])
}

/// Writes NAL units as 4-byte length-prefixed units (the MP4 sample format).
pub fn to_length_prefixed<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        // NAL units larger than 4 GiB cannot occur in a sample we accept.
        let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// Splits a 4-byte length-prefixed sample into NAL units; `None` if malformed.
pub fn split_length_prefixed(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
        let nal = data.get(4..4 + len)?;
        out.push(nal);
        data = &data[4 + len..];
    }
    Some(out)
}

/// What the packager needs from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc`.
    pub profile: u8,
    /// The constraint-flags byte.
    pub constraints: u8,
    /// `level_idc`.
    pub level: u8,
    /// Displayed width in pixels (after cropping).
    pub width: u32,
    /// Displayed height in pixels (after cropping).
    pub height: u32,
}

impl SpsInfo {
    /// The RFC 6381 codec string, such as `avc1.42e01f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.constraints, self.level
        )
    }
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

fn skip_scaling_list(b: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + b.se()? + 256) % 256;
        }
        last = if next == 0 { last } else { next };
    }
    Some(())
}

/// Parses a sequence parameter set NAL unit (with its header byte).
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    parse_sps_full(nal).map(|(info, _)| info)
}

/// How far a stream's output order may run ahead of its decode order, from a
/// sequence parameter set (what decode timestamps must allow for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reordering {
    /// The most frames that precede any frame in decode order and follow it
    /// in output order: `max_num_reorder_frames` from the VUI, or (without
    /// it) what H.264 infers: none for `pic_order_cnt_type` 2, Baseline
    /// (no B slices) and the intra profiles, otherwise the DPB size the level
    /// allows for the picture size (at most 16).
    pub depth: u32,
    /// The depth was written in the stream (not inferred).
    pub signalled: bool,
    /// The nominal frame duration from the VUI timing, as
    /// `(2 × num_units_in_tick, time_scale)` seconds, if present.
    pub frame_duration: Option<(u32, u32)>,
}

/// The reordering a sequence parameter set allows (see [`Reordering`]).
pub fn reordering(nal: &[u8]) -> Option<Reordering> {
    parse_sps_full(nal).map(|(_, r)| r)
}

/// `MaxDpbMbs` by `level_idc` (H.264 table A-1); `constraint_set3` with level
/// 11 means level 1b.
fn max_dpb_mbs(level: u8) -> u32 {
    match level {
        0..=10 => 396,
        11 => 900,
        12 | 13 | 20 => 2376,
        21 => 4752,
        22 | 30 => 8100,
        31 => 18_000,
        32 => 20_480,
        40 | 41 => 32_768,
        42 => 34_816,
        50 => 110_400,
        51 | 52 => 184_320,
        _ => 696_320,
    }
}

fn skip_hrd(b: &mut Bits<'_>) -> Option<()> {
    let cpb_cnt = b.ue()? + 1;
    if cpb_cnt > 32 {
        return None;
    }
    b.bits(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        b.ue()?; // bit_rate_value_minus1
        b.ue()?; // cpb_size_value_minus1
        b.bit()?; // cbr_flag
    }
    b.bits(20)?; // four delay and offset lengths
    Some(())
}

/// The VUI up to `max_num_reorder_frames`: `(timing, reorder frames)`.
#[allow(clippy::type_complexity)]
fn parse_vui(b: &mut Bits<'_>) -> Option<(Option<(u32, u32)>, Option<u32>)> {
    if b.bit()? == 1 {
        // aspect_ratio_info: Extended_SAR carries sar_width and sar_height.
        if b.bits(8)? == 255 {
            b.bits(32)?;
        }
    }
    if b.bit()? == 1 {
        b.bit()?; // overscan_appropriate_flag
    }
    if b.bit()? == 1 {
        b.bits(4)?; // video_format, video_full_range_flag
        if b.bit()? == 1 {
            b.bits(24)?; // colour primaries, transfer, matrix
        }
    }
    if b.bit()? == 1 {
        b.ue()?; // chroma_sample_loc_type_top_field
        b.ue()?; // chroma_sample_loc_type_bottom_field
    }
    let mut timing = None;
    if b.bit()? == 1 {
        let units = b.bits(32)?;
        let scale = b.bits(32)?;
        b.bit()?; // fixed_frame_rate_flag
        if units > 0 && scale > 0 {
            timing = Some((units.saturating_mul(2), scale));
        }
    }
    let nal_hrd = b.bit()?;
    if nal_hrd == 1 {
        skip_hrd(b)?;
    }
    let vcl_hrd = b.bit()?;
    if vcl_hrd == 1 {
        skip_hrd(b)?;
    }
    if nal_hrd == 1 || vcl_hrd == 1 {
        b.bit()?; // low_delay_hrd_flag
    }
    b.bit()?; // pic_struct_present_flag
    let mut reorder = None;
    if b.bit()? == 1 {
        b.bit()?; // motion_vectors_over_pic_boundaries_flag
        b.ue()?; // max_bytes_per_pic_denom
        b.ue()?; // max_bits_per_mb_denom
        b.ue()?; // log2_max_mv_length_horizontal
        b.ue()?; // log2_max_mv_length_vertical
        reorder = Some(b.ue()?.min(16));
    }
    Some((timing, reorder))
}

fn parse_sps_full(nal: &[u8]) -> Option<(SpsInfo, Reordering)> {
    if nal_type(nal)? != nal::SPS || nal.len() < 4 {
        return None;
    }
    let rbsp = unescape(&nal[1..]);
    let (profile, constraints, level) = (rbsp[0], rbsp[1], rbsp[2]);
    let mut b = Bits {
        data: &rbsp[3..],
        pos: 0,
    };
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = b.ue()?;
        if chroma_format_idc == 3 {
            b.bit()?; // separate_colour_plane_flag
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? == 1 {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    let poc_type = b.ue()?;
    match poc_type {
        0 => {
            b.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            let n = b.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = b.ue()? + 1;
    let height_map_units = b.ue()? + 1;
    let frame_mbs_only = b.bit()?;
    if frame_mbs_only == 0 {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0, 0, 0, 0);
    if b.bit()? == 1 {
        crop_l = b.ue()?;
        crop_r = b.ue()?;
        crop_t = b.ue()?;
        crop_b = b.ue()?;
    }
    let (sub_w, sub_h) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_unit_y = sub_h * (2 - frame_mbs_only);
    let width = (width_mbs * 16).checked_sub((crop_l + crop_r) * sub_w)?;
    let height = (height_map_units * 16 * (2 - frame_mbs_only))
        .checked_sub((crop_t + crop_b) * crop_unit_y)?;
    // A missing or unreadable VUI leaves the reordering to be inferred.
    let (timing, signalled) = match b.bit() {
        Some(1) => parse_vui(&mut b).unwrap_or((None, None)),
        _ => (None, None),
    };
    let intra = matches!(profile, 44 | 86 | 100 | 110 | 122 | 244) && constraints & 0x10 != 0;
    let inferred = if poc_type == 2 || profile == 66 || intra {
        0
    } else {
        let level_mbs = if level == 11 && constraints & 0x10 != 0 {
            396 // level 1b
        } else {
            max_dpb_mbs(level)
        };
        let frame_mbs = width_mbs.saturating_mul(height_map_units * (2 - frame_mbs_only));
        (level_mbs / frame_mbs.max(1)).min(16)
    };
    let info = SpsInfo {
        profile,
        constraints,
        level,
        width,
        height,
    };
    let reordering = Reordering {
        depth: signalled.unwrap_or(inferred),
        signalled: signalled.is_some(),
        frame_duration: timing,
    };
    Some((info, reordering))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real SPS units from libx264: High profile level 3.1 at 1280x720 (80x45
    // macroblocks), and Constrained Baseline 3.0 at 640x360 (23 macroblock rows
    // = 368 lines, cropped by 8).
    const SPS_720P: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];

    const SPS_360P_BASELINE: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
        0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
    ];

    #[test]
    fn parses_a_cropped_baseline_sps() {
        let sps = parse_sps(SPS_360P_BASELINE).expect("valid sps");
        assert_eq!((sps.width, sps.height), (640, 360));
        assert_eq!(sps.codec_string(), "avc1.42c01e");
    }

    #[test]
    fn splits_annex_b_with_both_start_code_lengths() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals = split_annex_b(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert!(is_annex_b(&data));
        let lp = to_length_prefixed(nals.iter().copied());
        assert_eq!(split_length_prefixed(&lp).expect("well formed"), nals);
        assert!(
            split_length_prefixed(&[0, 0, 0, 9, 1]).is_none(),
            "truncated unit"
        );
    }

    #[test]
    fn parses_a_real_high_profile_sps() {
        let sps = parse_sps(SPS_720P).expect("valid sps");
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.codec_string(), "avc1.64001f");
    }

    /// libx264 `-preset veryfast` (High, three B-frames with a pyramid) and
    /// `-preset ultrafast` (Constrained Baseline), 640x360 at 30 fps.
    const SPS_X264_VERYFAST: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];
    const SPS_X264_ULTRAFAST: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00,
        0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x58, 0xba, 0x80,
    ];

    #[test]
    fn the_vui_says_how_deep_x264_reorders_and_its_frame_rate() {
        let r = reordering(SPS_X264_VERYFAST).expect("valid sps");
        assert_eq!(
            r,
            Reordering {
                depth: 2,
                signalled: true,
                frame_duration: Some((2, 60)),
            }
        );
        assert_eq!(
            parse_sps(SPS_X264_VERYFAST).map(|i| (i.width, i.height)),
            Some((640, 360))
        );
        let r = reordering(SPS_X264_ULTRAFAST).expect("valid sps");
        assert_eq!((r.depth, r.signalled), (0, true));
        assert_eq!(reordering(SPS_360P_BASELINE).map(|r| r.depth), Some(0));
    }

    /// An SPS written bit by bit: High profile, level 3.1, 640x360 (40x23
    /// macroblocks, cropped), `pic_order_cnt_type` `poc`, no VUI.
    fn sps_without_vui(poc: u32) -> Vec<u8> {
        let mut bits = String::new();
        let ue = |v: u32, bits: &mut String| {
            let code = format!("{:b}", v + 1);
            bits.push_str(&"0".repeat(code.len() - 1));
            bits.push_str(&code);
        };
        ue(0, &mut bits); // seq_parameter_set_id
        ue(1, &mut bits); // chroma_format_idc
        ue(0, &mut bits); // bit_depth_luma_minus8
        ue(0, &mut bits); // bit_depth_chroma_minus8
        bits.push_str("00"); // qpprime bypass, no scaling matrix
        ue(0, &mut bits); // log2_max_frame_num_minus4
        ue(poc, &mut bits);
        if poc == 0 {
            ue(2, &mut bits); // log2_max_pic_order_cnt_lsb_minus4
        }
        ue(3, &mut bits); // max_num_ref_frames
        bits.push('0'); // gaps
        ue(39, &mut bits); // 40 macroblocks wide
        ue(22, &mut bits); // 23 high
        bits.push_str("111"); // frame_mbs_only, direct_8x8, cropping
        for crop in [0, 0, 0, 4] {
            ue(crop, &mut bits);
        }
        bits.push('0'); // no VUI
        bits.push('1'); // rbsp stop bit
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let mut out = vec![0x67, 100, 0, 31];
        for byte in bits.as_bytes().chunks(8) {
            let text = std::str::from_utf8(byte).expect("ascii");
            out.push(u8::from_str_radix(text, 2).expect("bits"));
        }
        out
    }

    #[test]
    fn without_a_vui_the_depth_is_what_h264_infers() {
        let sps = sps_without_vui(0);
        assert_eq!(
            parse_sps(&sps).map(|i| (i.width, i.height)),
            Some((640, 360))
        );
        // Level 3.1 allows 18000 macroblocks of DPB: 19 frames of 920, at most 16.
        let r = reordering(&sps).expect("valid sps");
        assert_eq!((r.depth, r.signalled, r.frame_duration), (16, false, None));
        // Output order is decode order with pic_order_cnt_type 2.
        assert_eq!(reordering(&sps_without_vui(2)).map(|r| r.depth), Some(0));
    }

    #[test]
    fn garbage_sps_is_rejected_not_panicking() {
        assert!(parse_sps(&[0x67]).is_none());
        assert!(parse_sps(&[0x68, 1, 2, 3, 4]).is_none());
        for n in 0..SPS_720P.len() {
            let _ = parse_sps(&SPS_720P[..n]);
        }
        for n in 0..SPS_X264_VERYFAST.len() {
            let _ = reordering(&SPS_X264_VERYFAST[..n]);
        }
        let _ = parse_sps(&[0x67, 0x64, 0, 0x1f, 0, 0, 0, 0, 0, 0]);
    }
}
