//! Quantities printed the way Kubernetes prints them (`resource.Quantity.String()`):
//! `0.5` is `500m`, `1000m` is `1`, `1024Mi` is `1Gi`. A quantity keeps the style of
//! its suffix (binary `Ki`/`Mi`..., decimal `m`/`k`/`M`..., or an exponent `e3`), as
//! Kubernetes does, and a sum keeps the style of its first term.

use minik8s_api::quantity::parse_quantity;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// An exact quantity (in nano-units) and its style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
    style: Style,
}

const NANOS: i128 = 1_000_000_000;

impl Quantity {
    pub fn zero() -> Quantity {
        Quantity {
            nanos: 0,
            style: Style::DecimalExponent,
        }
    }

    pub fn parse(text: &str) -> Option<Quantity> {
        let value = parse_quantity(text).ok()?;
        let trimmed = text.trim();
        let number_len = trimmed
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '+' | '-' | '.')))
            .unwrap_or(trimmed.len());
        let suffix = &trimmed[number_len..];
        let style = if suffix.ends_with('i') {
            Style::BinarySi
        } else if matches!(
            suffix,
            "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
        ) {
            Style::DecimalSi
        } else {
            Style::DecimalExponent
        };
        Some(Quantity {
            nanos: value.as_nanos(),
            style,
        })
    }

    /// Adds `other`; the sum keeps this quantity's style unless this one is a zero that
    /// was never set.
    pub fn add(&mut self, other: &Quantity) {
        if self.nanos == 0 && self.style == Style::DecimalExponent {
            self.style = other.style;
        }
        self.nanos += other.nanos;
    }

    /// The value in thousandths, rounded up like Kubernetes' `MilliValue`.
    pub fn milli_value(&self) -> i128 {
        div_ceil_away(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up like Kubernetes' `Value`.
    pub fn value(&self) -> i128 {
        div_ceil_away(self.nanos, NANOS)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Kubernetes' canonical text.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let mut style = self.style;
        if style == Style::BinarySi && (self.nanos.abs() < 1024 * NANOS || self.nanos % NANOS != 0)
        {
            style = Style::DecimalSi;
        }
        if style == Style::BinarySi {
            let mut amount = self.nanos / NANOS;
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
        let suffix = match (style, exponent) {
            (_, 0) => String::new(),
            (Style::DecimalSi, -9) => "n".into(),
            (Style::DecimalSi, -6) => "u".into(),
            (Style::DecimalSi, -3) => "m".into(),
            (Style::DecimalSi, 3) => "k".into(),
            (Style::DecimalSi, 6) => "M".into(),
            (Style::DecimalSi, 9) => "G".into(),
            (Style::DecimalSi, 12) => "T".into(),
            (Style::DecimalSi, 15) => "P".into(),
            (Style::DecimalSi, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{amount}{suffix}")
    }
}

fn div_ceil_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

/// A quantity string in canonical form; text that is not a quantity stays as it is.
pub fn canonical(text: &str) -> String {
    Quantity::parse(text)
        .map(|q| q.canonical())
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sums_keep_the_first_style() {
        let mut sum = Quantity::zero();
        sum.add(&Quantity::parse("64Mi").unwrap());
        sum.add(&Quantity::parse("128Mi").unwrap());
        assert_eq!(sum.canonical(), "192Mi");
        let mut cpu = Quantity::zero();
        for _ in 0..7 {
            cpu.add(&Quantity::parse("500m").unwrap());
        }
        assert_eq!(cpu.canonical(), "3500m");
        assert_eq!(cpu.milli_value(), 3500);
        assert_eq!(Quantity::parse("8Gi").unwrap().value(), 8 << 30);
    }
}
