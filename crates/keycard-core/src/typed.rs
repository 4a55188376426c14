//! The typed pass: one walk over a payload that does everything
//! [`crate::parse::payload_pass`] does (an object, no duplicate member at
//! any depth, the registered claims with strict types, nothing after it)
//! and, in the same walk, deserializes the caller's claims type `T`.
//!
//! The caller's type drives the walk; this module sits between it and
//! serde_json. Each top-level member name is checked against the names seen
//! so far and handed to `T` once. A registered claim is read with its strict
//! type and its value handed to `T` from that reading; any other member is
//! taken as the raw JSON text serde_json already delimited, checked for
//! duplicate members only when it can hold an object, and handed to `T`
//! through a deserializer over exactly those bytes (a plain string without
//! escapes is handed over directly).
//!
//! The pass never decides anything on its own: when it fails, for any
//! reason, the caller runs the untyped pass, whose error is the one
//! reported, and deserializes `T` the usual way (see
//! [`crate::verify::TypedSink`]). A type the pass cannot feed exactly as
//! serde_json would therefore costs a second walk, never a different answer.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::value::RawValue;

use crate::parse::{check_no_duplicates, Audience, PayloadFacts, Str};

/// Run the typed pass: the facts the untyped pass would find, and `T`.
pub(crate) fn typed_pass<T: DeserializeOwned>(
    payload: &[u8],
) -> Result<(PayloadFacts<'_>, T), serde_json::Error> {
    // UTF-8 checked once for the whole payload rather than string by string;
    // a payload that is not UTF-8 is left to the untyped pass's error.
    let text = std::str::from_utf8(payload)
        .map_err(|_| <serde_json::Error as de::Error>::custom("not UTF-8"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut facts = PayloadFacts::default();
    let t = T::deserialize(Top {
        de: &mut de,
        facts: &mut facts,
    })?;
    de.end()?;
    Ok((facts, t))
}

/// The payload as `T` sees it: always a JSON object.
struct Top<'a, 'de> {
    de: &'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
    facts: &'a mut PayloadFacts<'de>,
}

impl<'de> Deserializer<'de> for Top<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_map(TopVisitor {
            inner: visitor,
            facts: self.facts,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct TopVisitor<'a, 'de, V> {
    inner: V,
    facts: &'a mut PayloadFacts<'de>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TopVisitor<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Members {
            map,
            facts: self.facts,
            registered: 0,
            seen: Default::default(),
            n: 0,
            spill: Vec::new(),
            current: Member::Other,
        })
    }
}

/// Which member the value that follows belongs to.
#[derive(Clone, Copy)]
enum Member {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
    Sid,
    Cnf,
    Other,
}

impl Member {
    fn of(name: &str) -> Self {
        // Every registered name has three bytes.
        match name.as_bytes() {
            [b'i', b's', b's'] => Self::Iss,
            [b's', b'u', b'b'] => Self::Sub,
            [b'a', b'u', b'd'] => Self::Aud,
            [b'e', b'x', b'p'] => Self::Exp,
            [b'n', b'b', b'f'] => Self::Nbf,
            [b'i', b'a', b't'] => Self::Iat,
            [b'j', b't', b'i'] => Self::Jti,
            [b's', b'i', b'd'] => Self::Sid,
            [b'c', b'n', b'f'] => Self::Cnf,
            _ => Self::Other,
        }
    }
}

/// The top-level members, as `T` asks for them.
struct Members<'a, 'de, A> {
    map: A,
    facts: &'a mut PayloadFacts<'de>,
    /// The registered names seen so far, one bit per [`Member`].
    registered: u16,
    /// The other names seen so far: 8 on the stack, the rest spilled.
    seen: [Option<Str<'de>>; 8],
    n: usize,
    spill: Vec<Str<'de>>,
    current: Member,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Members<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key::<Str<'de>>()? else {
            return Ok(None);
        };
        self.current = Member::of(&key.0);
        let duplicate = match self.current {
            // A registered name is one bit; only other names are compared.
            Member::Other => self.seen[..self.n]
                .iter()
                .flatten()
                .chain(self.spill.iter())
                .any(|k| k.0 == key.0),
            m => {
                let bit = 1u16 << (m as u16);
                let seen = self.registered & bit != 0;
                self.registered |= bit;
                seen
            }
        };
        if duplicate {
            return Err(de::Error::custom("duplicate member name"));
        }
        let value = seed.deserialize(Scalar::<A::Error>::str(&key.0))?;
        if matches!(self.current, Member::Other) {
            if self.n < self.seen.len() {
                self.seen[self.n] = Some(key);
                self.n += 1;
            } else {
                self.spill.push(key);
            }
        }
        Ok(Some(value))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let facts = &mut *self.facts;
        let text = |slot: &mut Option<Str<'de>>, map: &mut A, seed: S| {
            let s: Str<'de> = map.next_value()?;
            let value = seed.deserialize(Scalar::str(&s.0))?;
            *slot = Some(s);
            Ok(value)
        };
        match self.current {
            Member::Iss => text(&mut facts.iss, &mut self.map, seed),
            Member::Sub => text(&mut facts.sub, &mut self.map, seed),
            Member::Jti => text(&mut facts.jti, &mut self.map, seed),
            Member::Sid => text(&mut facts.sid, &mut self.map, seed),
            Member::Exp | Member::Nbf | Member::Iat => {
                let n: Number = self.map.next_value()?;
                let date = n.date().map_err(de::Error::custom)?;
                let slot = match self.current {
                    Member::Exp => &mut facts.exp,
                    Member::Nbf => &mut facts.nbf,
                    _ => &mut facts.iat,
                };
                *slot = Some(crate::parse::NumericDate(date));
                seed.deserialize(n.scalar())
            }
            Member::Aud => {
                let aud: Audience<'de> = self.map.next_value()?;
                let value = match &aud {
                    Audience::One(s) => seed.deserialize(Scalar::str(&s.0))?,
                    Audience::Many(v) => seed.deserialize(de::value::SeqDeserializer::new(
                        v.iter().map(|s| Scalar::str(&s.0)),
                    ))?,
                };
                facts.aud = Some(aud);
                Ok(value)
            }
            Member::Cnf | Member::Other => {
                let raw: &'de RawValue = self.map.next_value()?;
                let json = raw.get();
                let other = matches!(self.current, Member::Other);
                // A string without escapes is its own value (and has no
                // depth): the usual case of an unregistered claim.
                let plain = |json: &'de str| {
                    json.strip_prefix('"')
                        .and_then(|s| s.strip_suffix('"'))
                        .filter(|s| !s.contains('\\'))
                };
                if let Some(s) = plain(json).filter(|_| other) {
                    return seed.deserialize(Scalar::str(s));
                }
                // Delimiting has no depth limit, and a walk of the value on
                // its own starts one level higher than the untyped pass's
                // walk of it: refuse what the untyped pass would refuse.
                let scan = scan(json.as_bytes());
                if scan.depth > MAX_MEMBER_DEPTH {
                    return Err(de::Error::custom("nested too deeply"));
                }
                if matches!(self.current, Member::Cnf) {
                    facts.cnf_jkt = crate::parse::cnf_jkt(json).map_err(de::Error::custom)?;
                }
                if let Some(s) = plain(json) {
                    return seed.deserialize(Scalar::str(s));
                }
                // Anything else gets the untyped pass's own check
                // (duplicate members, and what delimiting does not check: a
                // number out of range, a lone surrogate escape), unless it
                // holds neither objects, numbers nor escapes.
                if other && scan.needs_check && !check_no_duplicates(json.as_bytes()) {
                    return Err(de::Error::custom(
                        "not one JSON value without duplicate members",
                    ));
                }
                let mut inner = serde_json::Deserializer::from_str(json);
                seed.deserialize(&mut inner).map_err(de::Error::custom)
            }
        }
    }
}

