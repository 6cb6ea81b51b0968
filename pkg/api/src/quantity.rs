//! Kubernetes resource quantities: `500m`, `2`, `1.5`, `64Mi`, `1G`, `1e3`.
//!
//! A quantity is held exactly, as a whole number of nano-units, the finest precision
//! Kubernetes keeps: like Kubernetes, a value with more decimals is rounded away from zero
//! to the next nano-unit, so that asking for a tiny amount never turns into nothing.
//!
//! It also keeps the [`Format`] of its suffix, as Kubernetes does, so that
//! [`Quantity::canonical`] prints it the way `resource.Quantity.String()` does: `0.5` is
//! `500m`, `1000m` is `1`, `1024Mi` is `1Gi`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// The style a quantity was written in, which its canonical text keeps (Kubernetes'
/// `resource.Format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// `e3`, `E-2` — and a quantity that was never parsed.
    #[default]
    DecimalExponent,
    /// `Ki`, `Mi`, ... `Ei`.
    BinarySi,
    /// No suffix, or `n`, `u`, `m`, `k`, `M`, ... `E`.
    DecimalSi,
}

/// A parsed quantity. Compared, ordered and hashed by value alone, so `"1"` equals
/// `"1000m"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

/// Why a string is not a quantity. The messages are Kubernetes' own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
    #[error("quantity is too large")]
    TooLarge,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;

impl Quantity {
    /// A quantity of exactly `nanos` nano-units, in [`Format::DecimalSi`].
    pub fn from_nanos(nanos: i128) -> Quantity {
        Quantity {
            nanos,
            format: Format::DecimalSi,
        }
    }

    /// The style its suffix was written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The exact value in nano-units.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in milli-units, rounded away from zero like Kubernetes' `MilliValue`:
    /// millicores for `cpu`.
    pub fn as_millis(&self) -> i128 {
        div_away_from_zero(self.nanos, NANOS_PER_MILLI)
    }

