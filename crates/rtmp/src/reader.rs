//! A bounds-checked big-endian cursor over untrusted bytes.
//!
//! Every read returns `None` when the input is too short, so the parsers above
//! turn truncation into their own typed error instead of panicking.

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes `n` bytes, or `None` (nothing consumed) when fewer remain.
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.bytes(N)?;
        bytes.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let [b] = self.array::<1>()?;
        Some(b)
    }

    pub(crate) fn u16_be(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array::<2>()?))
    }

    pub(crate) fn u24_be(&mut self) -> Option<u32> {
        let [a, b, c] = self.array::<3>()?;
        Some(u32::from_be_bytes([0, a, b, c]))
    }

    /// A signed 24-bit big-endian integer (FLV's SI24), sign-extended.
    pub(crate) fn i24_be(&mut self) -> Option<i32> {
        let [a, b, c] = self.array::<3>()?;
        let fill = if a & 0x80 != 0 { 0xFF } else { 0 };
        Some(i32::from_be_bytes([fill, a, b, c]))
    }

    pub(crate) fn u32_be(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array::<4>()?))
    }

    pub(crate) fn u32_le(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array::<4>()?))
    }

    pub(crate) fn f64_be(&mut self) -> Option<f64> {
        Some(f64::from_be_bytes(self.array::<8>()?))
    }

    pub(crate) fn i16_be(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.array::<2>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_refuses_short_input() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0xFF, 0xFF, 0xFE, 0x10]);
        assert_eq!(r.u24_be(), Some(0x010203));
        assert_eq!(r.i24_be(), Some(-2));
        assert_eq!(r.u16_be(), None, "one byte left: nothing consumed");
        assert_eq!(r.position(), 6);
        assert_eq!(r.u8(), Some(0x10));
        assert!(r.is_empty());
        assert_eq!(r.bytes(usize::MAX), None);
    }

    #[test]
    fn si24_extremes() {
        assert_eq!(Reader::new(&[0x7F, 0xFF, 0xFF]).i24_be(), Some(8_388_607));
        assert_eq!(Reader::new(&[0x80, 0x00, 0x00]).i24_be(), Some(-8_388_608));
        assert_eq!(Reader::new(&[0x00, 0x00, 0x42]).i24_be(), Some(66));
    }
}
