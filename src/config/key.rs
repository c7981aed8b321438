//! The shape of one declared experiment key ([`Key`]: name, [`Kind`], unit, default,
//! example, doc, the [`Cond`]itions under which it applies) and the `const` builder
//! the declaration in `schema.rs` is written with.

/// What a key may hold.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string; when the list is not empty, one of these.
    Str(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// An integer in this inclusive range.
    Int(i64, i64),
    /// An array of integers, each in this inclusive range (`[1, 2, 4, 8]`).
    Ints(i64, i64),
    /// A finite number (integer or float) in a range.
    Float(FloatRange),
    /// A length distribution: `{ dist = "...", ... }`.
    Dist,
    /// A table with these keys.
    Table(&'static [Key]),
    /// An array of tables (`[[name]]`) with these keys.
    Tables(&'static [Key]),
}

/// A range of finite numbers; each end closed unless marked open.
#[derive(Debug, Clone, Copy)]
pub struct FloatRange {
    /// Lowest value.
    pub lo: f64,
    /// Highest value.
    pub hi: f64,
    /// Whether `lo` itself is excluded.
    pub lo_open: bool,
    /// Whether `hi` itself is excluded.
    pub hi_open: bool,
}

impl FloatRange {
    /// Whether `v` lies in the range (and is finite).
    pub fn contains(&self, v: f64) -> bool {
        v.is_finite()
            && (if self.lo_open {
                v > self.lo
            } else {
                v >= self.lo
            })
            && (if self.hi_open {
                v < self.hi
            } else {
                v <= self.hi
            })
    }
}

/// `[lo, hi]`.
pub const fn float(lo: f64, hi: f64) -> Kind {
    Kind::Float(FloatRange {
        lo,
        hi,
        lo_open: false,
        hi_open: false,
    })
}

/// `(lo, hi]`.
pub const fn float_above(lo: f64, hi: f64) -> Kind {
    Kind::Float(FloatRange {
        lo,
        hi,
        lo_open: true,
        hi_open: false,
    })
}

/// `[lo, hi)`.
pub const fn float_below(lo: f64, hi: f64) -> Kind {
    Kind::Float(FloatRange {
        lo,
        hi,
        lo_open: false,
        hi_open: true,
    })
}

/// A condition on a sibling key: the key applies only when `key` (in the same
/// table; `default` when absent) is one of `values`.
#[derive(Debug, Clone, Copy)]
pub struct Cond {
    /// The selecting key, in the same table (`arrival`, `sharing`, `policy`, `think`).
    pub key: &'static str,
    /// Its values for which the key applies.
    pub values: &'static [&'static str],
    /// Its value when it is not given.
    pub default: &'static str,
    /// Said in parentheses in the message, for example `only closed-loop`.
    pub note: &'static str,
    /// Whether the key may still be given when the selecting key varies between
    /// sweep points (a sweep over `engine.policy` carries both policies' tables).
    pub varied_ok: bool,
}

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Key.
    pub name: &'static str,
    /// What it may hold.
    pub kind: Kind,
    /// `Some(hint)` when the key is required: what to give.
    pub required: Option<&'static str>,
    /// Its default, in words (empty: required, or none).
    pub default: &'static str,
    /// Unit of its value (empty: none).
    pub unit: &'static str,
    /// An example value, as TOML text.
    pub example: &'static str,
    /// One line saying what it sets.
    pub doc: &'static str,
    /// When it applies (all must hold; none: always).
    pub applies: &'static [Cond],
}

/// A key with just a name and a kind; the builder methods add the rest.
pub const fn key(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        required: None,
        default: "",
        unit: "",
        example: "",
        doc: "",
        applies: &[],
    }
}

impl Key {
    /// Required; `hint` says what to give.
    pub const fn req(mut self, hint: &'static str) -> Key {
        self.required = Some(hint);
        self
    }
    /// Its default in words.
    pub const fn default_is(mut self, d: &'static str) -> Key {
        self.default = d;
        self
    }
    /// Its unit.
    pub const fn unit(mut self, u: &'static str) -> Key {
        self.unit = u;
        self
    }
    /// An example value (TOML).
    pub const fn example(mut self, e: &'static str) -> Key {
        self.example = e;
        self
    }
    /// Its doc line.
    pub const fn doc(mut self, d: &'static str) -> Key {
        self.doc = d;
        self
    }
    /// When it applies.
    pub const fn only(mut self, c: &'static [Cond]) -> Key {
        self.applies = c;
        self
    }
}