    /// The value in whole units, rounded away from zero like Kubernetes' `Value`: bytes
    /// for `memory`, cores for `cpu`.
    pub fn as_value(&self) -> i128 {
        div_away_from_zero(self.nanos, NANOS_PER_UNIT)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Adds `other`. The sum keeps this quantity's format, unless this is a zero that was
    /// never parsed ([`Quantity::default`]), which takes `other`'s.
    pub fn add(&mut self, other: &Quantity) {
        if self.nanos == 0 && self.format == Format::DecimalExponent {
            self.format = other.format;
        }
        self.nanos += other.nanos;
    }

    /// Kubernetes' canonical text (`resource.Quantity.String()`): the largest suffix of
    /// its format that keeps the number an integer, `Ki`-style only for a whole number of
    /// at least 1024 (otherwise decimal).
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == Format::BinarySi
            && (self.nanos.abs() < 1024 * NANOS_PER_UNIT || self.nanos % NANOS_PER_UNIT != 0)
        {
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let mut amount = self.nanos / NANOS_PER_UNIT;
            let mut power = 0;
            while amount % 1024 == 0 && power < 6 {
                amount /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{amount}{suffix}");
        }
        // The mantissa with no trailing zeros, then the exponent lowered to a multiple
        // of three.
        let mut amount = self.nanos;
        let mut exponent: i32 = -9;
        while amount % 10 == 0 {
            amount /= 10;
            exponent += 1;
        }
        match exponent.rem_euclid(3) {
            1 => {
                amount *= 10;
                exponent -= 1;
            }
            2 => {
                amount *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        let suffix = match (format, exponent) {
            (_, 0) => String::new(),
            (Format::DecimalSi, -9) => "n".into(),
            (Format::DecimalSi, -6) => "u".into(),
            (Format::DecimalSi, -3) => "m".into(),
            (Format::DecimalSi, 3) => "k".into(),
            (Format::DecimalSi, 6) => "M".into(),
            (Format::DecimalSi, 9) => "G".into(),
            (Format::DecimalSi, 12) => "T".into(),
            (Format::DecimalSi, 15) => "P".into(),
            (Format::DecimalSi, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{amount}{suffix}")
    }
}

fn div_away_from_zero(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

impl fmt::Display for Quantity {
    /// Renders the exact value in the largest of `n`, `u`, `m` or whole units that keeps
    /// it an integer: `1500m`, `2`, `64`. It is a faithful value, not Kubernetes' canonical
    /// suffix choice.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if n % NANOS_PER_UNIT == 0 {
            write!(f, "{}", n / NANOS_PER_UNIT)
        } else if n % NANOS_PER_MILLI == 0 {
            write!(f, "{}m", n / NANOS_PER_MILLI)
        } else if n % 1000 == 0 {
            write!(f, "{}u", n / 1000)
        } else {
            write!(f, "{n}n")
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_quantity(s)
    }
}

/// Parses a quantity: an optionally signed decimal number, then an optional suffix —
/// binary (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), decimal (`n` `u` `m` `k` `M` `G` `T` `P` `E`)
/// or a decimal exponent (`e3`, `E-2`). Surrounding whitespace is ignored, as Kubernetes
/// does when it reads a quantity from JSON.
pub fn parse_quantity(input: &str) -> Result<Quantity, QuantityError> {
    let s = input.trim().as_bytes();
    let mut pos = 0;
    let negative = match s.first() {
        Some(b'-') => {
            pos += 1;
            true
        }
        Some(b'+') => {
            pos += 1;
            false
        }
        _ => false,
    };
    let int_start = pos;
    while pos < s.len() && s[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_part = &s[int_start..pos];
    let mut frac_part: &[u8] = &[];
    if pos < s.len() && s[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < s.len() && s[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_part = &s[frac_start..pos];
    }
    // Kubernetes' parser lets "-", "." or "Ki" through as zero; a quantity without a single
    // digit is more likely a mistake, so it is refused here.
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError::Format);
    }
    let suffix = &s[pos..];
    // The shape Kubernetes' regex allows after the number: suffix letters, an optional
    // sign, digits. Anything else is a format error rather than an unknown suffix.
    let letters = suffix
        .iter()
        .take_while(|c| b"eEinumkKMGTP".contains(c))
        .count();
    let mut rest = &suffix[letters..];
    if let Some(b'+' | b'-') = rest.first() {
        rest = &rest[1..];
    }
    if !rest.iter().all(|c| c.is_ascii_digit()) {
        return Err(QuantityError::Format);
    }
    let suffix = std::str::from_utf8(suffix).map_err(|_| QuantityError::Format)?;
    let (pow10, pow2) = interpret_suffix(suffix).ok_or(QuantityError::Suffix)?;
    let format = if pow2 > 0 {
        Format::BinarySi
    } else if suffix != "E" && suffix.starts_with(['e', 'E']) {
        Format::DecimalExponent
    } else {
        Format::DecimalSi
    };

    let mut digits: Vec<u8> = int_part
        .iter()
        .chain(frac_part)
        .map(|c| c - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    if digits.is_empty() {
        return Ok(Quantity { nanos: 0, format });
    }
    multiply_by_pow2(&mut digits, pow2);
    // The value is digits × 10^exp10 units; the number of nano-units is that × 10^9.
    let exp10 = pow10 - frac_part.len() as i64 + 9;
    let nanos = to_rounded_integer(&digits, exp10).ok_or(QuantityError::TooLarge)?;
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
        format,
    })
}

/// The suffix's factor as (power of ten, power of two), or None if it is not one.
fn interpret_suffix(suffix: &str) -> Option<(i64, u32)> {
    let factor = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let unsigned = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (exp.parse::<i64>().ok()?, 0)
        }
    };
    Some(factor)
}

/// Multiplies a big-endian decimal digit string in place.
fn multiply_by_pow2(digits: &mut Vec<u8>, mut pow2: u32) {
    while pow2 > 0 {
        let step = pow2.min(20);
        pow2 -= step;
        let factor = 1u64 << step;
        let mut carry = 0u64;
        for d in digits.iter_mut().rev() {
            let v = u64::from(*d) * factor + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.insert(0, (carry % 10) as u8);
            carry /= 10;
        }
    }
}

/// `digits × 10^exp10` as an integer, rounded away from zero; None if it overflows.
/// `digits` has no leading zeros and is not empty.
fn to_rounded_integer(digits: &[u8], exp10: i64) -> Option<i128> {
    let keep = digits.len() as i64 + exp10;
    if keep <= 0 {
        // A non-zero value below one nano-unit still rounds up to one.
        return Some(1);
    }
    // i128 holds at most 39 digits; checked arithmetic catches the 39-digit overflows.
    if keep > 39 {
        return None;
    }
    let keep = keep as usize;
    let mut n: i128 = 0;
    for i in 0..keep {
        let d = digits.get(i).copied().unwrap_or(0);
        n = n.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    if digits.len() > keep && digits[keep..].iter().any(|&d| d != 0) {
        n = n.checked_add(1)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        parse_quantity(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn cpu_quantities_in_millis() {
        let cases = [
            ("500m", 500),
            ("2", 2000),
            ("1.5", 1500),
            ("0.1", 100),
            ("100m", 100),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("0", 0),
            ("+2", 2000),
            ("-1.5", -1500),
            ("1.", 1000),
            (".5", 500),
            ("250000u", 250),
            ("1000000n", 1),
            ("0.0001", 1),
            ("1n", 1),
            ("-1n", -1),
            ("0.5m", 1),
            ("007", 7000),
        ];
        for (s, millis) in cases {
            assert_eq!(q(s).as_millis(), millis, "{s}");
        }
    }

    #[test]
    fn memory_quantities_in_bytes() {
        let cases = [
            ("64Mi", 64 * 1024 * 1024),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("100k", 100_000),
            ("0.5Ki", 512),
            ("1.5Gi", 3 << 29),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("123Mi", 128_974_848),
            ("1Ei", 1 << 60),
            ("8Ei", 8 << 60),
            ("2P", 2_000_000_000_000_000),
            ("1Ti", 1 << 40),
            ("1500m", 2),
            ("1m", 1),
            ("-1m", -1),
            ("0.1Ki", 103),
        ];
        for (s, bytes) in cases {
            assert_eq!(q(s).as_value(), bytes, "{s}");
        }
    }

    #[test]
    fn rounding_keeps_nano_precision() {
        assert_eq!(q("1.5").as_nanos(), 1_500_000_000);
        assert_eq!(q("0.0000000001").as_nanos(), 1);
        assert_eq!(q("1.0000000001").as_nanos(), 1_000_000_001);
        assert_eq!(q("1e-20").as_nanos(), 1);
        assert_eq!(q("-1e-20").as_nanos(), -1);
        assert_eq!(q("0.000").as_nanos(), 0);
        assert_eq!(q("0e99999").as_nanos(), 0);
    }

    #[test]
    fn equal_values_compare_equal() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("500m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("0"));
        assert!(q("-1").is_negative());
        assert!(q("0m").is_zero());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", " ", "abc", "5Mx", "1.2.3", "1,5", "1 Gi", "Ki", "-", ".", "e3", "m", "0x10",
            "1Gib", "1.5.", "1e2.5", "--1",
        ] {
            assert_eq!(parse_quantity(bad), Err(QuantityError::Format), "{bad:?}");
        }
        for bad in ["1e", "1ki", "1Mm", "1i", "1e+", "1KiB0"] {
            assert!(parse_quantity(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_quantity("1ki"), Err(QuantityError::Suffix));
        assert_eq!(parse_quantity("1mi"), Err(QuantityError::Suffix));
        assert_eq!(parse_quantity("1e40"), Err(QuantityError::TooLarge));
        assert_eq!(
            parse_quantity("5Mx").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn whitespace_is_trimmed() {
        assert_eq!(q(" 1Gi\n").as_value(), 1 << 30);
    }

    #[test]
    fn display_is_exact() {
        assert_eq!(q("1.5").to_string(), "1500m");
        assert_eq!(q("2").to_string(), "2");
        assert_eq!(q("1Ki").to_string(), "1024");
        assert_eq!(q("1u").to_string(), "1u");
        assert_eq!(q("3n").to_string(), "3n");
        assert_eq!(q("-250m").to_string(), "-250m");
        assert_eq!(q(&q("1.25Gi").to_string()), q("1.25Gi"));
    }

    /// Kubernetes' canonical text, as `kubectl describe` prints it.
    fn canonical(text: &str) -> String {
        q(text).canonical()
    }

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("500m", "500m"),
            ("0.5", "500m"),
            ("0.25", "250m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("2", "2"),
            ("10", "10"),
            ("1000", "1k"),
            ("64Mi", "64Mi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1G", "1G"),
            ("2E", "2E"),
            ("128974848", "128974848"),
            ("1e3", "1e3"),
            ("110", "110"),
            ("0", "0"),
            ("100n", "100n"),
        ] {
            assert_eq!(canonical(input), want, "{input}");
        }
    }

    #[test]
    fn sums_keep_the_first_format() {
        let mut sum = Quantity::default();
        sum.add(&q("64Mi"));
        sum.add(&q("128Mi"));
        assert_eq!(sum.canonical(), "192Mi");
        let mut cpu = Quantity::default();
        for _ in 0..7 {
            cpu.add(&q("500m"));
        }
        assert_eq!(cpu.canonical(), "3500m");
        assert_eq!(cpu.as_millis(), 3500);
        assert_eq!(q("8Gi").as_value(), 8 << 30);
        let mut decimal = q("1k");
        decimal.add(&q("1Ki"));
        assert_eq!(decimal.canonical(), "2024");
        assert_eq!(decimal.format(), Format::DecimalSi);
    }
}