/// The deepest nesting a top-level member's value may have: serde_json
/// refuses a 128th level, and the payload object is the first.
const MAX_MEMBER_DEPTH: usize = 126;

/// What one byte scan of a member's JSON value (already delimited by
/// serde_json, so well formed) tells.
struct Scan {
    /// It may hold what only the full check refuses: an object (a
    /// duplicate member), a number (out of range) or an escape (a lone
    /// surrogate). Arrays of plain strings, `true`, `false` and `null` do
    /// not.
    needs_check: bool,
    /// The deepest nesting of arrays and objects (0 for a scalar).
    depth: usize,
}

fn scan(json: &[u8]) -> Scan {
    let (mut in_string, mut escaped) = (false, false);
    let (mut needs_check, mut depth, mut deepest) = (false, 0usize, 0usize);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => {
                    escaped = true;
                    needs_check = true;
                }
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                needs_check |= b == b'{';
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => needs_check = true,
            _ => {}
        }
    }
    Scan {
        needs_check,
        depth: deepest,
    }
}

/// A NumericDate as serde_json read it, so that `T` sees the same number.
#[derive(Clone, Copy)]
enum Number {
    I(i64),
    U(u64),
    F(f64),
}

impl Number {
    /// The same reading as [`crate::parse::NumericDate`].
    fn date(self) -> Result<i64, &'static str> {
        match self {
            Self::I(v) => Ok(v),
            Self::U(v) => Ok(i64::try_from(v).unwrap_or(i64::MAX)),
            // `as` saturates: 1e300 becomes i64::MAX.
            Self::F(v) if v.is_finite() => Ok(v.floor() as i64),
            Self::F(_) => Err("non-finite NumericDate"),
        }
    }

    fn scalar<'a, E>(self) -> Scalar<'a, E> {
        Scalar {
            value: match self {
                Self::I(v) => ScalarValue::I(v),
                Self::U(v) => ScalarValue::U(v),
                Self::F(v) => ScalarValue::F(v),
            },
            marker: std::marker::PhantomData,
        }
    }
}

impl<'de> de::Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Number, E> {
                Ok(Number::I(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Number, E> {
                Ok(Number::U(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Number, E> {
                Ok(Number::F(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One JSON scalar handed to `T` as serde_json would hand it: `null`-less
/// options are `Some`, a string may name a unit enum variant, newtypes
/// are transparent.
struct Scalar<'a, E> {
    value: ScalarValue<'a>,
    marker: std::marker::PhantomData<E>,
}

#[derive(Clone, Copy)]
enum ScalarValue<'a> {
    Str(&'a str),
    I(i64),
    U(u64),
    F(f64),
}

impl<'a, E> Scalar<'a, E> {
    fn str(s: &'a str) -> Self {
        Self {
            value: ScalarValue::Str(s),
            marker: std::marker::PhantomData,
        }
    }
}

impl<'de, E: de::Error> Deserializer<'de> for Scalar<'_, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            ScalarValue::Str(s) => visitor.visit_str(s),
            ScalarValue::I(v) => visitor.visit_i64(v),
            ScalarValue::U(v) => visitor.visit_u64(v),
            ScalarValue::F(v) => visitor.visit_f64(v),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            ScalarValue::Str(s) => visitor.visit_enum(de::value::StrDeserializer::<E>::new(s)),
            _ => self.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'de, E: de::Error> de::IntoDeserializer<'de, E> for Scalar<'_, E> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// The typed pass against the untyped pass and a plain serde_json parse:
/// never a different answer, and the one walk for the types handlers use.
#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fmt::Debug;

    use serde::Deserialize;

    use super::*;
    use crate::parse::{payload_pass, Facts};

    #[derive(Debug, PartialEq, Deserialize)]
    struct Plain {
        sub: String,
        roles: Vec<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Kind {
        Person,
        Service,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Wide {
        sub: Option<String>,
        exp: u64,
        #[serde(default)]
        iat: Option<f64>,
        #[serde(default)]
        aud: serde_json::Value,
        #[serde(default)]
        kind: Option<Kind>,
        #[serde(default)]
        nested: Option<HashMap<String, serde_json::Value>>,
        #[serde(default)]
        cnf: Option<serde_json::Value>,
        #[serde(default)]
        scope: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        sub: String,
        exp: i64,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Flat {
        sub: String,
        #[serde(flatten)]
        rest: HashMap<String, serde_json::Value>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Newtype(HashMap<String, serde_json::Value>);

    #[derive(Debug, PartialEq, Deserialize)]
    struct Outer(Option<Plain>);

    /// Reads `sub` and `exp` and ignores everything else.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Plainish {
        sub: String,
        exp: u64,
    }

    fn facts(payload: &[u8], f: PayloadFacts<'_>) -> String {
        format!("{:?}", Facts::of(f, payload))
    }

    /// Whether the one walk was taken; panics on a different answer.
    fn same<T: DeserializeOwned + PartialEq + Debug>(payload: &str) -> bool {
        taken::<T>(payload).0
    }

    /// (the one walk was taken, both walks would have passed); panics on a
    /// different answer.
    fn taken<T: DeserializeOwned + PartialEq + Debug>(payload: &str) -> (bool, bool) {
        let bytes = payload.as_bytes();
        let untyped = payload_pass(bytes);
        let plain = serde_json::from_slice::<T>(bytes);
        let both = untyped.is_ok() && plain.is_ok();
        let taken = match typed_pass::<T>(bytes) {
            Ok((f, t)) => {
                let u = untyped.unwrap_or_else(|e| panic!("typed passed, untyped: {e}: {payload}"));
                assert_eq!(facts(bytes, f), facts(bytes, u), "{payload}");
                let plain =
                    plain.unwrap_or_else(|e| panic!("typed passed, serde_json: {e}: {payload}"));
                assert_eq!(t, plain, "{payload}");
                true
            }
            Err(_) => false,
        };
        (taken, both)
    }

    const GOOD: &[&str] = &[
        r#"{"sub":"alice","roles":["a","b"],"exp":1700000000,"iat":1699999000,"nbf":1699999000,"iss":"https://i","aud":"api","jti":"j1"}"#,
        r#"{"roles":[],"sub":"b\u00e9","exp":1.5,"aud":["x","y"],"cnf":{"jkt":"abc"},"sid":"s"}"#,
        r#"{"sub":"s","roles":["r"],"exp":18446744073709551615,"kind":"Service","nested":{"a":{"b":[1,{"c":null}]}},"scope":"read write"}"#,
        r#"{"sub":"s","roles":["r"],"exp":-5,"iat":1e3,"kind":"Person","scope":"esc\"aped"}"#,
        r#" { "sub" : "s" , "roles" : [ "x" ] , "exp" : 1 } "#,
        r#"{"\u0073ub":"s","roles":["r"],"exp":1}"#,
        r#"{"sub":"s","exp":1}"#,
    ];

    const BAD: &[&str] = &[
        r#"{"sub":"s","roles":[],"exp":1,"exp":2}"#,
        r#"{"sub":"s","roles":[],"exp":1,"\u0065xp":2}"#,
        r#"{"sub":"s","roles":[{"x":1,"x":2}],"exp":1}"#,
        r#"{"sub":"s","roles":[],"exp":1,"n":{"a":{"b":1,"b":1}}}"#,
        r#"{"sub":"s","roles":[],"exp":"1"}"#,
        r#"{"sub":2,"roles":[],"exp":1}"#,
        r#"{"sub":"s","roles":[],"exp":1,"aud":[1]}"#,
        r#"{"sub":"s","roles":[],"exp":1,"iss":null}"#,
        r#"{"sub":"s","roles":[],"exp":1,"cnf":"x"}"#,
        r#"{"sub":"s","roles":[],"exp":1,"cnf":{"jkt":1}}"#,
        r#"{"sub":"s","roles":[],"exp":1} x"#,
        r#"{"sub":"s","roles":[],"exp":1"#,
        r#"["sub"]"#,
        r#""s""#,
        "",
    ];

    #[test]
    fn the_typed_pass_agrees_with_both_walks() {
        for p in GOOD {
            same::<Wide>(p);
            same::<Strict>(p);
            same::<Flat>(p);
            same::<Newtype>(p);
            same::<serde_json::Value>(p);
            same::<serde::de::IgnoredAny>(p);
            same::<Plain>(p);
        }
        for p in BAD {
            assert!(payload_pass(p.as_bytes()).is_err(), "{p}");
            for ok in [
                typed_pass::<Plain>(p.as_bytes()).is_ok(),
                typed_pass::<Wide>(p.as_bytes()).is_ok(),
                typed_pass::<serde_json::Value>(p.as_bytes()).is_ok(),
                typed_pass::<serde::de::IgnoredAny>(p.as_bytes()).is_ok(),
            ] {
                assert!(!ok, "the typed pass accepted {p}");
            }
        }
        // Not UTF-8, inside a string or outside: refused by both.
        for bytes in [&b"{\"sub\":\"\xff\",\"exp\":1}"[..], b"{\"exp\":1}\xc3"] {
            assert!(payload_pass(bytes).is_err());
            assert!(typed_pass::<serde_json::Value>(bytes).is_err());
        }
        let many: String = (0..40).map(|i| format!("\"k{i}\":{i},")).collect();
        assert!(same::<Wide>(&format!("{{{many}\"exp\":1}}")));
        assert!(typed_pass::<Wide>(format!("{{{many}\"k3\":1,\"exp\":1}}").as_bytes()).is_err());
        let deep = format!("{{\"exp\":1,\"a\":{}}}", "[".repeat(100_000));
        assert!(typed_pass::<Wide>(deep.as_bytes()).is_err());
        // Closed nesting, at and past serde_json's limit, in an ignored
        // member, a `Value`, and `cnf`: the same answer as the untyped pass.
        for levels in [125, 126, 127, 128, 5000] {
            let nest = |inner: &str| format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels));
            for p in [
                format!("{{\"sub\":\"s\",\"exp\":1,\"x\":{}}}", nest("")),
                format!("{{\"sub\":\"s\",\"exp\":1,\"x\":{}}}", nest("1")),
                format!(
                    "{{\"sub\":\"s\",\"exp\":1,\"cnf\":{{\"jkt\":\"t\",\"a\":{}}}}}",
                    nest("")
                ),
            ] {
                let untyped = payload_pass(p.as_bytes()).is_ok();
                // A `cnf` member other than `jkt` is refused at any depth
                // (a confirmation method keycard cannot check).
                assert_eq!(untyped, levels <= 126 && !p.contains("cnf"), "{levels}");
                // A claims type that ignores the member takes the one walk
                // exactly when the untyped pass passes.
                assert_eq!(same::<Plainish>(&p), untyped, "{levels} levels: {p:.60}");
                for typed in [
                    typed_pass::<serde_json::Value>(p.as_bytes()).is_ok(),
                    typed_pass::<serde::de::IgnoredAny>(p.as_bytes()).is_ok(),
                ] {
                    assert!(
                        !typed || untyped,
                        "typed passed what untyped refuses: {levels} levels"
                    );
                }
            }
        }
    }

    #[test]
    fn only_values_without_objects_numbers_or_escapes_skip_the_check() {
        for plain in [r#"["a","b"]"#, "[]", "true", "null", r#"["{1}","-"]"#] {
            assert!(!scan(plain.as_bytes()).needs_check, "{plain}");
        }
        for checked in [
            r#"[{"a":1}]"#,
            "[1]",
            "-1",
            "1e400",
            r#"["\ud800"]"#,
            r#"["a",{}]"#,
        ] {
            assert!(scan(checked.as_bytes()).needs_check, "{checked}");
        }
        // Each of those would be refused by the check and not by delimiting.
        for refused in [
            r#"{"x":[1e400]}"#,
            r#"{"x":["\ud800"]}"#,
            r#"{"x":[{"a":1,"a":2}]}"#,
        ] {
            assert!(payload_pass(refused.as_bytes()).is_err(), "{refused}");
            assert!(
                typed_pass::<Plain>(refused.as_bytes()).is_err(),
                "{refused}"
            );
            assert!(
                typed_pass::<serde::de::IgnoredAny>(refused.as_bytes()).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn the_types_handlers_use_take_the_one_walk() {
        for p in GOOD {
            for (i, taken) in [
                taken::<Plain>(p),
                taken::<Wide>(p),
                taken::<Strict>(p),
                taken::<serde_json::Value>(p),
                taken::<Flat>(p),
                taken::<Newtype>(p),
                taken::<Outer>(p),
            ]
            .into_iter()
            .enumerate()
            {
                assert_eq!(taken.0, taken.1, "type {i}: {p}");
            }
        }
        // `Option` of a registered string, an enum named by a string,
        // numbers of each kind: fed as serde_json feeds them.
        assert!(same::<Wide>(GOOD[2]));
        assert!(same::<Plain>(GOOD[3]));
    }

    /// Random payloads built from pieces that exercise every branch:
    /// registered and other members, duplicates (plain and escaped),
    /// nesting, wrong types. Deterministic (a fixed xorshift seed).
    #[test]
    fn random_payloads_never_get_a_different_answer() {
        const KEYS: &[&str] = &[
            "sub",
            "exp",
            "nbf",
            "iat",
            "iss",
            "aud",
            "jti",
            "sid",
            "cnf",
            "roles",
            "kind",
            "nested",
            "scope",
            "x",
            "\\u0065xp",
            "\\u0078",
        ];
        const VALUES: &[&str] = &[
            "1", "-1", "1.5", "1e400", "18446744073709551615", "\"s\"", "\"e\\u00e9\"", "null",
            "true", "[]", "[\"a\",\"b\"]", "[1,\"a\"]", "{}", "{\"jkt\":\"t\"}",
            "{\"a\":1,\"a\":2}", "[{\"b\":1},{\"b\":1,\"b\":2}]", "{\"jkt\":1}", "\"Person\"",
            "{\"a\":{\"b\":[{\"c\":1}]}}",
            "[\"\\ud800\"]",
            "[\"x\",\"\\u0041\"]",
            "1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut agreed, mut one_walk) = (0, 0);
        for _ in 0..4000 {
            let members = next(7);
            let body: Vec<String> = (0..members)
                .map(|_| {
                    format!(
                        "\"{}\":{}",
                        KEYS[next(KEYS.len())],
                        VALUES[next(VALUES.len())]
                    )
                })
                .collect();
            let p = format!("{{{}}}", body.join(","));
            let untyped_ok = payload_pass(p.as_bytes()).is_ok();
            for walked in [
                same::<Wide>(&p),
                same::<serde_json::Value>(&p),
                same::<Flat>(&p),
                same::<serde::de::IgnoredAny>(&p),
            ] {
                assert!(!walked || untyped_ok, "{p}");
                one_walk += usize::from(walked);
            }
            agreed += 1;
        }
        assert_eq!(agreed, 4000);
        assert!(one_walk > 1000, "the typed pass was taken {one_walk} times");
    }
}
